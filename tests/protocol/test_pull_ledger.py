"""The pull ledger alone, against a plain model: every event either moves it as the model
says or is refused (TypeError or ValueError) without changing it.

The model keeps the same runs as the ledger (coalescing merges the last *run*, so the
model needs them to know what merges), but pays bytes one request at a time, the obvious
way; the ledger pays whole requests of a run at once.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from telcoflow_trio.protocol import PullLedger, PullOutcome
from telcoflow_trio.protocol.pull import MAX_REQUEST_RUNS
from telcoflow_trio.protocol.voice import DEFAULT_FRAME_BYTES, BufferRequest


class Model:
    """Owed requests as a current one plus runs of [bytes, floor, count], in order."""

    def __init__(self, capacity: int | None, max_runs: int) -> None:
        self.capacity = capacity
        self.max_runs = max_runs
        self.current = 0
        self.floor = self.cap(DEFAULT_FRAME_BYTES)
        self.runs: list[list[int]] = []
        self.requested = 0
        self.underruns = self.skipped = self.ignored = self.coalesced = 0
        self.overpulls = self.unrequested = 0

    def cap(self, floor: int) -> int:
        return floor if self.capacity is None else min(floor, self.capacity)

    @property
    def owed(self) -> int:
        return self.current + sum(n * c for n, _, c in self.runs)

    def request(self, n: int, pref: int, channel: int, buffered: int | None) -> PullOutcome:
        if n <= 0:
            self.ignored += 1
            return PullOutcome.IGNORED
        if channel != 0:
            self.skipped += 1
            return PullOutcome.SKIPPED
        if buffered == 0:
            self.underruns += 1
        self.requested += n
        floor = self.cap(pref if pref > 0 else DEFAULT_FRAME_BYTES)
        if not self.current:
            self.current, self.floor = n, floor
        elif self.runs and self.runs[-1][:2] == [n, floor]:
            self.runs[-1][2] += 1
        elif len(self.runs) < self.max_runs:
            self.runs.append([n, floor, 1])
        else:
            last = self.runs.pop()
            self.runs.append([last[0] * last[2] + n, floor, 1])
            self.coalesced += 1
            return PullOutcome.COALESCED
        return PullOutcome.QUEUED

    def pay(self, k: int) -> None:
        """Settle ``k <= owed`` bytes, one request at a time."""
        while k:
            if not self.current:
                self.next_request()
            step = min(k, self.current)
            self.current -= step
            k -= step
        if not self.current and self.runs:
            self.next_request()

    def next_request(self) -> None:
        head = self.runs[0]
        self.current, self.floor = head[0], head[1]
        head[2] -= 1
        if not head[2]:
            self.runs.pop(0)

    def need(self, flushing: bool) -> int | None:
        if not self.current:
            return None
        return 1 if flushing else min(self.floor, self.current)


def snapshot(ledger: PullLedger) -> tuple[Any, ...]:
    return (
        repr(ledger),
        ledger.owed,
        ledger.current,
        ledger.floor,
        ledger.runs,
        ledger.requested_bytes,
        ledger.underruns,
        ledger.skipped,
        ledger.ignored,
        ledger.coalesced,
        ledger.overpulls,
        ledger.unrequested_bytes,
    )


def refused(ledger: PullLedger, event: Any, error: type[Exception]) -> None:
    """``event`` raises ``error`` and leaves the ledger exactly as it was."""
    before = snapshot(ledger)
    with pytest.raises(error):
        event()
    assert snapshot(ledger) == before


# Few distinct sizes so runs repeat; a wide range so frames span and overpull.
amounts = st.one_of(st.sampled_from([1, 2, 3, 160, 960, 3200]), st.integers(-3, 7000))
prefs = st.sampled_from([0, 0, -5, 1, 7, 160, 960, 3000, 10**6])
channels = st.sampled_from([0, 0, 0, 0, 1, 2, 255, -1])
buffereds = st.one_of(st.none(), st.just(0), st.integers(1, 10**6))


class PullLedgerMachine(RuleBasedStateMachine):
    @initialize(
        capacity=st.sampled_from([None, 1, 16, 960, 1024, 4096, 1 << 20]),
        max_runs=st.sampled_from([1, 2, 3, 8, MAX_REQUEST_RUNS]),
    )
    def start(self, capacity: int | None, max_runs: int) -> None:
        self.ledger = PullLedger(capacity, max_runs=max_runs)
        self.model = Model(capacity, max_runs)

    # ── events ─────────────────────────────────────────────────────────────────────────

    @rule(n=amounts, pref=prefs, channel=channels, buffered=buffereds)
    def request(self, n: int, pref: int, channel: int, buffered: int | None) -> None:
        owed = self.ledger.owed
        outcome = self.ledger.on_request(BufferRequest(n, pref, channel), buffered)
        assert outcome == self.model.request(n, pref, channel, buffered)
        assert self.ledger.owed == owed + (n if outcome.owed else 0)

    @rule(n=st.integers(-3, 8000))
    def take_any(self, n: int) -> None:
        if 1 <= n <= self.model.current:
            self.ledger.take(n)
            self.model.pay(n)
        else:
            refused(self.ledger, lambda: self.ledger.take(n), ValueError)

    @precondition(lambda self: self.model.current > 0)
    @rule(data=st.data())
    def take_within_current(self, data: st.DataObject) -> None:
        n = data.draw(st.integers(1, self.model.current), label="frame")
        self.ledger.take(n)
        self.model.pay(n)

    @rule(n=st.integers(-3, 30000))
    def receive(self, n: int) -> None:
        if n < 1:
            refused(self.ledger, lambda: self.ledger.receive(n), ValueError)
            return
        owed = self.model.owed
        expected = max(0, n - owed)
        assert self.ledger.receive(n) == expected
        self.model.pay(n - expected)
        if expected:
            self.model.overpulls += 1
            self.model.unrequested += expected

    @rule(staged=st.integers(0, 8000), flushing=st.booleans())
    def cut_frame(self, staged: int, flushing: bool) -> None:
        """The sender's step: with ``staged`` bytes held, cut a frame if the ledger allows,
        of everything held up to what the current request owes."""
        need = self.ledger.need(flushing=flushing)
        assert need == self.model.need(flushing)
        if need is None:
            return
        assert 1 <= need <= self.ledger.current
        if self.model.capacity is not None:
            assert need <= self.model.capacity
        if flushing and staged:
            assert staged >= need  # flushing: any tail goes
        if staged < need:
            return
        frame = min(staged, self.ledger.current)
        self.ledger.take(frame)
        self.model.pay(frame)

    @rule(
        bad=st.sampled_from(
            [
                ("request", None, TypeError),
                ("request", 960, TypeError),
                ("buffered", -1, ValueError),
                ("buffered", True, TypeError),
                ("buffered", 1.5, TypeError),
                ("take", True, TypeError),
                ("take", 1.0, TypeError),
                ("receive", 0, ValueError),
                ("receive", True, TypeError),
                ("receive", "12", TypeError),
            ]
        )
    )
    def refused_events(self, bad: tuple[str, Any, type[Exception]]) -> None:
        kind, value, error = bad
        ledger = self.ledger
        events = {
            "request": lambda: ledger.on_request(value),
            "buffered": lambda: ledger.on_request(BufferRequest(100), value),
            "take": lambda: ledger.take(value),
            "receive": lambda: ledger.receive(value),
        }
        refused(ledger, events[kind], error)

    @rule()
    def drain_in_whole_requests(self) -> None:
        """Answer every pending request in full, one frame each: the requests come out in
        the order and with the sizes and floors the model holds."""
        seen = []
        while self.ledger.current:
            seen.append((self.ledger.current, self.ledger.floor))
            self.ledger.take(self.ledger.current)
        expected = []
        while self.model.current:
            expected.append((self.model.current, self.model.floor))
            self.model.pay(self.model.current)
        assert seen == expected
        assert self.ledger.owed == 0

    # ── invariants ─────────────────────────────────────────────────────────────────────

    @invariant()
    def matches_the_model(self) -> None:
        ledger, m = self.ledger, self.model
        assert ledger.owed >= 0
        assert ledger.owed == m.owed
        assert (ledger.current, ledger.runs) == (m.current, len(m.runs))
        if m.current:  # the floor means nothing while nothing is owed
            assert ledger.floor == m.floor
        assert ledger.runs <= m.max_runs
        assert ledger.current or not ledger.runs  # nothing pending behind an empty current
        assert ledger.requested_bytes == m.requested
        assert (ledger.underruns, ledger.skipped, ledger.ignored, ledger.coalesced) == (
            m.underruns,
            m.skipped,
            m.ignored,
            m.coalesced,
        )
        assert (ledger.overpulls, ledger.unrequested_bytes) == (m.overpulls, m.unrequested)

    @invariant()
    def floor_fits_the_capacity(self) -> None:
        if self.model.capacity is not None:
            assert self.ledger.floor <= self.model.capacity
        assert self.ledger.floor >= 1


# Inherits max_examples from the loaded profile (HYPOTHESIS_PROFILE=thorough for more).
PullLedgerMachine.TestCase.settings = settings(stateful_step_count=40)
TestPullLedger = PullLedgerMachine.TestCase


# ── examples ───────────────────────────────────────────────────────────────────────────


def test_the_reference_frame_rule() -> None:
    ledger = PullLedger(16384)
    ledger.on_request(BufferRequest(4800, 960))
    assert ledger.need() == 960  # wait for the floor...
    ledger.take(4800)  # ...then send all held, up to what is owed: one frame
    assert ledger.owed == 0
    assert ledger.need() is None
    ledger.on_request(BufferRequest(500, 960))
    assert ledger.need() == 500  # less owed than the floor
    assert ledger.need(flushing=True) == 1  # a tail goes when someone waits for it


def test_floor_defaults_to_960_and_is_capped_at_the_capacity() -> None:
    ledger = PullLedger(256)
    ledger.on_request(BufferRequest(4000, 0))
    assert (ledger.floor, ledger.need()) == (256, 256)
    assert PullLedger().on_request(BufferRequest(4000)) is PullOutcome.QUEUED
    unbounded = PullLedger()
    unbounded.on_request(BufferRequest(4000, -1))
    assert unbounded.floor == DEFAULT_FRAME_BYTES


def test_ignored_comes_before_skipped() -> None:
    ledger = PullLedger()
    assert ledger.on_request(BufferRequest(0, 960, 3)) is PullOutcome.IGNORED
    assert ledger.on_request(BufferRequest(100, 960, 3)) is PullOutcome.SKIPPED
    assert (ledger.ignored, ledger.skipped, ledger.owed) == (1, 1, 0)


def test_underrun_only_when_the_sender_says_its_buffer_is_empty() -> None:
    ledger = PullLedger()
    ledger.on_request(BufferRequest(100), 0)
    ledger.on_request(BufferRequest(100), 50)
    ledger.on_request(BufferRequest(100))  # the server side keeps no buffer
    ledger.on_request(BufferRequest(-1), 0)  # not owed: no underrun either
    assert ledger.underruns == 1


def test_frames_never_exceed_the_current_request() -> None:
    ledger = PullLedger()
    ledger.on_request(BufferRequest(100))
    ledger.on_request(BufferRequest(200))
    assert ledger.owed == 300
    refused(ledger, lambda: ledger.take(101), ValueError)  # would span two requests
    ledger.take(100)
    assert (ledger.current, ledger.owed) == (200, 200)


def test_coalescing_bounds_memory_and_keeps_the_total() -> None:
    ledger = PullLedger(max_runs=2)
    sizes = [10, 20, 30, 30, 40, 50]
    outcomes = [ledger.on_request(BufferRequest(n)) for n in sizes]
    # 10 is current; 20 and (30, 30) are the two runs; 40 then 50 merge into the last.
    assert outcomes[-2:] == [PullOutcome.COALESCED, PullOutcome.COALESCED]
    assert (ledger.runs, ledger.coalesced, ledger.owed) == (2, 2, sum(sizes))
    taken = []
    while ledger.current:
        taken.append(ledger.current)
        ledger.take(ledger.current)
    assert taken == [10, 20, 150]


def test_receive_spans_requests_and_counts_overpulls() -> None:
    ledger = PullLedger()
    ledger.on_request(BufferRequest(100))
    ledger.on_request(BufferRequest(200))
    assert ledger.receive(250) == 0
    assert (ledger.current, ledger.owed) == (50, 50)
    assert ledger.receive(150) == 100
    assert (ledger.overpulls, ledger.unrequested_bytes, ledger.owed) == (1, 100, 0)
    # What was sent too much is not held against the next request.
    ledger.on_request(BufferRequest(100))
    assert ledger.receive(100) == 0
    assert ledger.overpulls == 1


def test_a_long_run_is_paid_without_walking_it() -> None:
    ledger = PullLedger()
    for _ in range(100_000):
        ledger.on_request(BufferRequest(2, 2))
    assert ledger.runs == 1
    assert ledger.receive(2 * 99_999 + 1) == 0
    assert (ledger.current, ledger.owed, ledger.runs) == (1, 1, 0)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"capacity": 0}, ValueError),
        ({"capacity": True}, TypeError),
        ({"max_runs": 0}, ValueError),
        ({"max_runs": 2.0}, TypeError),
    ],
)
def test_bad_construction(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        PullLedger(**kwargs)
