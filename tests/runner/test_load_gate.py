"""LoadGate (``--max-load``) on virtual time with a scripted load: open until the first full
interval is measured, closed while the latest sample is above the threshold, open again at
or below it; plus CallServer holding a call while the gate is closed, against the sandbox."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

import telcoflow_trio as tf
from telcoflow_trio.runner._app import LoadGate
from telcoflow_trio.sandbox import CallerState
from telcoflow_trio.testing import open_sandbox


class Script:
    """A load meter that returns the scripted figures, one per call (the last one after)."""

    def __init__(self, *figures: float) -> None:
        self.figures = list(figures)
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.figures.pop(0) if len(self.figures) > 1 else self.figures[0]


async def test_the_gate_follows_the_latest_sample(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "telcoflow_trio.runner._app")
    # baseline (ignored), then one figure per interval
    meter = Script(5.0, 0.5, 0.9, 0.95, 0.8, 0.1)
    gate = LoadGate(0.8, meter, interval=1.0)
    seen: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gate.watch)
        await trio.sleep(0.5)  # between two samples, every time
        for _ in range(6):
            seen.append(gate.load)
            assert gate.admit() is (gate.load <= 0.8)
            await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    # The baseline (5.0) is never compared: the gate starts open.
    assert seen == [0.0, 0.5, 0.9, 0.95, 0.8, 0.1]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "CPU load 0.90 above --max-load 0.8: not claiming calls",
        "CPU load 0.80 at or below --max-load 0.8: claiming again",
    ]


def test_admit_compares_the_latest_sample() -> None:
    gate = LoadGate(0.5, lambda: 0.0)
    assert gate.admit()
    gate.load = 0.51
    assert not gate.admit()
    gate.load = 0.5
    assert gate.admit()


async def test_a_closed_gate_holds_the_call_until_it_opens() -> None:
    gate = LoadGate(0.5, lambda: 0.0)
    gate.load = 0.9  # over the threshold: nothing is claimed
    answered = trio.Event()

    async def handler(call: tf.Call) -> None:
        assert await call.answer()
        answered.set()
        await call.wait_terminated()

    with trio.fail_after(20):  # a hang safety net
        async with (
            open_sandbox(time_scale=10) as sandbox,
            tf.SessionManager(sandbox.config()) as sm,
            trio.open_nursery() as nursery,
        ):
            server = tf.CallServer(sm, handler, admit=gate.admit)
            nursery.start_soon(server.run)
            await sandbox.wait_control_connections(1)
            call = await sandbox.place_call()
            await trio.testing.wait_all_tasks_blocked()
            assert sm.claim_stats.held == 1
            assert call.state is CallerState.OFFERED
            assert sm.claim_stats.won == 0
            gate.load = 0.2
            # asked again within a second while a notification is held
            await call.wait_answered()
            await answered.wait()
            await call.hang_up()
            server.drain()
            await sandbox.sessions[call.session_id].closed.wait()
            nursery.cancel_scope.cancel()
    assert sm.claim_stats.won == 1
