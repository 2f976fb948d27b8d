"""Voice plane frames and their codec. No I/O.

One WebSocket per call, demultiplexed by opcode: binary frames are audio
(:class:`AudioFrame`: byte 0 is the channel id, the rest is PCM), text frames are JSON.
Server → client text: :class:`BufferRequest`, :class:`CallEventFrame`,
:class:`CommandResponse`. Client → server text: :class:`Command`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, ClassVar, Final

import attrs

from ._fields import (
    FieldError,
    JSONObject,
    Unrecognised,
    decode_text,
    dumps,
    is_bool,
    json_object,
    lenient_int,
    new_id,
    non_empty_str,
    nullable_str,
    opt_obj,
    optional_str,
    plain_int,
    req_bool,
    req_int,
    req_obj,
    req_str,
)

__all__ = [
    "COMMAND_GRACE_SECONDS",
    "DEFAULT_FRAME_BYTES",
    "AudioFrame",
    "BufferRequest",
    "CallEventFrame",
    "ClientVoiceFrame",
    "Command",
    "CommandName",
    "CommandResponse",
    "ServerVoiceFrame",
    "decode_client_frame",
    "decode_server_frame",
    "encode_audio",
    "encode_frame",
]

DEFAULT_FRAME_BYTES: Final = 960
"""Frame size the reference client uses when a buffer_request has no preference."""

COMMAND_GRACE_SECONDS: Final = 5.0
"""The client waits a command's ``timeout_ms`` plus this before calling it a timeout."""


class CommandName(StrEnum):
    """Voice-plane command names, with :attr:`default_timeout_ms` from the protocol table."""

    ANSWER = "call.answer"
    CONNECT = "call.connect"
    WHISPER = "agent.whisper"
    BARGE = "agent.barge"
    SPY = "agent.spy"
    DISCONNECT = "call.disconnect"
    CLOSE = "call.close"
    INTERRUPT = "agent.interrupt"

    @property
    def default_timeout_ms(self) -> int:
        """10 s for every command; ``connect`` uses its ring time instead (default 60 s)."""
        return 60_000 if self is CommandName.CONNECT else 10_000


def _channel_byte(_inst: object, attribute: attrs.Attribute[int], value: object) -> None:
    plain_int(_inst, attribute, value)
    assert isinstance(value, int)
    if not 0 <= value <= 255:
        raise ValueError(f"{attribute.name} must be in 0..255, got {value}")


def _pcm(_inst: object, attribute: attrs.Attribute[bytes], value: object) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"{attribute.name} must be bytes, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


@attrs.frozen
class AudioFrame:
    """A binary frame: ``pcm`` (16-bit little-endian mono) on channel ``channel_id``."""

    channel_id: int = attrs.field(validator=_channel_byte)
    pcm: bytes = attrs.field(validator=_pcm, repr=lambda b: f"<{len(b)} bytes>")


@attrs.frozen
class BufferRequest:
    """The server pulls up to ``requested_bytes`` of outgoing audio for ``channel_id``.

    Numbers that were missing or invalid on the wire read as 0, as the protocol says.
    """

    TYPE: ClassVar[str] = "buffer_request"
    requested_bytes: int = attrs.field(validator=plain_int)
    prefer_audio_frame_bytes: int = attrs.field(default=0, validator=plain_int)
    channel_id: int = attrs.field(default=0, validator=plain_int)

    @property
    def frame_bytes(self) -> int:
        """The frame size to aim for: the preference, or 960 when it is 0 or less."""
        pref = self.prefer_audio_frame_bytes
        return pref if pref > 0 else DEFAULT_FRAME_BYTES

    def to_json_obj(self) -> JSONObject:
        return {
            "type": self.TYPE,
            "data": {
                "requested_bytes": self.requested_bytes,
                "prefer_audio_frame_bytes": self.prefer_audio_frame_bytes,
                "channelId": self.channel_id,
            },
        }

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> BufferRequest:
        data = obj.get("data")
        if not isinstance(data, dict):
            data = {}
        return cls(
            lenient_int(data, "requested_bytes"),
            lenient_int(data, "prefer_audio_frame_bytes"),
            lenient_int(data, "channelId"),
        )


# attrs validators (the instance is not used): module functions, which both checkers read.


def _no_event_key(_: object, attribute: attrs.Attribute[JSONObject], value: JSONObject) -> None:
    if "event" in value:
        raise ValueError(f"{attribute.name} must not contain the key 'event'")


def _non_negative(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


@attrs.frozen
class CallEventFrame:
    """A ``call_event``: ``event`` is ``call.terminated``, ``call.error`` or a newer name;
    ``payload`` holds the other keys of ``data`` (for ``call.error``: ``error_code``,
    ``error_message``)."""

    TYPE: ClassVar[str] = "call_event"
    event: str = attrs.field(validator=non_empty_str)
    payload: JSONObject = attrs.field(factory=dict, validator=[json_object, _no_event_key])

    def to_json_obj(self) -> JSONObject:
        return {"type": self.TYPE, "data": {"event": self.event, **self.payload}}

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> CallEventFrame:
        data = req_obj(obj, "data")
        event = req_str(data, "event")
        return cls(event, {k: v for k, v in data.items() if k != "event"})


@attrs.frozen
class CommandResponse:
    """The server's answer to a :class:`Command`, matched by ``command_id``."""

    TYPE: ClassVar[str] = "command_response"
    command_id: str = attrs.field(validator=non_empty_str)
    success: bool = attrs.field(validator=is_bool)
    result: Any = None
    error_code: str | None = attrs.field(default=None, validator=optional_str)
    error_message: str | None = attrs.field(default=None, validator=optional_str)

    def to_json_obj(self) -> JSONObject:
        return {
            "type": self.TYPE,
            "data": {
                "command_id": self.command_id,
                "success": self.success,
                "result": self.result,
                "error_code": self.error_code,
                "error_message": self.error_message,
            },
        }

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> CommandResponse:
        data = req_obj(obj, "data")
        return cls(
            req_str(data, "command_id"),
            req_bool(data, "success"),
            data.get("result"),
            nullable_str(data, "error_code"),
            nullable_str(data, "error_message"),
        )


@attrs.frozen
class Command:
    """A call command; the server answers within ``timeout_ms`` with a CommandResponse."""

    TYPE: ClassVar[str] = "command"
    command: str = attrs.field(validator=non_empty_str)
    timeout_ms: int = attrs.field(validator=[plain_int, _non_negative])
    data: JSONObject | None = attrs.field(
        default=None, validator=attrs.validators.optional(json_object)
    )
    command_id: str = attrs.field(factory=new_id, validator=non_empty_str)

    def to_json_obj(self) -> JSONObject:
        body: JSONObject = {
            "command_id": self.command_id,
            "command": self.command,
            "timeout_ms": self.timeout_ms,
        }
        if self.data is not None:
            body["data"] = self.data
        return {"type": self.TYPE, "data": body}

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> Command:
        data = req_obj(obj, "data")
        timeout = req_int(data, "timeout_ms")
        if timeout < 0:
            raise FieldError("field 'timeout_ms' must not be negative")
        return cls(
            command=req_str(data, "command"),
            timeout_ms=timeout,
            data=opt_obj(data, "data") if "data" in data else None,
            command_id=req_str(data, "command_id"),
        )


ServerVoiceFrame = BufferRequest | CallEventFrame | CommandResponse
ClientVoiceFrame = Command

_SERVER: Final[dict[str, Callable[[JSONObject], ServerVoiceFrame]]] = {
    c.TYPE: c.from_json_obj for c in (BufferRequest, CallEventFrame, CommandResponse)
}
_CLIENT: Final[dict[str, Callable[[JSONObject], ClientVoiceFrame]]] = {
    Command.TYPE: Command.from_json_obj
}


def encode_frame(frame: ServerVoiceFrame | ClientVoiceFrame) -> str:
    """The JSON text of a voice-plane text frame."""
    return dumps(frame.to_json_obj())


def encode_audio(frame: AudioFrame) -> bytes:
    """The binary frame: the channel byte, then the PCM."""
    return bytes((frame.channel_id,)) + frame.pcm


def _decode_audio(data: bytes | bytearray | memoryview) -> AudioFrame | Unrecognised:
    raw = bytes(data)
    if len(raw) < 2:
        return Unrecognised("binary frame shorter than 2 bytes", raw)
    return AudioFrame(raw[0], raw[1:])


def _decode(data: str | bytes, table: dict[str, Callable[[JSONObject], Any]], sender: str) -> Any:
    if not isinstance(data, str):
        return _decode_audio(data)
    return decode_text(data, table, "voice plane", sender)


def decode_server_frame(data: str | bytes) -> ServerVoiceFrame | AudioFrame | Unrecognised:
    """Decode a voice-plane frame from the server: text → JSON frame, bytes → audio."""
    result: ServerVoiceFrame | AudioFrame | Unrecognised = _decode(data, _SERVER, "server")
    return result


def decode_client_frame(data: str | bytes) -> ClientVoiceFrame | AudioFrame | Unrecognised:
    """Decode a voice-plane frame from a client (the sandbox's side). Never raises."""
    result: ClientVoiceFrame | AudioFrame | Unrecognised = _decode(data, _CLIENT, "client")
    return result
