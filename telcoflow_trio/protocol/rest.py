"""REST plane payloads: the session list, a close result, an error body. No I/O.

The REST plane lives on the control plane's host with the http(s) scheme.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote

import attrs

from .._enums import ChannelType
from ._fields import (
    FieldError,
    JSONObject,
    Unrecognised,
    dumps,
    is_int,
    is_str,
    kind,
    non_empty_str,
    nullable_int,
    opt_str,
    optional_int,
    parse_json,
    req_str,
)

__all__ = [
    "SESSIONS_PATH",
    "CloseResult",
    "ErrorBody",
    "SessionInfo",
    "close_path",
    "decode_close_result",
    "decode_error_body",
    "decode_session_list",
    "encode_close_result",
    "encode_error_body",
    "encode_session_list",
    "session_list_params",
]

SESSIONS_PATH: Final = "/public/v1/sessions"


def close_path(session_id: str) -> str:
    """``/public/v1/sessions/{id}/close``, with the id percent-encoded."""
    if not isinstance(session_id, str) or not session_id:
        raise ValueError("session_id must be a non-empty string")
    return f"{SESSIONS_PATH}/{quote(session_id, safe='')}/close"


def session_list_params(
    channel: ChannelType | str | None = None,
    remote_address: str | None = None,
    state: str | None = "OPEN",
) -> dict[str, str]:
    """Query parameters of ``GET /public/v1/sessions``; ``None`` leaves a filter out."""
    params: dict[str, str] = {}
    if channel is not None:
        params["channel"] = ChannelType(channel).value
    if remote_address is not None:
        params["remoteAddress"] = remote_address
    if state is not None:
        params["state"] = state
    return params


@attrs.frozen
class SessionInfo:
    """One session as the REST plane lists it.

    ``channel``, ``initiator`` (``SDK``/``CONNECTOR``) and ``state`` (``OPEN``/``CLOSED``)
    are kept as sent; ``channel`` is a :class:`ChannelType` when it is a known one.
    """

    id: str = attrs.field(validator=non_empty_str)
    channel: ChannelType | str = attrs.field(validator=non_empty_str)
    initiator: str = attrs.field(default="", validator=is_str)
    state: str = attrs.field(default="", validator=is_str)
    remote_address: str = attrs.field(default="", validator=is_str)
    local_address: str = attrs.field(default="", validator=is_str)
    opened_at: int | None = attrs.field(default=None, validator=optional_int)
    closed_at: int | None = attrs.field(default=None, validator=optional_int)

    def to_json_obj(self) -> JSONObject:
        return {
            "id": self.id,
            "channel": str(self.channel),
            "initiator": self.initiator,
            "state": self.state,
            "remoteAddress": self.remote_address,
            "localAddress": self.local_address,
            "openedAt": self.opened_at,
            "closedAt": self.closed_at,
        }

    @classmethod
    def from_json_obj(cls, obj: JSONObject) -> SessionInfo:
        channel = req_str(obj, "channel")
        known: ChannelType | str = (
            ChannelType(channel) if channel in ChannelType._value2member_map_ else channel
        )
        return cls(
            id=req_str(obj, "id"),
            channel=known,
            initiator=opt_str(obj, "initiator"),
            state=opt_str(obj, "state"),
            remote_address=opt_str(obj, "remoteAddress"),
            local_address=opt_str(obj, "localAddress"),
            opened_at=nullable_int(obj, "openedAt"),
            closed_at=nullable_int(obj, "closedAt"),
        )


@attrs.frozen
class CloseResult:
    """The body of a successful ``POST .../close``; ``reason`` is kept as sent."""

    closed_at: int = attrs.field(validator=is_int)
    reason: str = attrs.field(validator=is_str)


@attrs.frozen
class ErrorBody:
    """A non-2xx body: ``{"code": ..., "message": ...}``."""

    code: str = attrs.field(validator=is_str)
    message: str = attrs.field(default="", validator=is_str)


def _body(data: str | bytes, parse: Callable[[Any], Any]) -> Any:
    try:
        return parse(parse_json(data))
    except FieldError as exc:
        return Unrecognised(str(exc), data)
    except (TypeError, ValueError) as exc:
        return Unrecognised(f"invalid field value ({type(exc).__name__})", data)


def _object(value: Any, what: str) -> JSONObject:
    if not isinstance(value, dict):
        raise FieldError(f"{what} must be an object, got {kind(value)}")
    return value


def _session_list(value: Any) -> list[SessionInfo]:
    items = _object(value, "session list").get("items")
    if not isinstance(items, list):
        raise FieldError(f"field 'items' must be an array, got {kind(items)}")
    return [SessionInfo.from_json_obj(_object(item, f"items[{i}]")) for i, item in enumerate(items)]


def _close_result(value: Any) -> CloseResult:
    obj = _object(value, "close result")
    closed_at = nullable_int(obj, "closedAt")
    return CloseResult(0 if closed_at is None else closed_at, opt_str(obj, "reason"))


def _error_body(value: Any) -> ErrorBody:
    obj = _object(value, "error body")
    return ErrorBody(opt_str(obj, "code", "UNKNOWN") or "UNKNOWN", opt_str(obj, "message"))


def decode_session_list(data: str | bytes) -> list[SessionInfo] | Unrecognised:
    """Decode ``GET /public/v1/sessions``. Never raises; one bad item spoils the list."""
    result: list[SessionInfo] | Unrecognised = _body(data, _session_list)
    return result


def decode_close_result(data: str | bytes) -> CloseResult | Unrecognised:
    """Decode ``POST /public/v1/sessions/{id}/close``. Never raises."""
    result: CloseResult | Unrecognised = _body(data, _close_result)
    return result


def decode_error_body(data: str | bytes) -> ErrorBody | Unrecognised:
    """Decode a non-2xx body. Never raises."""
    result: ErrorBody | Unrecognised = _body(data, _error_body)
    return result


def encode_session_list(items: list[SessionInfo]) -> str:
    return dumps({"items": [item.to_json_obj() for item in items]})


def encode_close_result(result: CloseResult) -> str:
    return dumps({"closedAt": result.closed_at, "reason": result.reason})


def encode_error_body(body: ErrorBody) -> str:
    return dumps({"code": body.code, "message": body.message})
