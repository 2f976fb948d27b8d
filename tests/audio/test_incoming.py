"""Incoming audio: one byte budget per call, channels nobody reads hold nothing, drops counted.

The property test drives :class:`IncomingAudio` with random sequences of deliveries, stream
opens, clones, closes, non-blocking receives and waiting receives (tasks parked in
``receive``, some cancelled), inside one trio run, letting every task run to a block after
each step, and checks every step against a plain model: which chunk each reader gets, what is
held on each channel, and every counter, to the byte.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import math
import re
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from telcoflow_trio import WSSCallClosedError
from telcoflow_trio._config import CallAudioConfig
from telcoflow_trio._transport import MemoryConnector
from telcoflow_trio._voice_connection import VoiceConnection
from telcoflow_trio.audio import AudioStream, IncomingAudio, IncomingReceiver, SendAudioBuffer
from telcoflow_trio.audio._incoming import CHUNK_CHARGE, DEFAULT_CAPACITY

LOGGER = "telcoflow_trio.audio._incoming"
DEADLINE = 60.0  # virtual seconds (autojump clock): a lost wake-up fails at once


def bounded(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Runs the test on an autojump clock under a deadline: a reader never woken fails it
    at once instead of hanging it."""

    @functools.wraps(test)
    async def run(*args: Any, autojump_clock: trio.testing.MockClock, **kwargs: Any) -> None:
        with trio.fail_after(DEADLINE):
            await test(*args, **kwargs)

    # pytest-trio runs a test on the clock fixture it is given: ask for one.
    signature = inspect.signature(test)
    clock = inspect.Parameter("autojump_clock", inspect.Parameter.KEYWORD_ONLY)
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), clock]
    )
    return run


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drain(receiver: IncomingReceiver) -> list[bytes]:
    chunks = []
    while True:
        try:
            chunks.append(receiver.receive_nowait())
        except trio.WouldBlock:
            return chunks


def check_books(incoming: IncomingAudio) -> None:
    c = incoming.counters()
    assert c.received_bytes == c.read_bytes + c.queued_bytes + c.dropped_bytes + c.unread_bytes
    assert incoming.used_bytes == c.queued_bytes + CHUNK_CHARGE * c.queued_chunks
    assert incoming.used_bytes <= incoming.capacity


# ── the model ───────────────────────────────────────────────────────────────────────────


@attrs.define
class Waiter:
    receiver: int
    scope: trio.CancelScope
    outcome: bytes | type[BaseException] | None = None


@attrs.define
class Model:
    capacity: int
    held: dict[int, list[bytes]] = attrs.field(factory=lambda: {0: []})
    readers: dict[int, int] = attrs.field(factory=dict)
    closed: bool = False
    received: int = 0
    read: int = 0
    dropped: int = 0
    unread: int = 0

    @property
    def used(self) -> int:
        return sum(len(c) + CHUNK_CHARGE for chunks in self.held.values() for c in chunks)

    def deliver(self, channel_id: int, pcm: bytes) -> None:
        n = len(pcm)
        if not n:
            return
        self.received += n
        if channel_id not in self.held or self.closed:
            self.unread += n
            return
        cost = n + CHUNK_CHARGE
        if cost > self.capacity:
            self._lose(channel_id, n)
            return
        while self.used + cost > self.capacity:
            # The channel holding the most bytes pays; a tie goes to the one held longest.
            victim = max(self.held, key=lambda ch: sum(map(len, self.held[ch])))
            self._lose(victim, len(self.held[victim].pop(0)))
        self.held[channel_id].append(pcm)

    def _lose(self, channel_id: int, n: int) -> None:
        if self.readers.get(channel_id, 0):
            self.dropped += n
        else:
            self.unread += n

    def open(self, channel_id: int) -> None:
        self.held.setdefault(channel_id, [])
        self.readers[channel_id] = self.readers.get(channel_id, 0) + 1

    def release(self, channel_id: int) -> None:
        self.readers[channel_id] -= 1
        if not self.readers[channel_id] and (self.closed or channel_id != 0):
            self._retire(channel_id)

    def _retire(self, channel_id: int) -> None:
        self.unread += sum(map(len, self.held.pop(channel_id)))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for channel_id in list(self.held):
            if not self.readers.get(channel_id, 0):
                self._retire(channel_id)

    def take(self, channel_id: int) -> bytes | type[BaseException]:
        chunks = self.held.get(channel_id, [])
        if chunks:
            chunk = chunks.pop(0)
            self.read += len(chunk)
            return chunk
        return trio.EndOfChannel if self.closed else trio.WouldBlock


CHANNELS = st.integers(0, 2)
RECEIVER = st.integers(0, 15)
DELIVER = st.tuples(st.just("deliver"), CHANNELS, st.integers(0, 400))
OPS = st.lists(
    st.one_of(
        DELIVER,
        DELIVER,
        DELIVER,
        st.tuples(st.just("stream"), CHANNELS),
        st.tuples(st.just("clone"), RECEIVER),
        st.tuples(st.just("close_receiver"), RECEIVER),
        st.tuples(st.just("receive_nowait"), RECEIVER),
        st.tuples(st.just("receive_nowait"), RECEIVER),
        st.tuples(st.just("wait"), RECEIVER),
        st.tuples(st.just("wait"), RECEIVER),
        st.tuples(st.just("cancel"), RECEIVER),
    ),
    min_size=30,
    max_size=90,
)


@given(capacity=st.integers(CHUNK_CHARGE + 1, 1200), ops=OPS, close_at=st.integers(0, 120))
def test_budget_readers_and_counters_follow_the_model(
    capacity: int, ops: list[tuple[Any, ...]], close_at: int
) -> None:
    ops = [*ops[:close_at], ("close",), *ops[close_at:]]

    async def main() -> None:
        incoming = IncomingAudio(capacity, clock=FakeClock())
        model = Model(capacity)
        receivers: list[tuple[IncomingReceiver, int]] = []
        open_receivers: set[int] = set()
        waiters: list[Waiter] = []
        serial = 0

        async def wait(waiter: Waiter) -> None:
            with waiter.scope:
                try:
                    waiter.outcome = await receivers[waiter.receiver][0].receive()
                except (trio.EndOfChannel, trio.ClosedResourceError) as exc:
                    waiter.outcome = type(exc)
            if waiter.scope.cancelled_caught:
                waiter.outcome = trio.Cancelled

        def pending(channel_id: int) -> list[Waiter]:
            return [
                w for w in waiters if w.outcome is None and receivers[w.receiver][1] == channel_id
            ]

        async with trio.open_nursery() as nursery:
            for op in ops:
                kind = op[0]
                before = {id(w): w.outcome for w in waiters}
                if kind == "deliver":
                    _, channel_id, size = op
                    serial += 1
                    pcm = bytes([serial % 256]) * size
                    waiting = pending(channel_id) if not model.closed else []
                    model.deliver(channel_id, pcm)
                    incoming.deliver(channel_id, pcm)
                    if waiting and model.held.get(channel_id):
                        expected = model.take(channel_id)
                    else:
                        expected = None
                elif kind == "stream":
                    model.open(op[1])
                    receivers.append((incoming.stream(op[1]), op[1]))
                    open_receivers.add(len(receivers) - 1)
                elif not receivers and kind != "close":
                    continue
                elif kind == "clone":
                    i = op[1] % len(receivers)
                    receiver, channel_id = receivers[i]
                    if i in open_receivers:
                        model.open(channel_id)
                        receivers.append((receiver.clone(), channel_id))
                        open_receivers.add(len(receivers) - 1)
                    else:
                        with pytest.raises(trio.ClosedResourceError):
                            receiver.clone()
                elif kind == "close_receiver":
                    i = op[1] % len(receivers)
                    receiver, channel_id = receivers[i]
                    if i in open_receivers:
                        open_receivers.discard(i)
                        model.release(channel_id)
                    receiver.close()  # idempotent
                elif kind == "receive_nowait":
                    i = op[1] % len(receivers)
                    receiver, channel_id = receivers[i]
                    if i not in open_receivers:
                        with pytest.raises(trio.ClosedResourceError):
                            receiver.receive_nowait()
                    else:
                        want = model.take(channel_id)
                        if isinstance(want, bytes):
                            assert receiver.receive_nowait() is want
                        else:
                            with pytest.raises(want):
                                receiver.receive_nowait()
                elif kind == "wait":
                    i = op[1] % len(receivers)
                    channel_id = receivers[i][1]
                    if i not in open_receivers or model.held.get(channel_id) or model.closed:
                        continue  # answered at once: receive_nowait covers it
                    waiter = Waiter(i, trio.CancelScope())
                    waiters.append(waiter)
                    nursery.start_soon(wait, waiter)
                elif kind == "cancel":
                    live = [w for w in waiters if w.outcome is None]
                    if live:
                        live[op[1] % len(live)].scope.cancel()
                else:
                    model.close()
                    incoming.close()
                await trio.testing.wait_all_tasks_blocked()

                # Which waiting tasks finished in this step, and with what.
                done = [w for w in waiters if before.get(id(w)) is None and w.outcome is not None]
                if kind == "deliver":
                    got = [w.outcome for w in done]
                    assert got == ([expected] if expected is not None else [])
                    if expected is not None:
                        assert receivers[done[0].receiver][1] == op[1]
                elif kind == "close_receiver":
                    i = op[1] % len(receivers)
                    assert all(w.receiver == i for w in done)
                    assert all(w.outcome is trio.ClosedResourceError for w in done)
                elif kind == "cancel":
                    assert all(w.outcome is trio.Cancelled for w in done)
                elif kind == "close":
                    assert all(w.outcome is trio.EndOfChannel for w in done)
                    assert not [w for w in waiters if w.outcome is None]
                else:
                    assert not done

                c = incoming.counters()
                assert (c.received_bytes, c.read_bytes, c.dropped_bytes, c.unread_bytes) == (
                    model.received,
                    model.read,
                    model.dropped,
                    model.unread,
                )
                assert incoming.held_channels == set(model.held)
                for channel_id, chunks in model.held.items():
                    assert incoming.queued_bytes_on(channel_id) == sum(map(len, chunks))
                    if chunks:
                        assert not pending(channel_id)  # nobody waits while audio is held
                assert incoming.used_bytes == model.used
                check_books(incoming)
            for waiter in waiters:
                waiter.scope.cancel()

    trio.run(main)


# ── the budget and the drop rule ────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"capacity": "1"}, TypeError, "capacity must be an int"),
        ({"capacity": True}, TypeError, "capacity must be an int, got bool"),
        ({"capacity": CHUNK_CHARGE}, ValueError, "capacity must be more than"),
        ({"warn_interval": "1"}, TypeError, "warn_interval must be a number"),
        ({"warn_interval": -1}, ValueError, "warn_interval must be finite and not negative"),
        ({"warn_interval": math.nan}, ValueError, "warn_interval"),
        ({"clock": 1.0}, TypeError, "clock must be callable"),
        ({"label": 3}, TypeError, "label must be a str"),
    ],
)
def test_bad_arguments_are_refused_by_name(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        IncomingAudio(**kwargs)


@pytest.mark.parametrize(
    ("config", "seconds", "error", "words"),
    [
        (16000, 10, TypeError, "config must be a CallAudioConfig"),
        (CallAudioConfig(), "10", TypeError, "seconds must be a number"),
        (CallAudioConfig(), 0, ValueError, "seconds must be positive"),
        (CallAudioConfig(), math.inf, ValueError, "seconds must be positive and finite"),
    ],
)
def test_bad_config_arguments_are_refused_by_name(
    config: Any, seconds: Any, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        IncomingAudio.from_config(config, seconds)


@pytest.mark.parametrize("sample_rate", [8000, 16000, 24000])
def test_from_config_holds_ten_seconds_of_20ms_frames(sample_rate: int) -> None:
    config = CallAudioConfig(sample_rate=sample_rate)
    incoming = IncomingAudio.from_config(config)
    frame = bytes(config.bytes_for(0.02))
    for _ in range(500):
        incoming.deliver(0, frame)
    assert incoming.queued_bytes == config.bytes_for(10)
    assert incoming.unread_bytes == 0
    incoming.deliver(0, frame)
    assert incoming.queued_bytes == config.bytes_for(10)
    assert incoming.unread_bytes == len(frame)  # channel 0 had no reader yet
    assert (
        IncomingAudio.from_config(CallAudioConfig(sample_rate=24000)).capacity <= DEFAULT_CAPACITY
    )


def test_oldest_audio_is_dropped_first_and_counted() -> None:
    incoming = IncomingAudio(10 * (100 + CHUNK_CHARGE))
    reader = incoming.stream(0)
    chunks = [bytes([i]) * 100 for i in range(25)]
    for chunk in chunks:
        incoming.deliver(0, chunk)
    assert drain(reader) == chunks[15:]
    assert incoming.dropped_bytes == 1500
    assert incoming.unread_bytes == 0
    assert incoming.counters().read_bytes == 1000
    check_books(incoming)


def test_the_reader_furthest_behind_pays() -> None:
    incoming = IncomingAudio(20 * (100 + CHUNK_CHARGE))
    prompt, stalled = incoming.stream(0), incoming.stream(3)
    for i in range(100):
        incoming.deliver(3, bytes([i]) * 100)
        incoming.deliver(0, bytes([i]) * 100)
        assert prompt.receive_nowait() == bytes([i]) * 100
    # Channel 0's chunk, while it waits for its prompt reader, also costs channel 3 one.
    assert incoming.queued_bytes_on(3) == 1900
    assert drain(stalled) == [bytes([i]) * 100 for i in range(81, 100)]
    assert incoming.dropped_bytes == 8100
    check_books(incoming)


def test_the_channel_holding_most_pays_even_when_another_holds_older_audio() -> None:
    incoming = IncomingAudio(3 * (300 + CHUNK_CHARGE))
    stalled = incoming.stream(3)
    incoming.deliver(0, b"o" * 100)  # the oldest audio: channel 0, kept for a later reader
    incoming.deliver(3, b"a" * 300)
    incoming.deliver(3, b"b" * 300)
    incoming.deliver(3, b"c" * 300)  # channel 3 holds the most: its oldest chunk goes
    assert incoming.queued_bytes_on(0) == 100
    assert drain(stalled) == [b"b" * 300, b"c" * 300]
    assert (incoming.dropped_bytes, incoming.unread_bytes) == (300, 0)


def test_a_chunk_bigger_than_the_budget_is_dropped_alone() -> None:
    incoming = IncomingAudio(1000)
    reader = incoming.stream(0)
    incoming.deliver(0, b"a" * 100)
    incoming.deliver(0, b"b" * 1000)
    assert drain(reader) == [b"a" * 100]
    assert incoming.dropped_bytes == 1000


def test_a_flood_of_tiny_frames_is_bounded_by_the_chunk_charge() -> None:
    incoming = IncomingAudio(100 * (1 + CHUNK_CHARGE))
    for _ in range(10_000):
        incoming.deliver(0, b"x")
    assert incoming.counters().queued_chunks == 100


# ── who is read, who holds ──────────────────────────────────────────────────────────────


def test_channel_0_is_held_before_any_stream_opens() -> None:
    incoming = IncomingAudio()
    chunks = [bytes([i]) * 640 for i in range(5)]
    for chunk in chunks:
        incoming.deliver(0, chunk)
    assert incoming.queued_bytes == 5 * 640
    assert drain(incoming.stream()) == chunks
    assert incoming.counters().read_bytes == 5 * 640


def test_channels_nobody_reads_hold_nothing() -> None:
    incoming = IncomingAudio()
    for channel_id in range(1, 256):
        incoming.deliver(channel_id, bytes(640))
    assert incoming.queued_bytes == 0
    assert incoming.unread_bytes == 255 * 640
    assert incoming.held_channels == {0}


def test_a_channel_is_held_while_a_stream_on_it_is_open() -> None:
    incoming = IncomingAudio()
    incoming.deliver(2, b"before")
    first = incoming.stream(2)
    second = first.clone()
    incoming.deliver(2, b"held")
    first.close()
    incoming.deliver(2, b"still held")
    assert incoming.queued_bytes_on(2) == len(b"held") + len(b"still held")
    second.close()  # the last one: what it held goes, later audio is not kept
    incoming.deliver(2, b"after")
    assert incoming.queued_bytes == 0
    assert incoming.held_channels == {0}
    assert incoming.unread_bytes == len(b"beforeheldstill heldafter")
    assert drain(incoming.stream(2)) == []  # a new stream starts afresh


def test_channel_0_stays_held_after_its_streams_close() -> None:
    incoming = IncomingAudio()
    reader = incoming.stream()
    reader.close()
    incoming.deliver(0, b"for the next reader")
    assert drain(incoming.stream()) == [b"for the next reader"]


def test_a_server_flooding_every_channel_is_held_to_the_budget() -> None:
    # The attack of issue 13: 64 KiB frames on channels 1..255 grew an agent to 993 MB.
    incoming = IncomingAudio(DEFAULT_CAPACITY)
    readers = [incoming.stream(0), incoming.stream(7)]  # some channels are read, slowly
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(8):
            for channel_id in range(256):
                incoming.deliver(channel_id, bytes(65536))  # a new object, as a socket makes
                assert incoming.used_bytes <= incoming.capacity
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < incoming.capacity + 2 * 65536 + 64 * 1024
    c = incoming.counters()
    assert c.received_bytes == 8 * 256 * 65536
    assert c.unread_bytes == 8 * 254 * 65536
    assert c.dropped_bytes == 16 * 65536 - c.queued_bytes
    assert incoming.held_channels == {0, 7}
    for reader in readers:
        reader.close()


# ── logging ─────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("frame", [640, 47_999, 48_000, 65_536, 600_000])
def test_the_too_slow_warning_is_rate_limited_whatever_the_frame_size(
    caplog: pytest.LogCaptureFixture, frame: int
) -> None:
    clock = FakeClock()
    incoming = IncomingAudio(100_000, warn_interval=10.0, clock=clock, label="call c-1")
    reader = incoming.stream()
    times: list[float] = []
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for step in range(600):  # 60 s, never read
            clock.now = step * 0.1
            before = len(caplog.records)
            incoming.deliver(0, bytes(frame))
            times.extend([clock.now] * (len(caplog.records) - before))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert incoming.dropped_bytes > 0
    assert 1 <= len(warnings) <= 6
    assert all(b - a >= 10.0 for a, b in itertools.pairwise(times))
    # Each line has the bytes dropped since the previous one and in all, and the call.
    reported = 0
    for record in warnings:
        message = record.getMessage()
        assert message.startswith("call c-1: incoming audio read too slowly")
        since, total = map(
            int, re.findall(r"dropped (\d+) bytes since .*?, (\d+) in all", message)[0]
        )
        reported += since
        assert total == reported
    assert reported <= incoming.dropped_bytes
    reader.close()


def test_unread_audio_is_noted_at_debug_at_most_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    incoming = IncomingAudio(warn_interval=5.0, clock=clock)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for step in range(100):
            clock.now = step * 0.1
            for channel_id in range(1, 256):
                incoming.deliver(channel_id, bytes(65536))
    notes = [r for r in caplog.records if "nobody reads" in r.getMessage()]
    assert len(notes) == 2
    assert all(r.levelno == logging.DEBUG for r in notes)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# ── readers ─────────────────────────────────────────────────────────────────────────────


@bounded
async def test_a_waiting_reader_gets_the_next_chunk() -> None:
    incoming = IncomingAudio()
    reader = incoming.stream(1)
    got: list[bytes] = []

    async def read() -> None:
        got.append(await reader.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        incoming.deliver(1, b"hello")
    assert got == [b"hello"]
    assert incoming.queued_bytes == 0
    assert incoming.counters().read_bytes == 5


@bounded
async def test_a_cancelled_receive_takes_nothing() -> None:
    incoming = IncomingAudio()
    reader = incoming.stream()
    incoming.deliver(0, b"kept")
    with trio.CancelScope() as scope:
        scope.cancel()
        await reader.receive()
    assert scope.cancelled_caught
    assert reader.receive_nowait() == b"kept"


@bounded
async def test_close_lets_readers_drain_then_ends_them() -> None:
    incoming = IncomingAudio()
    reader, idle = incoming.stream(0), incoming.stream(5)
    incoming.deliver(0, b"one")
    incoming.deliver(0, b"two")
    outcome: list[object] = []

    async def wait_on_idle() -> None:
        try:
            await idle.receive()
        except trio.EndOfChannel:
            outcome.append("end")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait_on_idle)
        await trio.testing.wait_all_tasks_blocked()
        incoming.close()
        incoming.close()  # idempotent
    assert outcome == ["end"]
    incoming.deliver(0, b"late")
    assert incoming.unread_bytes == 4
    assert [chunk async for chunk in reader] == [b"one", b"two"]
    with pytest.raises(trio.EndOfChannel):
        reader.receive_nowait()
    assert [chunk async for chunk in incoming.stream(9)] == []
    await reader.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await reader.receive()
    with pytest.raises(trio.ClosedResourceError):
        reader.clone()
    check_books(incoming)


def test_close_drops_what_channels_without_a_reader_hold() -> None:
    incoming = IncomingAudio()
    incoming.deliver(0, b"never read")
    incoming.close()
    assert incoming.queued_bytes == 0
    assert incoming.unread_bytes == len(b"never read")
    assert incoming.closed


@bounded
async def test_clones_split_the_chunks_and_close_alone() -> None:
    incoming = IncomingAudio()
    first = incoming.stream(4)
    second = first.clone()
    got: dict[str, list[bytes]] = {"first": [], "second": []}

    async def read(name: str, receiver: IncomingReceiver) -> None:
        async for chunk in receiver:
            got[name].append(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read, "first", first)
        nursery.start_soon(read, "second", second)
        await trio.testing.wait_all_tasks_blocked()
        for i in range(10):
            incoming.deliver(4, bytes([i]))
            await trio.testing.wait_all_tasks_blocked()
        incoming.close()
    assert sorted(got["first"] + got["second"]) == [bytes([i]) for i in range(10)]
    assert got["first"] and got["second"]


@bounded
async def test_closing_a_receiver_wakes_only_its_own_waiters() -> None:
    incoming = IncomingAudio()
    first = incoming.stream(4)
    second = first.clone()
    outcomes: dict[str, object] = {}

    async def read(name: str, receiver: IncomingReceiver) -> None:
        try:
            outcomes[name] = await receiver.receive()
        except trio.ClosedResourceError:
            outcomes[name] = "closed"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read, "first", first)
        nursery.start_soon(read, "second", second)
        await trio.testing.wait_all_tasks_blocked()
        await first.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert outcomes == {"first": "closed"}
        incoming.deliver(4, b"for the second")
    assert outcomes == {"first": "closed", "second": b"for the second"}


# ── AudioStream over IncomingAudio ──────────────────────────────────────────────────────


class Opener:
    def __init__(self, incoming: IncomingAudio, channel_id: int = 0) -> None:
        self.incoming = incoming
        self.channel_id = channel_id
        self.calls = 0
        self.gate: trio.Event | None = None
        self.error: Exception | None = None

    async def __call__(self) -> IncomingReceiver:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        else:
            await trio.lowlevel.checkpoint()
        if self.error is not None:
            raise self.error
        return self.incoming.stream(self.channel_id)


@bounded
async def test_audio_stream_opens_on_first_receive_and_reads_the_channel() -> None:
    incoming = IncomingAudio()
    opener = Opener(incoming)
    stream = AudioStream(0, opener)
    assert opener.calls == 0
    assert "not yet opened" in repr(stream)
    with pytest.raises(trio.WouldBlock):
        stream.receive_nowait()
    incoming.deliver(0, b"early")  # channel 0 is held before the stream opens
    assert await stream.receive() == b"early"
    assert await stream.open() is stream  # already open: a checkpoint, no second receiver
    assert opener.calls == 1
    incoming.close()
    assert [chunk async for chunk in stream] == []


@bounded
async def test_concurrent_opens_keep_one_receiver() -> None:
    incoming = IncomingAudio()
    opener = Opener(incoming, channel_id=3)
    opener.gate = trio.Event()
    stream = AudioStream(3, opener)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.open)
        nursery.start_soon(stream.open)
        await trio.testing.wait_all_tasks_blocked()
        opener.gate.set()
    assert opener.calls == 2
    twin = stream.clone()
    await stream.aclose()
    assert 3 in incoming.held_channels  # the twin still reads it
    await twin.aclose()
    assert 3 not in incoming.held_channels  # the spare receiver was closed, not leaked


@bounded
async def test_closing_a_stream_while_it_opens_closes_its_receiver() -> None:
    incoming = IncomingAudio()
    opener = Opener(incoming, channel_id=2)
    opener.gate = trio.Event()
    stream = AudioStream(2, opener)
    outcome: list[object] = []

    async def open_it() -> None:
        try:
            await stream
        except trio.ClosedResourceError:
            outcome.append("closed")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(open_it)
        await trio.testing.wait_all_tasks_blocked()
        await stream.aclose()
        opener.gate.set()
    assert outcome == ["closed"]
    assert 2 not in incoming.held_channels
    with pytest.raises(trio.ClosedResourceError):
        await stream.open()


@bounded
async def test_a_stream_of_a_call_that_is_over_ends_quietly() -> None:
    opener = Opener(IncomingAudio())
    opener.error = WSSCallClosedError()
    assert [chunk async for chunk in AudioStream(0, opener)] == []


# ── on the voice plane ──────────────────────────────────────────────────────────────────


@bounded
async def test_a_voice_connection_holds_a_flood_on_every_channel_to_the_call_budget() -> None:
    # The attack of issue 13 through the voice reader, over the in-memory transport.
    connector = MemoryConnector()
    incoming = IncomingAudio(100_000)
    connection = VoiceConnection(
        "ws://unit.test:9/v1/voice/call-1",
        "tok-unit",
        None,
        SendAudioBuffer(1024),
        lambda event: None,
        incoming=incoming,
        connect=connector,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(connection.run)
        server = await connector.accept()
        reader = incoming.stream(7)
        for _ in range(4):
            for channel_id in range(256):
                await server.socket.send(bytes([channel_id]) + bytes(65536))
        await trio.testing.wait_all_tasks_blocked()
        c = incoming.counters()
        assert c.received_bytes == 4 * 256 * 65536
        assert c.unread_bytes >= 4 * 254 * 65536
        assert incoming.used_bytes <= incoming.capacity
        assert incoming.held_channels == {0, 7}
        await connection.aclose()
    assert incoming.closed
    assert [len(chunk) async for chunk in reader] == [65536]  # what was held, then the end
