"""Metrics in multiprocess mode: two child processes write to one PROMETHEUS_MULTIPROC_DIR (one
imports prometheus_client before the variable is set, as a process that imported it early
would), the parent sums them with render_directory and reads them back with prometheus_client's
parser; a dead worker's live gauges go when it is marked dead."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from telcoflow_trio.runner._errors import RunConfigError
from telcoflow_trio.runner._metrics import Metrics, render_directory, worker_health

# A worker: feeds a Metrics with stand-ins for the manager and the calls (the real ones are
# covered in test_metrics.py), then prints its pid. argv: directory, early import?, calls,
# active calls, healthy?
CHILD = textwrap.dedent(
    """
    import os, sys
    directory, early, calls, active, healthy = sys.argv[1:]
    if early == "early":
        import prometheus_client.values  # picks its storage now, without the variable
        assert not prometheus_client.values.ValueClass._multiprocess
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from types import SimpleNamespace as NS
    from telcoflow_trio import ConnectionState
    from telcoflow_trio.runner._metrics import Metrics

    metrics = Metrics()
    assert metrics.multiprocess_dir == directory
    stats = NS(won=int(calls) + 1, lost=1, skipped_at_capacity=0, expired=0,
               active_calls=int(active), held=0)
    up = ConnectionState.CONNECTED
    state = up if healthy == "up" else ConnectionState.RECONNECTING
    manager = NS(claim_stats=stats, reconnects=2, connection_state=state)
    metrics.poll(manager)
    for i in range(int(calls)):
        call = NS(
            id=f"call-{i}",
            audio_counters=NS(underruns=3, dropped_bytes=100),
            incoming_audio_dropped_bytes=10,
            command_rtts=(0.02, 0.2),
            pull_fill_times=(0.001,),
        )
        metrics.call_ended(call, "completed")
    metrics.call_ended(NS(id="x", audio_counters=None, incoming_audio_dropped_bytes=0,
                          command_rtts=(), pull_fill_times=()), "hung_up")
    print(os.getpid())
    """
)


def run_child(directory: Path, early: bool, calls: int, active: int, healthy: bool) -> int:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    args = [str(directory), "early" if early else "late", str(calls), str(active)]
    args.append("up" if healthy else "down")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a hang safety net
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(body: bytes) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            found[s.name, tuple(sorted(s.labels.items()))] = s.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found[name, tuple(sorted(labels.items()))]


def test_two_workers_are_summed_and_a_dead_ones_gauges_go(tmp_path: Path) -> None:
    first = run_child(tmp_path, early=True, calls=2, active=1, healthy=True)
    second = run_child(tmp_path, early=False, calls=3, active=2, healthy=False)
    assert first != second
    kinds = {p.name.split("_")[0] for p in tmp_path.glob("*.db")}
    assert kinds >= {"counter", "gauge", "histogram"}

    body, content_type = render_directory(tmp_path)
    assert content_type.startswith("text/plain")
    found = samples(body)
    assert value(found, "telcoflow_calls_total", outcome="completed") == 5
    assert value(found, "telcoflow_calls_total", outcome="hung_up") == 2
    assert value(found, "telcoflow_calls_total", outcome="failed") == 0
    assert value(found, "telcoflow_claims_total", result="won") == 3 + 4
    assert value(found, "telcoflow_claims_total", result="lost") == 2
    assert value(found, "telcoflow_control_reconnects_total") == 4
    assert value(found, "telcoflow_audio_underruns_total") == 15
    assert value(found, "telcoflow_audio_dropped_bytes_total", direction="outgoing") == 500
    assert value(found, "telcoflow_audio_dropped_bytes_total", direction="incoming") == 50
    assert value(found, "telcoflow_command_rtt_seconds_count") == 10
    assert value(found, "telcoflow_command_rtt_seconds_bucket", le="0.025") == 5
    assert value(found, "telcoflow_pull_fill_seconds_count") == 5
    assert value(found, "telcoflow_active_calls") == 3  # livesum: 1 + 2
    # Health: one series per process.
    assert value(found, "telcoflow_healthy", pid=str(first)) == 1
    assert value(found, "telcoflow_healthy", pid=str(second)) == 0
    assert worker_health(tmp_path) == {first: True, second: False}

    mark_process_dead(second, str(tmp_path))  # type: ignore[no-untyped-call]
    found = samples(render_directory(tmp_path)[0])
    assert value(found, "telcoflow_active_calls") == 1
    assert ("telcoflow_healthy", (("pid", str(second)),)) not in found
    assert value(found, "telcoflow_calls_total", outcome="completed") == 5  # counts stay
    assert worker_health(tmp_path) == {first: True}


def test_a_directory_that_is_not_one_is_a_run_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(missing))
    with pytest.raises(RunConfigError, match=r"_DIR=.*missing: not a directory"):
        Metrics()
    with pytest.raises(RunConfigError, match="not a directory"):
        render_directory(missing)
