"""decode(encode(frame)) == frame, for every frame class, over generated frames."""

from __future__ import annotations

import json

from hypothesis import given

from telcoflow_trio.protocol import Unrecognised, control, handoff, rest, voice

from .. import strategies as s


@given(s.client_control_frames)
def test_client_control_frames_round_trip(frame: control.ClientControlFrame) -> None:
    text = control.encode_frame(frame)
    assert control.decode_client_frame(text) == frame
    # A client frame is not something a server sends.
    assert isinstance(control.decode_server_frame(text), Unrecognised)


@given(s.server_control_frames)
def test_server_control_frames_round_trip(frame: control.ServerControlFrame) -> None:
    text = control.encode_frame(frame)
    assert control.decode_server_frame(text) == frame
    assert isinstance(control.decode_client_frame(text), Unrecognised)


@given(s.server_voice_frames)
def test_server_voice_frames_round_trip(frame: voice.ServerVoiceFrame) -> None:
    text = voice.encode_frame(frame)
    assert voice.decode_server_frame(text) == frame
    assert isinstance(voice.decode_client_frame(text), Unrecognised)


@given(s.client_voice_frames)
def test_client_voice_frames_round_trip(frame: voice.Command) -> None:
    text = voice.encode_frame(frame)
    assert voice.decode_client_frame(text) == frame
    assert isinstance(voice.decode_server_frame(text), Unrecognised)


@given(s.audio_frames)
def test_audio_frames_round_trip_both_ways(frame: voice.AudioFrame) -> None:
    data = voice.encode_audio(frame)
    assert data[0] == frame.channel_id
    assert voice.decode_server_frame(data) == frame
    assert voice.decode_client_frame(data) == frame


@given(s.session_infos)
def test_session_list_round_trips(info: rest.SessionInfo) -> None:
    body = rest.encode_session_list([info, info])
    assert rest.decode_session_list(body) == [info, info]
    assert rest.decode_session_list(body.encode()) == [info, info]


@given(s.ints, s.texts)
def test_close_result_round_trips(closed_at: int, reason: str) -> None:
    result = rest.CloseResult(closed_at, reason)
    assert rest.decode_close_result(rest.encode_close_result(result)) == result


@given(s.ids, s.texts)
def test_error_body_round_trips(code: str, message: str) -> None:
    body = rest.ErrorBody(code, message)
    assert rest.decode_error_body(rest.encode_error_body(body)) == body


@given(s.handoff_documents)
def test_handoff_round_trips(doc: handoff.HandoffDocument) -> None:
    text = handoff.encode_handoff(doc)
    assert json.loads(text)["channel"] == "TELCO"
    assert handoff.decode_handoff(text) == doc


@given(s.ids, s.texts, s.texts)
def test_opened_and_created_session_contents_round_trip(sid: str, a: str, b: str) -> None:
    opened = control.OpenedSession(sid, "WA", a, b, 17)
    assert control.decode_opened_session(opened.to_content()) == opened
    for created in (True, False):
        cs = control.CreatedSession(sid, created)
        assert control.decode_created_session(cs.to_content()) == cs
