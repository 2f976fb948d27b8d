"""``python -m telcoflow_trio run`` as a real child process against an in-test sandbox over
real sockets: it answers calls, drains on SIGTERM (the live call goes on to its natural end,
then exit 0), a second SIGTERM ends the call at once, two runners with ``--max-calls 2``
share five calls two each and the fifth when a slot frees, and bad input exits 2 with one
line. Readiness is waited for on the sandbox or on the child's stderr, never by sleeping."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from telcoflow_trio.sandbox import CallerState, EndedBy
from telcoflow_trio.testing import Sandbox, open_sandbox
from tests.transport_choice import TRANSPORT

REPO = Path(__file__).resolve().parents[2]
AGENT = "tests.runner.agents:answer_and_wait"
ERROR = "telcoflow-trio run: error: "
# Each wait below is a hang safety net, never a timing assertion.
WAIT = 20


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELCOFLOW_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


def sandbox_env(sandbox: Sandbox) -> dict[str, str]:
    """The variables ``SessionManagerConfig.from_env`` reads, for this sandbox."""
    return _env(
        {
            "TELCOFLOW_API_KEY": sandbox.api_key,
            "TELCOFLOW_CONNECTOR_UUID": sandbox.connector_uuid,
            "TELCOFLOW_BASE_URL": sandbox.url,
            "TELCOFLOW_TRANSPORT": TRANSPORT,
        }
    )


class Runner:
    """A ``run`` child process and the lines it wrote to stderr so far."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.eof = False
        self._changed = trio.Event()

    async def pump(self) -> None:
        assert self.process.stderr is not None
        pending = b""
        async for chunk in self.process.stderr:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            self.lines.extend(line.decode(errors="replace") for line in complete)
            self._changed.set()
            self._changed = trio.Event()
        if pending:
            self.lines.append(pending.decode(errors="replace"))
        self.eof = True
        self._changed.set()

    async def wait_line(self, predicate: Callable[[str], bool]) -> str:
        """The first line (old or new) for which ``predicate`` is true."""
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if predicate(line):
                    return line
            seen = len(self.lines)
            if self.eof:
                raise AssertionError("the runner exited:\n" + "\n".join(self.lines))
            await self._changed.wait()

    async def wait_eof(self) -> None:
        """Until every process holding the log pipe has closed it (they all exited)."""
        while not self.eof:
            await self._changed.wait()

    def answered(self) -> list[str]:
        """The call ids this runner's handler answered, in order."""
        return [
            m[1] for line in self.lines if (m := re.search(r"agent: call (\S+) answered", line))
        ]

    def live_at_most(self) -> int:
        """The most calls this runner's handler held at once (from its log lines)."""
        live = most = 0
        for line in self.lines:
            if re.search(r"agent: call \S+ answered", line):
                live += 1
                most = max(most, live)
            elif re.search(r"agent: call \S+ ended", line):
                live -= 1
        return most

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def exit_status(self) -> int:
        return await self.process.wait()


@asynccontextmanager
async def open_runner(env: Mapping[str, str], *args: str) -> AsyncIterator[Runner]:
    """Start ``python -m telcoflow_trio run ARGS`` from the repository root; on the way out
    a runner still running is killed."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "telcoflow_trio", "run", *args],
        cwd=REPO,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    runner = Runner(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(runner.pump)
            try:
                yield runner
            finally:
                if process.returncode is None:
                    process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
    finally:
        process.kill()  # no-op once it has exited


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with open_sandbox(time_scale=10) as sb:
        yield sb


def _no_secret(runner: Runner, sandbox: Sandbox) -> None:
    text = "\n".join(runner.lines)
    for secret, what in sandbox.issued_secrets().items():
        assert secret not in text, f"{what} in the runner's log"


async def test_answers_and_drains_on_sigterm_then_exits_0(sandbox: Sandbox) -> None:
    with trio.fail_after(WAIT):
        async with open_runner(sandbox_env(sandbox), AGENT, "--max-calls", "2") as runner:
            await sandbox.wait_control_connections(1)
            call = await sandbox.place_call()
            await call.wait_answered()
            await runner.wait_line(lambda line: f"agent: call {call.call_id} answered" in line)

            runner.signal(signal.SIGTERM)
            await runner.wait_line(lambda line: "draining: 1 live calls" in line)
            # Draining: the call goes on; a new call is not claimed.
            assert call.state is CallerState.LIVE
            late = await sandbox.place_call(caller="+15550000099")
            # The runner was told of it (a notification went out on its control connection).
            await sandbox.frames.wait_for(
                lambda r: (
                    r.plane == "control" and r.direction == "out" and late.session_id in str(r.data)
                )
            )
            await call.hang_up()
            await runner.wait_line(lambda line: f"agent: call {call.call_id} ended" in line)
            assert await runner.exit_status() == 0
    assert call.ended_by is EndedBy.CALLER_HANGUP
    assert runner.answered() == [call.call_id]
    assert late.state is CallerState.OFFERED
    assert sandbox.sessions[late.session_id].bound is None
    _no_secret(runner, sandbox)


async def test_sigint_drains_too_and_a_second_signal_closes_the_call_at_once(
    sandbox: Sandbox,
) -> None:
    with trio.fail_after(WAIT):
        async with open_runner(sandbox_env(sandbox), AGENT) as runner:
            await sandbox.wait_control_connections(1)
            call = await sandbox.place_call()
            await runner.wait_line(lambda line: f"agent: call {call.call_id} answered" in line)
            # Ctrl+C: a drain request, not a KeyboardInterrupt.
            runner.signal(signal.SIGINT)
            await runner.wait_line(lambda line: "SIGINT: draining: 1 live calls" in line)
            runner.signal(signal.SIGTERM)
            await call.wait_terminated()
            assert await runner.exit_status() == 0
    assert call.ended_by is EndedBy.AGENT_CLOSE
    assert any("SIGTERM again: closing 1 live calls now" in line for line in runner.lines)
    assert not any("Traceback" in line or "interrupted" in line for line in runner.lines)


async def test_a_signal_while_connecting_stops_at_once(sandbox: Sandbox) -> None:
    # A server that accepts TCP connections and never answers the WebSocket handshake.
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")

    async def stall(stream: trio.SocketStream) -> None:
        async with stream:
            await trio.sleep_forever()

    port = listeners[0].socket.getsockname()[1]
    env = {**sandbox_env(sandbox), "TELCOFLOW_BASE_URL": f"ws://127.0.0.1:{port}"}
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, stall, listeners)
            async with open_runner(env, AGENT, "--http-port", "0") as runner:
                http_port = await _http_port(runner)  # logged once signals are watched
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as client:
                    assert (await client.get("/healthz")).status_code == 503
                runner.signal(signal.SIGTERM)
                assert await runner.exit_status() == 0
            nursery.cancel_scope.cancel()
    assert any("SIGTERM before serving: stopping" in line for line in runner.lines)


async def test_the_drain_deadline_closes_the_call(sandbox: Sandbox) -> None:
    args = (AGENT, "--drain-timeout", "0.5")
    with trio.fail_after(WAIT):
        async with open_runner(sandbox_env(sandbox), *args) as runner:
            await sandbox.wait_control_connections(1)
            call = await sandbox.place_call()
            await runner.wait_line(lambda line: f"agent: call {call.call_id} answered" in line)
            runner.signal(signal.SIGTERM)
            await runner.wait_line(lambda line: "draining: 1 live calls, up to 0.5 s" in line)
            # Nobody hangs up: the deadline closes the call.
            await call.wait_terminated()
            assert await runner.exit_status() == 0
    assert call.ended_by is EndedBy.AGENT_CLOSE


async def test_two_runners_with_two_slots_share_five_calls(sandbox: Sandbox) -> None:
    env = sandbox_env(sandbox)
    with trio.fail_after(WAIT):
        async with (
            open_runner(env, AGENT, "--max-calls", "2") as a,
            open_runner(env, AGENT, "--max-calls", "2") as b,
        ):
            await sandbox.wait_control_connections(2)
            calls = [await sandbox.place_call(caller=f"+1555000000{i}") for i in range(5)]
            by_id = {call.call_id: call for call in calls}
            await a.wait_line(lambda _: len(a.answered()) == 2)
            await b.wait_line(lambda _: len(b.answered()) == 2)
            # Two each, at once; the fifth is offered still, claimed by neither.
            waiting = [call for call in calls if call.state is CallerState.OFFERED]
            assert len(waiting) == 1, [call.state for call in calls]
            fifth = waiting[0]
            await by_id[a.answered()[0]].hang_up()
            await fifth.wait_answered()
            await a.wait_line(lambda line: f"agent: call {fifth.call_id} answered" in line)
            for runner in (a, b):
                runner.signal(signal.SIGTERM)
            for call in calls:
                await call.hang_up()
            assert [await a.exit_status(), await b.exit_status()] == [0, 0]
    assert sorted(a.answered() + b.answered()) == sorted(by_id)
    assert [a.live_at_most(), b.live_at_most()] == [2, 2]


async def _http_port(runner: Runner) -> int:
    line = await runner.wait_line(lambda line: "/healthz and /metrics on http://" in line)
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert found is not None, line
    return int(found[1])


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page by (name, labels), summed over ``pid`` labels."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "pid"))
            key = (sample.name, labels)
            out[key] = out.get(key, 0.0) + sample.value
    return out


async def _metrics_until(
    client: httpx.AsyncClient,
    predicate: Callable[[dict[tuple[str, tuple[tuple[str, str], ...]], float]], bool],
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Poll /metrics until ``predicate`` holds: gauges are refreshed once a second."""
    while True:
        response = await client.get("/metrics")
        assert response.status_code == 200
        samples = _samples(response.text)
        if predicate(samples):
            return samples
        await trio.sleep(0.1)


ACTIVE = ("telcoflow_active_calls", ())
WON = ("telcoflow_claims_total", (("result", "won"),))


def _ended(outcome: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("telcoflow_calls_total", (("outcome", outcome),))


async def test_health_and_metrics_of_one_process(sandbox: Sandbox) -> None:
    with trio.fail_after(WAIT):
        async with open_runner(sandbox_env(sandbox), AGENT, "--http-port", "0") as runner:
            port = await _http_port(runner)
            await runner.wait_line(lambda line: "serving calls with" in line)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                assert (await client.get("/healthz")).status_code == 200
                first = await sandbox.place_call()
                await runner.wait_line(lambda line: f"call {first.call_id} answered" in line)
                await _metrics_until(client, lambda s: s.get(ACTIVE) == 1 and s.get(WON) == 1)
                await first.hang_up()
                # The caller hung up under the handler.
                await _metrics_until(client, lambda s: s.get(_ended("hung_up")) == 1)

                second = await sandbox.place_call()
                await runner.wait_line(lambda line: f"call {second.call_id} answered" in line)
                runner.signal(signal.SIGTERM)
                await runner.wait_line(lambda line: "draining: 1 live calls" in line)
                assert (await client.get("/healthz")).status_code == 503
                await _metrics_until(client, lambda s: s.get(WON) == 2 and s.get(ACTIVE) == 1)
                await second.hang_up()
            assert await runner.exit_status() == 0


async def test_two_workers_under_the_supervisor(sandbox: Sandbox) -> None:
    args = (AGENT, "--workers", "2", "--max-calls", "1", "--http-port", "0")
    with trio.fail_after(WAIT):
        async with open_runner(sandbox_env(sandbox), *args) as runner:
            port = await _http_port(runner)
            await sandbox.wait_control_connections(2)
            calls = [await sandbox.place_call(caller=f"+1555000001{i}") for i in range(2)]
            for call in calls:
                await call.wait_answered()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                # Summed over the two workers (one call each: one slot each).
                await _metrics_until(client, lambda s: s.get(ACTIVE) == 2 and s.get(WON) == 2)
                assert (await client.get("/healthz")).status_code == 200
                runner.signal(signal.SIGTERM)
                await runner.wait_line(lambda line: "draining: SIGTERM to 2 workers" in line)
                assert (await client.get("/healthz")).status_code == 503
                for call in calls:
                    await call.hang_up()
            assert await runner.exit_status() == 0
    assert all(call.ended_by is EndedBy.CALLER_HANGUP for call in calls)


async def test_a_killed_worker_is_restarted_and_its_call_taken_over(sandbox: Sandbox) -> None:
    args = (AGENT, "--workers", "2", "--max-calls", "1")
    with trio.fail_after(WAIT):
        async with open_runner(sandbox_env(sandbox), *args) as runner:
            await sandbox.wait_control_connections(2)
            calls = [await sandbox.place_call(caller=f"+1555000002{i}") for i in range(2)]
            lines = [
                await runner.wait_line(lambda line, c=c: f"call {c.call_id} answered" in line)  # type: ignore[misc]
                for c in calls
            ]
            # "DATE TIME PID LEVEL ...": one call each (one slot each).
            pids = [int(line.split()[2]) for line in lines]
            assert len(set(pids)) == 2
            orphan = calls[0]
            os.kill(pids[0], signal.SIGKILL)
            await runner.wait_line(lambda line: "killed by SIGKILL); restarting" in line)
            # The restarted worker (the other one has no free slot) resumes the dead
            # worker's call: it is served again, not left live with nobody on it.
            taken = await runner.wait_line(
                lambda line: f"call {orphan.call_id} answered" in line and line not in lines
            )
            assert int(taken.split()[2]) not in pids
            assert orphan.state is CallerState.LIVE
            runner.signal(signal.SIGTERM)
            await runner.wait_line(lambda line: "draining: SIGTERM to 2 workers" in line)
            for call in calls:
                await call.hang_up()
            assert await runner.exit_status() == 0
    assert all(call.ended_by is EndedBy.CALLER_HANGUP for call in calls)
    assert len(runner.answered()) == 3


async def _wait_exit(pid: int) -> None:
    """Until ``pid``, not our child, has exited (a pidfd is readable from then on)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        await trio.lowlevel.checkpoint()
        return  # exited and reaped already
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


async def test_workers_drain_and_exit_when_the_supervisor_is_killed(sandbox: Sandbox) -> None:
    args = (AGENT, "--workers", "2", "--max-calls", "1")
    workers: list[int] = []
    try:
        with trio.fail_after(WAIT):
            async with open_runner(sandbox_env(sandbox), *args) as runner:
                await sandbox.wait_control_connections(2)
                for i in range(2):
                    line = await runner.wait_line(lambda line, i=i: f"worker {i} started" in line)  # type: ignore[misc]
                    workers.append(int(line.rpartition("(pid ")[2].rstrip(")")))
                call = await sandbox.place_call(caller="+15550000031")
                await call.wait_answered()
                runner.signal(signal.SIGKILL)  # the supervisor: nothing of it runs on
                assert await runner.exit_status() == -signal.SIGKILL
                # Each worker reads the end of its lifeline and drains: the idle one exits,
                # the other serves its call to the end, then exits.
                for _ in workers:
                    await runner.wait_line(lambda line: "supervisor gone: draining" in line)
                assert call.state is CallerState.LIVE
                await call.hang_up()
                await runner.wait_eof()  # the workers hold the log pipe until they exit
                while workers:
                    await _wait_exit(workers[0])
                    del workers[0]
    finally:
        for pid in workers:  # failed: leave no orphan behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert call.ended_by is EndedBy.CALLER_HANGUP
    assert any("drained" in line for line in runner.lines)


def _fake_env() -> dict[str, str]:
    # Well-formed settings for a server nobody listens on: bad input fails before connecting.
    return _env(
        {
            "TELCOFLOW_API_KEY": "sk-test-not-a-real-key",
            "TELCOFLOW_CONNECTOR_UUID": "00000000-0000-0000-0000-000000000000",
            "TELCOFLOW_BASE_URL": "ws://127.0.0.1:9",
        }
    )


async def _run_bad(args: list[str], env: Mapping[str, str]) -> tuple[int, list[str]]:
    result = await trio.run_process(
        [sys.executable, "-m", "telcoflow_trio", "run", *args],
        cwd=REPO,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return result.returncode, result.stderr.decode().strip().splitlines()


BAD_INPUT = {
    "no such module": (["tests.runner.no_such_agents:handle"], "no module named"),
    "no such attribute": (["tests.runner.agents:nobody"], "has no attribute 'nobody'"),
    "a sync handler": (["tests.runner.agents:sync_handler"], "is not an async function"),
    "no colon": (["tests.runner.agents"], "has no ':'"),
    "no slots": ([AGENT, "--max-calls", "0"], "--max-calls must be at least 1"),
    "no workers": ([AGENT, "--workers", "lots"], "--workers must be a whole number"),
    "a bad load": ([AGENT, "--max-load", "2"], "--max-load"),
    "a sync handler, workers": (
        ["tests.runner.agents:sync_handler", "--workers", "2"],
        "is not an async function",
    ),
}


async def test_bad_input_exits_2_with_one_line() -> None:
    results: dict[str, tuple[int, list[str]]] = {}

    async def one(name: str, args: list[str], env: Mapping[str, str]) -> None:
        results[name] = await _run_bad(args, env)

    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            for name, (args, _) in BAD_INPUT.items():
                nursery.start_soon(one, name, args, _fake_env())
            nursery.start_soon(one, "no environment", [AGENT], _env({}))
    expected = {name: fragment for name, (_, fragment) in BAD_INPUT.items()}
    expected["no environment"] = "set TELCOFLOW_API_KEY and TELCOFLOW_CONNECTOR_UUID"
    for name, fragment in expected.items():
        status, lines = results[name]
        assert status == 2, (name, lines)
        assert len(lines) == 1, (name, lines)
        assert lines[0].startswith(ERROR), (name, lines)
        assert fragment in lines[0], (name, lines)


async def test_a_port_in_use_exits_2_with_one_line(sandbox: Sandbox) -> None:
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with trio.fail_after(WAIT):
            status, lines = await _run_bad([AGENT, "--http-port", str(port)], sandbox_env(sandbox))
    errors = [line for line in lines if line.startswith(ERROR)]
    assert status == 2, lines
    assert len(errors) == 1, lines
    assert str(port) in errors[0], lines
    assert not any("Traceback" in line for line in lines), lines
    assert sandbox.control_connections == []


async def test_refused_credentials_exit_2_with_one_line(sandbox: Sandbox) -> None:
    env = {**sandbox_env(sandbox), "TELCOFLOW_API_KEY": "sk-not-this-one"}
    with trio.fail_after(WAIT):
        status, lines = await _run_bad([AGENT], env)
    errors = [line for line in lines if line.startswith(ERROR)]
    assert status == 2, lines
    assert len(errors) == 1, lines
    assert "refused the credentials" in errors[0], lines
    assert not any("Traceback" in line or "sk-not-this-one" in line for line in lines), lines
