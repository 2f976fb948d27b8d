"""The worker supervisor with small child scripts: indexes and the shared metrics directory,
restart with backoff, drain and exit status, signals forwarded (the supervisor in a subprocess),
the kill deadline, and no child left alive after a cancellation."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from telcoflow_trio.runner._errors import RunConfigError
from telcoflow_trio.runner._supervisor import Backoff, Supervisor, cpu_count

# argv: OUT MODE. Notes start-INDEX-PID (holding its metrics dir) once its SIGTERM handler is
# in place, and term-INDEX-PID-N for its Nth SIGTERM. MODE on SIGTERM: exit0 (exit 0), second
# (exit 0 on the second), fail (exit 3), ignore (stay), default (die of it); crash: exit 5 at
# once after the start note.
CHILD = r"""
import os, signal, sys, time
out, mode = sys.argv[1], sys.argv[2]
index, pid = os.environ["TELCOFLOW_WORKER_INDEX"], os.getpid()

def note(name, text=""):
    path = os.path.join(out, name)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)

terms = 0
def on_term(signum, frame):
    global terms
    terms += 1
    note(f"term-{index}-{pid}-{terms}")
    if mode == "exit0" or (mode == "second" and terms == 2):
        sys.exit(0)
    if mode == "fail":
        sys.exit(3)

if mode != "default":
    signal.signal(signal.SIGTERM, on_term)
note(f"start-{index}-{pid}", os.environ["PROMETHEUS_MULTIPROC_DIR"])
if mode == "crash":
    sys.exit(5)
while True:
    time.sleep(1)
"""

# argv: CHILD OUT MODE WORKERS. Runs Supervisor.run() with its signal handling, logs to stderr.
SUPERVISOR = r"""
import logging, sys, trio
from telcoflow_trio.runner._supervisor import Supervisor
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
child, out, mode, workers = sys.argv[1:]
argv = lambda index: [sys.executable, child, out, mode]
sys.exit(trio.run(Supervisor(argv, int(workers), backoff=0.05, close_grace=5.0).run))
"""

FAST = {"backoff": 0.05, "max_backoff": 0.4, "cancel_grace": 1.0, "handle_signals": False}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out"


@pytest.fixture
def child(tmp_path: Path) -> Path:
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    return path


def argv(child: Path, out: Path, *modes: str) -> Callable[[int], list[str]]:
    """Worker i runs the child in modes[i] (the last mode for the rest)."""
    return lambda i: [sys.executable, str(child), str(out), modes[min(i, len(modes) - 1)]]


def notes(out: Path, kind: str) -> list[list[str]]:
    names = [p.name for p in out.iterdir() if not p.name.endswith(".tmp")]
    return sorted(name.split("-")[1:] for name in names if name.startswith(kind + "-"))


def starts(out: Path) -> list[tuple[int, int]]:
    """(index, pid) of every start so far."""
    return [(int(index), int(pid)) for index, pid in notes(out, "start")]


async def until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(10):  # a hang's safety net only
        while not condition():  # noqa: ASYNC110 (the children's files: no event for them)
            await trio.sleep(0.02)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def run_in(nursery: trio.Nursery, supervisor: Supervisor, result: list[int]) -> None:
    async def run() -> None:
        result.append(await supervisor.run())

    nursery.start_soon(run)
    await trio.lowlevel.checkpoint()


async def test_workers_get_distinct_indexes_and_one_metrics_dir(child: Path, out: Path) -> None:
    supervisor = Supervisor(argv(child, out, "exit0"), 3, **FAST)
    result: list[int] = []
    async with trio.open_nursery() as nursery:
        await run_in(nursery, supervisor, result)
        await until(lambda: len(starts(out)) == 3)
        assert sorted(index for index, _ in starts(out)) == [0, 1, 2]
        assert supervisor.pids == dict(starts(out))
        metrics_dir = supervisor.metrics_dir
        assert metrics_dir is not None
        assert await trio.Path(metrics_dir).is_dir()
        assert {(out / f"start-{i}-{p}").read_text() for i, p in starts(out)} == {metrics_dir}
        supervisor.drain()
    assert result == [0]
    assert len(notes(out, "term")) == 3  # one SIGTERM each
    assert not await trio.Path(metrics_dir).exists()  # the supervisor's own temporary directory
    assert all(gone(pid) for _, pid in starts(out))


async def test_a_killed_worker_is_restarted_and_its_live_gauges_removed(
    child: Path, out: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "telcoflow_trio.runner._supervisor")
    supervisor = Supervisor(argv(child, out, "exit0"), 2, **FAST)
    result: list[int] = []
    async with trio.open_nursery() as nursery:
        await run_in(nursery, supervisor, result)
        await until(lambda: len(starts(out)) == 2)
        first = supervisor.pids[1]
        assert supervisor.metrics_dir is not None
        gauge = Path(supervisor.metrics_dir) / f"gauge_livesum_{first}.db"
        gauge.write_bytes(b"")
        os.kill(first, signal.SIGKILL)
        await until(lambda: len(starts(out)) == 3)
        assert supervisor.pids[1] != first
        assert (1, supervisor.pids[1]) in starts(out)
        assert not gauge.exists()
        supervisor.drain()
    assert result == [0]
    assert f"worker 1 (pid {first}) died (killed by SIGKILL); restarting it in 0.05 s" in (
        caplog.text
    )


async def test_a_crash_looping_worker_backs_off(
    child: Path, out: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "telcoflow_trio.runner._supervisor")
    # Delays 0.05, 0.1, 0.2, 0.4, 0.4...: in 1 s at most 5 starts (a hot loop makes dozens).
    with trio.move_on_after(1.0):
        await Supervisor(argv(child, out, "crash"), 1, **FAST).run()
    assert 2 <= len(starts(out)) <= 5
    delays = [r.getMessage().rsplit(" in ", 1)[1] for r in caplog.records if "died" in r.msg]
    assert delays[:4] == ["0.05 s", "0.10 s", "0.20 s", "0.40 s"][: len(delays)]
    assert "(exit 5)" in caplog.text


def test_backoff_doubles_to_the_maximum_and_resets_after_a_long_life() -> None:
    backoff = Backoff(0.5, 4.0, reset_after=60.0)
    assert [backoff.after_exit(0.1) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.after_exit(60.0) == 0.5
    assert backoff.after_exit(59.0) == 1.0
    with pytest.raises(ValueError, match="hot loop"):
        Backoff(0.0)
    with pytest.raises(ValueError, match="max_backoff"):
        Backoff(1.0, 0.5)
    with pytest.raises(ValueError, match="backoff_reset"):
        Backoff(1.0, 2.0, reset_after=-1)


async def test_exit_status_is_1_and_names_the_worker_that_failed(
    child: Path, out: Path, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor = Supervisor(argv(child, out, "exit0", "fail", "exit0"), 3, **FAST)
    result: list[int] = []
    async with trio.open_nursery() as nursery:
        await run_in(nursery, supervisor, result)
        await until(lambda: len(starts(out)) == 3)
        supervisor.drain()
    assert result == [1]
    assert "1 of 3 workers did not exit cleanly: worker 1 (exit 3)" in caplog.text


async def test_a_worker_that_outlives_the_deadlines_is_killed(
    child: Path, out: Path, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor = Supervisor(argv(child, out, "ignore"), 2, kill_after=None, close_grace=0.2, **FAST)
    result: list[int] = []
    async with trio.open_nursery() as nursery:
        await run_in(nursery, supervisor, result)
        await until(lambda: len(starts(out)) == 2)
        supervisor.drain()
        await until(lambda: len(notes(out, "term")) == 2)
        supervisor.close()  # SIGTERM again, then SIGKILL 0.2 s later
        await until(lambda: len(notes(out, "term")) == 4)
    assert result == [1]
    assert "still alive at the drain's deadline: killing it" in caplog.text
    assert "worker 0 (killed by SIGKILL), worker 1 (killed by SIGKILL)" in caplog.text

    out2 = out.parent / "out2"
    out2.mkdir()
    supervisor = Supervisor(argv(child, out2, "ignore"), 1, kill_after=0.2, **FAST)
    result = []
    async with trio.open_nursery() as nursery:
        await run_in(nursery, supervisor, result)
        await until(lambda: len(starts(out2)) == 1)
        supervisor.drain()  # only one SIGTERM: killed at kill_after
    assert result == [1]
    assert len(notes(out2, "term")) == 1


async def test_cancelling_leaves_no_child_alive(child: Path, out: Path) -> None:
    # Worker 1 ignores SIGTERM: it is killed after cancel_grace.
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            modes = argv(child, out, "default", "ignore", "exit0")
            nursery.start_soon(Supervisor(modes, 3, **FAST).run)
            await until(lambda: len(starts(out)) == 3)
            scope.cancel()
    assert scope.cancelled_caught
    assert all(gone(pid) for _, pid in starts(out))


async def test_a_command_that_cannot_start(child: Path, out: Path) -> None:
    good = argv(child, out, "default")
    bad = str(out / "no-such-program")
    with pytest.raises(RunConfigError, match=r"worker 1: cannot start '.*no-such-program'"):
        await Supervisor(lambda i: good(i) if i == 0 else [bad], 2, **FAST).run()
    assert all(gone(pid) for _, pid in starts(out))
    with pytest.raises(ValueError, match=r"argv_for\(0\) returned an empty command"):
        await Supervisor(lambda i: [], 1, **FAST).run()


def test_bad_arguments() -> None:
    for workers in (0, -1, True, "many", 1.5):
        with pytest.raises(ValueError, match="workers must be a positive integer or 'auto'"):
            Supervisor(lambda i: ["true"], workers)  # type: ignore[arg-type]
    assert Supervisor(lambda i: ["true"], "auto").workers == cpu_count()
    with pytest.raises(ValueError, match="kill_after"):
        Supervisor(lambda i: ["true"], 1, kill_after=-1)
    with pytest.raises(TypeError, match="argv_for"):
        Supervisor(["true"], 1)  # type: ignore[arg-type]


async def start_supervisor(tmp_path: Path, child: Path, out: Path, mode: str) -> trio.Process:
    script = tmp_path / "supervisor.py"
    script.write_text(SUPERVISOR)
    with (tmp_path / "supervisor.log").open("w") as log:
        return await trio.lowlevel.open_process(
            [sys.executable, str(script), str(child), str(out), mode, "2"], stderr=log
        )


async def test_sigterm_is_forwarded_and_a_clean_drain_exits_0(
    tmp_path: Path, child: Path, out: Path
) -> None:
    supervisor = await start_supervisor(tmp_path, child, out, "exit0")
    try:
        await until(lambda: len(starts(out)) == 2)
        supervisor.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await supervisor.wait() == 0, (tmp_path / "supervisor.log").read_text()
    finally:
        supervisor.kill()
    assert len(notes(out, "term")) == 2
    assert all(gone(pid) for _, pid in starts(out))


async def test_a_second_signal_is_forwarded_again(tmp_path: Path, child: Path, out: Path) -> None:
    supervisor = await start_supervisor(tmp_path, child, out, "second")
    try:
        await until(lambda: len(starts(out)) == 2)
        supervisor.send_signal(signal.SIGINT)  # SIGINT counts as SIGTERM
        await until(lambda: len(notes(out, "term")) == 2)
        assert supervisor.poll() is None
        supervisor.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await supervisor.wait() == 0, (tmp_path / "supervisor.log").read_text()
    finally:
        supervisor.kill()
    assert sorted(n for _, _, n in notes(out, "term")) == ["1", "1", "2", "2"]
    assert all(gone(pid) for _, pid in starts(out))
    assert "all 2 workers drained and exited 0" in (tmp_path / "supervisor.log").read_text()


def test_a_metrics_dir_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(RunConfigError, match=r"metrics directory .* is not a directory"):
        Supervisor(lambda i: ["true"], 1, metrics_dir=str(tmp_path / "missing"))


async def test_a_given_metrics_dir_is_shared_and_kept(
    child: Path, out: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    supervisor = Supervisor(argv(child, out, "exit0"), 2, env=env, **FAST)
    result: list[int] = []
    async with trio.open_nursery() as nursery:
        await run_in(nursery, supervisor, result)
        await until(lambda: len(starts(out)) == 2)
        supervisor.drain()
    assert result == [0]
    assert {(out / f"start-{i}-{p}").read_text() for i, p in starts(out)} == {str(shared)}
    assert await trio.Path(shared).is_dir()


async def test_a_worker_that_exits_0_unasked_is_restarted(child: Path, out: Path) -> None:
    # A worker's SIGTERM from elsewhere is not the supervisor's drain: it comes back.
    supervisor = Supervisor(argv(child, out, "exit0"), 1, **FAST)
    result: list[int] = []
    async with trio.open_nursery() as nursery:
        await run_in(nursery, supervisor, result)
        await until(lambda: len(starts(out)) == 1)
        os.kill(supervisor.pids[0], signal.SIGTERM)
        await until(lambda: len(starts(out)) == 2)
        supervisor.drain()
    assert result == [0]
