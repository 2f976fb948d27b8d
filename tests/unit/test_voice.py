"""The voice plane's lifecycle over the in-memory transport: a lost voice socket (P2), a
refused upgrade (P6), a half-dead socket (P4), and how a call the agent closed ends."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import telcoflow_trio as tf
from telcoflow_trio._voice_connection import VoiceTimeouts
from telcoflow_trio.protocol import control

from ._fake_server import fake_server, session_with_call


async def test_a_lost_voice_socket_ends_the_call_and_closes_its_session_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_server() as fs, fs.manager() as sm:
        async with session_with_call(fs, sm) as (session, call):
            assert await call.answer()
            heard: list[bytes] = []
            async with trio.open_nursery() as nursery:

                async def listen() -> None:
                    async for chunk in call.audio_stream():
                        heard.append(chunk)

                nursery.start_soon(listen)
                await fs.voices["c-1"].send(b"\x00hello")
                await trio.testing.wait_all_tasks_blocked()
                cut_at = trio.current_time()
                await fs.cut_voice("c-1")
                await call.wait_terminated()
                await fs.wait_logged("rest close s-1")
                assert trio.current_time() == cut_at
            # The listener's loop ended with the call, or the nursery would still wait.
            assert heard == [b"hello"]
            assert call.end_reason is tf.CallEndReason.VOICE_LOST
            assert call.state is tf.CallState.TERMINATED
            with pytest.raises(tf.WSSCallClosedError):
                await call.send_audio(b"\x00\x00")
            with pytest.raises(tf.WSSCallClosedError):
                await call.clear_send_audio_buffer()
            assert await call.close()  # idempotent once over
        assert session.is_closed
        assert fs.log.count("rest close s-1") == 1
        assert fs.log.count("voice c-1 open") == 1  # not reopened to leave


@pytest.mark.parametrize(
    ("status", "error", "reason", "closed_over_rest"),
    [
        (503, tf.WSSConnectionError, tf.CallEndReason.VOICE_REFUSED, True),
        (410, tf.WSSCallClosedError, tf.CallEndReason.TERMINATED, False),
        (409, tf.WSSSessionBusy, tf.CallEndReason.HELD_ELSEWHERE, False),
    ],
)
async def test_a_refused_voice_upgrade_during_answer(
    autojump_clock: trio.testing.MockClock,
    status: int,
    error: type[Exception],
    reason: tf.CallEndReason,
    closed_over_rest: bool,
) -> None:
    async with fake_server() as fs, fs.manager() as sm:
        async with session_with_call(fs, sm) as (_, call):
            fs.refuse_next(status)
            with pytest.raises(error) as raised:
                await call.answer()
            if isinstance(raised.value, tf.WSSConnectionError):
                assert raised.value.status_code == status
            assert call.end_reason is reason
            # A 503 strands no caller: the session was closed before answer() raised.
            assert ("rest close s-1" in fs.log) is closed_over_rest
        assert fs.log.count("rest close s-1") == int(closed_over_rest)
        assert not any(line.startswith("voice") for line in fs.log)


async def test_a_voice_socket_that_stops_answering_pings_ends_the_call_within_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timeouts = VoiceTimeouts(ping_interval=1.0, ping_timeout=2.0)
    async with (
        fake_server() as fs,
        fs.manager(voice_timeouts=timeouts) as sm,
        session_with_call(fs, sm) as (_, call),
    ):
        assert await call.answer()
        await trio.sleep(5)  # answered pings keep it up
        assert call.state is tf.CallState.LIVE
        fs.voices["c-1"].stop_answering_pings()
        start = trio.current_time()
        await call.wait_terminated()
        assert trio.current_time() - start <= timeouts.ping_interval + timeouts.ping_timeout
        assert call.end_reason is tf.CallEndReason.VOICE_LOST
        await fs.wait_logged("rest close s-1")


@pytest.mark.parametrize(
    ("disconnect", "reason"),
    [(False, tf.CallEndReason.CLOSED), (True, tf.CallEndReason.DISCONNECTED)],
)
async def test_a_call_the_agent_left_ends_for_that_reason_whatever_the_scheduling(
    autojump_clock: trio.testing.MockClock, disconnect: bool, reason: tf.CallEndReason
) -> None:
    # The server answers the close, then says call.terminated, back to back (in that order
    # on the wire). Which of the closer and the socket reader trio runs first must not
    # change why the call ended; 20 rounds make a coin flip visible.
    reasons: list[tf.CallEndReason | None] = []
    async with fake_server() as fs, fs.manager() as sm:
        for n in range(20):
            async with session_with_call(fs, sm, f"s-{n}", f"c-{n}") as (_, call):
                assert await call.answer()
                assert await (call.disconnect() if disconnect else call.close())
                reasons.append(call.end_reason)
    assert reasons == [reason] * 20


async def test_server_events_reach_call_events_and_call_terminated_ends_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_server() as fs, fs.manager() as sm:
        async with session_with_call(fs, sm) as (session, call):
            assert await call.answer()
            await fs.voice_event("c-1", "call.error", error_code="TTS_SESSION_ERROR")
            await fs.voice_event("c-1", "call.terminated")
            await call.wait_terminated()
            events = [event async for event in call.events]
            assert events == [
                tf.CallError("TTS_SESSION_ERROR", None, {"error_code": "TTS_SESSION_ERROR"}),
                tf.CallTerminated(),
            ]
            assert call.end_reason is tf.CallEndReason.TERMINATED
            assert [chunk async for chunk in call.audio_stream()] == []
        assert session.is_closed
        assert not any(line.startswith("rest") for line in fs.log)
        assert fs.log[-1] == "voice c-1 call.answer"  # nothing more was owed to the server


async def test_a_caller_who_hangs_up_before_answer(autojump_clock: trio.testing.MockClock) -> None:
    # P9: the server closes the session before the agent opened the voice plane.
    async with fake_server() as fs, fs.manager() as sm:
        async with session_with_call(fs, sm) as (session, call):
            await fs.push(control.SessionClosed("s-1", tf.CloseReason.CALL_TERMINATED))
            await session.wait_closed()
            assert call.state is tf.CallState.TERMINATED
            assert call.end_reason is tf.CallEndReason.TERMINATED
            with pytest.raises(tf.WSSCallClosedError):
                await call.answer()
        assert not any(line.startswith(("rest", "voice")) for line in fs.log)
