"""Rate limits for log lines that could repeat without bound (one per frame, call, write)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["RateLimit"]


class RateLimit:
    """Sums events between log lines so that at most one line per ``interval`` seconds is
    written (the first at once)."""

    __slots__ = ("_clock", "_interval", "_last", "pending")

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last = -math.inf
        self.pending = 0
        """Counted since the last line."""

    def add(self, n: int = 1) -> int:
        """Count ``n``; what to report if a line is due now, else 0."""
        self.pending += n
        now = self._clock()
        if now - self._last < self._interval:
            return 0
        self._last = now
        pending, self.pending = self.pending, 0
        return pending
