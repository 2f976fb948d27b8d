"""A plain test of the echo agent on a sandbox it opens itself (docs/guide/testing.rst)."""

import trio
from my_agent import handle_call

import telcoflow_trio as tf
from telcoflow_trio.sandbox import TestSignal, open_sandbox


async def test_my_agent_echoes() -> None:
    async with (
        open_sandbox(time_scale=10) as sandbox,  # 10 simulated seconds per real one
        tf.SessionManager(sandbox.config()) as sm,  # a config with the sandbox's credentials
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(sm.serve_calls, handle_call)
        sim = await sandbox.place_call(audio=TestSignal(seconds=2))
        with trio.fail_after(10):
            await sim.wait_spoken()
            await sim.wait_heard(len(sim.spoken))
        await sim.hang_up()
        nursery.cancel_scope.cancel()
    assert sim.heard == sim.spoken
    assert [c.command for c in sim.commands][:1] == ["call.answer"]
