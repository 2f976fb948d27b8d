"""P3, RESUME: after a control blip the agent holding a live call keeps it (and may
re-claim its session to restore routing); no other agent's handler runs for it or breaks
it; a call whose agent is gone is served by another agent (failover).

Several managers serve calls on one sandbox with an echo handler, so the caller hearing
exactly what it said, byte for byte, shows that the call kept streaming through it all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio.protocol import Backoff
from telcoflow_trio.sandbox import EndedBy
from telcoflow_trio.testing import Sandbox, SimulatedCall, TestSignal, open_sandbox

from ._leaks import sdk_tasks
from ._lifecycle import EchoAgent, fast_backoff, poll, settle, within

SPEECH = TestSignal(seconds=20)  # two real seconds at the sandbox's time_scale=10


@asynccontextmanager
async def agents(sandbox: Sandbox, *names: str) -> AsyncIterator[dict[str, EchoAgent]]:
    """Echo agents, connected in order; stopped (and checked) when the block ends."""
    running = {name: EchoAgent(name, sandbox.config()) for name in names}
    async with trio.open_nursery() as nursery:
        for agent in running.values():
            await nursery.start(agent.run)
        yield running
        for agent in running.values():
            await agent.stop()
    for agent in running.values():
        assert agent.error is None, f"agent {agent.name} failed: {agent.error!r}"


def holder_of(sim: SimulatedCall, running: dict[str, EchoAgent]) -> EchoAgent:
    (holder,) = [a for a in running.values() if a.sm_ws_id == sim.session.bound_sm_ws_id]
    return holder


async def echoed_in_full(sim: SimulatedCall) -> None:
    """Until the caller has said everything and heard all of it back; then compare."""
    await within(5, sim.wait_spoken, "the caller could not say everything")
    spoken = len(sim.spoken)
    with trio.move_on_after(5):
        await sim.wait_heard(spoken)
    assert len(sim.heard) >= spoken, f"the caller heard {len(sim.heard)} of {spoken} bytes back"
    assert sim.heard == bytes(sim.spoken), "the echo lost, added or reordered audio"


async def caller_hangs_up(sim: SimulatedCall) -> None:
    await sim.hang_up()
    assert sim.ended_by is EndedBy.CALLER_HANGUP


# ── the holder's control plane blips ────────────────────────────────────────────────────


async def test_p3_a_lone_holder_keeps_its_call_and_reclaims_its_session() -> None:
    with trio.fail_after(20):
        async with open_sandbox(time_scale=10) as sandbox:
            async with agents(sandbox, "a") as running:
                agent = running["a"]
                sim = await sandbox.place_call(audio=SPEECH)
                await sim.wait_heard(6400)
                record = sim.session
                first_id = agent.sm_ws_id
                assert record.bound_sm_ws_id == first_id
                await sandbox.drop_control_connections(first_id)
                # Routing is restored: the session is claimed again on the new connection.
                assert await poll(
                    lambda: (
                        agent.sm_ws_id not in (None, first_id)
                        and record.bound_sm_ws_id == agent.sm_ws_id
                        and record.ready
                    ),
                    3,
                ), f"session not re-claimed (bound to {record.bound_sm_ws_id})"
                await echoed_in_full(sim)
                # The RESUME it got for its own session did not start a second handler.
                assert len(agent.ran_for(sim.call_id)) == 1
                assert [c.command for c in sim.commands] == ["call.answer"]
                assert sim.voice_connections == 1
                await caller_hangs_up(sim)
                (run,) = agent.ran_for(sim.call_id)
                assert await poll(lambda: run.ended, 3)
                assert run.error is None
            assert await settle(sandbox) == []
        assert sdk_tasks() == []


async def test_p3_a_holder_blip_among_three_agents_breaks_nothing() -> None:
    with trio.fail_after(25):
        async with open_sandbox(time_scale=10) as sandbox:
            async with agents(sandbox, "a", "b", "c") as running:
                sim = await sandbox.place_call(audio=SPEECH)
                await sim.wait_heard(6400)
                holder = holder_of(sim, running)
                await sandbox.drop_control_connections(holder.sm_ws_id)
                # The others are offered the session (RESUME); whoever claims it must not
                # run a handler for a call streaming on the holder's voice socket.
                await poll(lambda: sim.session.bound_sm_ws_id is not None, 2)
                await echoed_in_full(sim)
                assert not sim.terminated.is_set()
                assert sim.session.is_open
                assert sim.voice_connections == 1
                assert [c.command for c in sim.commands] == ["call.answer"]
                others = [r for a in running.values() if a is not holder for r in a.runs]
                assert others == [], f"another agent's handler ran for the call: {others}"
                # Still streaming after the dust settles: more speech, all echoed.
                sim.say(TestSignal(seconds=5, seed=3))
                await echoed_in_full(sim)
                await caller_hangs_up(sim)
                assert await poll(lambda: all(r.ended for r in holder.runs), 3)
                assert [r.error for r in holder.runs] == [None]
            assert await settle(sandbox) == []
        assert sdk_tasks() == []


async def test_p3_answer_on_a_call_held_elsewhere_raises_busy_and_leaves_it_alone() -> None:
    with trio.fail_after(25):
        async with open_sandbox(time_scale=10) as sandbox:
            slow = Backoff(first=1.0, maximum=1.0, jitter=0.0)
            holder = EchoAgent("holder", sandbox.config(), backoff=slow)
            async with trio.open_nursery() as nursery:
                await nursery.start(holder.run)
                sim = await sandbox.place_call(audio=SPEECH)
                await sim.wait_heard(6400)
                async with tf.SessionManager(sandbox.config(), backoff=fast_backoff()) as sm:
                    await sandbox.drop_control_connections(holder.sm_ws_id)
                    note = await sm.session_notifications.receive()
                    assert note.session_id == sim.session_id
                    assert note.activity == tf.SessionActivityType.RESUME
                    async with sm.open_session(note.session_id) as session:
                        call = await session.incoming_call()
                        assert call.id == sim.call_id
                        with pytest.raises(tf.WSSSessionBusy):
                            await call.answer()
                        assert call.state is tf.CallState.TERMINATED
                        assert call.end_reason is tf.CallEndReason.HELD_ELSEWHERE
                    # Leaving told the server nothing: the holder's call streams on.
                    assert not sim.terminated.is_set()
                    assert [c.command for c in sim.commands] == ["call.answer"]
                    await echoed_in_full(sim)
                await caller_hangs_up(sim)
                assert await poll(lambda: all(r.ended for r in holder.runs), 3)
                await holder.stop()
            assert holder.error is None
            assert [r.error for r in holder.runs] == [None]
            assert await settle(sandbox) == []
        assert sdk_tasks() == []


# ── an agent stopped mid-call ───────────────────────────────────────────────────────────


async def test_p3_an_agent_stopped_mid_call_ends_its_call_and_nobody_else_serves_it() -> None:
    with trio.fail_after(20):
        async with open_sandbox(time_scale=10) as sandbox:
            async with agents(sandbox, "a", "b") as running:
                sim = await sandbox.place_call(audio=SPEECH)
                await sim.wait_heard(6400)
                holder = holder_of(sim, running)
                other = next(a for a in running.values() if a is not holder)
                await holder.stop()
                # A stopped agent closes its calls (P1); the other is not handed a call
                # that is still streaming to the agent that is leaving.
                with trio.fail_after(3):
                    await sim.wait_terminated()
                assert sim.ended_by is EndedBy.AGENT_CLOSE
                assert other.ran_for(sim.call_id) == []
            assert await settle(sandbox) == []
        assert sdk_tasks() == []


AGENT_PROCESS = """
import os, trio
import telcoflow_trio as tf

async def echo(call):
    if not await call.answer():
        return
    try:
        async for chunk in call.audio_stream():
            await call.send_audio(chunk, wait=True)
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass

async def main():
    config = tf.SessionManagerConfig.create(
        api_key=os.environ["H3_API_KEY"],
        connector_uuid=os.environ["H3_CONNECTOR"],
        base_url=os.environ["H3_URL"],
    )
    async with tf.SessionManager(config) as sm:
        await sm.serve_calls(echo)

trio.run(main)
"""


async def test_p3_a_crashed_agents_call_fails_over_to_another_agent() -> None:
    with trio.fail_after(40):
        async with open_sandbox(time_scale=10) as sandbox:
            env = dict(
                os.environ,
                H3_API_KEY=sandbox.api_key,
                H3_CONNECTOR=sandbox.connector_uuid,
                H3_URL=sandbox.url,
            )
            crashing = await trio.lowlevel.open_process(
                [sys.executable, "-c", AGENT_PROCESS], env=env, stderr=subprocess.DEVNULL
            )
            try:
                with trio.fail_after(20):
                    await sandbox.wait_control_connections(1)
                sim = await sandbox.place_call(audio=TestSignal(seconds=10))
                await echoed_in_full(sim)
                async with agents(sandbox, "b", "c") as running:
                    await sandbox.wait_control_connections(3)
                    # kill -9: no close frame, no call.close; the kernel resets its sockets.
                    crashing.send_signal(signal.SIGKILL)
                    await crashing.wait()
                    served = await poll(
                        lambda: (
                            any(a.ran_for(sim.call_id) for a in running.values())
                            and sim.voice_connections == 2
                        ),
                        5,
                    )
                    assert served, "no other agent took over the call"
                    assert not sim.terminated.is_set()
                    (run,) = [r for a in running.values() for r in a.ran_for(sim.call_id)]
                    # The new agent echoes: what the caller says now comes back whole.
                    sim.say(TestSignal(seconds=3, seed=7))
                    await echoed_in_full(sim)
                    await caller_hangs_up(sim)
                    assert await poll(lambda: run.ended, 3)
                    assert run.error is None
            finally:
                if crashing.returncode is None:
                    crashing.kill()
                    with trio.CancelScope(shield=True):
                        await crashing.wait()
            assert await settle(sandbox) == []
        assert sdk_tasks() == []
