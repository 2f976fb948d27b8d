"""Control plane (SM-WS) frames a server sends: :class:`SetupDone`, :class:`Response`,
:class:`SessionNotify`, :class:`CallIn`, :class:`WaMsgIn`, :class:`SessionClosed`; and the
typed contents of ok responses (:class:`OpenedSession`, :class:`CreatedSession`).

Frozen attrs classes with ``to_json_obj``/``from_json_obj`` (``to_content`` for the
contents); the codec that picks among them is :mod:`telcoflow_trio.protocol.control`,
which re-exports every name here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, TypeVar

import attrs

from .._enums import ChannelType, CloseReason, SessionActivityType
from ._fields import (
    FieldError,
    JSONObject,
    is_bool,
    is_str,
    json_object,
    non_empty_str,
    opt_int,
    opt_obj,
    opt_str,
    optional_str,
    plain_int,
    req_bool,
    req_str,
)

__all__ = [
    "CallIn",
    "CreatedSession",
    "OpenedSession",
    "Response",
    "SessionClosed",
    "SessionNotify",
    "SetupDone",
    "WaMsgIn",
]

_E = TypeVar("_E", bound=StrEnum)


def _known_or_str(enum: type[_E], name: str, value: object) -> _E | str:
    # The server may add values (activities, channels); unknown ones stay plain strings,
    # as the reference client passes them on, rather than dropping the frame.
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    try:
        return enum(value)
    except ValueError:
        return value


def _activity(value: object) -> SessionActivityType | str:
    return _known_or_str(SessionActivityType, "activity", value)


def _channel(value: object) -> ChannelType | str:
    if value == "":
        raise ValueError("channel must be a non-empty str")
    return _known_or_str(ChannelType, "channel", value)


def _reason(value: str) -> CloseReason:
    try:
        return CloseReason(value)
    except ValueError:
        return CloseReason.FORCE_CLOSE


@attrs.frozen
class SetupDone:
    """The handshake is complete; ``sm_ws_id`` names this control connection."""

    TYPE: ClassVar[str] = "setup.done"
    sm_ws_id: str = attrs.field(validator=is_str)

    def to_json_obj(self) -> JSONObject:
        return {"type": self.TYPE, "smWsId": self.sm_ws_id}

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> SetupDone:
        return cls(opt_str(obj, "smWsId"))


@attrs.frozen
class Response:
    """The answer to a request, matched by ``req_id``."""

    TYPE: ClassVar[str] = "response"
    req_id: str = attrs.field(validator=non_empty_str)
    ok: bool = attrs.field(validator=is_bool)
    content: Any = None
    error_code: str | None = attrs.field(default=None, validator=optional_str)
    error_content: Any = None

    def to_json_obj(self) -> JSONObject:
        return {
            "type": self.TYPE,
            "reqId": self.req_id,
            "ok": self.ok,
            "content": self.content,
            "errorCode": self.error_code,
            "errorContent": self.error_content,
        }

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> Response:
        error_code = obj.get("errorCode")
        if error_code is not None and not isinstance(error_code, str):
            raise FieldError("field 'errorCode' must be a string")
        return cls(
            req_str(obj, "reqId"),
            req_bool(obj, "ok"),
            obj.get("content"),
            error_code,
            obj.get("errorContent"),
        )


@attrs.frozen
class SessionNotify:
    """Broadcast to every control connection of the connector: a session wants an agent.

    ``channel`` and ``activity`` are enum members when known and plain strings otherwise
    (the server may add values), so compare against the members rather than matching them
    exhaustively.
    """

    TYPE: ClassVar[str] = "session.notify"
    session_id: str = attrs.field(validator=non_empty_str)
    channel: ChannelType | str = attrs.field(converter=_channel)
    remote_address: str = attrs.field(default="", validator=is_str)
    local_address: str = attrs.field(default="", validator=is_str)
    activity: SessionActivityType | str = attrs.field(
        default=SessionActivityType.NEW_INCOMING_CALL, converter=_activity
    )
    created_at: int = attrs.field(default=0, validator=plain_int)

    def to_json_obj(self) -> JSONObject:
        return {
            "type": self.TYPE,
            "sessionId": self.session_id,
            "channel": str(self.channel),
            "remoteAddress": self.remote_address,
            "localAddress": self.local_address,
            "activity": str(self.activity),
            "createdAt": self.created_at,
        }

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> SessionNotify:
        return cls(
            req_str(obj, "sessionId"),
            req_str(obj, "channel"),
            opt_str(obj, "remoteAddress"),
            opt_str(obj, "localAddress"),
            opt_str(obj, "activity"),
            opt_int(obj, "createdAt"),
        )


@attrs.frozen
class CallIn:
    """The call of a TELCO session; ``url`` and ``token`` open its voice plane.

    ``token`` is a credential: it is left out of ``repr``.
    """

    TYPE: ClassVar[str] = "call.in"
    session_id: str = attrs.field(validator=non_empty_str)
    call_id: str = attrs.field(validator=non_empty_str)
    url: str = attrs.field(validator=non_empty_str)
    token: str = attrs.field(validator=non_empty_str, repr=False)
    caller: str = attrs.field(default="", validator=is_str)
    callee: str = attrs.field(default="", validator=is_str)
    org_uuid: str = attrs.field(default="", validator=is_str)

    def to_json_obj(self) -> JSONObject:
        return {
            "type": self.TYPE,
            "sessionId": self.session_id,
            "callId": self.call_id,
            "orgUuid": self.org_uuid,
            "from": self.caller,
            "to": self.callee,
            "url": self.url,
            "token": self.token,
        }

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> CallIn:
        return cls(
            session_id=req_str(obj, "sessionId"),
            call_id=req_str(obj, "callId"),
            url=req_str(obj, "url"),
            token=req_str(obj, "token"),
            caller=opt_str(obj, "from"),
            callee=opt_str(obj, "to"),
            org_uuid=opt_str(obj, "orgUuid"),
        )


@attrs.frozen
class WaMsgIn:
    """An inbound WhatsApp message on a WA session."""

    TYPE: ClassVar[str] = "wa.msg.in"
    session_id: str = attrs.field(validator=non_empty_str)
    sender: str = attrs.field(default="", validator=is_str)
    content: JSONObject = attrs.field(factory=dict, validator=json_object)

    def to_json_obj(self) -> JSONObject:
        return {
            "type": self.TYPE,
            "sessionId": self.session_id,
            "sender": self.sender,
            "content": self.content,
        }

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> WaMsgIn:
        return cls(req_str(obj, "sessionId"), opt_str(obj, "sender"), opt_obj(obj, "content"))


@attrs.frozen
class SessionClosed:
    """The session is over. An unknown or missing reason reads as ``FORCE_CLOSE``."""

    TYPE: ClassVar[str] = "session.closed"
    session_id: str = attrs.field(validator=non_empty_str)
    reason: CloseReason = attrs.field(default=CloseReason.FORCE_CLOSE, converter=CloseReason)

    def to_json_obj(self) -> JSONObject:
        return {"type": self.TYPE, "sessionId": self.session_id, "reason": self.reason.value}

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> SessionClosed:
        return cls(req_str(obj, "sessionId"), _reason(opt_str(obj, "reason")))


# ── typed response contents ─────────────────────────────────────────────────────────────


@attrs.frozen
class OpenedSession:
    """The ``content.session`` of a successful ``session.open`` response."""

    id: str = attrs.field(validator=non_empty_str)
    channel: ChannelType = attrs.field(converter=ChannelType)
    remote_address: str = attrs.field(default="", validator=is_str)
    local_address: str = attrs.field(default="", validator=is_str)
    opened_at: int = attrs.field(default=0, validator=plain_int)

    def to_content(self) -> JSONObject:
        return {
            "session": {
                "id": self.id,
                "channel": self.channel.value,
                "remoteAddress": self.remote_address,
                "localAddress": self.local_address,
                "openedAt": self.opened_at,
            }
        }


@attrs.frozen
class CreatedSession:
    """The content of a successful ``session.create``; ``created`` is false if it existed."""

    session_id: str = attrs.field(validator=non_empty_str)
    created: bool = attrs.field(default=True, validator=is_bool)

    def to_content(self) -> JSONObject:
        return {"sessionId": self.session_id, "created": self.created}
