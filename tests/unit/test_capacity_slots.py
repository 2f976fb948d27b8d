"""The capacity state of ``serve_calls`` alone (sans-IO): slots reserved before a claim,
notifications held at capacity, expired and skipped ones counted."""

from __future__ import annotations

import logging
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telcoflow_trio import ChannelType
from telcoflow_trio._capacity import ClaimStats, Slot, Slots
from telcoflow_trio._messages import SessionNotification


def note(session_id: str) -> SessionNotification:
    return SessionNotification(session_id, ChannelType.TELCO)


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("notify"), st.floats(0, 4)),
        st.tuples(st.sampled_from(["win", "lose", "release"]), st.integers(0, 7)),
        st.tuples(st.just("tick"), st.floats(0, 4)),
    ),
    max_size=60,
)


@given(
    limit=st.integers(1, 4),
    max_held=st.integers(0, 5),
    max_age=st.floats(0.5, 10),
    ops=OPS,
)
def test_slots_never_overclaim_release_once_keep_order_and_account_for_every_notification(
    limit: int, max_held: int, max_age: float, ops: list[tuple[str, float]]
) -> None:
    stats = ClaimStats()
    slots = Slots(stats, limit, max_held, max_age)
    now = 0.0
    notified = 0
    handed_out: list[Slot] = []
    live: list[Slot] = []  # reserved and not yet released
    released: list[Slot] = []
    won = lost = 0

    def take(ready: list[Slot]) -> None:
        handed_out.extend(ready)
        live.extend(ready)

    for op, arg in ops:
        if op == "notify":
            now += arg
            take(slots.notified(note(f"s-{notified}"), now))
            notified += 1
        elif op == "tick":
            now += arg
            take(slots.tick(now))
        elif live:
            slot = live[int(arg) % len(live)]
            if op == "win" and slot.state == "claiming":
                slots.won(slot)
                won += 1
            elif op == "lose":
                lost += slot.state == "claiming"
                slots.lost(slot)
                live.remove(slot)
                released.append(slot)
                take(slots.release(slot, now))
            elif op == "release":
                live.remove(slot)
                released.append(slot)
                take(slots.release(slot, now))
        # Never more than the limit reserved, and the state agrees with the model.
        assert len(slots.reserved) <= limit
        assert slots.reserved == set(live)
        # Nothing held may wait while a slot is free, nor be kept once it is too old.
        assert not (slots.held and len(live) < limit)
        assert now < slots.next_expiry() or not slots.held
        # Every notification is claimed, held, skipped or expired: none vanishes.
        held = len(slots.held)
        assert stats.held == held
        assert len(handed_out) + held + stats.skipped_at_capacity + stats.expired == notified
        assert (stats.won, stats.lost) == (won, lost)
        assert stats.active_calls == sum(s.state == "won" for s in live)
    for slot in released:  # each slot is released once: a second time is refused
        with pytest.raises(RuntimeError):
            slots.release(slot, now)
    while live:  # every call ends: what is held is claimed in turn, then nothing is left
        take(slots.release(live.pop(0), now))
    assert stats.active_calls == stats.held == 0
    # Claimed in arrival order (the ids count up), whatever was skipped or expired.
    order = [int(s.note.session_id[2:]) for s in handed_out]
    assert order == sorted(order)
    assert slots.reserved == set()


def test_without_a_limit_every_notification_is_claimed_at_once() -> None:
    stats = ClaimStats()
    slots = Slots(stats)
    ready = [slot for i in range(500) for slot in slots.notified(note(f"s-{i}"), 0.0)]
    assert len(ready) == 500
    assert (slots.held, slots.next_expiry()) == ([], math.inf)


def test_a_held_notification_seen_again_keeps_its_turn_and_takes_the_newer_news() -> None:
    slots = Slots(ClaimStats(), 1, 5, 10.0)
    [first] = slots.notified(note("a"), 0.0)
    assert slots.notified(note("b"), 1.0) == []
    assert slots.notified(note("c"), 2.0) == []
    resumed = SessionNotification("b", ChannelType.TELCO, activity="RESUME")
    assert slots.notified(resumed, 3.0) == []
    assert slots.held == [resumed, note("c")]
    assert slots.next_expiry() == 11.0  # its age runs from the first sighting
    [second] = slots.release(first, 4.0)
    assert second.note is resumed


def test_expired_and_skipped_notifications_are_counted_and_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats = ClaimStats()
    slots = Slots(stats, 1, 2, 5.0)
    caplog.set_level(logging.WARNING, "telcoflow_trio._capacity")
    [busy] = slots.notified(note("a"), 0.0)
    for i in range(10):
        slots.notified(note(f"x-{i}"), 1.0)
    assert stats.skipped_at_capacity == 8
    assert stats.held == 2
    skipped_lines = [r for r in caplog.records if "not claimed" in r.getMessage()]
    assert len(skipped_lines) == 1  # the first at once, the rest summed for later
    assert slots.tick(6.0) == []
    assert (stats.expired, stats.held) == (2, 0)
    assert sum("expired unclaimed" in r.getMessage() for r in caplog.records) == 1
    # The next line, a minute on, reports what was summed meanwhile.
    for name in ("y-1", "y-2", "y-3"):
        slots.notified(note(name), 62.0)
    assert "8 not claimed" in caplog.records[-1].getMessage()
    assert stats.skipped_at_capacity == 9
    assert slots.release(busy, 62.0)[0].note == note("y-1")


def test_closed_slots_claim_nothing_more() -> None:
    stats = ClaimStats()
    slots = Slots(stats, 1)
    [busy] = slots.notified(note("a"), 0.0)
    slots.notified(note("b"), 0.0)
    assert slots.close() == 1
    assert slots.release(busy, 1.0) == []
    assert slots.notified(note("c"), 1.0) == []
    assert stats.held == 0


def test_the_stats_are_read_only() -> None:
    stats = ClaimStats()
    with pytest.raises(AttributeError):
        stats.won = 3  # type: ignore[misc]
    assert "won=0" in repr(stats)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"limit": 0}, ValueError, "max_calls must be at least 1, got 0"),
        ({"limit": 1.5}, TypeError, "max_calls must be an int or None, got float"),
        ({"limit": True}, TypeError, "max_calls must be an int or None, got bool"),
        ({"max_held": -1}, ValueError, "max_held must be at least 0, got -1"),
        ({"max_held": "9"}, TypeError, "max_held must be an int, got str"),
        ({"max_age": 0}, ValueError, "max_held_age must be positive and finite, got 0"),
        ({"max_age": math.inf}, ValueError, "max_held_age must be positive and finite"),
        ({"max_age": None}, TypeError, "max_held_age must be a number, got NoneType"),
    ],
)
def test_bad_limits_name_the_argument(
    kwargs: dict[str, object], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words.replace("(", r"\(")):
        Slots(ClaimStats(), **kwargs)  # type: ignore[arg-type]
