"""The reconnection backoff follows PROTOCOL.md: 0.5 s, ×1.5, at most 10 s, plus 0–20 %."""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from telcoflow_trio.protocol import Backoff


class _NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


class _MaxJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def test_sequence_without_jitter() -> None:
    backoff = Backoff(rng=_NoJitter())
    delays = [backoff.next_delay() for _ in range(12)]
    assert delays[:4] == [0.5, 0.75, 1.125, 1.6875]
    assert delays[-1] == 10.0
    assert all(b >= a for a, b in itertools.pairwise(delays))
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_full_jitter_adds_twenty_percent() -> None:
    backoff = Backoff(rng=_MaxJitter())
    assert backoff.next_delay() == 0.6
    for _ in range(50):
        last = backoff.next_delay()
    assert last == 12.0


@given(st.integers(min_value=0, max_value=10_000), st.integers())
def test_delays_stay_in_bounds(failures: int, seed: int) -> None:
    backoff = Backoff(rng=random.Random(seed))
    for _ in range(min(failures, 200)):
        backoff.next_delay()
    delay = backoff.next_delay()
    assert 0.5 <= delay <= 12.0
