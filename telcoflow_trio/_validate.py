"""Argument checks shared by the public API: each error names the argument and what it got."""

from __future__ import annotations

import math

__all__ = ["check_timeout"]


def check_timeout(name: str, value: object) -> float:
    """``value`` as a number of seconds >= 0; a TypeError/ValueError naming ``name`` if not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return float(value)
