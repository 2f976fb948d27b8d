"""Every fault knob, and the frame log that shows what happened."""

from __future__ import annotations

import contextlib

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected

from telcoflow_trio.sandbox import MALFORMED_CONTROL_FRAMES, MALFORMED_VOICE_FRAMES
from telcoflow_trio.testing import Sandbox

from .raw import RawVoice, claimed_call, control, voice


async def test_refuse_the_next_n_control_connections(sandbox: Sandbox) -> None:
    sandbox.faults.refuse_control = 2
    with trio.fail_after(5):
        for _ in range(2):
            with pytest.raises(ConnectionRejected) as info:
                async with control(sandbox):
                    pass
            assert info.value.status_code == 503
            assert info.value.body is not None and b"refused" in info.value.body
        async with control(sandbox) as ctl:
            assert ctl.sm_ws_id
        assert sandbox.faults.refuse_control == 0


async def test_refuse_voice_connections(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            _, call_in = await claimed_call(ctl, sandbox)
            sandbox.faults.refuse_voice = 1
            sandbox.faults.refuse_status = 502
            with pytest.raises(ConnectionRejected) as info:
                async with voice(call_in):
                    pass
            assert info.value.status_code == 502
            async with voice(call_in) as v:
                assert (await v.command("call.answer"))["success"]


async def test_setup_done_withheld_then_delayed(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        sandbox.faults.withhold_setup_done = True
        async with control(sandbox, setup=False) as ctl:
            await ctl.send({"type": "setup", "data": {"sampleRate": 16000, "audioMode": "mixed"}})
            with trio.move_on_after(0.3):
                await ctl.wait_type("setup.done")
                pytest.fail("setup.done was not withheld")
            assert sandbox.control_connections == []
        sandbox.faults.withhold_setup_done = False
        sandbox.faults.setup_done_delay = 0.3
        async with control(sandbox, setup=False) as ctl:
            started = trio.current_time()
            await ctl.send({"type": "setup", "data": {"sampleRate": 16000, "audioMode": "mixed"}})
            await ctl.wait_type("setup.done")
            assert trio.current_time() - started >= 0.3


async def test_responses_withheld_delayed_and_failed(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            sandbox.faults.withhold_responses = {"session.open"}
            await ctl.send({"type": "session.open", "sessionId": "sess-x", "reqId": "r1"})
            with trio.move_on_after(0.3):
                await ctl.wait_type("response")
                pytest.fail("the response was not withheld")
            sandbox.faults.withhold_responses = set()

            sandbox.faults.response_delay = 0.3
            started = trio.current_time()
            assert (await ctl.claim("sess-x"))["errorCode"] == "SESSION_NOT_FOUND"
            assert trio.current_time() - started >= 0.3
            sandbox.faults.response_delay = 0

            sandbox.faults.fail_requests["session.create"] = ("QUOTA_EXCEEDED", {"limit": 0})
            create = {"type": "session.create", "channel": "WA", "remoteAddress": "+1"}
            failed = await ctl.request(create)
            assert (failed["ok"], failed["errorCode"]) == (False, "QUOTA_EXCEEDED")
            assert failed["errorContent"] == {"limit": 0}
            assert sandbox.sessions == {}
            assert (await ctl.request(create))["ok"] is True


async def test_command_responses_withheld_and_late(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            call, call_in = await claimed_call(ctl, sandbox)
            async with voice(call_in) as v:
                sandbox.faults.withhold_command_responses = {"call.answer"}
                with trio.move_on_after(0.3):
                    await v.command("call.answer")
                    pytest.fail("the command response was not withheld")
                assert call.answered  # the command took effect; only its answer was lost
                sandbox.faults.withhold_command_responses = set()

                sandbox.faults.command_response_delay = 0.2
                started = trio.current_time()
                assert (await v.command("agent.interrupt", timeout_ms=5000))["success"]
                assert trio.current_time() - started >= 0.2
                # Later than the client's deadline: the sandbox answers TIMEOUT at the deadline.
                late = await v.command("agent.interrupt", timeout_ms=100)
                assert (late["success"], late["error_code"]) == (False, "TIMEOUT")


async def _pump_forever(v: RawVoice) -> None:
    while True:
        await v._pump()


async def test_drop_voice_keeps_the_call(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            call, call_in = await claimed_call(ctl, sandbox)
            async with voice(call_in) as v:
                await v.command("call.answer")
                await call.drop_voice()
                with pytest.raises(ConnectionClosed):
                    await _pump_forever(v)
            assert not call.terminated.is_set()
            async with voice(call_in) as again:
                assert (await again.command("call.answer"))["success"]
            assert call.voice_connections == 2


async def test_malformed_frames_on_both_planes(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            _, call_in = await claimed_call(ctl, sandbox)
            sent = await sandbox.send_malformed_control()
            assert sent == list(MALFORMED_CONTROL_FRAMES)
            received = 0
            while received < len(sent):
                # The test client's own json.loads refuses some of the garbage.
                with contextlib.suppress(ValueError, RecursionError):
                    await ctl._pump()
                received += 1
            assert ctl.binary == [MALFORMED_CONTROL_FRAMES["binary"]]
            out = sandbox.frames.select(plane="control", direction="out", connection=None)
            assert [r.data for r in out[-len(sent) :]] == list(MALFORMED_CONTROL_FRAMES.values())
            async with voice(call_in) as v:
                call = sandbox.calls[call_in["callId"]]
                await call.wait_voice_connected()
                kinds = await call.send_malformed(["binary_one_byte", "not_json"])
                assert kinds == ["binary_one_byte", "not_json"]
                assert await v.ws.get_message() == MALFORMED_VOICE_FRAMES["binary_one_byte"]
                assert await v.ws.get_message() == "not json at all"
                await call.send_raw('{"type": "call_event", "data": {"event": "call.custom"}}')
                assert (await v.wait_type("call_event"))["data"]["event"] == "call.custom"


async def test_frame_log_records_both_directions(sandbox: Sandbox) -> None:
    with trio.fail_after(5):
        async with control(sandbox) as ctl:
            call, call_in = await claimed_call(ctl, sandbox)
            async with voice(call_in) as v:
                await v.command("call.answer")
                await v.wait_type("buffer_request")
                await v.send(b"\x00" + bytes(10))
                await sandbox.frames.wait_for(lambda r: r.direction == "in" and not r.is_text)
        await sandbox.wait_for(lambda: not sandbox.control_connections)
        control_in = sandbox.frames.types(plane="control", direction="in")
        assert control_in == ["setup", "session.open", "session.ready"]
        control_out = sandbox.frames.types(plane="control", direction="out")
        assert control_out[:4] == ["setup.done", "session.notify", "response", "call.in"]
        voice_in = sandbox.frames.select(plane="voice", direction="in")
        assert voice_in[0].type == "command"
        assert voice_in[-1].data == b"\x00" + bytes(10)
        assert all(r.connection == f"voice-{call.call_id}" for r in voice_in)
        assert "call.answer" not in repr(voice_in[0])  # repr hides the payload
