"""The voice plane: token checks, the caller's audio, pulls, and every command."""

from __future__ import annotations

import json

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected

from telcoflow_trio.sandbox import ConnectBehaviour, ConnectOutcome, EndedBy
from telcoflow_trio.testing import Sandbox, TestSignal, open_sandbox

from .raw import RawVoice, claimed_call, control, voice


async def test_voice_token_is_checked(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            call, call_in = await claimed_call(ctl, sandbox)
            for token in ("wrong", call.token + "x"):
                with pytest.raises(ConnectionRejected) as info:
                    async with voice(call_in, token=token):
                        pass
                assert info.value.status_code == 401
            other = {**call_in, "url": call_in["url"].replace(call.call_id, "no-such-call")}
            with pytest.raises(ConnectionRejected) as info:
                async with voice(other):
                    pass
            assert info.value.status_code == 401
            async with voice(call_in):
                await call.wait_voice_connected()
                with pytest.raises(ConnectionRejected) as info:
                    async with voice(call_in):
                        pass
                assert info.value.status_code == 409
            await call.hang_up()
            with pytest.raises(ConnectionRejected) as info:
                async with voice(call_in):
                    pass
            assert info.value.status_code == 410


async def _read_until_closed(v: RawVoice) -> None:
    try:
        while True:
            await v._pump()
    except ConnectionClosed:
        pass


async def test_caller_speaks_in_20ms_frames_after_answer() -> None:
    async with open_sandbox(time_scale=20) as sandbox, control(sandbox) as ctl:
        with trio.fail_after(10):
            signal = TestSignal(seconds=1.0)
            call, call_in = await claimed_call(ctl, sandbox, audio=signal)
            async with voice(call_in) as v:
                with trio.move_on_after(0.1):
                    await v._pump()
                assert v.binary == [], "audio before answer"
                assert (await v.command("call.answer"))["success"] is True
                await call.wait_spoken()
                while len(v.audio()) < len(signal.render(16000)):
                    await v._pump()
                audio_frames = [b for b in v.binary if b[0] == 0]
                assert {len(b) for b in audio_frames} == {641}
                assert v.audio() == signal.render(16000) == bytes(call.spoken)
                assert call.answered and call.state == "LIVE"


async def test_isolated_mode_sends_each_leg() -> None:
    async with (
        open_sandbox(time_scale=20) as sandbox,
        control(sandbox, sample_rate=8000, audio_mode="isolated") as ctl,
    ):
        with trio.fail_after(10):
            _, call_in = await claimed_call(ctl, sandbox, audio=TestSignal(seconds=0.2))
            async with voice(call_in) as v:
                await v.command("call.answer")
                expected = TestSignal(seconds=0.2).render(8000)
                while len(v.audio(2)) < len(expected):
                    await v._pump()
                assert v.audio(0) == v.audio(1) == expected
                assert v.audio(2) == bytes(len(expected))
                assert {len(b) for b in v.binary} == {321}


async def test_pulls_and_echo_round_trip() -> None:
    async with (
        open_sandbox(time_scale=10, prefer_audio_frame_bytes=960) as sandbox,
        control(sandbox) as ctl,
    ):
        with trio.fail_after(10):
            signal = TestSignal(seconds=2.0)
            call, call_in = await claimed_call(ctl, sandbox, audio=signal)
            async with voice(call_in) as v:
                assert (await v.command("call.answer"))["success"]
                owed = 0
                pending = b""
                spoken = signal.render(16000)
                requests: list[dict[str, int]] = []
                while len(call.heard) < len(spoken):
                    data = await v.ws.get_message()
                    if isinstance(data, bytes):
                        pending += data[1:]
                    else:
                        frame = json.loads(data)
                        if frame["type"] == "buffer_request":
                            requests.append(frame["data"])
                            owed += frame["data"]["requested_bytes"]
                    while owed and pending:
                        take = pending[: min(owed, 960)]
                        pending = pending[len(take) :]
                        owed -= len(take)
                        await v.send(b"\x00" + take)
                    await trio.lowlevel.checkpoint()
                assert requests[0] == {
                    "requested_bytes": 3200,
                    "prefer_audio_frame_bytes": 960,
                    "channelId": 0,
                }
                await call.wait_heard(len(spoken))
                assert call.heard == spoken
                assert call.excess_bytes == 0
                times = [f.time for f in call.heard_frames]
                assert times == sorted(times)


async def test_agent_audio_beyond_what_was_asked_is_counted(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            call, call_in = await claimed_call(ctl, sandbox)
            async with voice(call_in) as v:
                await v.command("call.answer")
                first = await v.wait_type("buffer_request")
                asked = first["data"]["requested_bytes"]
                await v.send(b"\x00" + bytes(asked + 100))
                await v.send(b"\x00")  # too short: ignored
                await call.wait_heard(asked + 100)
                assert call.excess_bytes == 100


async def test_connect_then_agent_modes(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            connect = ConnectBehaviour(ConnectOutcome.ANSWERED, answer_after=0.2)
            call, call_in = await claimed_call(ctl, sandbox, connect=connect)
            async with voice(call_in) as v:
                for mode in ("agent.whisper", "agent.barge", "agent.spy"):
                    refused = await v.command(mode)
                    assert refused["success"] is False
                    assert refused["error_code"] == "CALL_NOT_CONNECTED"
                    assert refused["error_message"]
                started = trio.current_time()
                connected = await v.command("call.connect", {"ringTimeSeconds": 30}, 30_000)
                assert connected["success"] is True
                assert 0.15 < trio.current_time() - started < 2
                assert call.bridged and call.state == "LIVE"
                for mode in ("agent.whisper", "agent.barge", "agent.spy"):
                    assert (await v.command(mode))["success"] is True
                    assert call.agent_mode == mode
                assert [c.command for c in call.commands][-3:] == [
                    "agent.whisper",
                    "agent.barge",
                    "agent.spy",
                ]


async def test_connect_unanswered_after_the_ring_time() -> None:
    unanswered = ConnectBehaviour(ConnectOutcome.UNANSWERED)
    async with open_sandbox(time_scale=10, connect=unanswered) as sandbox, control(sandbox) as ctl:
        with trio.fail_after(5):
            call, call_in = await claimed_call(ctl, sandbox)
            async with voice(call_in) as v:
                started = trio.current_time()
                result = await v.command("call.connect", {"ringTimeSeconds": 3}, 3000)
                elapsed = trio.current_time() - started
                assert result["success"] is False
                assert result["error_code"] == "CALL_UNANSWERED"
                assert 0.25 < elapsed < 1.5  # 3 simulated seconds at 10x
                assert not call.terminated.is_set()
                bad = await v.command("call.connect", {"ringTimeSeconds": 500})
                assert bad["error_code"] == "INVALID_REQUEST"
                assert (await v.command("call.answer"))["success"] is True


async def test_connect_failure_is_immediate(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            failing = ConnectBehaviour(ConnectOutcome.FAILED, error_code="DESTINATION_BUSY")
            _, call_in = await claimed_call(ctl, sandbox, connect=failing)
            async with voice(call_in) as v:
                result = await v.command("call.connect", {"ringTimeSeconds": 60}, 60_000)
                assert (result["success"], result["error_code"]) == (False, "DESTINATION_BUSY")


async def test_disconnect_ends_the_call_everywhere(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            call, call_in = await claimed_call(ctl, sandbox)
            async with voice(call_in) as v:
                response = await v.command("call.disconnect")
                assert response["success"] is True
                event = await v.wait_type("call_event")
                assert event["data"] == {"event": "call.terminated"}
                await _read_until_closed(v)
            closed = await ctl.wait_type("session.closed", sessionId=call.session_id)
            assert closed["reason"] == "CALL_TERMINATED"
            assert call.ended_by is EndedBy.AGENT_DISCONNECT
            assert not sandbox.sessions[call.session_id].is_open


async def test_close_needs_an_answered_call(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            call, call_in = await claimed_call(ctl, sandbox)
            async with voice(call_in) as v:
                early = await v.command("call.close")
                assert (early["success"], early["error_code"]) == (False, "CALL_NOT_ANSWERED")
                assert not call.terminated.is_set()
                await v.command("call.answer")
                assert (await v.command("call.close"))["success"] is True
                assert (await v.wait_type("call_event"))["data"]["event"] == "call.terminated"
            assert (await ctl.wait_type("session.closed"))["reason"] == "CALL_TERMINATED"
            assert call.ended_by is EndedBy.AGENT_CLOSE


async def test_interrupt_is_recorded_with_what_came_after(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            call, call_in = await claimed_call(ctl, sandbox)
            async with voice(call_in) as v:
                await v.command("call.answer")
                await v.wait_type("buffer_request")
                await v.send(b"\x00" + b"\x01" * 640)
                await call.wait_heard(640)
                result = await v.command("agent.interrupt")
                assert result["success"] is True
                (interrupt,) = call.interrupts
                assert interrupt.heard_bytes == 640
                await v.send(b"\x00" + b"\x02" * 320)
                await call.wait_heard(960)
                assert call.heard_after(interrupt) == b"\x02" * 320
                assert call.heard_since(interrupt.time) == b"\x02" * 320


async def test_errors_unknown_commands_and_hang_up(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            call, call_in = await claimed_call(ctl, sandbox)
            with pytest.raises(RuntimeError):
                await call.inject_error()
            async with voice(call_in) as v:
                await call.wait_voice_connected()
                await call.inject_error("TTS_SESSION_ERROR", "tts went away")
                event = await v.wait_type("call_event")
                assert event["data"] == {
                    "event": "call.error",
                    "error_code": "TTS_SESSION_ERROR",
                    "error_message": "tts went away",
                }
                unknown = await v.command("call.dance")
                assert (unknown["success"], unknown["error_code"]) == (False, "UNKNOWN_COMMAND")
                await v.send('{"type": "command", "data": {"command": "call.answer"}}')
                await v.send("garbage")
                assert (await v.command("call.answer"))["success"] is True
                await call.hang_up()
                assert (await v.wait_type("call_event"))["data"]["event"] == "call.terminated"
                await _read_until_closed(v)
            assert call.ended_by is EndedBy.CALLER_HANGUP
            assert (await ctl.wait_type("session.closed"))["reason"] == "CALL_TERMINATED"
