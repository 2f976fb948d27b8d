"""A frame that could not survive its own encoding cannot be constructed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from telcoflow_trio.protocol import Unrecognised, control, handoff, rest, voice


@pytest.mark.parametrize(
    ("make", "exc", "field"),
    [
        (lambda: control.Setup(44100), ValueError, "sample_rate"),
        (lambda: control.Setup(16000, "stereo"), ValueError, "stereo"),
        (lambda: control.SessionOpen(""), ValueError, "session_id"),
        (lambda: control.SessionOpen(5), TypeError, "session_id"),
        (lambda: control.SessionCreate("SMS", "+1"), ValueError, "SMS"),
        (lambda: control.CallFlowSetup("ALL", outbound_call=1), TypeError, "outbound_call"),
        (lambda: control.WaMsgOut("S", "v1", ["x"]), TypeError, "data"),
        (lambda: control.WaMsgOut("S", "v1", {1: "x"}), TypeError, "data"),
        (lambda: control.Response("R", "yes"), TypeError, "ok"),
        (lambda: control.SessionNotify("S", 5), TypeError, "channel"),
        (lambda: control.SessionNotify("S", ""), ValueError, "channel"),
        (lambda: control.SessionNotify("S", "TELCO", activity=3), TypeError, "activity"),
        (lambda: control.SessionNotify("S", "TELCO", created_at=True), TypeError, "created_at"),
        (lambda: control.CallIn("S", "C", "ws://v", ""), ValueError, "token"),
        (lambda: voice.AudioFrame(256, b"x"), ValueError, "channel_id"),
        (lambda: voice.AudioFrame(0, b""), ValueError, "pcm"),
        (lambda: voice.AudioFrame(0, bytearray(b"x")), TypeError, "pcm"),
        (lambda: voice.BufferRequest(1.5), TypeError, "requested_bytes"),
        (lambda: voice.CallEventFrame("call.error", {"event": "x"}), ValueError, "event"),
        (lambda: voice.Command("call.answer", -1), ValueError, "timeout_ms"),
        (lambda: voice.CommandResponse("C", None), TypeError, "success"),
        (lambda: rest.SessionInfo("S", ""), ValueError, "channel"),
        (lambda: handoff.HandoffDocument("C", "ws://v", ""), ValueError, "session_token"),
    ],
)
def test_invalid_frames_are_refused(
    make: Callable[[], object], exc: type[Exception], field: str
) -> None:
    with pytest.raises(exc, match=field):
        make()


def test_handoff_refuses_other_channels_and_hides_token() -> None:
    doc = handoff.HandoffDocument("C", "ws://v", "SECRET-TOKEN", "+1", "+2")
    assert "SECRET-TOKEN" not in repr(doc)
    bad = handoff.decode_handoff('{"channel": "WA", "id": "C"}')
    assert isinstance(bad, Unrecognised)
    assert "TELCO" in bad.reason
