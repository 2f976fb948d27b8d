"""Control plane (SM-WS) frames a client sends: :class:`Setup`, :class:`SessionReady`, and
the requests (:class:`SessionOpen`, :class:`SessionCreate`, :class:`CallFlowSetup`,
:class:`WaMsgOut`), which carry a ``reqId`` and get a ``response``.

Frozen attrs classes with ``to_json_obj``/``from_json_obj``; the codec that picks among
them is :mod:`telcoflow_trio.protocol.control`, which re-exports every name here.
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal, get_args

import attrs

from .._enums import AudioMode, ChannelType, InboundCallMode
from ._fields import (
    FieldError,
    JSONObject,
    choice,
    is_bool,
    is_str,
    json_object,
    new_id,
    non_empty_str,
    opt_bool,
    opt_int,
    opt_obj,
    opt_str,
    plain_int,
    req_obj,
    req_str,
)

__all__ = [
    "SAMPLE_RATES",
    "CallFlowSetup",
    "SampleRate",
    "SessionCreate",
    "SessionOpen",
    "SessionReady",
    "Setup",
    "WaMsgOut",
]

SampleRate = Literal[8000, 16000, 24000]
"""A sample rate the protocol allows, in Hz (16-bit mono PCM)."""
SAMPLE_RATES: Final[tuple[SampleRate, ...]] = get_args(SampleRate)


def _sample_rate(_inst: object, attribute: attrs.Attribute[int], value: object) -> None:
    plain_int(_inst, attribute, value)
    if value not in SAMPLE_RATES:
        raise ValueError(f"{attribute.name} must be one of {SAMPLE_RATES}, got {value!r}")


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
    outbound_call: bool = attrs.field(default=False, validator=is_bool)
    inbound_message: bool = attrs.field(default=False, validator=is_bool)
    outbound_message: bool = attrs.field(default=False, validator=is_bool)
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
    api_version: str = attrs.field(validator=is_str)
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
