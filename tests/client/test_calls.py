"""The client end to end: claim, answer, echo, close; commands; serve_calls isolation."""

from __future__ import annotations

import logging

import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio.sandbox import ConnectBehaviour, EndedBy
from telcoflow_trio.testing import Sandbox, TestSignal

from .conftest import claimed_call


def state_of(call: tf.Call) -> tf.CallState:
    # A function call, so the type checker does not narrow the property across awaits.
    return call.state


async def echo(call: tf.Call) -> None:
    assert await call.answer()
    async for chunk in call.audio_stream():
        await call.send_audio(chunk)


async def test_serve_calls_echo_is_byte_exact(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
            assert sm.connection_state is tf.ConnectionState.CONNECTED
            nursery.start_soon(sm.serve_calls, echo)
            sim = await sandbox.place_call(audio=TestSignal(seconds=2))
            await sim.wait_spoken()
            await sim.wait_heard(len(sim.spoken))
            await sim.hang_up()
            nursery.cancel_scope.cancel()
    assert sim.heard == sim.spoken
    assert len(sim.spoken) == 2 * 16000 * 2


async def test_low_level_flow_and_close(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            sim = await sandbox.place_call(caller="+1555", audio=TestSignal(seconds=0.5))
            note = await sm.session_notifications.receive()
            assert note.channel is tf.ChannelType.TELCO
            assert note.remote_address == "+1555"
            async with sm.open_session(note.session_id) as session:
                assert session.channel is tf.ChannelType.TELCO
                await session.ready()
                await session.ready()  # idempotent
                call = await session.incoming_call()
                assert state_of(call) is tf.CallState.NEW
                assert call.caller_number == "+1555"
                result = await call.answer()
                assert result, result
                assert state_of(call) is tf.CallState.LIVE
                await sim.wait_answered()
                closed = await call.close()
                assert closed
                assert state_of(call) is tf.CallState.TERMINATED
                assert await session.wait_closed() is tf.CloseReason.CALL_TERMINATED
            assert [c.command for c in sim.commands] == ["call.answer", "call.close"]
            await sim.wait_terminated()


async def test_leaving_the_session_scope_ends_an_unanswered_call(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            sim = await sandbox.place_call()
            async with claimed_call(sm) as (session, call):
                assert await call.audio_stream() is not None  # opens the voice plane
            assert session.is_closed
            await sim.wait_terminated()
            assert [c.command for c in sim.commands] == ["call.disconnect"]


async def test_claim_race_one_winner(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with (
            tf.SessionManager(sandbox.config()) as a,
            tf.SessionManager(sandbox.config()) as b,
        ):
            await sandbox.place_call()
            note_a = await a.session_notifications.receive()
            note_b = await b.session_notifications.receive()
            assert note_a.session_id == note_b.session_id
            outcomes: list[str] = []

            async def claim(sm: tf.SessionManager) -> None:
                try:
                    async with sm.open_session(note_a.session_id) as session:
                        outcomes.append("won")
                        call = await session.incoming_call()
                        await call.answer()
                except tf.WSSSessionBusy as exc:
                    outcomes.append(f"busy:{exc.bound_sm_ws_id is not None}")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(claim, a)
                nursery.start_soon(claim, b)
            assert sorted(outcomes) == ["busy:True", "won"]


async def test_connect_unanswered_is_a_falsy_result(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            await sandbox.place_call(connect=ConnectBehaviour("UNANSWERED"))
            async with claimed_call(sm) as (_session, call):
                assert await call.answer()
                assert not await call.whisper()  # refused before connect
                result = await call.connect(ring_time_seconds=5)
                assert not result
                assert result.error_code == "CALL_UNANSWERED"
                assert state_of(call) is tf.CallState.LIVE  # the call stays up
                assert len(call.command_rtts) == 3


async def test_handler_exception_does_not_touch_other_calls(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(call: tf.Call) -> None:
        if call.caller_number == "+1000":
            raise RuntimeError("model crashed")
        await echo(call)

    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
            nursery.start_soon(sm.serve_calls, handler)
            bad = await sandbox.place_call(caller="+1000")
            good = await sandbox.place_call(caller="+2000", audio=TestSignal(seconds=1))
            await bad.wait_terminated()
            await good.wait_spoken()
            await good.wait_heard(len(good.spoken))
            assert good.heard == good.spoken
            nursery.cancel_scope.cancel()
    # Cancelling serve_calls closed the good call on the server, not just locally.
    assert good.ended_by is EndedBy.AGENT_CLOSE
    assert bad.ended_by is EndedBy.AGENT_DISCONNECT  # never answered: disconnected
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(bad.call_id in r.getMessage() for r in errors)
    assert "model crashed" in caplog.text


async def test_call_events_error_and_termination(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            sim = await sandbox.place_call()
            async with claimed_call(sm) as (_session, call):
                assert await call.answer()
                await sim.inject_error("TTS_SESSION_ERROR", "tts down")
                event = await call.events.receive()
                assert event == tf.CallError("TTS_SESSION_ERROR", "tts down", event.payload)
                await sim.hang_up()
                await call.wait_terminated()
                assert isinstance(await call.events.receive(), tf.CallTerminated)
                with pytest.raises(tf.WSSCallClosedError):
                    await call.answer()


async def test_connect_whisper_with_audio_then_disconnect(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            sim = await sandbox.place_call(connect=ConnectBehaviour("ANSWERED", answer_after=1.0))
            async with claimed_call(sm) as (_session, call):
                assert await call.answer()
                assert await call.connect(ring_time_seconds=10)
                assert await call.whisper()
                await call.send_audio(b"\x10\x00" * 1600)
                await call.wait_for_playout()
                await sim.wait_heard(3200)
                assert await call.disconnect()
                assert state_of(call) is tf.CallState.TERMINATED
                await sim.wait_terminated()
    assert [c.command for c in sim.commands] == [
        "call.answer",
        "call.connect",
        "agent.whisper",
        "call.disconnect",
    ]
    assert sim.ended_by is EndedBy.AGENT_DISCONNECT


@pytest.mark.parametrize("junk", [b"", b"\x00"])
async def test_a_binary_voice_frame_too_short_for_audio_is_logged_and_ignored(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture, junk: bytes
) -> None:
    caplog.set_level(logging.DEBUG, logger="telcoflow_trio._voice_connection")
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            sim = await sandbox.place_call()
            async with claimed_call(sm) as (_session, call):
                assert await call.answer()
                await sim.send_raw(junk)
                assert not await call.whisper()  # the socket still carries commands
                await sim.hang_up()
    assert "binary frame shorter than 2 bytes" in caplog.text
    assert sim.voice_connections == 1
