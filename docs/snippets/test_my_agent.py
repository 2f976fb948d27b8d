"""Tests of the echo agent with the ``sandbox`` fixture (needs ``trio_mode = true``)."""

import pytest
import trio
from my_agent import handle_call

import telcoflow_trio as tf
from telcoflow_trio.testing import Sandbox, TestSignal


@pytest.mark.sandbox(time_scale=10)  # ten simulated seconds per real one
async def test_the_caller_hears_itself(sandbox: Sandbox) -> None:
    async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
        nursery.start_soon(sm.serve_calls, handle_call)
        sim = await sandbox.place_call(audio=TestSignal(seconds=2))
        with trio.fail_after(10):  # a hang safety net, not a timing assertion
            await sim.wait_spoken()
            await sim.wait_heard(len(sim.spoken))
        await sim.hang_up()
        nursery.cancel_scope.cancel()
    assert sim.heard == sim.spoken  # byte for byte
    assert [c.command for c in sim.commands][:1] == ["call.answer"]
