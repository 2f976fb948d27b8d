"""Strict readers for decoded JSON objects, shared by every decoder of the protocol layer.

Each reader returns a typed value or raises :class:`FieldError`, whose message names the
field and the kind of value found (never the value itself: it may be a token).
Decoders catch ``FieldError`` once, at their top, and turn it into ``Unrecognised``.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

import attrs

JSONObject = dict[str, Any]

_T = TypeVar("_T")


class FieldError(Exception):
    """A decoded object lacks a field or holds a value of the wrong kind."""


@attrs.frozen
class Unrecognised:
    """A frame or payload that could not be decoded; ``reason`` says why.

    ``raw`` keeps what was received for debugging. It is left out of ``repr`` because
    a malformed frame may still carry a voice token; log ``reason``, not ``raw``.
    """

    reason: str
    raw: str | bytes = attrs.field(default="", repr=False, eq=False)

    def __bool__(self) -> bool:
        # A decode result is truthy only when it is a frame, so `if frame := decode(...)` works.
        return False


def kind(value: object) -> str:
    """A short name for a JSON value's kind, for error messages that must not quote it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _bad(key: str, expected: str, obj: Mapping[str, Any]) -> NoReturn:
    if key not in obj:
        raise FieldError(f"field {key!r} is missing (expected {expected})")
    raise FieldError(f"field {key!r} must be {expected}, got {kind(obj[key])}")


def parse_object(data: str | bytes | bytearray, plane: str) -> JSONObject:
    """Parse a text frame into a JSON object that has a string ``type``."""
    if not isinstance(data, str):
        raise FieldError(f"binary frame where the {plane} expects text")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise FieldError(f"not valid JSON ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise FieldError(f"JSON {kind(value)} where an object was expected")
    if "type" not in value:
        raise FieldError("object has no 'type'")
    if not isinstance(value["type"], str):
        raise FieldError(f"'type' must be a string, got {kind(value['type'])}")
    return value


def parse_json(data: str | bytes | bytearray) -> Any:
    """Parse a JSON document (REST bodies may arrive as bytes)."""
    try:
        if isinstance(data, bytes | bytearray):
            data = bytes(data).decode("utf-8")
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise FieldError(f"not valid JSON ({type(exc).__name__})") from None


def decode_text(
    data: str | bytes, table: Mapping[str, Callable[[JSONObject], Any]], plane: str, sender: str
) -> Any:
    """Decode one text frame with the ``from_json_obj`` parser its ``type`` selects.

    Every failure, down to a value a frame's own validator refuses, becomes ``Unrecognised``.
    """
    try:
        obj = parse_object(data, plane)
        parse = table.get(obj["type"])
        if parse is None:
            return Unrecognised(f"unknown frame type from the {sender}", data)
        return parse(obj)
    except FieldError as exc:
        return Unrecognised(str(exc), data)
    except (TypeError, ValueError) as exc:
        return Unrecognised(f"invalid field value ({type(exc).__name__})", data)


def dumps(obj: object) -> str:
    """Compact ASCII JSON (lone surrogates stay escaped, so the text is always valid UTF-8)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def req_str(obj: Mapping[str, Any], key: str) -> str:
    """A required, non-empty string."""
    value = obj.get(key)
    if not isinstance(value, str):
        _bad(key, "a string", obj)
    if not value:
        raise FieldError(f"field {key!r} is empty")
    return value


def opt_str(obj: Mapping[str, Any], key: str, default: str = "") -> str:
    """A string that may be missing or null (then ``default``)."""
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        _bad(key, "a string", obj)
    return value


def nullable_str(obj: Mapping[str, Any], key: str) -> str | None:
    """A string that may be missing or null (then ``None``)."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        _bad(key, "a string", obj)
    return value


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def opt_int(obj: Mapping[str, Any], key: str, default: int = 0) -> int:
    """An integer that may be missing or null (then ``default``); 3.0 reads as 3."""
    value = obj.get(key)
    if value is None:
        return default
    number = _as_int(value)
    if number is None:
        _bad(key, "an integer", obj)
    return number


def nullable_int(obj: Mapping[str, Any], key: str) -> int | None:
    """An integer that may be missing or null (then ``None``)."""
    if obj.get(key) is None:
        return None
    return opt_int(obj, key)


def req_int(obj: Mapping[str, Any], key: str) -> int:
    """A required integer."""
    if obj.get(key) is None:
        _bad(key, "an integer", obj)
    return opt_int(obj, key)


def lenient_int(obj: Mapping[str, Any], key: str) -> int:
    """A number read the way the protocol reads ``buffer_request``: missing or invalid is 0.

    Like the reference client, a float is truncated and a numeric string is parsed.
    """
    value = obj.get(key)
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else 0
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            return 0
    return 0


def opt_bool(obj: Mapping[str, Any], key: str, default: bool = False) -> bool:
    """A boolean that may be missing or null (then ``default``)."""
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        _bad(key, "a boolean", obj)
    return value


def req_bool(obj: Mapping[str, Any], key: str) -> bool:
    """A required boolean."""
    if obj.get(key) is None:
        _bad(key, "a boolean", obj)
    return opt_bool(obj, key)


def opt_obj(obj: Mapping[str, Any], key: str) -> JSONObject:
    """A JSON object that may be missing or null (then empty)."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        _bad(key, "an object", obj)
    return value


def req_obj(obj: Mapping[str, Any], key: str) -> JSONObject:
    """A required JSON object."""
    value = obj.get(key)
    if not isinstance(value, dict):
        _bad(key, "an object", obj)
    return value


def choice(obj: Mapping[str, Any], key: str, convert: Callable[[str], _T]) -> _T:
    """A required string that ``convert`` accepts (an enum constructor, usually)."""
    text = req_str(obj, key)
    try:
        return convert(text)
    except ValueError:
        raise FieldError(f"field {key!r} has an unknown value") from None


def new_id() -> str:
    """A fresh uuid4 string, as used for ``reqId``, ``command_id`` and ``clientMsgId``."""
    return str(uuid.uuid4())


# Validators for frame classes: a frame that cannot survive its own encoding is refused
# at construction, so encode(frame) always decodes back to an equal frame.

is_str = attrs.validators.instance_of(str)
is_bool = attrs.validators.instance_of(bool)
is_int = attrs.validators.instance_of(int)
"""An int or a bool (see :func:`plain_int` for an int only)."""
optional_str = attrs.validators.optional(is_str)
optional_int = attrs.validators.optional(is_int)


def non_empty_str(_inst: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


def plain_int(_inst: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name} must be an int, got {type(value).__name__}")


def json_object(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, dict):
        raise TypeError(f"{attribute.name} must be a dict, got {type(value).__name__}")
    if not all(isinstance(k, str) for k in value):
        raise TypeError(f"{attribute.name} must have string keys")
