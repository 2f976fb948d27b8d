"""The hand-off document that moves a NEW call to another node. No I/O.

``{"channel": "TELCO", "id", "caller", "callee", "session_url", "session_token"}``:
the receiving node opens the voice plane with ``session_url`` and ``session_token``
and uses its own audio settings.
"""

from __future__ import annotations

from typing import Final

import attrs

from ._fields import (
    FieldError,
    JSONObject,
    Unrecognised,
    dumps,
    is_str,
    kind,
    non_empty_str,
    opt_str,
    parse_json,
    req_str,
)

__all__ = ["HANDOFF_CHANNEL", "HandoffDocument", "decode_handoff", "encode_handoff"]

HANDOFF_CHANNEL: Final = "TELCO"


@attrs.frozen
class HandoffDocument:
    """What ``Call.to_json`` writes and ``Call.from_json`` reads. The token stays out of repr."""

    id: str = attrs.field(validator=non_empty_str)
    session_url: str = attrs.field(validator=non_empty_str)
    session_token: str = attrs.field(validator=non_empty_str, repr=False)
    caller: str = attrs.field(default="", validator=is_str)
    callee: str = attrs.field(default="", validator=is_str)

    def to_json_obj(self) -> JSONObject:
        return {
            "channel": HANDOFF_CHANNEL,
            "id": self.id,
            "caller": self.caller,
            "callee": self.callee,
            "session_url": self.session_url,
            "session_token": self.session_token,
        }


def encode_handoff(doc: HandoffDocument) -> str:
    return dumps(doc.to_json_obj())


def decode_handoff(data: str | bytes) -> HandoffDocument | Unrecognised:
    """Decode a hand-off document. Never raises; the reason never quotes the token."""
    try:
        obj = parse_json(data)
        if not isinstance(obj, dict):
            raise FieldError(f"hand-off document must be a JSON object, got {kind(obj)}")
        if obj.get("channel", HANDOFF_CHANNEL) != HANDOFF_CHANNEL:
            raise FieldError("field 'channel' must be 'TELCO': only calls can be handed off")
        return HandoffDocument(
            id=req_str(obj, "id"),
            session_url=req_str(obj, "session_url"),
            session_token=req_str(obj, "session_token"),
            caller=opt_str(obj, "caller"),
            callee=opt_str(obj, "callee"),
        )
    except FieldError as exc:
        return Unrecognised(str(exc), data)
