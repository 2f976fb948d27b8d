"""The protocol's clocks: deadlines, keep-alive and reconnection backoff. No I/O.

All values are seconds. :class:`Backoff` computes delays; sleeping is the caller's job.
"""

from __future__ import annotations

import random
from typing import Final

import attrs

__all__ = [
    "BACKOFF_FACTOR",
    "BACKOFF_FIRST_DELAY",
    "BACKOFF_JITTER",
    "BACKOFF_MAX_DELAY",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "READY_WARNING_DELAY",
    "REQUEST_TIMEOUT",
    "SESSION_CLOSE_WAIT",
    "SETUP_TIMEOUT",
    "Backoff",
]

SETUP_TIMEOUT: Final = 10.0
"""How long the client waits for ``setup.done`` after sending ``setup``."""
REQUEST_TIMEOUT: Final = 30.0
"""How long the client waits for the ``response`` to a control request."""
PING_INTERVAL: Final = 30.0
PING_TIMEOUT: Final = 10.0
READY_WARNING_DELAY: Final = 30.0
"""A session opened this long ago without ``session.ready`` earns a warning."""
SESSION_CLOSE_WAIT: Final = 10.0
"""How long closing a session waits for ``session.closed`` before closing it locally."""

BACKOFF_FIRST_DELAY: Final = 0.5
BACKOFF_FACTOR: Final = 1.5
BACKOFF_MAX_DELAY: Final = 10.0
BACKOFF_JITTER: Final = 0.2
"""Each delay gets up to this fraction of itself added at random."""


@attrs.define
class Backoff:
    """Jittered exponential backoff: 0.5 s, ×1.5 per failure, capped at 10 s, +0–20 %.

    ``rng`` is injectable so tests can fix the jitter.
    """

    first: float = BACKOFF_FIRST_DELAY
    factor: float = BACKOFF_FACTOR
    maximum: float = BACKOFF_MAX_DELAY
    jitter: float = BACKOFF_JITTER
    rng: random.Random = attrs.field(factory=random.Random, repr=False)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        base = min(self.first * self.factor**self.attempt, self.maximum)
        # Stop growing the exponent once capped, so a long outage cannot overflow it.
        if base < self.maximum:
            self.attempt += 1
        return base + self.rng.uniform(0.0, base * self.jitter)

    def reset(self) -> None:
        """Start again from the first delay (after a successful connection)."""
        self.attempt = 0
