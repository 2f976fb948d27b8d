"""Lifecycle policies of issue 13, one focused test each, over real WebSockets to the sandbox.

Each test checks both ends: what the handler sees (exceptions, ``call.end_reason``) and
what the server is left with (no call an agent touched still up, no session bound to an
agent that does not serve it). P1 (cancellation anywhere) is in test_cancel_anywhere.py,
P3 (RESUME) in test_resume.py. The fuzz script's smoke run is at the end.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio.protocol import Backoff
from telcoflow_trio.sandbox import EndedBy
from telcoflow_trio.testing import Sandbox, SimulatedCall, TestSignal, open_sandbox

from ._leaks import no_leaks, sdk_tasks
from ._lifecycle import EchoAgent, fast_backoff, leftovers, poll, settle, within

ROOT = pathlib.Path(__file__).resolve().parents[2]
SLOW_RECONNECT = Backoff(first=0.4, maximum=0.4, jitter=0.0)
"""Long enough that a test acts while the manager is RECONNECTING, short enough to wait out."""


@asynccontextmanager
async def sandbox_and_manager(
    backoff: Backoff | None = None,
) -> AsyncIterator[tuple[Sandbox, tf.SessionManager]]:
    async with (
        no_leaks(),
        open_sandbox(time_scale=10) as sandbox,
        tf.SessionManager(
            sandbox.config(), backoff=fast_backoff() if backoff is None else backoff
        ) as sm,
    ):
        yield sandbox, sm


async def call_and_note(
    sandbox: Sandbox, sm: tf.SessionManager, seconds: float = 30
) -> tuple[SimulatedCall, str]:
    sim = await sandbox.place_call(audio=TestSignal(seconds=seconds))
    note = await sm.session_notifications.receive()
    assert note.session_id == sim.session_id
    return sim, note.session_id


async def drain(stream: tf.AudioStream) -> int:
    received = 0
    async for chunk in stream:
        received += len(chunk)
    return received


# ── P2: a lost voice socket ends the call, on the server too ─────────────────────────────


async def test_p2_voice_loss_ends_the_call_for_the_handler_and_on_the_server() -> None:
    with trio.fail_after(15):
        async with sandbox_and_manager() as (sandbox, sm):
            sim, session_id = await call_and_note(sandbox, sm)
            async with sm.open_session(session_id) as session:
                call = await session.incoming_call()
                assert await call.answer()
                stream = await call.audio_stream()
                assert await stream.receive()
                await sim.drop_voice()
                # The handler sees the call over: the stream ends, waiting returns.
                await within(3, lambda: drain(stream), "the audio stream did not end")
                await within(3, call.wait_terminated, "the call did not end for the handler")
                # The server's call is ended at once, by closing its session over REST:
                # not only when the scope is left.
                await within(3, sim.wait_terminated, "the server's call is still up")
                assert sim.ended_by is EndedBy.SESSION_CLOSED
                assert sandbox.sessions[session_id].close_reason is tf.CloseReason.SDK_REQUEST
                assert call.end_reason is tf.CallEndReason.VOICE_LOST
                with pytest.raises(tf.WSSCallClosedError):
                    await call.send_audio(b"\x00\x00")
                with pytest.raises(tf.WSSCallClosedError):
                    await call.clear_send_audio_buffer()
                with pytest.raises(tf.WSSCallClosedError):
                    await call.connect(ring_time_seconds=5)
            assert await settle(sandbox, agents_stopped=False) == []


async def test_p2_voice_loss_under_serve_calls_ends_the_handler_and_the_call() -> None:
    with trio.fail_after(15):
        async with no_leaks(), open_sandbox(time_scale=10) as sandbox:
            agent = EchoAgent("a", sandbox.config())
            async with trio.open_nursery() as nursery:
                await nursery.start(agent.run)
                sim = await sandbox.place_call(audio=TestSignal(seconds=30))
                await sim.wait_heard(3200)
                await sim.drop_voice()
                await within(3, sim.wait_terminated, "the server's call is still up")
                assert sim.ended_by is EndedBy.SESSION_CLOSED
                # The echo handler's loop ended by itself, with no error.
                (run,) = agent.ran_for(sim.call_id)
                assert await poll(lambda: run.ended, 3)
                assert run.error is None
                await agent.stop()
            assert agent.error is None
            assert await settle(sandbox) == []


async def test_p2_voice_loss_of_a_handed_off_answered_call_reopens_once_to_close_it() -> None:
    with trio.fail_after(15):
        async with sandbox_and_manager() as (sandbox, sm):
            sim, session_id = await call_and_note(sandbox, sm)
            async with sm.open_session(session_id) as session:
                document = (await session.incoming_call()).to_json()
                async with tf.Call.from_json(document) as call:
                    assert await call.answer()
                    stream = await call.audio_stream()
                    assert await stream.receive()
                    await sim.drop_voice()
                    await within(3, lambda: drain(stream), "the audio stream did not end")
                    await within(3, call.wait_terminated, "the call did not end for its owner")
                    # The voice plane was reopened once, only to send call.close.
                    await within(3, sim.wait_terminated, "the server's call is still up")
                    assert sim.ended_by is EndedBy.AGENT_CLOSE
                    assert sim.voice_connections == 2
                    assert [c.command for c in sim.commands] == ["call.answer", "call.close"]
                    assert call.end_reason is tf.CallEndReason.VOICE_LOST
                    with pytest.raises(tf.WSSCallClosedError):
                        await call.send_audio(b"\x00\x00")
            assert await settle(sandbox, agents_stopped=False) == []


async def test_p2_voice_loss_of_a_handed_off_unanswered_call_reopens_once_to_disconnect() -> None:
    with trio.fail_after(15):
        async with sandbox_and_manager() as (sandbox, sm):
            sim, session_id = await call_and_note(sandbox, sm)
            async with sm.open_session(session_id) as session:
                document = (await session.incoming_call()).to_json()
                async with tf.Call.from_json(document) as call:
                    await call.audio_stream()  # opens the voice plane, no answer
                    await sim.wait_voice_connected()
                    await sim.drop_voice()
                    await within(3, call.wait_terminated, "the call did not end for its owner")
                    await within(3, sim.wait_terminated, "the server's call is still up")
                    assert sim.ended_by is EndedBy.AGENT_DISCONNECT
                    assert sim.voice_connections == 2
                    assert [c.command for c in sim.commands] == ["call.disconnect"]
                    assert call.end_reason is tf.CallEndReason.VOICE_LOST
            assert await settle(sandbox, agents_stopped=False) == []


# ── P6: a refused voice upgrade ──────────────────────────────────────────────────────────


async def test_p6_refused_voice_upgrade_during_answer_ends_the_call_and_frees_the_caller() -> None:
    with trio.fail_after(15):
        async with sandbox_and_manager() as (sandbox, sm):
            sim, session_id = await call_and_note(sandbox, sm)
            async with sm.open_session(session_id) as session:
                call = await session.incoming_call()
                sandbox.faults.refuse_voice = 1  # HTTP 503
                with pytest.raises(tf.WSSConnectionError) as info:
                    await call.answer()
                assert call.state is tf.CallState.TERMINATED
                with pytest.raises(tf.WSSCallClosedError):
                    await call.answer()
                # The session is closed over REST at once: the caller is not left ringing.
                await within(3, sim.wait_terminated, "the caller is left on a live call")
                await within(3, session.wait_closed, "the session is still open for the agent")
                assert session.close_reason is tf.CloseReason.SDK_REQUEST
                assert sim.ended_by is EndedBy.SESSION_CLOSED
                assert sim.voice_connections == 0
                assert info.value.status_code == 503
                assert call.end_reason is tf.CallEndReason.VOICE_REFUSED
            assert await settle(sandbox, agents_stopped=False) == []


async def test_p6_refused_voice_upgrade_while_leaving_an_unanswered_call_frees_the_caller() -> None:
    with trio.fail_after(15):
        async with sandbox_and_manager() as (sandbox, sm):
            sim, session_id = await call_and_note(sandbox, sm)
            async with sm.open_session(session_id) as session:
                await session.incoming_call()
                # Leaving the scope of a call never touched may open its voice plane to
                # send call.disconnect: that upgrade is refused. (Closing the session over
                # REST straight away frees the caller as well.)
                sandbox.faults.refuse_voice = 1
            await within(3, sim.wait_terminated, "the caller is left on a live call")
            assert sandbox.sessions[session_id].state == "CLOSED"
            assert await settle(sandbox, agents_stopped=False) == []


async def test_p6_voice_upgrade_refused_as_gone_makes_answer_raise_call_closed() -> None:
    with trio.fail_after(15):
        async with sandbox_and_manager() as (sandbox, sm):
            sim, session_id = await call_and_note(sandbox, sm)
            async with sm.open_session(session_id) as session:
                call = await session.incoming_call()
                sandbox.faults.refuse_status = 410
                sandbox.faults.refuse_voice = 1
                with pytest.raises(tf.WSSCallClosedError):
                    await call.answer()
                assert call.state is tf.CallState.TERMINATED
                await sim.hang_up()  # the sandbox said 410 on request; really end it
            assert await settle(sandbox, agents_stopped=False) == []


# ── P7: a claim cancelled while session.open is in flight ───────────────────────────────


async def test_p7_cancelled_claim_that_the_server_granted_is_closed_over_rest() -> None:
    with trio.fail_after(15):
        async with sandbox_and_manager() as (sandbox, sm):
            sim, session_id = await call_and_note(sandbox, sm)
            record = sandbox.sessions[session_id]
            sandbox.faults.response_delay = 0.3  # real seconds: the answer comes late

            async def claim() -> None:
                async with sm.open_session(session_id):
                    raise AssertionError("the claim cannot succeed before its answer")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(claim)
                # The server has bound the session to us; its answer is on its way.
                await sandbox.wait_for(lambda: record.bound is not None)
                nursery.cancel_scope.cancel()
            assert record.bound_sm_ws_id == sm.sm_ws_id
            await within(3, record.closed.wait, "the granted session is left bound to us")
            assert record.close_reason is tf.CloseReason.SDK_REQUEST
            assert sim.ended_by is EndedBy.SESSION_CLOSED
            sandbox.faults.response_delay = 0
            # The manager is still usable.
            sim2, session_id2 = await call_and_note(sandbox, sm)
            async with sm.open_session(session_id2) as session:
                call = await session.incoming_call()
                assert await call.answer()
                await sim2.hang_up()
            assert await settle(sandbox, agents_stopped=False) == []


# ── P8: a control blip between the claim and call.in ────────────────────────────────────


async def test_p8_a_blip_between_claim_and_call_in_is_waited_out_and_the_claim_completes() -> None:
    with trio.fail_after(15):
        async with sandbox_and_manager(SLOW_RECONNECT) as (sandbox, sm):
            sim, session_id = await call_and_note(sandbox, sm)
            record = sandbox.sessions[session_id]
            async with sm.open_session(session_id) as session:
                first_id = sm.sm_ws_id
                await sandbox.drop_control_connections(first_id)
                await sm.wait_connection_state(tf.ConnectionState.RECONNECTING)
                # ready() and incoming_call() wait for the reconnect, then the claim is
                # made again and the call arrives.
                call = await session.incoming_call()
                assert sm.sm_ws_id != first_id
                assert call.id == sim.call_id
                assert record.bound_sm_ws_id == sm.sm_ws_id
                assert record.ready
                assert await call.answer()
                stream = await call.audio_stream()
                assert await stream.receive()
                await sim.hang_up()
                with trio.fail_after(3):
                    await drain(stream)
                    assert await session.wait_closed() is tf.CloseReason.CALL_TERMINATED
            assert sim.ended_by is EndedBy.CALLER_HANGUP
            assert await settle(sandbox, agents_stopped=False) == []


async def test_p8_a_blip_lost_to_another_agent_raises_busy_and_leaves_its_call_alone() -> None:
    with trio.fail_after(20):
        async with no_leaks(), open_sandbox(time_scale=10) as sandbox, AsyncExitStack() as stack:
            sm1 = await stack.enter_async_context(
                tf.SessionManager(sandbox.config(), backoff=SLOW_RECONNECT)
            )
            sm2 = await stack.enter_async_context(
                tf.SessionManager(sandbox.config(), backoff=fast_backoff())
            )
            await sandbox.wait_control_connections(2)
            sim = await sandbox.place_call(audio=TestSignal(seconds=30))
            session_id = sim.session_id
            record = sandbox.sessions[session_id]
            await sm1.session_notifications.receive()
            await sm2.session_notifications.receive()
            won = trio.Event()
            held: list[tf.Call] = []

            async def agent_2_claims() -> None:
                # Agent 2's session lives in a task of its own, so that the two sessions'
                # scopes need not nest.
                note = await sm2.session_notifications.receive()
                assert note.session_id == session_id
                assert note.activity == tf.SessionActivityType.RESUME
                async with sm2.open_session(session_id) as s2:
                    held.append(await s2.incoming_call())
                    won.set()
                    await s2.wait_closed()

            async with trio.open_nursery() as nursery:
                async with sm1.open_session(session_id) as s1:
                    await sandbox.drop_control_connections(sm1.sm_ws_id)
                    await sm1.wait_connection_state(tf.ConnectionState.RECONNECTING)
                    # The server offers the claimed session again; agent 2 wins it.
                    nursery.start_soon(agent_2_claims)
                    await won.wait()
                    with pytest.raises(tf.WSSSessionBusy):
                        await s1.incoming_call()
                # Agent 1's scope is over and left the session, now agent 2's, alone.
                assert record.is_open
                assert record.bound_sm_ws_id == sm2.sm_ws_id
                assert not sim.terminated.is_set()
                assert sim.voice_connections == 0
                (call2,) = held
                assert await call2.answer()
                assert await (await call2.audio_stream()).receive()
                await sim.hang_up()
            assert sim.ended_by is EndedBy.CALLER_HANGUP
        assert sdk_tasks() == []


# ── P9: the caller hangs up before answer() ─────────────────────────────────────────────


async def test_p9_answer_after_the_caller_hung_up_raises_call_closed() -> None:
    with trio.fail_after(15):
        async with sandbox_and_manager() as (sandbox, sm):
            sim, session_id = await call_and_note(sandbox, sm)
            async with sm.open_session(session_id) as session:
                call = await session.incoming_call()
                await sim.hang_up()
                # Whatever arrives first (session.closed, or HTTP 410 on the upgrade):
                with pytest.raises(tf.WSSCallClosedError):
                    await call.answer()
                with trio.fail_after(3):
                    assert await session.wait_closed() is tf.CloseReason.CALL_TERMINATED
                assert call.state is tf.CallState.TERMINATED
            assert await settle(sandbox, agents_stopped=False) == []


async def test_p9_the_call_is_terminated_once_session_closed_arrives() -> None:
    with trio.fail_after(15):
        async with sandbox_and_manager() as (sandbox, sm):
            sim, session_id = await call_and_note(sandbox, sm)
            async with sm.open_session(session_id) as session:
                call = await session.incoming_call()
                await sim.hang_up()
                with trio.fail_after(3):
                    assert await session.wait_closed() is tf.CloseReason.CALL_TERMINATED
                assert call.state is tf.CallState.TERMINATED
                # The server ended it (the session closed as CALL_TERMINATED).
                assert call.end_reason in (
                    tf.CallEndReason.TERMINATED,
                    tf.CallEndReason.SESSION_CLOSED,
                )
                with trio.fail_after(1):
                    await call.wait_terminated()
                with pytest.raises(tf.WSSCallClosedError):
                    await call.answer()
                assert sim.voice_connections == 0
            assert await settle(sandbox, agents_stopped=False) == []


# ── P10: after call.terminated, leaving does not wait for session.closed ────────────────


async def test_p10_leaving_after_call_terminated_does_not_wait_for_session_closed() -> None:
    with trio.fail_after(15):
        async with sandbox_and_manager() as (sandbox, sm):
            sim, session_id = await call_and_note(sandbox, sm)
            record = sandbox.sessions[session_id]
            # A cancel scope around the session's whole scope, armed just before leaving it
            # (one opened around the exit alone would cut across the session's nursery).
            with trio.CancelScope() as leaving:
                async with sm.open_session(session_id) as session:
                    call = await session.incoming_call()
                    assert await call.answer()
                    # call.terminated on the voice plane, and a server slow to send
                    # session.closed (this one never does).
                    sim.end(EndedBy.CALLER_HANGUP, close_session=False)
                    with trio.fail_after(3):
                        await call.wait_terminated()
                    assert call.end_reason is tf.CallEndReason.TERMINATED
                    # SESSION_CLOSE_WAIT is 10 s: leaving must not sit it out.
                    leaving.deadline = trio.current_time() + 2
            assert not leaving.cancelled_caught, "leaving waited for session.closed"
            assert record.is_open, "the server never closed it; the agent had no reason to"
            await sandbox.close_session(session_id)
            assert leftovers(sandbox, agents_stopped=False) == []


# ── the fuzz script, smoke-tested ───────────────────────────────────────────────────────


def test_lifecycle_fuzz_quick_run_counts_nothing_wrong() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "lifecycle_fuzz.py"), "--quick", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["calls"] > 0
    counts = {k: v for k, v in summary["counts"].items() if v}
    assert counts == {}, f"{counts}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0
