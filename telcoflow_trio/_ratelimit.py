"""Rate limits for log lines that could repeat without bound (one per frame, call, write)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RateLimit"]


class RateLimit:
    """``ready()`` is true at most once per ``interval`` seconds (the first time at once)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._next: float | None = None

    def ready(self) -> bool:
        now = self._clock()
        if self._next is not None and now < self._next:
            return False
        self._next = now + self._interval
        return True
