"""The sandbox's clock: simulated seconds that may run faster than real ones."""

from __future__ import annotations

import math

import trio


class SandboxClock:
    """Simulated time for pacing: ``time_scale`` simulated seconds pass per real second.

    Everything the sandbox simulates (audio pacing, pull cadence, ring times) runs on this
    clock; timestamps in recordings are simulated seconds since the sandbox started. It is
    built on trio's clock, so trio's ``MockClock`` speeds it up too.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        if not isinstance(time_scale, int | float) or isinstance(time_scale, bool):
            raise TypeError(f"time_scale must be a number, got {type(time_scale).__name__}")
        if not math.isfinite(time_scale) or time_scale <= 0:
            raise ValueError(f"time_scale must be a positive finite number, got {time_scale}")
        self.time_scale: float = float(time_scale)
        self._origin = trio.current_time()

    def now(self) -> float:
        """Simulated seconds since the sandbox started."""
        return (trio.current_time() - self._origin) * self.time_scale

    def to_real(self, seconds: float) -> float:
        """The real duration of ``seconds`` of simulated time."""
        return seconds / self.time_scale

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of simulated time."""
        await trio.sleep(max(0.0, seconds) / self.time_scale)

    async def sleep_until(self, when: float) -> None:
        """Sleep until the simulated clock reads ``when`` (returns at once if it has)."""
        await trio.sleep_until(self._origin + when / self.time_scale)
