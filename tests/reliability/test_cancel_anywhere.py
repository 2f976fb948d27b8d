"""P1: cancellation, or an exception such as KeyboardInterrupt, at any moment of
``SessionManager.__aenter__``, ``open_session``, ``incoming_call``, the commands or
``serve_calls`` never hangs and leaves nothing running; once the manager's scope is left,
no call the agent touched is live on the server and no session is bound to it unserved.

Each try is a fresh sandbox and agent in its own ``trio.run`` in a thread (a hang that
cannot even be cancelled is then counted, not waited for), cancelled after a seeded
random delay drawn over the flow's own duration, measured first on this machine. Tries
cancel either the whole manager ("outer") or only the operation while the manager carries
on ("inner"). ``LIFECYCLE_SEED`` changes the delays; one failed try is replayed with
``python -c "from tests.reliability.test_cancel_anywhere import *;
print(run_try(Try(0, 'claim', 'outer', 0.0435)))"`` (flow, where, delay in seconds).
"""

from __future__ import annotations

import json
import math
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Final

import attrs
import trio

import telcoflow_trio as tf
from telcoflow_trio.testing import Sandbox, SimulatedCall, TestSignal, open_sandbox

from ._leaks import all_tasks, sdk_tasks
from ._lifecycle import (
    echo,
    fast_backoff,
    live_calls,
    poll,
    run_isolated,
    settle,
    stranded_sessions,
)

SEED: Final = int(os.environ.get("LIFECYCLE_SEED", "13"))
THOROUGH: Final = os.environ.get("HYPOTHESIS_PROFILE", "default") != "default"
SCALE: Final = 5 if THOROUGH else 1
HANG_SECONDS: Final = 5.0
"""A try that has not ended after this long (a cancellation already sent) has hung."""
GIVE_UP_AFTER: Final = 3
"""Failed tries after which a flow stops trying: enough to show the failure, without
spending minutes on a bug that fails every try (each hang costs HANG_SECONDS)."""
SETTLE_SECONDS: Final = 2.0


@attrs.define
class Try:
    """One try's parameters and everything it found wrong."""

    index: int
    flow: str
    where: str
    delay: float
    problems: list[str] = attrs.field(factory=list)
    region_seconds: float | None = None
    """How long the cancellable region ran, when it ended by itself (calibration)."""
    cut_short: bool = False
    """Whether the cancellation landed before the region ended by itself."""

    def __str__(self) -> str:
        return (
            f"try {self.index} ({self.flow}, {self.where}, "
            f"cancel after {self.delay * 1000:.1f} ms): " + "; ".join(self.problems)
        )


Flow = Callable[[Sandbox, tf.SessionManager, Try], Awaitable[None]]
PCM: Final = bytes(range(256)) * 25  # 6,400 bytes: 0.2 s at 16 kHz


# ── the flows; each ends by itself when nothing cancels it ──────────────────────────────


async def claimed(sandbox: Sandbox, sm: tf.SessionManager) -> tuple[SimulatedCall, str]:
    sim = await sandbox.place_call(audio=TestSignal(seconds=2))
    note = await sm.session_notifications.receive()
    return sim, note.session_id


async def enter_flow(sandbox: Sandbox, sm: tf.SessionManager, t: Try) -> None:
    await trio.lowlevel.checkpoint()  # the region is the manager's entry and exit


async def claim_flow(sandbox: Sandbox, sm: tf.SessionManager, t: Try) -> None:
    _, session_id = await claimed(sandbox, sm)
    async with sm.open_session(session_id) as session:
        await session.ready()
        call = await session.incoming_call()
        assert await call.answer()
        stream = await call.audio_stream()
        await call.send_audio(await stream.receive())


async def commands_flow(sandbox: Sandbox, sm: tf.SessionManager, t: Try) -> None:
    _, session_id = await claimed(sandbox, sm)
    async with sm.open_session(session_id) as session:
        call = await session.incoming_call()
        assert await call.answer()
        await call.send_audio(PCM)
        await call.clear_send_audio_buffer()
        await call.send_audio(PCM[:1280], wait=True)
        await call.wait_for_playout()
        if await call.connect(ring_time_seconds=1):
            await call.whisper()
        await call.close()


async def serve_flow(sandbox: Sandbox, sm: tf.SessionManager, t: Try) -> None:
    sims = [await sandbox.place_call(audio=TestSignal(seconds=2, seed=i)) for i in range(2)]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sm.serve_calls, echo)
        for sim in sims:
            await sim.wait_heard(1600)
        nursery.cancel_scope.cancel()


FLOWS: Final[dict[str, Flow]] = {
    "enter": enter_flow,
    "claim": claim_flow,
    "commands": commands_flow,
    "serve_calls": serve_flow,
}


# ── one try ─────────────────────────────────────────────────────────────────────────────


async def cancelled_try(t: Try) -> None:
    """Run flow ``t.flow`` on a fresh sandbox, cancelled after ``t.delay`` seconds of its
    region: the whole manager ("outer") or the flow alone ("inner"). Fills ``t.problems``."""
    flow = FLOWS[t.flow]
    tasks_before = set(all_tasks())
    async with open_sandbox(time_scale=10) as sandbox:
        cancelled = False
        with trio.move_on_after(HANG_SECONDS) as guard:
            try:
                started = trio.current_time()
                deadline = started + t.delay if t.where == "outer" else float("inf")
                with trio.CancelScope(deadline=deadline) as outer:
                    config = sandbox.config()
                    async with tf.SessionManager(config, backoff=fast_backoff()) as sm:
                        if t.where == "inner":
                            started = trio.current_time()
                            with trio.CancelScope(deadline=started + t.delay) as inner:
                                await flow(sandbox, sm, t)
                            cancelled = inner.cancelled_caught
                            await _inner_checks(sandbox, sm, t)
                        else:
                            await flow(sandbox, sm, t)
                t.cut_short = cancelled or outer.cancelled_caught
                if not t.cut_short:
                    t.region_seconds = trio.current_time() - started
            except Exception as exc:
                t.problems.append(f"raised {type(exc).__name__}: {exc}")
        if guard.cancelled_caught:
            t.problems.append(f"hung: still running {HANG_SECONDS:g} s after the cancel")
        await _after_the_manager(sandbox, t)
    left = [task.name for task in set(all_tasks()) - tasks_before]
    if left:
        t.problems.append(f"tasks left after everything closed: {left}")


async def _inner_checks(sandbox: Sandbox, sm: tf.SessionManager, t: Try) -> None:
    """The flow was cancelled but the manager lives on: nothing the flow claimed may stay
    bound to this agent (its scopes are over), and, for serve_calls, no call stays up."""
    mine = frozenset({sm.sm_ws_id or ""})
    await poll(lambda: not stranded_sessions(sandbox, mine) and not live_calls(sandbox), 2)
    t.problems += [f"manager still up: {p}" for p in stranded_sessions(sandbox, mine)]
    t.problems += [
        f"manager still up: call {c.call_id} left {c.state.value} after its scope ended"
        for c in live_calls(sandbox)
    ]


async def _after_the_manager(sandbox: Sandbox, t: Try) -> None:
    await poll(lambda: not sdk_tasks(), 1)
    t.problems += [f"SDK task left after the manager: {name}" for name in sdk_tasks()]
    t.problems += await settle(sandbox, SETTLE_SECONDS)


def run_try(t: Try, body: Callable[[Try], Awaitable[None]] = cancelled_try) -> Try:
    outcome = run_isolated(body, t, timeout=HANG_SECONDS + SETTLE_SECONDS + 2)
    if not outcome.finished:
        t.problems.append("hung beyond cancellation: trio.run never returned")
    elif outcome.error is not None:
        t.problems.append(f"trio.run raised {type(outcome.error).__name__}: {outcome.error}")
    return t


def calibrate(flow: str) -> float:
    """How long the flow's region takes uncancelled here: the shortest of three runs, so a
    run slowed by a busy machine does not spread the cancels past the region's end."""
    durations: list[float] = []
    for i in range(3):
        t = run_try(Try(-1 - i, flow, "outer", float("inf")))
        assert t.problems == [], f"the flow {flow} fails even uncancelled: {t}"
        assert t.region_seconds is not None
        durations.append(t.region_seconds)
    return min(durations)


def fuzz(flow: str, wheres: tuple[str, ...], tries: int, salt: int) -> None:
    rng = random.Random(SEED * 1000 + salt)
    span = calibrate(flow) * 1.2
    failed: list[Try] = []
    done = cut_short = 0
    # Most tries must really cut the flow short, or this test proves nothing: at least 60 %
    # of ``tries``. A busy machine stretches the flow past the cancels, so tries go on (up
    # to twice as many) until that many were cut short.
    needed = math.ceil(tries * SCALE * 0.6)
    for i in range(2 * tries * SCALE):
        if i >= tries * SCALE and cut_short >= needed:
            break
        # Half the tries land in the first 50 ms (connecting, the claim's round trip, on
        # loopback), half anywhere over the flow's measured duration.
        delay = rng.uniform(0, min(span, 0.05)) if i % 2 else rng.uniform(0, span)
        t = run_try(Try(i, flow, wheres[i % len(wheres)], delay))
        done += 1
        cut_short += t.cut_short
        if t.problems:
            failed.append(t)
            if len(failed) >= GIVE_UP_AFTER:
                break
    assert not failed, _report(flow, done, failed, span)
    assert cut_short >= needed, f"{flow}: only {cut_short} of {done} tries were cut short"


def _report(flow: str, done: int, failed: list[Try], span: float) -> str:
    kinds = Counter(p.split(":")[0] for t in failed for p in t.problems)
    lines = [
        f"{flow}: {len(failed)} of {done} tries failed (delays over {span * 1000:.0f} ms; "
        f"LIFECYCLE_SEED={SEED}); problems by kind: {dict(kinds)}",
    ]
    lines += [f"- {t}" for t in failed]
    return "\n".join(lines)


# ── the tests ───────────────────────────────────────────────────────────────────────────


def test_cancel_while_entering_or_leaving_the_manager() -> None:
    fuzz("enter", ("outer",), tries=60, salt=1)


def test_cancel_during_a_claim_incoming_call_and_answer() -> None:
    fuzz("claim", ("outer", "inner"), tries=50, salt=2)


def test_cancel_during_commands_and_audio() -> None:
    fuzz("commands", ("outer", "inner"), tries=40, salt=3)


def test_cancel_serve_calls_with_live_calls() -> None:
    fuzz("serve_calls", ("outer", "inner"), tries=30, salt=4)


# ── an exception from inside the body ───────────────────────────────────────────────────


async def interrupted_try(t: Try) -> None:
    """KeyboardInterrupt raised inside the agent at a random moment: from a serve_calls
    handler ("handler"), or from a session's block ("session"). It must come out of
    ``async with SessionManager`` as itself, with nothing left behind."""
    tasks_before = set(all_tasks())
    async with open_sandbox(time_scale=10) as sandbox:
        escaped: BaseException | None = None

        async def handler(call: tf.Call) -> None:
            with trio.move_on_after(t.delay):
                await echo(call)
                return
            raise KeyboardInterrupt

        with trio.move_on_after(HANG_SECONDS) as guard:
            try:
                async with tf.SessionManager(sandbox.config(), backoff=fast_backoff()) as sm:
                    sims = [await sandbox.place_call(audio=TestSignal(seconds=3)) for _ in "ab"]
                    if t.where == "handler":
                        await sm.serve_calls(handler)
                    else:
                        note = await sm.session_notifications.receive()
                        async with sm.open_session(note.session_id) as session:
                            call = await session.incoming_call()
                            await handler(call)
                    del sims
            except BaseException as exc:
                escaped = exc
        if guard.cancelled_caught:
            t.problems.append(f"hung: the interrupt did not end the agent in {HANG_SECONDS:g} s")
        elif type(escaped) is not KeyboardInterrupt:
            t.problems.append(f"KeyboardInterrupt came out as {escaped!r}")
        await _after_the_manager(sandbox, t)
    left = [task.name for task in set(all_tasks()) - tasks_before]
    if left:
        t.problems.append(f"tasks left after everything closed: {left}")


def test_keyboard_interrupt_from_inside_the_body_comes_out_unwrapped() -> None:
    rng = random.Random(SEED * 1000 + 5)
    failed: list[Try] = []
    done = 0
    for i in range(24 * SCALE):
        # The handler answers and echoes ~0.2 s of speech before the caller goes quiet.
        where = ("handler", "session")[i % 2]
        t = run_try(Try(i, "interrupt", where, rng.uniform(0, 0.3)), interrupted_try)
        done += 1
        if t.problems:
            failed.append(t)
            if len(failed) >= GIVE_UP_AFTER:
                break
    assert not failed, _report("interrupt", done, failed, 0.3)


# ── a real Ctrl+C ───────────────────────────────────────────────────────────────────────

CHILD: Final = """
import json, signal, threading
import trio
import telcoflow_trio as tf
from telcoflow_trio.testing import TestSignal, open_sandbox

ready = threading.Event()
agent_done = threading.Event()
box = {}

async def sandbox_main():
    async with open_sandbox(time_scale=10) as sandbox:
        box["config"] = sandbox.config()
        ready.set()
        await sandbox.wait_control_connections(1)
        sim = box["sim"] = await sandbox.place_call(audio=TestSignal(seconds=30))
        await sim.wait_heard(3200)
        print("LIVE", flush=True)
        await trio.to_thread.run_sync(agent_done.wait, abandon_on_cancel=True)
        with trio.move_on_after(5):
            await sim.wait_terminated()
        box["ended_by"] = None if sim.ended_by is None else sim.ended_by.value

async def echo(call):
    if not await call.answer():
        return
    try:
        async for chunk in call.audio_stream():
            await call.send_audio(chunk, wait=True)
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass

async def agent():
    async with tf.SessionManager(box["config"]) as sm:
        await sm.serve_calls(echo)

# Python installs this at start unless SIGINT came in ignored, as it does in a job a
# non-interactive shell started in the background: the child then never saw Ctrl+C.
signal.signal(signal.SIGINT, signal.default_int_handler)
server = threading.Thread(target=trio.run, args=(sandbox_main,), daemon=True)
server.start()
ready.wait(20)
try:
    trio.run(agent)
    outcome = "returned"
except BaseException as exc:
    outcome = type(exc).__name__
ended_at_exit = box["sim"].terminated.is_set()
agent_done.set()
server.join(20)
print(json.dumps({"outcome": outcome, "ended_at_exit": ended_at_exit,
                  "ended_by": box.get("ended_by")}), flush=True)
"""


def test_sigint_ends_trio_run_with_keyboard_interrupt_and_closes_the_live_call() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while line.strip() != "LIVE":
            # select first: a child that never says LIVE must not block the suite.
            left = deadline - time.monotonic()
            ready, _, _ = select.select([child.stdout], [], [], max(left, 0))
            line = child.stdout.readline() if ready else ""
            if not line:
                break
        assert line.strip() == "LIVE", "the child's call never went live"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    report = json.loads(out.strip().splitlines()[-1])
    assert report["outcome"] == "KeyboardInterrupt", (report, err[-2000:])
    assert report["ended_at_exit"], "trio.run returned with the call still live on the server"
    assert report["ended_by"] == "AGENT_CLOSE", report
