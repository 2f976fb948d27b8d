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
    "BACKOFF_STABLE_AFTER",
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
BACKOFF_STABLE_AFTER: Final = 30.0
"""A connection must stay up this long (one keep-alive interval) to reset the backoff.

Resetting on every success instead would let a server that drops each connection right
after ``setup.done`` (a frame the WebSocket layer refuses, say) be retried at the first
delay forever."""


@attrs.define
class Backoff:
    """Jittered exponential backoff: 0.5 s, ×1.5 per failure, capped at 10 s, +0–20 %.

    The owner reports each connection's life with :meth:`connected` and :meth:`lost`
    (``now`` from any monotonic clock, in seconds): only a connection that stayed up for
    ``stable_after`` seconds starts the delays again from ``first``; one that dropped
    sooner counts as a failure, so repeated short-lived connections back off like
    refused ones. ``rng`` is injectable so tests can fix the jitter.
    """

    first: float = BACKOFF_FIRST_DELAY
    factor: float = BACKOFF_FACTOR
    maximum: float = BACKOFF_MAX_DELAY
    jitter: float = BACKOFF_JITTER
    # Seeded from the global generator, so that seeding ``random`` (as run_script and
    # hypothesis do) also fixes the jitter.
    rng: random.Random = attrs.field(
        factory=lambda: random.Random(random.getrandbits(64)), repr=False
    )
    attempt: int = 0
    stable_after: float = BACKOFF_STABLE_AFTER
    up_since: float | None = attrs.field(default=None, init=False)
    """When the current connection was established (None: no connection is up)."""

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        base = min(self.first * self.factor**self.attempt, self.maximum)
        # Stop growing the exponent once capped, so a long outage cannot overflow it.
        if base < self.maximum:
            self.attempt += 1
        return base + self.rng.uniform(0.0, base * self.jitter)

    def connected(self, now: float) -> None:
        """A connection was established (``setup.done``) at ``now``."""
        self.up_since = now

    def lost(self, now: float) -> bool:
        """The connection, if one was up, ended at ``now``; returns True when it had lasted
        ``stable_after`` seconds and the delays start again from ``first``."""
        up_since, self.up_since = self.up_since, None
        if up_since is not None and now - up_since >= self.stable_after:
            self.reset()
            return True
        return False

    def reset(self) -> None:
        """Start again from the first delay."""
        self.attempt = 0
