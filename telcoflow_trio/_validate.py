"""Argument checks for the public API, in one place: each error names the argument and says
what it got (its type, or its value where the value is not a secret).

Each check returns the value it accepted (converted where it says so), so a caller writes
``self._capacity = check_int("capacity", capacity, low=1)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from typing import Any, Final, TypeVar, overload

__all__ = [
    "MAX_CHANNEL_ID",
    "check_bool",
    "check_callable",
    "check_channel_id",
    "check_enum",
    "check_finite",
    "check_int",
    "check_member",
    "check_non_empty_str",
    "check_number",
    "check_optional_int",
    "check_timeout",
    "check_type",
    "coerce_pcm",
]

T = TypeVar("T")
E = TypeVar("E", bound=Enum)
F = TypeVar("F", bound=Callable[..., Any])

MAX_CHANNEL_ID: Final = 255
"""Audio channel ids are one byte on the wire."""


def _type_name(value: object) -> str:
    return type(value).__name__


@overload
def check_type(name: str, value: object, expected: type[T], what: str) -> T: ...
@overload
def check_type(name: str, value: object, expected: tuple[type, ...], what: str) -> Any: ...
def check_type(name: str, value: object, expected: type | tuple[type, ...], what: str) -> Any:
    """``value`` if it is an instance of ``expected`` (a bool is not an int here, unless
    ``expected`` names bool); else a TypeError: "``name`` must be ``what``, got <type>"."""
    if isinstance(value, bool) and bool not in (
        expected if isinstance(expected, tuple) else (expected,)
    ):
        raise TypeError(f"{name} must be {what}, got bool")
    if not isinstance(value, expected):
        raise TypeError(f"{name} must be {what}, got {_type_name(value)}")
    return value


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool (not merely truthy)."""
    return check_type(name, value, bool, "a bool")


def check_int(name: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int (not a bool) in ``low..high`` (either bound may be left out)."""
    number = check_type(name, value, int, "an int")
    if (low is not None and number < low) or (high is not None and number > high):
        if high is None:
            bounds = f"at least {low}"
        elif low is None:
            bounds = f"at most {high}"
        else:
            bounds = f"in {low}..{high}"
        raise ValueError(f"{name} must be {bounds}, got {number}")
    return number


def check_optional_int(
    name: str, value: object, *, low: int | None = None, high: int | None = None
) -> int | None:
    """``value`` if it is None (no limit), else as :func:`check_int` checks it."""
    if value is None:
        return None
    try:
        return check_int(name, value, low=low, high=high)
    except TypeError:
        raise TypeError(f"{name} must be an int or None, got {_type_name(value)}") from None


def check_number(name: str, value: object) -> float:
    """``value`` as a float, from an int or a float (not a bool); any value, NaN included."""
    return float(check_type(name, value, (int, float), "a number"))


def check_finite(name: str, value: object, *, positive: bool) -> float:
    """``value`` as a finite float, > 0 when ``positive``, else >= 0."""
    number = check_number(name, value)
    if positive and not (number > 0 and math.isfinite(number)):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    if not positive and not (number >= 0 and math.isfinite(number)):
        raise ValueError(f"{name} must be finite and not negative, got {value}")
    return number


def check_timeout(name: str, value: object) -> float:
    """``value`` as a number of seconds >= 0 (``math.inf`` waits for ever)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {_type_name(value)}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return float(value)


def check_non_empty_str(name: str, value: object, error: type[Exception] = ValueError) -> str:
    """``value`` if it is a non-empty str; else ``error`` (a ValueError unless the API has
    long raised something else) saying so."""
    if not isinstance(value, str) or not value:
        raise error(f"{name} must be a non-empty str")
    return value


def check_callable(name: str, value: F, what: str = "callable") -> F:
    """``value`` if it can be called."""
    if not callable(value):
        raise TypeError(f"{name} must be {what}, got {_type_name(value)}")
    return value


def check_member(name: str, value: object, enum: type[E], choices: str | None = None) -> E:
    """``value`` as a member of ``enum`` (a member, or anything ``enum(value)`` accepts);
    else a ValueError listing the choices (``choices``, or the members' values)."""
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        listed = choices or f"one of {[member.value for member in enum]}"
        raise ValueError(f"{name} must be {listed}, got {value!r}") from None


def check_enum(name: str, value: object, enum: type[E]) -> E:
    """``value`` as a member of a string enum, given a member or its value as a str."""
    if isinstance(value, enum):
        return value
    check_type(name, value, str, f"an {enum.__name__} or str")
    return check_member(name, str(value), enum)


def check_channel_id(channel_id: object) -> int:
    """An audio channel id: an int in 0..255."""
    return check_int("channel_id", channel_id, low=0, high=MAX_CHANNEL_ID)


def coerce_pcm(pcm: object, name: str = "pcm") -> bytes:
    """``pcm`` as immutable bytes; mutable inputs are copied so later changes can't leak in."""
    if type(pcm) is bytes:
        return pcm
    if isinstance(pcm, bytes):  # a bytes subclass: normalise, it may override slicing
        return bytes(pcm)
    if isinstance(pcm, bytearray):
        return bytes(pcm)
    if isinstance(pcm, memoryview):
        try:
            return pcm.tobytes()
        except ValueError as exc:  # a released view
            raise ValueError(f"{name} is a released memoryview") from exc
    raise TypeError(f"{name} must be bytes, bytearray or memoryview, got {_type_name(pcm)}")
