"""Decoding whatever a peer sends never raises: it yields a frame or ``Unrecognised``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telcoflow_trio.protocol import Unrecognised, control, handoff, rest, voice

from .. import strategies as s

TEXT_DECODERS: list[Callable[[str], object]] = [
    control.decode_server_frame,
    control.decode_client_frame,
    voice.decode_server_frame,
    voice.decode_client_frame,
    rest.decode_session_list,
    rest.decode_close_result,
    rest.decode_error_body,
    handoff.decode_handoff,
]
FRAME_TYPES = (
    control.Setup,
    control.SessionOpen,
    control.SessionCreate,
    control.CallFlowSetup,
    control.WaMsgOut,
    control.SessionReady,
    control.SetupDone,
    control.Response,
    control.SessionNotify,
    control.CallIn,
    control.WaMsgIn,
    control.SessionClosed,
    voice.BufferRequest,
    voice.CallEventFrame,
    voice.CommandResponse,
    voice.Command,
    voice.AudioFrame,
)


def _check(result: object) -> None:
    if isinstance(result, Unrecognised):
        assert result.reason  # always says why
        assert not result
        return
    if isinstance(result, list):  # a session list
        assert all(isinstance(item, rest.SessionInfo) for item in result)
        return
    assert isinstance(
        result, (*FRAME_TYPES, rest.CloseResult, rest.ErrorBody, handoff.HandoffDocument)
    ), type(result)


def _json(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


@pytest.mark.parametrize("decode", TEXT_DECODERS)
@given(text=st.text())
def test_arbitrary_text(decode: Callable[[str], object], text: str) -> None:
    _check(decode(text))


@pytest.mark.parametrize("decode", TEXT_DECODERS)
@given(value=s.hostile_values)
def test_arbitrary_json_values(decode: Callable[[str], object], value: Any) -> None:
    _check(decode(_json(value)))


@pytest.mark.parametrize("decode", TEXT_DECODERS)
@given(obj=s.typed_objects)
def test_objects_with_a_type_and_random_fields(
    decode: Callable[[str], object], obj: dict[str, Any]
) -> None:
    _check(decode(_json(obj)))


@given(obj=s.typed_objects)
def test_typed_objects_reach_the_frame_parsers(obj: dict[str, Any]) -> None:
    # Nested payloads under "data", where most voice-plane fields live.
    wrapped = {"type": obj["type"], "data": obj}
    for decode in TEXT_DECODERS[:4]:
        _check(decode(_json(wrapped)))


@pytest.mark.parametrize("decode", TEXT_DECODERS)
@given(data=st.binary())
def test_arbitrary_bytes(decode: Callable[[bytes], object], data: bytes) -> None:
    _check(decode(data))


@given(data=st.binary(max_size=1))
def test_short_binary_voice_frames_are_unrecognised(data: bytes) -> None:
    result = voice.decode_server_frame(data)
    assert isinstance(result, Unrecognised)
    assert "shorter than 2 bytes" in result.reason


@given(data=st.binary(min_size=2))
def test_binary_voice_frames_split_into_channel_and_pcm(data: bytes) -> None:
    result = voice.decode_server_frame(data)
    assert result == voice.AudioFrame(data[0], data[1:])


def test_binary_on_the_control_plane_is_unrecognised() -> None:
    result = control.decode_server_frame(b'{"type":"setup.done","smWsId":"x"}')
    assert isinstance(result, Unrecognised)
    assert "binary" in result.reason


def test_deeply_nested_json_is_unrecognised_not_a_crash() -> None:
    text = "[" * 100_000 + "]" * 100_000
    for decode in TEXT_DECODERS:
        _check(decode(text))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON array where an object was expected"),
        ('"call.in"', "JSON string where an object was expected"),
        ("{}", "no 'type'"),
        ('{"type": 7}', "'type' must be a string"),
        ('{"type": "call.teleport"}', "unknown frame type from the server"),
        ('{"type": "setup"}', "unknown frame type from the server"),
        ('{"type": "session.closed"}', "'sessionId' is missing"),
        ('{"type": "session.closed", "sessionId": 5}', "'sessionId' must be a string, got number"),
        ('{"type": "session.closed", "sessionId": ""}', "'sessionId' is empty"),
        ('{"type": "response", "reqId": "r", "ok": "yes"}', "'ok' must be a boolean"),
        ('{"type": "response", "reqId": "r", "ok": true, "errorCode": 4}', "'errorCode'"),
        (
            '{"type": "session.notify", "sessionId": "s", "channel": 5}',
            "'channel' must be a string, got number",
        ),
        ('{"type": "session.notify", "sessionId": "s", "channel": ""}', "'channel' is empty"),
        (
            '{"type": "session.notify", "sessionId": "s", "channel": "WA", "createdAt": "x"}',
            "'createdAt' must be an integer, got string",
        ),
        (
            '{"type": "wa.msg.in", "sessionId": "s", "content": [1]}',
            "'content' must be an object, got array",
        ),
    ],
)
def test_unrecognised_control_frames_say_why(text: str, reason: str) -> None:
    result = control.decode_server_frame(text)
    assert isinstance(result, Unrecognised)
    assert reason in result.reason


def test_unrecognised_call_in_never_shows_its_token() -> None:
    text = json.dumps(
        {"type": "call.in", "sessionId": "s", "callId": 5, "url": "ws://x", "token": "SECRET-T"}
    )
    result = control.decode_server_frame(text)
    assert isinstance(result, Unrecognised)
    assert "SECRET-T" not in repr(result)
    assert "SECRET-T" not in result.reason
    assert result.raw == text  # kept for debugging, out of repr
