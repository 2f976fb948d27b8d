"""The reconnect backoff resets only after a connection that stayed up (sans-I/O, on a fake
clock): a server that drops every connection right after setup is retried ever more slowly."""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from telcoflow_trio.protocol import timing
from telcoflow_trio.protocol.timing import Backoff


class _NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def _short_lived(backoff: Backoff, clock: float, up_for: float) -> tuple[float, float]:
    """One connection up for ``up_for`` seconds, then lost: (the next delay, the clock)."""
    backoff.connected(clock)
    clock += up_for
    assert not backoff.lost(clock)
    delay = backoff.next_delay()
    return delay, clock + delay


def test_connections_dropped_right_after_setup_back_off_to_the_cap() -> None:
    backoff = Backoff(rng=_NoJitter())
    clock, delays = 1000.0, []
    for _ in range(12):
        delay, clock = _short_lived(backoff, clock, up_for=0.05)
        delays.append(delay)
    assert delays[:4] == [0.5, 0.75, 1.125, 1.6875]
    assert delays[-1] == timing.BACKOFF_MAX_DELAY
    assert all(b >= a for a, b in itertools.pairwise(delays))


def test_a_connection_that_stayed_up_resets_the_delays() -> None:
    backoff = Backoff(rng=_NoJitter())
    clock = 0.0
    for _ in range(5):
        _, clock = _short_lived(backoff, clock, up_for=1.0)
    assert backoff.attempt == 5
    backoff.connected(clock)
    assert backoff.lost(clock + timing.BACKOFF_STABLE_AFTER)
    assert backoff.attempt == 0
    assert backoff.next_delay() == timing.BACKOFF_FIRST_DELAY


def test_the_threshold_is_inclusive_and_configurable() -> None:
    backoff = Backoff(rng=_NoJitter(), stable_after=2.0)
    backoff.next_delay()
    backoff.connected(10.0)
    assert not backoff.lost(11.999)
    assert backoff.attempt == 1
    backoff.connected(20.0)
    assert backoff.lost(22.0)
    assert backoff.attempt == 0


def test_a_failed_attempt_is_no_connection_and_resets_nothing() -> None:
    backoff = Backoff(rng=_NoJitter())
    backoff.next_delay()
    backoff.next_delay()
    # Refused or cut before setup.done: connected() was never called.
    assert not backoff.lost(1e9)
    assert backoff.up_since is None
    assert backoff.next_delay() == 0.5 * 1.5**2


def test_lost_forgets_the_connection() -> None:
    backoff = Backoff(rng=_NoJitter(), stable_after=1.0)
    backoff.connected(0.0)
    assert backoff.up_since == 0.0
    assert backoff.lost(5.0)
    # A second loss report (no new connection in between) is not another long connection.
    backoff.next_delay()
    assert not backoff.lost(100.0)
    assert backoff.attempt == 1


@given(
    st.lists(st.floats(min_value=0.0, max_value=60.0), min_size=1, max_size=40),
    st.integers(),
)
def test_delays_grow_until_a_stable_connection(lifetimes: list[float], seed: int) -> None:
    backoff = Backoff(rng=random.Random(seed))
    clock, expected_attempt = 0.0, 0
    for up_for in lifetimes:
        backoff.connected(clock)
        start, clock = clock, clock + up_for
        reset = backoff.lost(clock)
        assert reset == (clock - start >= timing.BACKOFF_STABLE_AFTER)
        if reset:
            expected_attempt = 0
        base = min(0.5 * 1.5**expected_attempt, timing.BACKOFF_MAX_DELAY)
        delay = backoff.next_delay()
        assert base <= delay <= base * (1 + timing.BACKOFF_JITTER)
        if base < timing.BACKOFF_MAX_DELAY:
            expected_attempt += 1
        clock += delay
