"""The pull ledger: the audio the server has asked for on channel 0 and not yet received.

No I/O and no trio, like h11's state machines: the caller feeds events in and reads the
answers. Both ends of the voice plane keep the same books:

- the client (:class:`telcoflow_trio.audio.PullServicer`) records each ``buffer_request``
  with :meth:`PullLedger.on_request`, asks :meth:`PullLedger.need` how many bytes it must
  hold before it cuts the next frame, and records each frame with :meth:`PullLedger.take`;
- the server (the sandbox) records its own requests the same way and each frame it
  receives with :meth:`PullLedger.receive`, which counts what goes beyond what was owed.

The rules, as the reference client answers requests (see ``PROTOCOL.md``, voice plane):

- ``requested_bytes <= 0`` is ignored; otherwise a request for a channel other than 0 is
  skipped. Neither is owed.
- Requests are answered in order, one at a time: a frame answers the current request and
  carries at most what it still owes.
- A frame carries at least ``min(floor, still owed)`` bytes, where the floor is
  ``prefer_audio_frame_bytes`` (960 when 0 or missing), capped at the buffer's capacity
  (a floor above it could never be met). While *flushing* (someone waits for the
  utterance to play out, or the buffer drains at close) any tail goes: the need is 1.
- Pending requests are kept run-length encoded (servers repeat the same request). Past
  ``max_runs`` distinct runs, a new request is merged into the last run (the merged
  request owes their sum and takes the newest floor), so memory stays bounded and the
  total owed is exact.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from typing import Final

from .voice import DEFAULT_FRAME_BYTES, BufferRequest

__all__ = ["MAX_REQUEST_RUNS", "PullLedger", "PullOutcome"]

MAX_REQUEST_RUNS: Final = 1024
"""Distinct runs of pending requests kept before new ones are merged into the last."""


class PullOutcome(StrEnum):
    """What :meth:`PullLedger.on_request` did with a request."""

    QUEUED = "queued"
    """Now owed."""
    COALESCED = "coalesced"
    """Now owed, merged into the last pending run (too many distinct runs)."""
    SKIPPED = "skipped"
    """For a channel other than 0: not owed."""
    IGNORED = "ignored"
    """``requested_bytes <= 0``: not owed."""

    @property
    def owed(self) -> bool:
        """Whether the request added to what is owed."""
        return self is PullOutcome.QUEUED or self is PullOutcome.COALESCED


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


class PullLedger:
    """Channel-0 pull requests owed, in order; see the module docstring for the rules.

    ``capacity`` (the client's buffer size; None on the server) caps every frame floor.
    Invalid events raise ``TypeError`` or ``ValueError`` and leave the ledger unchanged.
    The counters are plain attributes, for reading only.
    """

    __slots__ = (
        "_capacity",
        "_current",
        "_floor",
        "_max_runs",
        "_owed",
        "_runs",
        "coalesced",
        "ignored",
        "overpulls",
        "requested_bytes",
        "skipped",
        "underruns",
        "unrequested_bytes",
    )

    def __init__(self, capacity: int | None = None, *, max_runs: int = MAX_REQUEST_RUNS) -> None:
        self._capacity = None if capacity is None else _positive("capacity", capacity)
        self._max_runs = _positive("max_runs", max_runs)
        # Requests after the current one, as runs of [requested_bytes, floor, count].
        # Invariant: when nothing is owed to the current request, no run is pending.
        self._runs: deque[list[int]] = deque()
        self._current = 0
        self._floor = self._cap(DEFAULT_FRAME_BYTES)
        self._owed = 0
        self.requested_bytes: int = 0
        """Bytes of every request that became owed."""
        self.underruns: int = 0
        """Owed requests that arrived when the sender's buffer was empty."""
        self.skipped: int = 0
        """Requests for a channel other than 0 (outgoing audio is one channel)."""
        self.ignored: int = 0
        """Requests for zero or fewer bytes."""
        self.coalesced: int = 0
        """Requests merged into the last run because the run queue was full."""
        self.overpulls: int = 0
        """Frames received (:meth:`receive`) that carried more than was owed."""
        self.unrequested_bytes: int = 0
        """Bytes received beyond what was owed."""

    def __repr__(self) -> str:
        return (
            f"<PullLedger owed={self._owed} current={self._current} floor={self._floor}"
            f" runs={len(self._runs)}>"
        )

    def _cap(self, floor: int) -> int:
        return floor if self._capacity is None else min(floor, self._capacity)

    # ── readings ───────────────────────────────────────────────────────────────────────

    @property
    def owed(self) -> int:
        """Bytes asked for and not yet sent (or received), over every pending request."""
        return self._owed

    @property
    def current(self) -> int:
        """Bytes the request being answered still owes: the largest frame allowed now."""
        return self._current

    @property
    def floor(self) -> int:
        """The current request's frame floor, capped at the capacity (meaningless while
        :attr:`current` is 0)."""
        return self._floor

    @property
    def runs(self) -> int:
        """Distinct runs of requests pending after the current one (at most ``max_runs``)."""
        return len(self._runs)

    def need(self, *, flushing: bool = False) -> int | None:
        """Bytes the sender must hold before it cuts the next frame; None when nothing is
        owed. The frame is then everything held, up to :attr:`current`."""
        if not self._current:
            return None
        if flushing:
            return 1
        return min(self._floor, self._current)

    # ── events ─────────────────────────────────────────────────────────────────────────

    def on_request(self, request: BufferRequest, buffered: int | None = None) -> PullOutcome:
        """Record a ``buffer_request``. ``buffered``: the bytes the sender holds, if it
        keeps a buffer (an owed request that finds it empty counts as an underrun)."""
        if not isinstance(request, BufferRequest):
            raise TypeError(f"request must be a BufferRequest, got {type(request).__name__}")
        if buffered is not None:
            if isinstance(buffered, bool) or not isinstance(buffered, int):
                raise TypeError(f"buffered must be an int or None, got {type(buffered).__name__}")
            if buffered < 0:
                raise ValueError(f"buffered must be >= 0, got {buffered}")
        n = request.requested_bytes
        if n <= 0:
            self.ignored += 1
            return PullOutcome.IGNORED
        if request.channel_id != 0:
            self.skipped += 1
            return PullOutcome.SKIPPED
        if buffered == 0:
            self.underruns += 1
        self._owed += n
        self.requested_bytes += n
        floor = self._cap(request.frame_bytes)
        if not self._current:
            self._current, self._floor = n, floor
            return PullOutcome.QUEUED
        runs = self._runs
        if runs and runs[-1][0] == n and runs[-1][1] == floor:
            runs[-1][2] += 1
        elif len(runs) < self._max_runs:
            runs.append([n, floor, 1])
        else:
            last = runs[-1]
            runs[-1] = [last[0] * last[2] + n, floor, 1]
            self.coalesced += 1
            return PullOutcome.COALESCED
        return PullOutcome.QUEUED

    def take(self, n: int) -> None:
        """The sender cut a frame of ``n`` bytes; it answers the current request, so
        ``1 <= n <= current``."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"frame size must be an int, got {type(n).__name__}")
        if not 1 <= n <= self._current:
            raise ValueError(f"a frame of {n} bytes when the current request owes {self._current}")
        self._pay(n)

    def receive(self, n: int) -> int:
        """The receiver got a frame of ``n`` bytes. It pays the oldest requests first, and
        may span several; returns the bytes beyond everything owed (an overpull)."""
        _positive("frame size", n)
        paid = min(n, self._owed)
        self._pay(paid)
        excess = n - paid
        if excess:
            self.overpulls += 1
            self.unrequested_bytes += excess
        return excess

    def _pay(self, k: int) -> None:
        """Settle ``k <= owed`` bytes against the requests, in order."""
        self._owed -= k
        runs = self._runs
        while True:
            step = min(k, self._current)
            self._current -= step
            k -= step
            if self._current or not runs:
                return  # k is 0 here: it never exceeds what is owed
            run = runs[0]
            size = run[0]
            # Requests of this run that k pays in full go at once, not one by one.
            whole = min(k // size, run[2])
            k -= whole * size
            run[2] -= whole
            if run[2]:
                run[2] -= 1
                self._current, self._floor = size, run[1]
            if not run[2]:
                runs.popleft()
