"""The caller's audio: one byte budget per call, and the receive channels that read it.

:class:`IncomingAudio` holds one call's incoming PCM by channel id (0 is the primary, mixed
leg; 1, 2, ... the isolated legs). The voice plane's reader hands it every binary frame with
:meth:`IncomingAudio.deliver`, which never blocks and never grows memory past the budget:

- **One budget for all channels.** Each chunk held costs its length plus
  :data:`CHUNK_CHARGE` bytes (what Python spends on a small ``bytes`` and its queue slot,
  so a flood of tiny frames cannot multiply the memory); the total never exceeds
  ``capacity``. When a chunk does not fit, the channel holding the most bytes (the reader
  furthest behind; on a tie, the channel held longest) gives up its oldest chunk, again
  until it fits. A chunk bigger than the whole budget is dropped itself.
- **Channels nobody reads hold nothing.** A channel is held while a stream on it is open
  (:meth:`IncomingAudio.stream`); when its last stream closes, what it held is dropped.
  Channel 0 is held from the start and for as long as the call lasts, so that the caller's
  first words, spoken between ``answer()`` and the first ``audio_stream()``, are not lost.
- **Every dropped byte is counted**: as ``dropped_bytes`` when its channel had an open
  stream (the reader was too slow), else as ``unread_bytes`` (a channel nobody opened,
  channel 0 while no stream is open on it, audio left or arriving after the call ended).
  The first is a WARNING, the second a DEBUG line, each at most once per
  ``warn_interval`` seconds per call, with the bytes since the last line and in all.

:class:`IncomingReceiver` is one reader of one channel, a trio receive channel; the
lazily opened :class:`~telcoflow_trio.audio.AudioStream` that ``call.audio_stream()``
returns wraps one (:mod:`._stream`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Final

import trio

from .._config import CallAudioConfig
from .._ratelimit import RateLimit
from .._validate import check_callable, check_channel_id, check_finite, check_int, check_type
from ._counters import IncomingCounters

__all__ = [
    "CHUNK_CHARGE",
    "DEFAULT_CAPACITY",
    "DEFAULT_SECONDS",
    "DEFAULT_WARN_INTERVAL",
    "IncomingAudio",
    "IncomingCounters",
    "IncomingReceiver",
]

logger = logging.getLogger(__name__)

PRIMARY_CHANNEL: Final = 0
CHUNK_CHARGE: Final = 64
"""Bytes of budget each held chunk costs beyond its PCM."""
DEFAULT_SECONDS: Final = 10.0
"""Seconds of 20 ms frames that :meth:`IncomingAudio.from_config` budgets for."""
DEFAULT_CAPACITY: Final = 480_000 + 500 * CHUNK_CHARGE
"""10 s of 20 ms frames at 24 kHz, the highest sample rate (512,000 bytes)."""
DEFAULT_WARN_INTERVAL: Final = 10.0
"""Seconds between two log lines about dropped audio, per call and per kind."""
FRAMES_PER_SECOND: Final = 50


class _Channel:
    __slots__ = ("channel_id", "chunks", "queued", "readers", "waiting")

    def __init__(self, channel_id: int) -> None:
        self.channel_id: int = channel_id
        self.chunks: deque[bytes] = deque()
        self.queued: int = 0
        self.readers: int = 0
        # Receivers' tasks waiting for a chunk, oldest first: a ParkingLot's park and
        # unpark, without its generator and bookkeeping on every chunk delivered.
        self.waiting: list[trio.lowlevel.Task] = []

    async def wait(self) -> None:
        """Until :meth:`wake_one` or :meth:`wake_all` picks this task (or it is cancelled)."""
        task = trio.lowlevel.current_task()
        waiting = self.waiting
        waiting.append(task)

        def abort(_: object) -> trio.lowlevel.Abort:
            waiting.remove(task)  # still there: woken tasks are not aborted
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def wake_one(self) -> None:
        trio.lowlevel.reschedule(self.waiting.pop(0))

    def wake_all(self) -> None:
        waiting = self.waiting
        while waiting:
            trio.lowlevel.reschedule(waiting.pop(0))


class IncomingAudio:
    """One call's incoming audio, held per channel id within one byte budget (module docs).

    ``capacity`` bounds the bytes held for all channels together (PCM plus
    ``CHUNK_CHARGE`` per chunk). ``clock`` (seconds, monotonic) times the rate limit of
    the log lines; ``label`` (e.g. the call id) starts each of them.
    """

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        warn_interval: float = DEFAULT_WARN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        label: str = "call",
    ) -> None:
        self._capacity = check_int("capacity", capacity)
        if self._capacity <= CHUNK_CHARGE:
            raise ValueError(f"capacity must be more than {CHUNK_CHARGE} bytes, got {capacity}")
        interval = check_finite("warn_interval", warn_interval, positive=False)
        check_callable("clock", clock)
        self._label = check_type("label", label, str, "a str")
        # Only channels someone may read are here: channel 0, and those with open streams.
        self._channels: dict[int, _Channel] = {PRIMARY_CHANNEL: _Channel(PRIMARY_CHANNEL)}
        self._closed = False
        self._used = 0  # queued + CHUNK_CHARGE * chunks: what the budget bounds
        self._queued = 0
        self._chunks = 0
        self._received = 0
        self._read = 0
        self._dropped = 0
        self._unread = 0
        self._slow_log = RateLimit(interval, clock)
        self._unread_log = RateLimit(interval, clock)

    @classmethod
    def from_config(
        cls,
        config: CallAudioConfig,
        seconds: float = DEFAULT_SECONDS,
        *,
        warn_interval: float = DEFAULT_WARN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        label: str = "call",
    ) -> IncomingAudio:
        """A budget of ``seconds`` of 20 ms frames at the call's byte rate."""
        check_type("config", config, CallAudioConfig, "a CallAudioConfig")
        seconds = check_finite("seconds", seconds, positive=True)
        frames = math.ceil(seconds * FRAMES_PER_SECOND)
        capacity = config.bytes_for(seconds) + frames * CHUNK_CHARGE
        return cls(capacity, warn_interval=warn_interval, clock=clock, label=label)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        held = sorted(self._channels)
        return f"<IncomingAudio {self._used}/{self._capacity} bytes used, channels {held} {state}>"

    # ── counters ────────────────────────────────────────────────────────────────────────

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def used_bytes(self) -> int:
        """What the budget bounds: queued PCM plus ``CHUNK_CHARGE`` per chunk."""
        return self._used

    @property
    def queued_bytes(self) -> int:
        """PCM held now for readers, all channels together."""
        return self._queued

    @property
    def dropped_bytes(self) -> int:
        """PCM dropped because the readers fell behind."""
        return self._dropped

    @property
    def unread_bytes(self) -> int:
        """PCM dropped because nobody read its channel, or the call was over."""
        return self._unread

    @property
    def held_channels(self) -> frozenset[int]:
        """Channels whose audio is kept for a reader now."""
        return frozenset(self._channels)

    def queued_bytes_on(self, channel_id: int) -> int:
        """PCM held now on one channel."""
        channel = self._channels.get(channel_id)
        return 0 if channel is None else channel.queued

    def counters(self) -> IncomingCounters:
        return IncomingCounters(
            received_bytes=self._received,
            read_bytes=self._read,
            queued_bytes=self._queued,
            queued_chunks=self._chunks,
            dropped_bytes=self._dropped,
            unread_bytes=self._unread,
        )

    # ── the voice plane's side ──────────────────────────────────────────────────────────

    def deliver(self, channel_id: int, pcm: bytes) -> None:
        """Hold a chunk received on ``channel_id`` for its readers; never blocks.

        Makes room by dropping (see the module docs); audio for a channel nobody reads, or
        arriving after :meth:`close`, is dropped and counted as unread. Takes time in the
        number of held channels, which only the application raises, not the server.
        """
        n = len(pcm)
        if not n:
            return
        self._received += n
        channel = self._channels.get(channel_id)
        if channel is None or self._closed:
            self._count_unread(n)
            return
        cost = n + CHUNK_CHARGE
        if self._used + cost > self._capacity:
            if cost > self._capacity:
                self._count_dropped(channel, n)
                return
            self._make_room(cost)
        channel.chunks.append(pcm)
        channel.queued += n
        self._queued += n
        self._used += cost
        self._chunks += 1
        if channel.waiting:
            channel.wake_one()

    def _make_room(self, cost: int) -> None:
        slow = unread = 0
        while self._used + cost > self._capacity:
            victim = max(self._channels.values(), key=_queued_of)
            n = len(self._pop(victim))
            if victim.readers:
                slow += n
            else:
                unread += n
        if slow:
            self._dropped += slow
            self._log_slow(slow)
        if unread:
            self._unread += unread
            self._log_unread(unread)

    def _pop(self, channel: _Channel) -> bytes:
        chunk = channel.chunks.popleft()
        n = len(chunk)
        channel.queued -= n
        self._queued -= n
        self._used -= n + CHUNK_CHARGE
        self._chunks -= 1
        return chunk

    def _count_dropped(self, channel: _Channel, n: int) -> None:
        if channel.readers:
            self._dropped += n
            self._log_slow(n)
        else:
            self._count_unread(n)

    def _count_unread(self, n: int) -> None:
        self._unread += n
        self._log_unread(n)

    def _log_slow(self, n: int) -> None:
        report = self._slow_log.add(n)
        if report:
            logger.warning(
                "%s: incoming audio read too slowly; dropped %d bytes since the last "
                "warning, %d in all (budget %d bytes)",
                self._label,
                report,
                self._dropped,
                self._capacity,
            )

    def _log_unread(self, n: int) -> None:
        report = self._unread_log.add(n)
        if report:
            logger.debug(
                "%s: incoming audio nobody reads; dropped %d bytes since the last note, %d in all",
                self._label,
                report,
                self._unread,
            )

    def close(self) -> None:
        """The call is over: readers get what is queued, then ``EndOfChannel``. Idempotent.

        Channels without an open stream (channel 0 included) drop what they hold.
        """
        if self._closed:
            return
        self._closed = True
        for channel in list(self._channels.values()):
            if not channel.readers:
                self._retire(channel)
            channel.wake_all()
        if self._dropped or self._unread:
            logger.debug(
                "%s: incoming audio closed; %d bytes dropped (read too slowly), %d unread",
                self._label,
                self._dropped,
                self._unread,
            )

    def _retire(self, channel: _Channel) -> None:
        if self._channels.get(channel.channel_id) is channel:
            del self._channels[channel.channel_id]
        n = channel.queued
        self._queued -= n
        self._used -= n + CHUNK_CHARGE * len(channel.chunks)
        self._chunks -= len(channel.chunks)
        channel.chunks.clear()
        channel.queued = 0
        if n:
            self._count_unread(n)

    # ── the readers' side ───────────────────────────────────────────────────────────────

    def stream(self, channel_id: int = PRIMARY_CHANNEL) -> IncomingReceiver:
        """A new receive channel of one channel id's chunks; the channel is held while open.

        Several open receivers of one channel share (split) its chunks, each chunk going to
        one of them, as trio channel clones do. Close each one when done.
        """
        channel_id = check_channel_id(channel_id)
        channel = self._channels.get(channel_id)
        if channel is None:
            channel = self._channels[channel_id] = _Channel(channel_id)
        return IncomingReceiver(self, channel)

    def _take(self, channel: _Channel) -> bytes:
        chunk = self._pop(channel)
        self._read += len(chunk)
        return chunk

    def _release(self, channel: _Channel) -> None:
        channel.readers -= 1
        if not channel.readers and (self._closed or channel.channel_id != PRIMARY_CHANNEL):
            self._retire(channel)
        # Wakes the closed receiver's waiting tasks (the others look again and wait on).
        channel.wake_all()


def _queued_of(channel: _Channel) -> int:
    return channel.queued


class IncomingReceiver(trio.abc.ReceiveChannel[bytes]):
    """A receive channel of one channel id's incoming chunks (:meth:`IncomingAudio.stream`).

    Ends with ``EndOfChannel`` once the call is over and the channel is drained. Clones
    share the chunks; closing one leaves the others open.
    """

    def __init__(self, owner: IncomingAudio, channel: _Channel) -> None:
        self._owner = owner
        self._channel = channel
        self._closed = False
        channel.readers += 1

    @property
    def channel_id(self) -> int:
        return self._channel.channel_id

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<IncomingReceiver channel {self._channel.channel_id} {state}>"

    def receive_nowait(self) -> bytes:
        """The oldest chunk held, or ``trio.WouldBlock``; ``EndOfChannel`` when drained at end."""
        if self._closed:
            raise trio.ClosedResourceError("this audio receiver was closed")
        if self._channel.chunks:
            return self._owner._take(self._channel)
        if self._owner.closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> bytes:
        """The oldest chunk held, waiting for one; ``EndOfChannel`` when drained at end."""
        await trio.lowlevel.checkpoint_if_cancelled()
        channel = self._channel
        # The usual case, nothing held yet, tested before receive_nowait: no WouldBlock
        # raised and caught for every chunk of a reader that keeps up.
        if channel.chunks or self._closed or self._owner.closed:
            try:
                chunk = self.receive_nowait()
            finally:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return chunk
        while True:
            # Woken by a delivery, a close, or another receiver's close: look again.
            await channel.wait()
            if channel.chunks and not self._closed:
                return self._owner._take(channel)
            try:
                return self.receive_nowait()
            except trio.WouldBlock:
                pass

    def clone(self) -> IncomingReceiver:
        """Another receiver of the same channel, sharing its chunks."""
        if self._closed:
            raise trio.ClosedResourceError("this audio receiver was closed")
        return IncomingReceiver(self._owner, self._channel)

    def close(self) -> None:
        """Close this receiver; once a channel other than 0 has none open, it holds nothing."""
        if self._closed:
            return
        self._closed = True
        self._owner._release(self._channel)

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()
