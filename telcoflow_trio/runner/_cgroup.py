"""The CPUs this process may use, and how busy they are, read from its cgroup where there is one.

A container's CPU limit is not the machine's CPU count: ``os.cpu_count()`` and
``os.getloadavg()`` see the host. ``--workers auto`` and ``--max-load`` use :func:`cpu_count`
and :func:`cpu_load` instead, which read the cgroup's quota and usage (v2, the unified
hierarchy; v1's ``cpu`` and ``cpuacct`` controllers too) and fall back to the host's figures
when there is no cgroup to read.

The parsing functions are pure (text in, numbers out) so each file format is tested on its own;
:class:`Cgroup` finds the files under a root that tests point at a temporary directory.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import attrs

__all__ = [
    "Cgroup",
    "CpuLoad",
    "cpu_count",
    "cpu_load",
    "parse_cfs_quota",
    "parse_cpu_max",
    "parse_cpu_stat_usage",
    "parse_proc_cgroup",
]

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Map each controller in ``/proc/self/cgroup`` to this process's cgroup path.

    v1 lines (``4:cpu,cpuacct:/docker/abc``) give one key per controller; the v2 line
    (``0::/user.slice``) gives the key ``""``. Lines that are not ``id:controllers:path`` are
    skipped.
    """
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def parse_cpu_max(text: str) -> float | None:
    """The CPU quota in CPUs from a v2 ``cpu.max`` (``"150000 100000"`` → 1.5), None for
    ``max`` (no limit).

    :raises ValueError: the text is not ``QUOTA PERIOD`` with ``QUOTA`` ``max`` or a positive
        integer and ``PERIOD`` a positive integer.
    """
    fields = text.split()
    if not fields or len(fields) > 2:
        raise ValueError(f"cpu.max: expected 'QUOTA PERIOD', got {text.strip()!r}")
    if fields[0] == "max":
        return None
    period = _positive_int(fields[1] if len(fields) == 2 else "100000", "cpu.max period")
    return _positive_int(fields[0], "cpu.max quota") / period


def parse_cfs_quota(quota_text: str, period_text: str) -> float | None:
    """The CPU quota in CPUs from v1 ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us``, None for
    a quota of -1 (no limit).

    :raises ValueError: either file does not hold an integer (a positive one, but for the -1).
    """
    if quota_text.strip() == "-1":
        return None
    quota = _positive_int(quota_text.strip(), "cpu.cfs_quota_us")
    return quota / _positive_int(period_text.strip(), "cpu.cfs_period_us")


def parse_cpu_stat_usage(text: str) -> int:
    """The ``usage_usec`` counter of a v2 ``cpu.stat`` (CPU time used, in microseconds).

    :raises ValueError: there is no ``usage_usec`` line holding an integer.
    """
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            try:
                return int(value)
            except ValueError:
                break
    raise ValueError("cpu.stat: no 'usage_usec N' line")


def _positive_int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what}: expected an integer, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"{what}: expected a positive integer, got {value}")
    return value


def _own_dir(mount: Path, path: str) -> Path:
    # In a cgroup namespace (most containers) our cgroup is the mount's root; without one the
    # path from /proc/self/cgroup is relative to the mount.
    candidate = mount / path.lstrip("/")
    return candidate if candidate.is_dir() else mount


def _up_to(leaf: Path, mount: Path) -> list[Path]:
    # The effective limit is the tightest one on the way up to the mount.
    dirs = [leaf]
    while dirs[-1] != mount and mount in dirs[-1].parents:
        dirs.append(dirs[-1].parent)
    return dirs


@attrs.frozen
class Cgroup:
    """Where this process's cgroup CPU files are: ``version`` 2 (``cpu.max``, ``cpu.stat``) or 1
    (``cpu.cfs_quota_us``/``cpu.cfs_period_us``, ``cpuacct.usage``)."""

    version: int
    quota_dirs: tuple[Path, ...]
    usage_dir: Path

    @classmethod
    def find(
        cls, root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP
    ) -> Cgroup | None:
        """This process's cgroup, or None where there is none to read (not Linux, no cgroup
        filesystem)."""
        try:
            paths = parse_proc_cgroup(proc_self_cgroup.read_text())
        except OSError:
            paths = {}
        if (root / "cgroup.controllers").is_file():
            leaf = _own_dir(root, paths.get("", "/"))
            return cls(2, tuple(_up_to(leaf, root)), leaf)
        cpu, cpuacct = root / "cpu", root / "cpuacct"
        if cpu.is_dir() and cpuacct.is_dir():
            leaf = _own_dir(cpu, paths.get("cpu", "/"))
            return cls(1, tuple(_up_to(leaf, cpu)), _own_dir(cpuacct, paths.get("cpuacct", "/")))
        return None

    def quota(self) -> float | None:
        """The CPU limit in CPUs (1.5 = one and a half CPUs' time), None if unlimited.

        :raises OSError: a file could not be read.
        :raises ValueError: a file did not hold what the kernel writes there.
        """
        limits = [q for q in map(self._quota_of, self.quota_dirs) if q is not None]
        return min(limits, default=None)

    def _quota_of(self, directory: Path) -> float | None:
        if self.version == 2:
            cpu_max = directory / "cpu.max"
            return parse_cpu_max(cpu_max.read_text()) if cpu_max.is_file() else None
        quota = directory / "cpu.cfs_quota_us"
        if not quota.is_file():
            return None
        return parse_cfs_quota(quota.read_text(), (directory / "cpu.cfs_period_us").read_text())

    def usage_usec(self) -> int:
        """CPU time used by the cgroup so far, in microseconds (a counter that only grows).

        :raises OSError: the file could not be read.
        :raises ValueError: it did not hold what the kernel writes there.
        """
        if self.version == 2:
            return parse_cpu_stat_usage((self.usage_dir / "cpu.stat").read_text())
        text = (self.usage_dir / "cpuacct.usage").read_text().strip()
        try:
            return int(text) // 1000
        except ValueError:
            raise ValueError(f"cpuacct.usage: expected an integer, got {text!r}") from None


def _find_quietly(root: Path, proc_self_cgroup: Path) -> Cgroup | None:
    try:
        return Cgroup.find(root, proc_self_cgroup)
    except OSError as exc:
        logger.debug("no cgroup to read under %s: %s", root, exc)
        return None


def _quota_quietly(cgroup: Cgroup | None) -> float | None:
    if cgroup is None:
        return None
    try:
        return cgroup.quota()
    except (OSError, ValueError) as exc:
        logger.debug("cgroup CPU quota unreadable, ignoring it: %s", exc)
        return None


def cpu_count(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """The CPUs this process may use: its CPU affinity, capped by the cgroup's CPU quota
    rounded up (a 1.5 CPU quota gives 2), at least 1. What ``--workers auto`` starts."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    quota = _quota_quietly(_find_quietly(root, proc_self_cgroup))
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


class CpuLoad:
    """A CPU load meter: each call returns how busy the CPUs this process may use were since the
    previous call, as a fraction: 0.0 idle, 1.0 all of them busy (a little more is possible).

    It reads the cgroup's CPU usage counter, divided by the elapsed time times the quota (or
    times :func:`cpu_count` when there is no quota). The first call, which has no previous
    reading, and every call where there is no cgroup to read, return the host's one-minute load
    average divided by :func:`cpu_count` instead. Calls closer together than ``min_interval``
    seconds return the previous figure (the counter is too coarse to say more).
    """

    def __init__(
        self,
        *,
        root: Path = CGROUP_ROOT,
        proc_self_cgroup: Path = PROC_SELF_CGROUP,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = 0.05,
    ) -> None:
        self._cgroup = _find_quietly(root, proc_self_cgroup)
        self._cpus: float = _quota_quietly(self._cgroup) or cpu_count(root, proc_self_cgroup)
        self._clock = clock
        self._min_interval = min_interval
        self._last: tuple[float, int] | None = None
        self._load = 0.0

    def _sample(self) -> tuple[float, int] | None:
        if self._cgroup is None:
            return None
        try:
            return self._clock(), self._cgroup.usage_usec()
        except (OSError, ValueError) as exc:
            logger.debug("cgroup CPU usage unreadable, using the load average: %s", exc)
            self._cgroup = None
            return None

    def _load_average(self) -> float:
        try:
            return os.getloadavg()[0] / self._cpus
        except OSError:  # the platform has none
            return 0.0

    def __call__(self) -> float:
        """The load since the previous call; see the class."""
        now = self._sample()
        if now is None or self._last is None:
            self._last = now
            self._load = self._load_average()
            return self._load
        elapsed = now[0] - self._last[0]
        if elapsed < self._min_interval:
            return self._load
        used = (now[1] - self._last[1]) / 1e6
        self._last = now
        self._load = max(0.0, used / (elapsed * self._cpus))
        return self._load


_meter: CpuLoad | None = None


def cpu_load() -> float:
    """This process's CPU load since the previous call, a fraction of the CPUs it may use (the
    first call: the load average); one meter per process (``runner._cgroup.CpuLoad``). What
    ``--max-load`` compares with its threshold."""
    global _meter
    if _meter is None:
        _meter = CpuLoad()
    return _meter()
