"""How many calls ``serve_calls`` claims at once: a sans-IO state of slots and held
notifications, plus the counters it keeps. No I/O and no trio: time comes in as ``now``.

A slot is reserved *before* a claim goes out, so a burst of notifications never claims more
than ``limit`` sessions; it is released once the claim is lost or the call is over. While
every slot is taken, notifications are held (at most ``max_held``, none older than
``max_age`` seconds) and handed out in arrival order as slots free.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Final

from ._messages import SessionNotification
from ._ratelimit import RateLimit
from ._validate import check_finite, check_int, check_optional_int

__all__ = ["MAX_HELD", "MAX_HELD_AGE", "ClaimStats", "Slot", "Slots"]

logger = logging.getLogger(__name__)

MAX_HELD: Final = 100
"""Notifications held while at capacity, by default."""
MAX_HELD_AGE: Final = 30.0
"""Seconds a held notification stays worth claiming, by default (a caller rarely waits longer)."""
DROP_LOG_INTERVAL: Final = 60.0


class ClaimStats:
    """What ``serve_calls`` did with the notifications it saw (read-only; counters since the
    manager was created, summed over every ``serve_calls`` of it).

    ``won``: claims won. ``lost``: claims another agent won, or of a session already gone.
    ``skipped_at_capacity``: notifications dropped unclaimed because every slot was taken and
    the held queue was full. ``expired``: held notifications dropped as too old.
    ``active_calls``: calls claimed and not yet over. ``held``: notifications held right now.
    """

    __slots__ = ("_active", "_expired", "_held", "_lost", "_skipped", "_won")

    def __init__(self) -> None:
        self._won = self._lost = self._skipped = self._expired = self._active = self._held = 0

    def __repr__(self) -> str:
        return (
            f"<ClaimStats won={self._won} lost={self._lost} skipped_at_capacity="
            f"{self._skipped} expired={self._expired} active_calls={self._active} "
            f"held={self._held}>"
        )

    @property
    def won(self) -> int:
        """Claims won."""
        return self._won

    @property
    def lost(self) -> int:
        """Claims lost to another agent, or of a session already gone."""
        return self._lost

    @property
    def skipped_at_capacity(self) -> int:
        """Notifications dropped unclaimed: every slot taken and the held queue full."""
        return self._skipped

    @property
    def expired(self) -> int:
        """Held notifications dropped as too old."""
        return self._expired

    @property
    def active_calls(self) -> int:
        """Calls claimed and not yet over."""
        return self._active

    @property
    def held(self) -> int:
        """Notifications held right now, waiting for a slot."""
        return self._held


class Slot:
    """One reserved slot: the notification it claims, and where its claim stands."""

    __slots__ = ("note", "state")

    def __init__(self, note: SessionNotification) -> None:
        self.note = note
        self.state = "claiming"
        """``claiming``, ``won`` or ``released``."""

    def __repr__(self) -> str:
        return f"<Slot {self.note.session_id} {self.state}>"


class Slots:
    """Events in (:meth:`notified`, :meth:`won`, :meth:`lost`, :meth:`release`,
    :meth:`tick`, :meth:`close`), decisions out: a :class:`Slot` to claim now, or nothing
    (held, or dropped and counted). ``limit`` None: no limit, nothing is ever held."""

    def __init__(
        self,
        stats: ClaimStats,
        limit: int | None = None,
        max_held: int = MAX_HELD,
        max_age: float = MAX_HELD_AGE,
    ) -> None:
        self.limit = check_optional_int("max_calls", limit, low=1)
        self.max_held = check_int("max_held", max_held, low=0)
        self.max_age = check_finite("max_held_age", max_age, positive=True)
        self.stats = stats
        self.reserved: set[Slot] = set()
        self.closed = False
        self._held: OrderedDict[str, tuple[SessionNotification, float]] = OrderedDict()
        self._held_counted = 0
        self._now = 0.0
        self._skips = RateLimit(DROP_LOG_INTERVAL, lambda: self._now)
        self._expiries = RateLimit(DROP_LOG_INTERVAL, lambda: self._now)

    @property
    def held(self) -> list[SessionNotification]:
        """The held notifications, oldest first."""
        return [note for note, _ in self._held.values()]

    def next_expiry(self) -> float:
        """When the oldest held notification expires (``math.inf`` if none is held)."""
        for _, seen in self._held.values():
            return seen + self.max_age
        return math.inf

    def notified(self, note: SessionNotification, now: float) -> list[Slot]:
        """A notification came: the slots to claim now (this one's, if a slot is free and
        nothing older is waiting); otherwise it is held, or dropped and counted."""
        self._now = now
        self._expire(now)
        if self.closed:
            return []
        if not self._held and self._free():
            return [self._reserve(note)]
        if note.session_id in self._held:  # notified again: the news is fresher, not the turn
            self._held[note.session_id] = (note, self._held[note.session_id][1])
        elif len(self._held) < self.max_held:
            self._held[note.session_id] = (note, now)
        else:
            self.stats._skipped += 1
            if pending := self._skips.add():
                logger.warning(
                    "at capacity (%s calls) with %d notifications held: %d not claimed "
                    "(session %s the latest)",
                    self.limit,
                    len(self._held),
                    pending,
                    note.session_id,
                )
        return self.tick(now)

    def won(self, slot: Slot) -> None:
        """The slot's claim was won: its call is being served."""
        self._require(slot, "claiming")
        slot.state = "won"
        self.stats._won += 1
        self.stats._active += 1

    def lost(self, slot: Slot) -> None:
        """The slot's claim failed because another agent holds the session or it is gone
        (counted only while the claim is still in flight; release the slot next)."""
        if slot.state == "claiming":
            self.stats._lost += 1

    def release(self, slot: Slot, now: float) -> list[Slot]:
        """The slot's claim failed or its call is over: the slots to claim with now."""
        if slot.state == "won":
            self.stats._active -= 1
        self._require(slot, "claiming", "won")
        slot.state = "released"
        self.reserved.discard(slot)
        return self.tick(now)

    def tick(self, now: float) -> list[Slot]:
        """Time passed: drop what expired; claim held notifications while slots are free."""
        self._now = now
        self._expire(now)
        claims: list[Slot] = []
        while self._held and self._free() and not self.closed:
            _, (note, _) = self._held.popitem(last=False)
            claims.append(self._reserve(note))
        self._count_held()
        return claims

    def close(self) -> int:
        """``serve_calls`` ends: nothing more is claimed. Returns how many held were left."""
        self.closed = True
        left = len(self._held)
        self._held.clear()
        self._count_held()
        return left

    def _free(self) -> bool:
        return self.limit is None or len(self.reserved) < self.limit

    def _reserve(self, note: SessionNotification) -> Slot:
        slot = Slot(note)
        self.reserved.add(slot)
        return slot

    def _require(self, slot: Slot, *states: str) -> None:
        if slot.state not in states or (slot not in self.reserved):
            raise RuntimeError(f"{slot!r} is not {' or '.join(states)}")

    def _expire(self, now: float) -> None:
        expired = 0
        while self._held:
            session_id, (_, seen) = next(iter(self._held.items()))
            if now < seen + self.max_age:  # the same sum as next_expiry, so they agree
                break
            del self._held[session_id]
            expired += 1
        if expired:
            self.stats._expired += expired
            self._count_held()
            if pending := self._expiries.add(expired):
                logger.warning(
                    "%d held notifications expired unclaimed (older than %g s, at capacity)",
                    pending,
                    self.max_age,
                )

    def _count_held(self) -> None:
        self.stats._held += len(self._held) - self._held_counted
        self._held_counted = len(self._held)
