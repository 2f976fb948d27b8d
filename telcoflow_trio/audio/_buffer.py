"""The outgoing audio buffer: a trio memory channel of PCM chunks, bounded in bytes.

Writers call :meth:`SendAudioBuffer.send_audio`; the pull servicer
(:mod:`telcoflow_trio.audio._servicer`) owns the receive side and turns the chunks into
frames. The channel itself is unbounded in items; the bound is kept in bytes here, by
position counters in one coordinate system, the *stream position*:

- ``written_bytes``: every byte ever accepted into the buffer (the write position);
- the head: bytes taken out for a frame or dropped by a clear;
- ``size`` = write position − head: the bytes queued now, never more than ``capacity``.

A clear (:meth:`SendAudioBuffer.discard`) swaps in a fresh channel and bumps an *epoch*,
so nothing that sat in the old channel, and no writer still waiting from before the clear,
can ever reach the new one.
"""

from __future__ import annotations

import logging
import math

import trio

from .._config import DEFAULT_BUFFER_SIZE, CallAudioConfig
from .._errors import BufferClosedError, BufferFullError
from .._validate import check_bool, check_int, check_type, coerce_pcm
from ._counters import BufferCounters

__all__ = ["BufferCounters", "SendAudioBuffer"]

logger = logging.getLogger(__name__)


class SendAudioBuffer:
    """Outgoing PCM for one call, at most ``capacity`` bytes queued.

    ``send_audio(pcm)`` raises :class:`BufferFullError` when the bytes do not fit (the
    official client's behaviour); ``send_audio(pcm, wait=True)`` waits for room instead.
    Once :meth:`close` has been called (the call is ending) every write raises
    :class:`BufferClosedError`, so an agent that keeps talking into a finished call finds
    out rather than losing audio silently.
    """

    def __init__(self, capacity: int = DEFAULT_BUFFER_SIZE) -> None:
        self._capacity = check_int("capacity", capacity, low=1)
        self._send: trio.MemorySendChannel[bytes]
        self._recv: trio.MemoryReceiveChannel[bytes]
        self._send, self._recv = trio.open_memory_channel[bytes](math.inf)
        self._epoch = 0
        self._written = 0
        self._head = 0
        self._closed = False
        # Back-pressured writers queue on a fair lock, so bytes go out in call order; the
        # holder parks on _room until the servicer frees some.
        self._writer_lock = trio.Lock()
        self._room = trio.lowlevel.ParkingLot()
        self._waiting_writers = 0
        self._pending_bytes = 0
        self._discarded = 0
        self._abandoned = 0
        self._dropped = 0
        self._rejected = 0

    @classmethod
    def from_config(cls, config: CallAudioConfig) -> SendAudioBuffer:
        """A buffer of ``config.buffer_size`` bytes."""
        return cls(check_type("config", config, CallAudioConfig, "a CallAudioConfig").buffer_size)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SendAudioBuffer {self.size}/{self._capacity} bytes {state}>"

    # ── the write side ──────────────────────────────────────────────────────────────────

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def size(self) -> int:
        """Bytes queued now (``get_send_audio_buffer_size``)."""
        return self._written - self._head

    @property
    def written_bytes(self) -> int:
        """The write position: bytes accepted so far. Take it as a mark before an utterance."""
        return self._written

    @property
    def closed(self) -> bool:
        return self._closed

    def counters(self) -> BufferCounters:
        return BufferCounters(
            written_bytes=self._written,
            discarded_bytes=self._discarded,
            abandoned_bytes=self._abandoned,
            dropped_bytes=self._dropped,
            rejected_writes=self._rejected,
        )

    async def send_audio(self, pcm: bytes | bytearray | memoryview, *, wait: bool = False) -> None:
        """Queue PCM to be pulled by the server.

        Without ``wait`` the whole chunk is queued or, when it does not fit (or earlier
        back-pressured writes are still waiting), :class:`BufferFullError` is raised and
        nothing is queued. With ``wait=True`` the chunk is queued piece by piece as room
        appears, after any earlier waiting writes. A clear drops whatever part of a waiting
        write is not queued yet, and the call returns normally; if the call is cancelled
        while waiting, the part already queued stays queued.

        Raises :class:`BufferClosedError` once the buffer is closed.

        Always a cancel point. It is a schedule point whenever it cannot queue at once
        (it waits, or it raises, so a retry-on-full loop cannot starve other tasks), but
        not when the bytes go straight in: a writer can only run ahead by ``capacity``
        bytes before it must wait, and skipping that yield halves the cost of a write.
        """
        # The hot path (a bytes chunk that fits) skips the helpers' calls, not their checks.
        data = pcm if type(pcm) is bytes else coerce_pcm(pcm)
        flag: object = wait  # as a caller may pass it: the check is not dead code
        if type(flag) is not bool:
            check_bool("wait", flag)
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise BufferClosedError("the call's outgoing audio buffer is closed")
        n = len(data)
        if n == 0:
            return
        if not self._waiting_writers and self._written - self._head + n <= self._capacity:
            self._send.send_nowait(data)
            self._written += n
            return
        if not wait:
            self._rejected += 1
            await trio.lowlevel.cancel_shielded_checkpoint()
            raise BufferFullError(
                f"outgoing audio buffer has no room for {n} bytes "
                f"({self.size} of {self._capacity} queued)"
            )
        await self._send_waiting(data)

    async def _send_waiting(self, data: bytes) -> None:
        epoch = self._epoch
        view = memoryview(data)
        offset = 0
        self._waiting_writers += 1
        self._pending_bytes += len(data)
        try:
            async with self._writer_lock:
                while offset < len(data):
                    if self._closed:
                        raise BufferClosedError("the call's outgoing audio buffer is closed")
                    if self._epoch != epoch:
                        return  # a clear dropped the rest (and counted it)
                    room = self._capacity - self.size
                    if room > 0:
                        if offset == 0 and room >= len(data):
                            piece = data
                        else:
                            piece = bytes(view[offset : offset + room])
                        offset += len(piece)
                        self._pending_bytes -= len(piece)
                        self._push(piece)
                    else:
                        await self._room.park()
        finally:
            self._waiting_writers -= 1
            if self._epoch == epoch:
                self._pending_bytes -= len(data) - offset

    def _push(self, data: bytes) -> None:
        self._send.send_nowait(data)
        self._written += len(data)

    # ── the servicer's side ─────────────────────────────────────────────────────────────

    @property
    def epoch(self) -> int:
        """Bumped by every :meth:`discard`; chunks from an older epoch must never be sent."""
        return self._epoch

    @property
    def receive_channel(self) -> trio.MemoryReceiveChannel[bytes]:
        """The current epoch's chunks, in write order (for the servicer only)."""
        return self._recv

    @property
    def head_position(self) -> int:
        """Stream position of the next byte to be framed."""
        return self._head

    def consume(self, n: int) -> None:
        """The servicer took ``n`` bytes from the head for a frame: make room for writers."""
        if not 0 < n <= self.size:
            raise ValueError(f"n must be in 1..{self.size}, got {n}")
        self._head += n
        if self._room:
            self._room.unpark_all()

    def poke(self) -> None:
        """Wake a reader waiting for more audio, so it looks at its conditions again."""
        if not self._closed:
            self._send.send_nowait(b"")

    def discard(self) -> tuple[int, int]:
        """Drop everything queued and every waiting write's unqueued rest.

        Returns ``(discarded, abandoned)`` byte counts. Synchronous, so no write or frame
        can slip in between the drop and the caller's next step.
        """
        discarded, abandoned = self._drop_all()
        self._discarded += discarded
        self._abandoned += abandoned
        if discarded or abandoned:
            logger.debug("discarded %d queued and %d waiting bytes", discarded, abandoned)
        return discarded, abandoned

    def close(self) -> None:
        """Refuse further writes; what is queued stays until :meth:`drop`. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._send.close()
        self._room.unpark_all()

    def drop(self) -> int:
        """Close, and drop what is still queued (the call is over). Returns the bytes dropped."""
        self.close()
        dropped, _ = self._drop_all()
        self._dropped += dropped
        if dropped:
            logger.debug("dropped %d unsent bytes at close", dropped)
        return dropped

    def _drop_all(self) -> tuple[int, int]:
        queued = self.size
        waiting = self._pending_bytes
        self._pending_bytes = 0
        self._head = self._written
        self._epoch += 1
        old_send = self._send
        self._send, self._recv = trio.open_memory_channel[bytes](math.inf)
        if self._closed:
            self._send.close()
        old_send.close()  # wakes a reader still parked on the old channel
        self._room.unpark_all()
        return queued, waiting
