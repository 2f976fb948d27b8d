"""Fault injection knobs, and catalogues of malformed frames for both planes.

Delays here are real seconds, not simulated ones: they aim at the client's own real-time
deadlines (10 s for ``setup.done``, 30 s for a response, ``timeout_ms`` + 5 s for a command).
"""

from __future__ import annotations

from typing import Final

import attrs

__all__ = ["MALFORMED_CONTROL_FRAMES", "MALFORMED_VOICE_FRAMES", "Faults"]

ALL: Final = "*"


@attrs.define
class Faults:
    """Mutable fault settings of a running sandbox; change them at any time.

    - ``refuse_control`` / ``refuse_voice``: refuse the next N WebSocket upgrades on that
      plane with HTTP ``refuse_status`` (each refusal counts one down).
    - ``setup_done_delay`` / ``withhold_setup_done``: answer ``setup`` late, or never.
    - ``response_delay`` / ``withhold_responses``: delay control responses, or never send
      them for the request types listed (``"*"`` for all).
    - ``fail_requests``: answer the next request of a type with ``ok: false`` and this
      ``(errorCode, errorContent)``; the entry is used up by that request.
    - ``command_response_delay`` / ``withhold_command_responses``: the same for voice
      commands, by command name (``"*"`` for all).
    - ``abort_control_upgrades``: cut the TCP connection of the next N control upgrades
      once the request is read, before any reply (each one counts down).
    - ``abort_before_setup_done``: cut the next N control connections when their ``setup``
      frame arrives, before ``setup.done``.
    - ``withhold_pongs``: never answer a WebSocket ping (a half-dead network path).
    - ``rest_responses``: ``(status, body)`` replies for the next REST-plane requests, in
      order, instead of the real answers (each one is used up).
    """

    refuse_control: int = 0
    refuse_voice: int = 0
    refuse_status: int = 503
    setup_done_delay: float = 0.0
    withhold_setup_done: bool = False
    response_delay: float = 0.0
    withhold_responses: set[str] = attrs.field(factory=set)
    fail_requests: dict[str, tuple[str, object]] = attrs.field(factory=dict)
    command_response_delay: float = 0.0
    withhold_command_responses: set[str] = attrs.field(factory=set)
    abort_control_upgrades: int = 0
    abort_before_setup_done: int = 0
    withhold_pongs: bool = False
    rest_responses: list[tuple[int, bytes]] = attrs.field(factory=list)

    def take_refusal(self, plane: str) -> bool:
        """Use up one refusal for ``plane`` if any are left."""
        if plane == "control" and self.refuse_control > 0:
            self.refuse_control -= 1
            return True
        if plane == "voice" and self.refuse_voice > 0:
            self.refuse_voice -= 1
            return True
        return False

    def take_count(self, name: str) -> bool:
        """Use up one of the counted faults ``name`` (e.g. ``abort_control_upgrades``)."""
        left = getattr(self, name)
        if left > 0:
            setattr(self, name, left - 1)
            return True
        return False

    def withholds_response(self, request_type: str) -> bool:
        return ALL in self.withhold_responses or request_type in self.withhold_responses

    def withholds_command(self, command: str) -> bool:
        return ALL in self.withhold_command_responses or command in self.withhold_command_responses

    def reset(self) -> None:
        """Back to no faults at all."""
        fresh = Faults()
        for field in attrs.fields(Faults):
            setattr(self, field.name, getattr(fresh, field.name))


# Every kind of bad input a client must survive. Keys name the kind; values are sent as-is
# (str as a text frame, bytes as a binary frame).
MALFORMED_CONTROL_FRAMES: Final[dict[str, str | bytes]] = {
    "not_json": "this is not json {",
    "empty_text": "",
    "json_array": "[1, 2, 3]",
    "json_string": '"setup.done"',
    "json_null": "null",
    "no_type": '{"sessionId": "s-1"}',
    "type_not_string": '{"type": 42}',
    "unknown_type": '{"type": "sandbox.unknown", "data": {}}',
    "notify_missing_fields": '{"type": "session.notify"}',
    "notify_wrong_types": (
        '{"type": "session.notify", "sessionId": 7, "channel": ["TELCO"], "createdAt": "x"}'
    ),
    "call_in_missing_token": '{"type": "call.in", "sessionId": "s-x", "callId": "c-x"}',
    "closed_unknown_session": (
        '{"type": "session.closed", "sessionId": "no-such-session", "reason": "WHATEVER"}'
    ),
    "response_unknown_req": (
        '{"type": "response", "reqId": "no-such-request", "ok": true, "content": null}'
    ),
    "response_bad_ok": '{"type": "response", "reqId": 5, "ok": "yes"}',
    "wa_msg_in_bad_content": '{"type": "wa.msg.in", "sessionId": "s-x", "content": "text"}',
    "deep_nesting": '{"type": "session.notify", "x": ' + "[" * 5000 + "]" * 5000 + "}",
    "invalid_utf8_escape": '{"type": "session.notify", "sessionId": "\\ud800"}',
    "binary": b"\x00\x01\x02binary on the control plane",
}

MALFORMED_VOICE_FRAMES: Final[dict[str, str | bytes]] = {
    "not_json": "not json at all",
    "empty_text": "",
    "json_array": "[]",
    "no_type": '{"data": {}}',
    "unknown_type": '{"type": "sandbox.unknown"}',
    "buffer_request_no_data": '{"type": "buffer_request"}',
    "buffer_request_bad_numbers": (
        '{"type": "buffer_request", "data": {"requested_bytes": "lots", '
        '"prefer_audio_frame_bytes": -5, "channelId": null}}'
    ),
    "buffer_request_negative": '{"type": "buffer_request", "data": {"requested_bytes": -100}}',
    "buffer_request_other_channel": (
        '{"type": "buffer_request", "data": {"requested_bytes": 640, "channelId": 3}}'
    ),
    "call_event_no_event": '{"type": "call_event", "data": {}}',
    "call_event_unknown": '{"type": "call_event", "data": {"event": "call.sandbox_unknown"}}',
    "command_response_unknown_id": (
        '{"type": "command_response", "data": {"command_id": "no-such-command", "success": true}}'
    ),
    "command_response_bad_success": (
        '{"type": "command_response", "data": {"command_id": "x", "success": "maybe"}}'
    ),
    "binary_empty": b"",
    "binary_one_byte": b"\x00",
    "binary_odd_length": b"\x00\x01\x02\x03",
    "binary_unknown_channel": b"\x09" + bytes(64),
}
