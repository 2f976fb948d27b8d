"""The pull servicer: answers the server's ``buffer_request``s with frames from the buffer.

Wire behaviour, as the official client: requests for channel 0 are answered in order.
For each frame the servicer waits until the buffer holds at least
``min(prefer_audio_frame_bytes or 960, bytes still owed)``, then sends everything it holds
up to what is still owed, as one binary message whose byte 0 is the channel id 0. Requests
for other channels are skipped, ``requested_bytes <= 0`` is ignored.

Two deliberate differences, both documented on :class:`PullServicer`:

- **The floor never exceeds the buffer's capacity**, which could otherwise never be met.
- **The tail.** The official client holds a tail shorter than the floor until more audio
  comes. We do the same while audio is flowing, but a tail is *flushed* (sent as a smaller
  frame, still within what is owed) when someone waits for it: :meth:`wait_for_playout`
  and the drain of :meth:`aclose` mean "this utterance is complete", and a last word
  that never plays would make both wait for ever.

The bookkeeping of these rules (what is owed, frame floors, coalescing, the flush rule)
is the sans-IO :class:`~telcoflow_trio.protocol.pull.PullLedger`, which the sandbox keeps
too; this module is the trio loop around it: waiting, framing (with a
:class:`~telcoflow_trio.audio._framer.Framer` per epoch), writing, interruption. What it
reports (:class:`ClearResult`, :class:`AudioCounters`) is in :mod:`._counters`; its seam with
the voice connection (``send_frame``, ``send_interrupt``, the :class:`FrameWriter` that
answers requests at once) in :mod:`._seam`.

Interruption is a cancel scope. The servicer's waiting and framing run inside an
*interruption scope*; :meth:`PullServicer.clear` drops the buffer's contents, cancels that
scope (any partly assembled frame goes with it) and the loop starts over, in a fresh scope,
for the pull requests still owed. A clear never cuts a WebSocket message in half: while a
frame is being written, ``clear`` does not cancel the scope at all (there is no waiting or
framing to cancel); it waits for the write to finish, and the servicer, seeing the buffer's
epoch change, drops its staged chunks before it frames again. Either way ``clear`` holds
every fresh frame back until ``agent.interrupt`` has been written. Hence, when ``clear``
returns, no byte queued before it will ever be sent, and the first byte sent after it is the
first byte queued after it. (One scope per interruption rather than one per frame keeps the
per-frame cost down.)

"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Final

import trio

from .._errors import WSSCallClosedError
from .._results import CommandResult
from .._validate import check_callable, check_timeout, check_type
from ..protocol.pull import MAX_REQUEST_RUNS, PullLedger, PullOutcome
from ..protocol.voice import BufferRequest
from ._buffer import SendAudioBuffer
from ._counters import AudioCounters, ClearResult
from ._framer import Framer
from ._seam import FrameWriter, SendFrame, SendInterrupt

__all__ = ["MAX_REQUEST_RUNS", "FrameWriter", "PullServicer", "SendFrame", "SendInterrupt"]

logger = logging.getLogger(__name__)

_QUEUED: Final = PullOutcome.QUEUED
FILL_SAMPLES: Final = 256
"""Pull fill times kept per call (the latest)."""
_FILLS_TIMED: Final = 1024  # requests timed at once; later ones go untimed until these are paid


class PullServicer:
    """Serves one call's :class:`SendAudioBuffer` to the server's pull requests.

    See the module docstring for the wire behaviour, the seam and the interruption scheme.
    Waiting for playout or draining at close *flushes*: a tail shorter than the frame floor
    is then sent as a smaller frame instead of being held for more audio.
    """

    def __init__(
        self,
        buffer: SendAudioBuffer,
        *,
        send_frame: SendFrame,
        send_interrupt: SendInterrupt | None = None,
        writer: FrameWriter | None = None,
    ) -> None:
        self._buffer = check_type("buffer", buffer, SendAudioBuffer, "a SendAudioBuffer")
        self._send_frame = check_callable("send_frame", send_frame, "an async callable")
        if send_interrupt is not None:
            check_callable("send_interrupt", send_interrupt, "an async callable or None")
        self._send_interrupt = send_interrupt
        self._writer = writer
        self._ledger = PullLedger(buffer.capacity)
        self._started = False
        self._closed = False
        self._scope: trio.CancelScope | None = None
        # The framer of the running interruption scope, and whether the task is waiting
        # for a request with nothing owed (only then may a request be answered at once).
        self._framer: Framer | None = None
        self._idle = False
        self._request_lot = trio.lowlevel.ParkingLot()
        self._gate_lot = trio.lowlevel.ParkingLot()
        self._write_lot = trio.lowlevel.ParkingLot()
        self._settle_lot = trio.lowlevel.ParkingLot()
        self._gates = 0
        self._inflight_start: int | None = None
        self._inflight_end = 0
        self._heard = buffer.head_position
        self._final_settled = 0
        self._flush_until = 0
        self._sent = 0
        self._frames = 0
        self._lost = 0
        self._clears = 0
        # (end of the request in requested bytes, arrival time), oldest first.
        self._fills: deque[tuple[int, float]] = deque()
        self.fill_times: deque[float] = deque(maxlen=FILL_SAMPLES)
        """Pull fill times (s), latest last (``call.pull_fill_times``): for each owed request
        that found audio queued, from its arrival until the frame completing it was handed
        to the socket; the latest 256. A request that found the buffer empty
        is an underrun (counted, not timed: it would time the agent's silences)."""
        self.last_clear: ClearResult | None = None
        """The result of the most recent :meth:`clear`."""

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._started else "new")
        return f"<PullServicer {state} owed={self._ledger.owed} {self._buffer!r}>"

    # ── readings ────────────────────────────────────────────────────────────────────────

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def heard_position(self) -> int:
        """Stream position up to which audio has been handed to the socket."""
        return self._heard

    @property
    def sent_bytes(self) -> int:
        return self._sent

    @property
    def owed_bytes(self) -> int:
        """Bytes the server has asked for and not yet been sent."""
        return self._ledger.owed

    def counters(self) -> AudioCounters:
        b = self._buffer.counters()
        ledger = self._ledger
        return AudioCounters(
            written_bytes=b.written_bytes,
            sent_bytes=self._sent,
            frames_sent=self._frames,
            discarded_bytes=b.discarded_bytes,
            abandoned_bytes=b.abandoned_bytes,
            dropped_bytes=b.dropped_bytes + self._lost,
            rejected_writes=b.rejected_writes,
            underruns=ledger.underruns,
            clears=self._clears,
            skipped_requests=ledger.skipped,
            ignored_requests=ledger.ignored,
            coalesced_requests=ledger.coalesced,
        )

    # ── the reader's side ───────────────────────────────────────────────────────────────

    def on_buffer_request(self, request: BufferRequest) -> None:
        """Queue a pull request. Synchronous and O(1): the socket reader never waits here."""
        if type(request) is not BufferRequest:  # the usual case skips the helper's call
            check_type("request", request, BufferRequest, "a BufferRequest")
        if self._closed:
            return
        buffered = self._buffer.size
        outcome = self._ledger.on_request(request, buffered)
        if buffered and outcome.owed and len(self._fills) < _FILLS_TIMED:
            self._fills.append((self._ledger.requested_bytes, time.monotonic()))
        if outcome is _QUEUED:
            if self._idle and self._writer is not None and self._serve_now(self._writer):
                return  # answered here; the task waits on
            if self._request_lot:
                self._request_lot.unpark_all()
            return
        if outcome is PullOutcome.SKIPPED:
            logger.debug("skipping buffer_request for channel %d", request.channel_id)
        elif outcome is PullOutcome.COALESCED and self._ledger.coalesced == 1:
            logger.warning("too many distinct pending buffer_requests; merging them")
        if outcome.owed and self._request_lot:
            self._request_lot.unpark_all()

    def _serve_now(self, writer: FrameWriter) -> bool:
        """Answer what is owed here, in the reader's task, as far as that needs no waiting
        (enough audio queued, no clear, the socket free): the task's own steps, without
        the trip through the scheduler. True once nothing is owed."""
        framer, buffer, ledger = self._framer, self._buffer, self._ledger
        while ledger.current and not self._closed:
            busy = self._gates or self._inflight_start is not None or not writer.ready()
            if busy or framer is None or framer.epoch != buffer.epoch:
                return False
            owed = ledger.current
            if framer.staged < owed:
                framer.pull_nowait(owed)
            need = ledger.need(flushing=self._flushing())
            if need is None or framer.staged < need:
                return False  # the task waits for audio, as ever
            n = min(framer.staged, owed)
            frame = self._cut(framer, n)
            ok = False
            try:
                writer.write_now(frame)
                ok = True
            except WSSCallClosedError:
                logger.debug("voice connection closed while sending audio")
                self.close()
            finally:
                self._wrote(n, ok)
        return not ledger.current

    # ── the servicer task ───────────────────────────────────────────────────────────────

    @trio.lowlevel.enable_ki_protection  # an internal task: see _scope
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Answer pull requests until :meth:`close`; start it with ``nursery.start``."""
        if self._started:
            raise RuntimeError("PullServicer.run() can only be called once")
        self._started = True
        task_status.started()
        try:
            while not self._closed:
                with trio.CancelScope() as scope:  # the interruption scope
                    self._scope = scope
                    await self._serve()
                self._scope = self._framer = None
            # A servicer closed before it ran never reached a checkpoint above.
            await trio.lowlevel.checkpoint()
        finally:
            self._scope = self._framer = None
            self.close()

    async def _serve(self) -> None:
        """Frame and write until interrupted; a clear during a write just starts a new
        framer, a clear while waiting cancels us."""
        framer = self._framer = Framer(self._buffer)
        while not self._closed:
            if framer.epoch != self._buffer.epoch:
                # Staged chunks are gone with their epoch.
                framer = self._framer = Framer(self._buffer)
            frame = await self._next_frame(framer)
            if frame is None:
                break
            # Written here rather than in a helper coroutine (one fewer per frame). Nothing
            # cancels the interruption scope meanwhile: clear() and close() see
            # _inflight_start and leave it alone.
            ok = False
            try:
                await self._send_frame(frame)
                ok = True
            except WSSCallClosedError:
                # Closed while the frame still counts as in flight: not counted as played.
                logger.debug("voice connection closed while sending audio")
                self.close()
                break
            finally:
                self._wrote(len(frame) - 1, ok)
        # Once per interruption, not per frame: a close or a failed write can end the loop
        # before any await did.
        await trio.lowlevel.checkpoint()

    def _flushing(self) -> bool:
        """Someone waits for the tail: a drain, or :meth:`wait_for_playout`."""
        return self._buffer.closed or self._buffer.head_position < self._flush_until

    async def _next_frame(self, framer: Framer) -> bytes | None:
        """Wait for a request and enough audio, then cut the next frame (inside the scope)."""
        buffer, ledger = self._buffer, self._ledger
        while not self._closed:
            owed = ledger.current
            if not owed:
                self._idle = True
                try:
                    await self._request_lot.park()
                finally:
                    self._idle = False
                continue
            need = ledger.need(flushing=self._flushing())
            assert need is not None  # something is owed
            # Staged up to what is owed at once: chunks staged early are still counted as
            # queued (the head moves only when a frame is cut), and a clear drops them with
            # their framer.
            if framer.staged < owed:
                framer.pull_nowait(owed)
            if framer.staged < need:
                if framer.ended:
                    if framer.epoch != buffer.epoch:
                        await trio.lowlevel.checkpoint()
                        return None
                    await trio.sleep_forever()  # closed and empty: wait to be stopped
                await framer.pull_one()  # a flush wakes us with an empty chunk
                continue
            if self._gates:
                await self._gate_lot.park()
                continue
            # A clear may have come while a chunk was being handed to us: it must win.
            await trio.lowlevel.checkpoint_if_cancelled()
            return self._cut(framer, min(framer.staged, owed))
        await trio.lowlevel.checkpoint()  # closed: the servicer's last pass
        return None

    def _cut(self, framer: Framer, n: int) -> bytes:
        """The next frame, ``n`` bytes of PCM, taken off the buffer and now in flight."""
        frame = framer.take(n)
        start = self._buffer.head_position
        self._buffer.consume(n)
        self._ledger.take(n)
        self._inflight_start = start
        self._inflight_end = start + n
        return frame

    def _wrote(self, n: int, ok: bool) -> None:
        """The frame in flight (``n`` bytes of PCM) was handed to the socket, or was lost."""
        if ok:
            self._sent += n
            self._frames += 1
            self._heard = self._inflight_end
            fills = self._fills
            if fills:
                ledger = self._ledger
                paid = ledger.requested_bytes - ledger.owed
                now = time.monotonic()
                while fills and fills[0][0] <= paid:
                    self.fill_times.append(now - fills.popleft()[1])
        else:
            self._lost += n
        self._inflight_start = None
        if self._write_lot:
            self._write_lot.unpark_all()
        if self._settle_lot:
            self._settle_lot.unpark_all()

    # ── interruption, playout, close ────────────────────────────────────────────────────

    async def clear(self) -> ClearResult:
        """Drop all queued audio, then send ``agent.interrupt`` (``clear_send_audio_buffer``).

        When this returns, no byte queued before the call will ever be sent. Raises
        :class:`WSSCallClosedError` when the call is over.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise WSSCallClosedError()
        discarded, abandoned = self._buffer.discard()
        self._clears += 1
        self._interrupt_framing()
        self._settle_lot.unpark_all()
        self._gates += 1
        gate_open = False

        def open_gate() -> None:
            nonlocal gate_open
            if not gate_open:
                gate_open = True
                self._gates -= 1
                if not self._gates:
                    self._gate_lot.unpark_all()

        try:
            while self._inflight_start is not None:
                await self._write_lot.park()
            if self._closed:
                raise WSSCallClosedError()
            heard = self._heard
            interrupt: CommandResult | None = None
            if self._send_interrupt is not None:
                interrupt = await self._send_interrupt(open_gate)
        finally:
            open_gate()
        if discarded or abandoned:
            logger.debug("clear dropped %d queued bytes", discarded + abandoned)
        result = ClearResult(discarded, abandoned, heard, interrupt)
        self.last_clear = result
        return result

    def _interrupt_framing(self) -> None:
        # Never while a frame is being written: that write must finish whole, and the
        # servicer notices the new epoch (or the close) as soon as it does.
        if self._scope is not None and self._inflight_start is None:
            self._scope.cancel()

    def _settled_position(self) -> int:
        if self._closed:
            return self._final_settled
        if self._inflight_start is not None:
            return self._inflight_start
        return self._buffer.head_position

    async def wait_for_playout(self) -> None:
        """Return once everything queued so far has been handed to the socket (or cleared).

        Flushes the tail. Returns at once when nothing is queued; raises
        :class:`WSSCallClosedError` if the call ends first.
        """
        if not await self._wait_settled(self._buffer.written_bytes):
            raise WSSCallClosedError("the call ended before its audio was played out")

    async def _wait_settled(self, target: int) -> bool:
        """Until the stream has settled up to ``target``: True, or False if the call ended
        first."""
        settled = self._settled_position() >= target
        if settled or self.closed:  # not _closed: mypy would keep that narrowed in the loop
            await trio.lowlevel.checkpoint()
            return settled
        if target > self._flush_until:
            self._flush_until = target
            self._buffer.poke()  # the servicer may be waiting for a floor that no longer holds
        while True:
            await self._settle_lot.park()
            if self._settled_position() >= target:
                return True
            if self._closed:
                return False

    async def aclose(self, drain_timeout: float = 0.0) -> int:
        """Close, first letting the server pull what is queued for up to ``drain_timeout`` s.

        New writes are refused from the start; the tail is flushed. Returns the bytes left
        unsent.
        """
        timeout = check_timeout("drain_timeout", drain_timeout)
        if not self._closed and timeout > 0 and self._buffer.size:
            self._buffer.close()  # also wakes the servicer: its channel ends
            with trio.move_on_after(timeout):
                await self._wait_settled(self._buffer.written_bytes)
        else:
            await trio.lowlevel.checkpoint()
        return self.close()

    def close(self) -> int:
        """Stop at once: the call is over. Every waiter wakes; returns the bytes dropped."""
        if self._closed:
            return 0
        self._final_settled = self._settled_position()
        self._closed = True
        self._fills.clear()
        dropped = self._buffer.drop()
        self._interrupt_framing()
        for lot in (self._request_lot, self._gate_lot, self._write_lot, self._settle_lot):
            lot.unpark_all()
        return dropped
