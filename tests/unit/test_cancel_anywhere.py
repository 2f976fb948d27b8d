"""P1: a cancellation at any schedule point never hangs and leaves nothing running.

A trio instrument counts task steps (of every task: the SDK's, the fake server's, the
test's) and cancels the test's scope after the k-th; the test runs once for each k until
one run gets through without being cancelled. Time is a MockClock: a hang shows up as the
``fail_after`` deadline, in no wall-clock time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import trio
import trio.testing

import telcoflow_trio as tf

from ._fake_server import FakeServer, fake_server

HANG = 120.0
"""Virtual seconds after which a run counts as hung (every SDK deadline is shorter)."""
MAX_STEPS = 5_000


class CancelAfterSteps(trio.abc.Instrument):
    def __init__(self, scope: trio.CancelScope, steps: int) -> None:
        self.scope = scope
        self.steps = steps
        self.fired = False

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps -= 1
        if self.steps == 0:
            self.fired = True
            self.scope.cancel()


async def cancelled_after(
    steps: int,
    body: Callable[[FakeServer, tf.SessionManager], Awaitable[None]],
    *,
    manager_too: bool,
) -> tuple[FakeServer, bool]:
    """Run ``body`` with a cancellation after ``steps`` task steps, entering the manager
    inside the cancelled scope (``manager_too``) or outside it; returns the server, once
    the manager is left, and whether the cancellation fired before the run was over."""
    hung: list[float] = []
    async with fake_server() as fs:
        sm = fs.manager()

        async def watchdog() -> None:
            await trio.sleep(HANG)
            hung.append(trio.current_time())
            # A hang here is uncancellable (a shielded task nobody ends), so the outer
            # deadline cannot end it: end the control task by hand, only so that the test
            # can fail instead of hanging the suite.
            await sm._control.close()

        async def run() -> None:
            if manager_too:
                async with sm:
                    await body(fs, sm)
            else:
                await body(fs, sm)

        async with trio.open_nursery() as guard:
            guard.start_soon(watchdog)
            async with contextlib.AsyncExitStack() as outside:
                if not manager_too:
                    await outside.enter_async_context(sm)
                with trio.CancelScope() as scope:
                    instrument = CancelAfterSteps(scope, steps)
                    trio.lowlevel.add_instrument(instrument)
                    try:
                        await run()
                    finally:
                        trio.lowlevel.remove_instrument(instrument)
                await trio.testing.wait_all_tasks_blocked()
                if not manager_too:
                    # With the manager still up, what the body claimed or touched is over.
                    touched_call_is_over(fs)
            guard.cancel_scope.cancel()
        assert not hung, f"cancelled after {steps} steps: still running {HANG:g} s later"
        # Nothing left running: the control task ended and every socket it opened is closed.
        assert sm.connection_state is tf.ConnectionState.CLOSED or fs.connector.attempts == 0
        assert all(sock.closed for sock in fs.controls)
        assert all(sock.closed for sock in fs.voices.values())
        return fs, instrument.fired


def touched_call_is_over(fs: FakeServer) -> None:
    """Session s-1, once claimed, was closed over REST or its call c-1 ended by the agent
    (a call the server was told about ends with call.terminated after either command)."""
    if "control#1 session.open s-1" in fs.log:
        ends = {"rest close s-1", "voice c-1 call.close", "voice c-1 call.disconnect"}
        assert ends & set(fs.log), fs.log


async def one_call(fs: FakeServer, sm: tf.SessionManager) -> None:
    fs.calls_on_ready["s-1"] = "c-1"
    async with sm.open_session("s-1") as session:
        call = await session.incoming_call()
        assert await call.answer()
        await call.send_audio(b"\x00\x00" * 160)
        assert await call.close()


async def test_cancelling_entry_into_the_manager_at_every_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def nothing(fs: FakeServer, sm: tf.SessionManager) -> None:
        await trio.lowlevel.checkpoint()

    for steps in range(1, MAX_STEPS):
        _, fired = await cancelled_after(steps, nothing, manager_too=True)
        if not fired:
            break
    assert steps > 5, "entering took too few steps for this test to mean anything"


async def test_cancelling_a_whole_call_and_its_manager_at_every_step(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for steps in range(1, MAX_STEPS):
        fs, fired = await cancelled_after(steps, one_call, manager_too=True)
        # The manager's scope is over: a call the agent opened is over on the server.
        if "voice c-1 open" in fs.log:
            touched_call_is_over(fs)
        if not fired:
            break
    assert steps > 20, "a call took too few steps for this test to mean anything"


async def test_cancelling_a_claim_or_a_call_at_every_step_leaves_nothing_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for steps in range(1, MAX_STEPS):
        _, fired = await cancelled_after(steps, one_call, manager_too=False)
        if not fired:
            break
    assert steps > 20, "a call took too few steps for this test to mean anything"


async def test_cancelling_serve_calls_at_every_step_leaves_nothing_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def serve_one_call(fs: FakeServer, sm: tf.SessionManager) -> None:
        fs.calls_on_ready["s-1"] = "c-1"

        async def handler(call: tf.Call) -> None:
            assert await call.answer()
            assert await call.close()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sm.serve_calls, handler)
            await fs.notify("s-1")
            await fs.wait_logged("voice c-1 call.close")
            nursery.cancel_scope.cancel()

    for steps in range(1, MAX_STEPS):
        _, fired = await cancelled_after(steps, serve_one_call, manager_too=False)
        if not fired:
            break
    assert steps > 20, "a served call took too few steps for this test to mean anything"
