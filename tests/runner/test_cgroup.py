"""The cgroup readers behind ``--workers auto`` and ``--max-load``: each file format parsed on its
own, then whole cgroup trees (v2 and v1) laid out under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from telcoflow_trio.runner import _cgroup
from telcoflow_trio.runner._cgroup import (
    Cgroup,
    CpuLoad,
    cpu_count,
    cpu_load,
    parse_cfs_quota,
    parse_cpu_max,
    parse_cpu_stat_usage,
    parse_proc_cgroup,
)

CPU_STAT_V2 = """usage_usec 8035927
user_usec 5398146
system_usec 2637781
nr_periods 120
nr_throttled 3
throttled_usec 41234
"""


def test_proc_cgroup_v2_v1_and_hybrid() -> None:
    assert parse_proc_cgroup("0::/user.slice/app.service\n") == {"": "/user.slice/app.service"}
    hybrid = "12:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n0::/\n"
    assert parse_proc_cgroup(hybrid) == {
        "cpu": "/docker/abc",
        "cpuacct": "/docker/abc",
        "memory": "/docker/abc",
        "": "/",
    }
    assert parse_proc_cgroup("garbage\n\n") == {}


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000\n", None), ("150000 100000\n", 1.5), ("50000 100000", 0.5), ("200000", 2.0)],
)
def test_cpu_max(text: str, cpus: float | None) -> None:
    assert parse_cpu_max(text) == cpus


@pytest.mark.parametrize("text", ["", "lots 100000", "100000 0", "-5 100000", "1 2 3"])
def test_cpu_max_rejects_what_the_kernel_never_writes(text: str) -> None:
    with pytest.raises(ValueError, match=r"cpu\.max"):
        parse_cpu_max(text)


def test_cfs_quota() -> None:
    assert parse_cfs_quota("-1\n", "100000\n") is None
    assert parse_cfs_quota("250000\n", "100000\n") == 2.5
    with pytest.raises(ValueError, match=r"cpu\.cfs_period_us"):
        parse_cfs_quota("100000", "zero")
    with pytest.raises(ValueError, match=r"cpu\.cfs_quota_us"):
        parse_cfs_quota("0", "100000")


def test_cpu_stat_usage() -> None:
    assert parse_cpu_stat_usage(CPU_STAT_V2) == 8035927
    with pytest.raises(ValueError, match="usage_usec"):
        parse_cpu_stat_usage("user_usec 5\n")
    with pytest.raises(ValueError, match="usage_usec"):
        parse_cpu_stat_usage("usage_usec many\n")


def v2_tree(tmp_path: Path, own: str, limits: dict[str, str]) -> tuple[Path, Path]:
    """A cgroup2 mount at tmp_path/cg, this process in `own`, cpu.max files at `limits`."""
    root = tmp_path / "cg"
    (root / own.lstrip("/")).mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / own.lstrip("/") / "cpu.stat").write_text(CPU_STAT_V2)
    for where, text in limits.items():
        (root / where.lstrip("/") / "cpu.max").write_text(text)
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text(f"0::{own}\n")
    return root, proc


def test_v2_tightest_limit_on_the_way_up(tmp_path: Path) -> None:
    root, proc = v2_tree(
        tmp_path, "/kube/pod/ctr", {"/kube": "150000 100000", "/kube/pod/ctr": "max 100000"}
    )
    cgroup = Cgroup.find(root, proc)
    assert cgroup is not None
    assert cgroup.version == 2
    assert cgroup.usage_dir == root / "kube/pod/ctr"
    assert cgroup.quota() == 1.5
    assert cgroup.usage_usec() == 8035927


def test_v2_in_a_cgroup_namespace_reads_the_mount_root(tmp_path: Path) -> None:
    # Inside a container /proc/self/cgroup may name a path the mount does not show.
    root, proc = v2_tree(tmp_path, "/", {"/": "50000 100000"})
    proc.write_text("0::/somewhere/else\n")
    cgroup = Cgroup.find(root, proc)
    assert cgroup is not None
    assert cgroup.usage_dir == root
    assert cgroup.quota() == 0.5


def test_v1_cpu_and_cpuacct(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    for controller in ("cpu", "cpuacct"):
        (root / controller / "docker" / "abc").mkdir(parents=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (root / "cpu/docker/abc/cpu.cfs_quota_us").write_text("300000\n")
    (root / "cpu/docker/abc/cpu.cfs_period_us").write_text("100000\n")
    (root / "cpuacct/docker/abc/cpuacct.usage").write_text("123456789\n")
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text("4:cpu:/docker/abc\n5:cpuacct:/docker/abc\n")
    cgroup = Cgroup.find(root, proc)
    assert cgroup is not None
    assert cgroup.version == 1
    assert cgroup.quota() == 3.0
    assert cgroup.usage_usec() == 123456


def test_no_cgroup(tmp_path: Path) -> None:
    assert Cgroup.find(tmp_path, tmp_path / "missing") is None


def test_cpu_count_is_affinity_capped_by_the_quota_rounded_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    root, proc = v2_tree(tmp_path, "/", {"/": "150000 100000"})
    assert cpu_count(root, proc) == 2
    (root / "cpu.max").write_text("20000 100000\n")
    assert cpu_count(root, proc) == 1
    (root / "cpu.max").write_text("max 100000\n")
    assert cpu_count(root, proc) == 8
    (root / "cpu.max").write_text("nonsense\n")  # unreadable quota: ignored, not fatal
    assert cpu_count(root, proc) == 8
    assert cpu_count(tmp_path / "nothing", proc) == 8


def test_cpu_load_from_usage_deltas_over_the_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 2.0, 1.0))
    root, proc = v2_tree(tmp_path, "/", {"/": "200000 100000"})
    now = [100.0]
    meter = CpuLoad(root=root, proc_self_cgroup=proc, clock=lambda: now[0])
    assert meter() == 1.5  # no previous reading: load average 3.0 over 2 CPUs
    now[0] += 2.0
    (root / "cpu.stat").write_text(CPU_STAT_V2.replace("8035927", str(8035927 + 1_000_000)))
    assert meter() == pytest.approx(0.25)  # 1 CPU-second in 2 s on 2 CPUs
    now[0] += 0.01  # too soon to say: the previous figure
    (root / "cpu.stat").write_text(CPU_STAT_V2.replace("8035927", str(9035927 + 9_000_000)))
    assert meter() == pytest.approx(0.25)
    now[0] += 0.99
    assert meter() == pytest.approx(4.5)  # 9 CPU-seconds in 1 s on 2 CPUs: over the quota
    (root / "cpu.stat").unlink()  # the cgroup went away: the load average from now on
    now[0] += 1.0
    assert meter() == 1.5


def test_cpu_load_without_a_cgroup_is_the_load_average(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 0.0, 0.0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    meter = CpuLoad(root=tmp_path, proc_self_cgroup=tmp_path / "missing")
    assert meter() == 0.25
    assert meter() == 0.25


def test_cpu_load_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cgroup, "_meter", None)
    assert cpu_load() >= 0.0
    assert cpu_load() >= 0.0
    assert cpu_count() >= 1
