"""Hand-written vectors from PROTOCOL.md: the exact JSON each frame puts on the wire,
and what the documented server frames decode to."""

from __future__ import annotations

import json
from typing import Any

import pytest

from telcoflow_trio._enums import (
    AudioMode,
    ChannelType,
    CloseReason,
    InboundCallMode,
    SessionActivityType,
)
from telcoflow_trio._messages import SessionNotification
from telcoflow_trio.protocol import Unrecognised, control, rest, voice

# ── client → server: exact key names and values ────────────────────────────────────────

CLIENT_VECTORS: list[tuple[object, dict[str, Any]]] = [
    (
        control.Setup(16000, AudioMode.MIXED),
        {"type": "setup", "data": {"sampleRate": 16000, "audioMode": "mixed"}},
    ),
    (
        control.Setup(24000, "isolated"),  # type: ignore[arg-type]  # converter accepts str
        {"type": "setup", "data": {"sampleRate": 24000, "audioMode": "isolated"}},
    ),
    (
        control.SessionOpen("S", req_id="R"),
        {"type": "session.open", "sessionId": "S", "reqId": "R"},
    ),
    (
        control.SessionCreate(ChannelType.WA, "+4411", req_id="R"),
        {"type": "session.create", "channel": "WA", "remoteAddress": "+4411", "reqId": "R"},
    ),
    (
        control.CallFlowSetup(InboundCallMode.MISSED_ONLY, True, False, True, req_id="R"),
        {
            "type": "call_flow.setup",
            "data": {
                "inboundCall": "MISSED_ONLY",
                "outboundCall": True,
                "inboundMessage": False,
                "outboundMessage": True,
            },
            "reqId": "R",
        },
    ),
    (
        control.WaMsgOut("S", "v22", {"text": "hi"}, client_msg_id="M", req_id="R"),
        {
            "type": "wa.msg.out",
            "data": {
                "sessionId": "S",
                "clientMsgId": "M",
                "apiVersion": "v22",
                "data": {"text": "hi"},
            },
            "reqId": "R",
        },
    ),
    (control.SessionReady("S"), {"type": "session.ready", "sessionId": "S"}),
    (
        voice.Command("call.answer", 10_000, command_id="C"),
        {
            "type": "command",
            "data": {"command_id": "C", "command": "call.answer", "timeout_ms": 10000},
        },
    ),
    (
        voice.Command("call.connect", 60_000, {"ringTimeSeconds": 60}, command_id="C"),
        {
            "type": "command",
            "data": {
                "command_id": "C",
                "command": "call.connect",
                "timeout_ms": 60000,
                "data": {"ringTimeSeconds": 60},
            },
        },
    ),
]


@pytest.mark.parametrize(("frame", "expected"), CLIENT_VECTORS)
def test_client_frames_have_exactly_the_protocol_keys(frame: Any, expected: dict[str, Any]) -> None:
    encode = voice.encode_frame if isinstance(frame, voice.Command) else control.encode_frame
    assert json.loads(encode(frame)) == expected


def test_binary_audio_frame_is_channel_byte_then_pcm() -> None:
    assert voice.encode_audio(voice.AudioFrame(0, b"\x01\x02\x03\x04")) == b"\x00\x01\x02\x03\x04"


def test_request_ids_are_fresh_uuid4s() -> None:
    a, b = control.SessionOpen("S"), control.SessionOpen("S")
    assert a.req_id != b.req_id
    assert len(a.req_id) == 36 and a.req_id[14] == "4"
    assert (
        voice.Command("call.close", 10_000).command_id != voice.Command("call.close", 1).command_id
    )


def test_command_table_timeouts() -> None:
    assert voice.CommandName.ANSWER.default_timeout_ms == 10_000
    assert voice.CommandName.CONNECT.default_timeout_ms == 60_000
    assert {c.value for c in voice.CommandName} == {
        "call.answer",
        "call.connect",
        "agent.whisper",
        "agent.barge",
        "agent.spy",
        "call.disconnect",
        "call.close",
        "agent.interrupt",
    }


# ── server → client: documented frames decode as the protocol says ──────────────────────


def test_setup_done() -> None:
    assert control.decode_server_frame('{"type": "setup.done", "smWsId": "sm-1"}') == (
        control.SetupDone("sm-1")
    )


def test_response_ok_and_error() -> None:
    ok = control.decode_server_frame(
        '{"type": "response", "reqId": "R", "ok": true,'
        ' "content": {"sessionId": "S", "created": false}}'
    )
    assert ok == control.Response("R", True, {"sessionId": "S", "created": False})
    assert isinstance(ok, control.Response)
    assert control.decode_created_session(ok.content) == control.CreatedSession("S", False)
    busy = control.decode_server_frame(
        '{"type": "response", "reqId": "R", "ok": false, "errorCode": "SESSION_BUSY",'
        ' "errorContent": {"boundSmWsId": "sm-9"}}'
    )
    assert busy == control.Response("R", False, None, "SESSION_BUSY", {"boundSmWsId": "sm-9"})


def test_session_open_content() -> None:
    content = {
        "session": {
            "id": "S",
            "channel": "TELCO",
            "remoteAddress": "+1",
            "localAddress": "+2",
            "openedAt": 1700000000,
        }
    }
    assert control.decode_opened_session(content) == control.OpenedSession(
        "S", ChannelType.TELCO, "+1", "+2", 1700000000
    )
    assert isinstance(control.decode_opened_session({"session": {}}), Unrecognised)
    assert isinstance(control.decode_opened_session(None), Unrecognised)


def test_session_notify_keeps_unknown_activity_as_string() -> None:
    frame = control.decode_server_frame(
        '{"type": "session.notify", "sessionId": "S", "channel": "TELCO", "remoteAddress": "+1",'
        ' "localAddress": "+2", "activity": "NEW_INCOMING_CALL", "createdAt": 5}'
    )
    assert frame == control.SessionNotify(
        "S", ChannelType.TELCO, "+1", "+2", "NEW_INCOMING_CALL", 5
    )
    assert isinstance(frame, control.SessionNotify)
    assert frame.activity is SessionActivityType.NEW_INCOMING_CALL
    future = control.decode_server_frame(
        '{"type": "session.notify", "sessionId": "S", "channel": "WA", "activity": "ESCALATED"}'
    )
    assert isinstance(future, control.SessionNotify)
    assert future.activity == "ESCALATED"
    assert not isinstance(future.activity, SessionActivityType)
    assert future.created_at == 0  # missing number reads as 0


def test_session_notify_keeps_unknown_channel_as_string() -> None:
    # The reference client passes an unknown channel on as a string; the frame is delivered.
    text = '{"type": "session.notify", "sessionId": "S", "channel": "SMS", "remoteAddress": "+1"}'
    frame = control.decode_server_frame(text)
    assert isinstance(frame, control.SessionNotify)
    assert frame.channel == "SMS"
    assert not isinstance(frame.channel, ChannelType)
    assert json.loads(control.encode_frame(frame))["channel"] == "SMS"
    note = SessionNotification.from_frame(frame)
    assert (note.session_id, note.channel, note.remote_address) == ("S", "SMS", "+1")
    assert note.channel is not ChannelType.TELCO  # serve_calls skips it, as it does WA
    known = control.decode_server_frame(
        '{"type": "session.notify", "sessionId": "S", "channel": "WA"}'
    )
    assert isinstance(known, control.SessionNotify)
    assert known.channel is ChannelType.WA


def test_call_in() -> None:
    frame = control.decode_server_frame(
        '{"type": "call.in", "sessionId": "S", "callId": "C", "orgUuid": "O", "from": "+1",'
        ' "to": "+2", "url": "wss://v/x", "token": "T0K3N"}'
    )
    assert frame == control.CallIn("S", "C", "wss://v/x", "T0K3N", "+1", "+2", "O")
    assert "T0K3N" not in repr(frame)


def test_wa_msg_in() -> None:
    frame = control.decode_server_frame(
        '{"type": "wa.msg.in", "sessionId": "S", "sender": "+1", "content": {"text": "yo"}}'
    )
    assert frame == control.WaMsgIn("S", "+1", {"text": "yo"})


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ('"SDK_REQUEST"', CloseReason.SDK_REQUEST),
        ('"CALL_TERMINATED"', CloseReason.CALL_TERMINATED),
        ('"FORCE_CLOSE"', CloseReason.FORCE_CLOSE),
        ('"SOMETHING_NEW"', CloseReason.FORCE_CLOSE),
        ("null", CloseReason.FORCE_CLOSE),
    ],
)
def test_session_closed_unknown_reason_is_force_close(reason: str, expected: CloseReason) -> None:
    frame = control.decode_server_frame(
        f'{{"type": "session.closed", "sessionId": "S", "reason": {reason}}}'
    )
    assert frame == control.SessionClosed("S", expected)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            '{"requested_bytes": 4800, "prefer_audio_frame_bytes": 960, "channelId": 0}',
            (4800, 960, 0),
        ),
        ('{"requested_bytes": 4800}', (4800, 0, 0)),
        ('{"requested_bytes": "4800", "prefer_audio_frame_bytes": "x"}', (4800, 0, 0)),
        ('{"requested_bytes": 480.9, "channelId": 2}', (480, 0, 2)),
        ('{"requested_bytes": null, "prefer_audio_frame_bytes": true}', (0, 0, 0)),
        ('{"requested_bytes": [1]}', (0, 0, 0)),
        ("{}", (0, 0, 0)),
        ("null", (0, 0, 0)),
    ],
)
def test_buffer_request_missing_or_invalid_numbers_read_as_zero(
    data: str, expected: tuple[int, int, int]
) -> None:
    frame = voice.decode_server_frame(f'{{"type": "buffer_request", "data": {data}}}')
    assert frame == voice.BufferRequest(*expected)


def test_buffer_request_frame_size_defaults_to_960() -> None:
    assert voice.BufferRequest(4800).frame_bytes == 960
    assert voice.BufferRequest(4800, -5).frame_bytes == 960
    assert voice.BufferRequest(4800, 1920).frame_bytes == 1920


def test_call_events() -> None:
    assert voice.decode_server_frame(
        '{"type": "call_event", "data": {"event": "call.terminated"}}'
    ) == voice.CallEventFrame("call.terminated")
    assert voice.decode_server_frame(
        '{"type": "call_event", "data": {"event": "call.error", "error_code": "TTS_SESSION_ERROR",'
        ' "error_message": "tts down"}}'
    ) == voice.CallEventFrame(
        "call.error", {"error_code": "TTS_SESSION_ERROR", "error_message": "tts down"}
    )
    assert isinstance(voice.decode_server_frame('{"type": "call_event", "data": {}}'), Unrecognised)


def test_command_response() -> None:
    frame = voice.decode_server_frame(
        '{"type": "command_response", "data": {"command_id": "C", "success": false,'
        ' "result": null, "error_code": "CALL_UNANSWERED", "error_message": "no answer"}}'
    )
    assert frame == voice.CommandResponse("C", False, None, "CALL_UNANSWERED", "no answer")
    missing = voice.decode_server_frame('{"type": "command_response", "data": {"command_id": "C"}}')
    assert isinstance(missing, Unrecognised)


def test_voice_text_that_is_not_an_object_with_type_is_unrecognised() -> None:
    for text in ("", "[]", '{"data": {}}', '"buffer_request"'):
        assert isinstance(voice.decode_server_frame(text), Unrecognised)


# ── REST ────────────────────────────────────────────────────────────────────────────────


def test_session_list() -> None:
    body = json.dumps(
        {
            "items": [
                {
                    "id": "S",
                    "channel": "WA",
                    "initiator": "SDK",
                    "state": "OPEN",
                    "remoteAddress": "+1",
                    "localAddress": "+2",
                    "openedAt": 10,
                    "closedAt": None,
                }
            ]
        }
    )
    assert rest.decode_session_list(body) == [
        rest.SessionInfo("S", ChannelType.WA, "SDK", "OPEN", "+1", "+2", 10, None)
    ]
    assert rest.decode_session_list('{"items": []}') == []
    assert isinstance(rest.decode_session_list('{"items": [{"id": "S"}]}'), Unrecognised)
    assert isinstance(rest.decode_session_list("{}"), Unrecognised)


def test_close_result_and_error_body() -> None:
    assert rest.decode_close_result(b'{"closedAt": 99, "reason": "SDK_REQUEST"}') == (
        rest.CloseResult(99, "SDK_REQUEST")
    )
    assert rest.decode_error_body('{"code": "QUOTA_EXCEEDED", "message": "full"}') == (
        rest.ErrorBody("QUOTA_EXCEEDED", "full")
    )
    assert rest.decode_error_body("{}") == rest.ErrorBody("UNKNOWN", "")
    assert isinstance(rest.decode_error_body(b"\xff\xfe"), Unrecognised)


def test_rest_paths_and_params() -> None:
    assert rest.close_path("abc") == "/public/v1/sessions/abc/close"
    assert rest.close_path("a/b c") == "/public/v1/sessions/a%2Fb%20c/close"
    with pytest.raises(ValueError, match="session_id"):
        rest.close_path("")
    assert rest.session_list_params() == {"state": "OPEN"}
    assert rest.session_list_params("WA", "+1", None) == {"channel": "WA", "remoteAddress": "+1"}
    with pytest.raises(ValueError, match="SMS"):
        rest.session_list_params("SMS")
