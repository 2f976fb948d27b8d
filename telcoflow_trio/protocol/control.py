"""Control plane (SM-WS) frames and their codec. No I/O: text in, frames out, and back.

Client → server: :class:`Setup`, :class:`SessionOpen`, :class:`SessionCreate`,
:class:`CallFlowSetup`, :class:`WaMsgOut` (requests, carrying ``reqId``) and
:class:`SessionReady`. Server → client: :class:`SetupDone`, :class:`Response`,
:class:`SessionNotify`, :class:`CallIn`, :class:`WaMsgIn`, :class:`SessionClosed`.

:func:`decode_server_frame` is what a client calls on every text it receives and
:func:`decode_client_frame` what a server calls; neither ever raises.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from enum import StrEnum
from typing import Any, ClassVar, Final, TypeVar

import attrs

from .._enums import AudioMode, ChannelType, CloseReason, InboundCallMode, SessionActivityType
from ._fields import (
    FieldError,
    JSONObject,
    Unrecognised,
    choice,
    decode_text,
    dumps,
    json_object,
    non_empty_str,
    opt_bool,
    opt_int,
    opt_obj,
    opt_str,
    plain_int,
    req_bool,
    req_obj,
    req_str,
)

__all__ = [
    "CONTROL_PATH",
    "SAMPLE_RATES",
    "CallFlowSetup",
    "CallIn",
    "ClientControlFrame",
    "ControlRequest",
    "CreatedSession",
    "OpenedSession",
    "Response",
    "ServerControlFrame",
    "SessionClosed",
    "SessionCreate",
    "SessionNotify",
    "SessionOpen",
    "SessionReady",
    "Setup",
    "SetupDone",
    "WaMsgIn",
    "WaMsgOut",
    "decode_client_frame",
    "decode_created_session",
    "decode_opened_session",
    "decode_server_frame",
    "encode_frame",
    "new_id",
]

CONTROL_PATH: Final = "/v1/agent/session-manager"
SAMPLE_RATES: Final = (8000, 16000, 24000)

_E = TypeVar("_E", bound=StrEnum)


def new_id() -> str:
    """A fresh uuid4 string, as used for ``reqId``, ``command_id`` and ``clientMsgId``."""
    return str(uuid.uuid4())


def _sample_rate(_inst: object, attribute: attrs.Attribute[int], value: object) -> None:
    plain_int(_inst, attribute, value)
    if value not in SAMPLE_RATES:
        raise ValueError(f"{attribute.name} must be one of {SAMPLE_RATES}, got {value!r}")


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


_str = attrs.validators.instance_of(str)
_bool = attrs.validators.instance_of(bool)
_opt_str = attrs.validators.optional(_str)


# ── client → server ─────────────────────────────────────────────────────────────────────


@attrs.frozen
class Setup:
    """First frame after the upgrade: the audio format of every call on this connection."""

    TYPE: ClassVar[str] = "setup"
    sample_rate: int = attrs.field(default=16000, validator=_sample_rate)
    audio_mode: AudioMode = attrs.field(default=AudioMode.MIXED, converter=AudioMode)

    def to_json_obj(self) -> JSONObject:
        return {
            "type": self.TYPE,
            "data": {"sampleRate": self.sample_rate, "audioMode": self.audio_mode.value},
        }

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> Setup:
        data = req_obj(obj, "data")
        rate = opt_int(data, "sampleRate", 16000)
        if rate not in SAMPLE_RATES:
            raise FieldError(f"field 'sampleRate' must be one of {SAMPLE_RATES}")
        return cls(rate, choice(data, "audioMode", AudioMode))


@attrs.frozen
class SessionOpen:
    """Request: claim a notified session. The first claimer wins; the rest get SESSION_BUSY."""

    TYPE: ClassVar[str] = "session.open"
    session_id: str = attrs.field(validator=non_empty_str)
    req_id: str = attrs.field(factory=new_id, validator=non_empty_str)

    def to_json_obj(self) -> JSONObject:
        return {"type": self.TYPE, "sessionId": self.session_id, "reqId": self.req_id}

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> SessionOpen:
        return cls(req_str(obj, "sessionId"), req_str(obj, "reqId"))


@attrs.frozen
class SessionCreate:
    """Request: create (or find) the session for a remote address on a channel."""

    TYPE: ClassVar[str] = "session.create"
    channel: ChannelType = attrs.field(converter=ChannelType)
    remote_address: str = attrs.field(validator=non_empty_str)
    req_id: str = attrs.field(factory=new_id, validator=non_empty_str)

    def to_json_obj(self) -> JSONObject:
        return {
            "type": self.TYPE,
            "channel": self.channel.value,
            "remoteAddress": self.remote_address,
            "reqId": self.req_id,
        }

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> SessionCreate:
        return cls(
            choice(obj, "channel", ChannelType),
            req_str(obj, "remoteAddress"),
            req_str(obj, "reqId"),
        )


@attrs.frozen
class CallFlowSetup:
    """Request: which call and message flows this connector handles."""

    TYPE: ClassVar[str] = "call_flow.setup"
    inbound_call: InboundCallMode = attrs.field(
        default=InboundCallMode.NO, converter=InboundCallMode
    )
    outbound_call: bool = attrs.field(default=False, validator=_bool)
    inbound_message: bool = attrs.field(default=False, validator=_bool)
    outbound_message: bool = attrs.field(default=False, validator=_bool)
    req_id: str = attrs.field(factory=new_id, validator=non_empty_str)

    def to_json_obj(self) -> JSONObject:
        return {
            "type": self.TYPE,
            "data": {
                "inboundCall": self.inbound_call.value,
                "outboundCall": self.outbound_call,
                "inboundMessage": self.inbound_message,
                "outboundMessage": self.outbound_message,
            },
            "reqId": self.req_id,
        }

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> CallFlowSetup:
        data = req_obj(obj, "data")
        return cls(
            choice(data, "inboundCall", InboundCallMode),
            opt_bool(data, "outboundCall"),
            opt_bool(data, "inboundMessage"),
            opt_bool(data, "outboundMessage"),
            req_str(obj, "reqId"),
        )


@attrs.frozen
class WaMsgOut:
    """Request: send a WhatsApp message on a WA session; ``data`` is the connector's payload."""

    TYPE: ClassVar[str] = "wa.msg.out"
    session_id: str = attrs.field(validator=non_empty_str)
    api_version: str = attrs.field(validator=_str)
    data: JSONObject = attrs.field(validator=json_object)
    client_msg_id: str = attrs.field(factory=new_id, validator=non_empty_str)
    req_id: str = attrs.field(factory=new_id, validator=non_empty_str)

    def to_json_obj(self) -> JSONObject:
        return {
            "type": self.TYPE,
            "data": {
                "sessionId": self.session_id,
                "clientMsgId": self.client_msg_id,
                "apiVersion": self.api_version,
                "data": self.data,
            },
            "reqId": self.req_id,
        }

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> WaMsgOut:
        data = req_obj(obj, "data")
        return cls(
            session_id=req_str(data, "sessionId"),
            api_version=opt_str(data, "apiVersion"),
            data=opt_obj(data, "data"),
            client_msg_id=req_str(data, "clientMsgId"),
            req_id=req_str(obj, "reqId"),
        )


@attrs.frozen
class SessionReady:
    """Fire-and-forget: the agent is ready for the session's events (``call.in``, ``wa.msg.in``)."""

    TYPE: ClassVar[str] = "session.ready"
    session_id: str = attrs.field(validator=non_empty_str)

    def to_json_obj(self) -> JSONObject:
        return {"type": self.TYPE, "sessionId": self.session_id}

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> SessionReady:
        return cls(req_str(obj, "sessionId"))


# ── server → client ─────────────────────────────────────────────────────────────────────


@attrs.frozen
class SetupDone:
    """The handshake is complete; ``sm_ws_id`` names this control connection."""

    TYPE: ClassVar[str] = "setup.done"
    sm_ws_id: str = attrs.field(validator=_str)

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
    ok: bool = attrs.field(validator=_bool)
    content: Any = None
    error_code: str | None = attrs.field(default=None, validator=_opt_str)
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
    remote_address: str = attrs.field(default="", validator=_str)
    local_address: str = attrs.field(default="", validator=_str)
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
    caller: str = attrs.field(default="", validator=_str)
    callee: str = attrs.field(default="", validator=_str)
    org_uuid: str = attrs.field(default="", validator=_str)

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
    sender: str = attrs.field(default="", validator=_str)
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


ClientControlFrame = Setup | SessionOpen | SessionCreate | CallFlowSetup | WaMsgOut | SessionReady
ControlRequest = SessionOpen | SessionCreate | CallFlowSetup | WaMsgOut
"""The client frames that carry a ``reqId`` and get a :class:`Response`."""
ServerControlFrame = SetupDone | Response | SessionNotify | CallIn | WaMsgIn | SessionClosed

_CLIENT: Final[dict[str, Callable[[JSONObject], ClientControlFrame]]] = {
    c.TYPE: c.from_json_obj
    for c in (Setup, SessionOpen, SessionCreate, CallFlowSetup, WaMsgOut, SessionReady)
}
_SERVER: Final[dict[str, Callable[[JSONObject], ServerControlFrame]]] = {
    c.TYPE: c.from_json_obj
    for c in (SetupDone, Response, SessionNotify, CallIn, WaMsgIn, SessionClosed)
}


def encode_frame(frame: ClientControlFrame | ServerControlFrame) -> str:
    """The JSON text of a control frame."""
    return dumps(frame.to_json_obj())


def decode_server_frame(data: str | bytes) -> ServerControlFrame | Unrecognised:
    """Decode what a server sent on the control plane. Never raises."""
    result: ServerControlFrame | Unrecognised = decode_text(
        data, _SERVER, "control plane", "server"
    )
    return result


def decode_client_frame(data: str | bytes) -> ClientControlFrame | Unrecognised:
    """Decode what a client sent on the control plane (the sandbox's side). Never raises."""
    result: ClientControlFrame | Unrecognised = decode_text(
        data, _CLIENT, "control plane", "client"
    )
    return result


# ── typed response contents ─────────────────────────────────────────────────────────────


@attrs.frozen
class OpenedSession:
    """The ``content.session`` of a successful ``session.open`` response."""

    id: str = attrs.field(validator=non_empty_str)
    channel: ChannelType = attrs.field(converter=ChannelType)
    remote_address: str = attrs.field(default="", validator=_str)
    local_address: str = attrs.field(default="", validator=_str)
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
    created: bool = attrs.field(default=True, validator=_bool)

    def to_content(self) -> JSONObject:
        return {"sessionId": self.session_id, "created": self.created}


def _content(content: object, parse: Callable[[JSONObject], Any]) -> Any:
    try:
        if not isinstance(content, dict):
            raise FieldError("response content must be an object")
        return parse(content)
    except FieldError as exc:
        return Unrecognised(str(exc))
    except (TypeError, ValueError) as exc:
        return Unrecognised(f"invalid field value ({type(exc).__name__})")


def _opened(content: JSONObject) -> OpenedSession:
    s = req_obj(content, "session")
    return OpenedSession(
        req_str(s, "id"),
        choice(s, "channel", ChannelType),
        opt_str(s, "remoteAddress"),
        opt_str(s, "localAddress"),
        opt_int(s, "openedAt"),
    )


def decode_opened_session(content: object) -> OpenedSession | Unrecognised:
    """Decode the content of an ok ``session.open`` response. Never raises."""
    result: OpenedSession | Unrecognised = _content(content, _opened)
    return result


def decode_created_session(content: object) -> CreatedSession | Unrecognised:
    """Decode the content of an ok ``session.create`` response. Never raises."""
    result: CreatedSession | Unrecognised = _content(
        content, lambda c: CreatedSession(req_str(c, "sessionId"), opt_bool(c, "created", True))
    )
    return result
