"""The outgoing audio path against a plain model, under random interleavings.

Hypothesis's stateful testing is synchronous, so the trio side lives in one trio run per
test case, in a worker thread, on a :class:`trio.testing.MockClock`. Each rule hands that
run one step with ``trio.from_thread.run`` and waits for it to finish and for every task to
block again (``wait_all_tasks_blocked``), so the trio side never moves between steps and
hypothesis's choices alone decide the interleaving (trio's scheduler is seeded by
hypothesis, so a failing case replays). Each step runs under ``fail_after`` with the clock
autojumping, so a deadlock fails at once in virtual time instead of hanging; between steps
autojump is off, so the idle worker does not spin.

The fake connection checks every frame against the model the moment ``send_frame`` is
called: its bytes must be exactly the next bytes written and not discarded, it must fit in
what the current request still owes, it must take everything queued up to that, and it
must reach the floor unless less was owed or a flush asked for the tail. Written bytes
are random, so a stale byte cannot pass for a fresh one.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from telcoflow_trio import BufferClosedError, BufferFullError, CommandResult, WSSCallClosedError
from telcoflow_trio.audio import ClearResult, PullServicer, SendAudioBuffer
from telcoflow_trio.protocol.voice import DEFAULT_FRAME_BYTES, BufferRequest

T = TypeVar("T")
STEP_DEADLINE = 60.0  # virtual seconds; only a deadlock can use them up


class TrioWorker:
    """One trio run in a thread, fed one step at a time from the test's thread."""

    def __init__(self) -> None:
        self.clock = trio.testing.MockClock()
        self.errors: list[BaseException] = []
        self._ready = threading.Event()
        self._crash: BaseException | None = None
        self._thread = threading.Thread(target=self._thread_main, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("trio worker did not start")

    def _thread_main(self) -> None:
        try:
            trio.run(self._main, clock=self.clock)
        except BaseException as exc:
            self._crash = exc
            self._ready.set()

    async def _main(self) -> None:
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self.token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def step(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` in the trio run, then let every task run until all are blocked."""

        async def stepper() -> T:
            self.clock.autojump_threshold = 0
            try:
                with trio.fail_after(STEP_DEADLINE):
                    result = await fn()
                    await trio.testing.wait_all_tasks_blocked()
                    return result
            finally:
                self.clock.autojump_threshold = math.inf

        return trio.from_thread.run(stepper, trio_token=self.token)

    def spawn(
        self, fn: Callable[[], Awaitable[Any]], expected: tuple[type[BaseException], ...] = ()
    ) -> None:
        """Start a background task (call from inside a step); unexpected errors are kept."""

        async def guarded() -> None:
            try:
                await fn()
            except expected:
                pass
            except BaseException as exc:
                if isinstance(exc, trio.Cancelled):
                    raise
                self.errors.append(exc)

        self.nursery.start_soon(guarded)

    def stop(self) -> None:
        if self._crash is None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self.token)
        self._thread.join(10)
        if self._crash is not None:
            raise self._crash


@attrs.define
class Writer:
    data: bytes
    done: bool = False
    abandoned: bool = False
    closed: bool = False


@attrs.define
class Waiter:
    target: int
    done: bool = False
    closed: bool = False


@attrs.define
class Clear:
    queued_before: int
    submitted_before: int
    position: int = -1
    result: ClearResult | None = None


class Model:
    """What the audio path must do, with no trio in it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.stream = bytearray()  # submitted, not yet sent or discarded, in order
        self.requests: deque[tuple[int, int]] = deque()
        self.owed = 0
        self.floor = DEFAULT_FRAME_BYTES
        self.consumed = 0  # stream position: bytes sent (started) or discarded
        self.flush_until = 0
        self.closed = False
        self.inflight = 0
        self.inflight_start = 0
        self.completed = 0
        self.frames = 0
        self.heard = 0
        self.discarded = 0
        self.underruns = 0
        self.clears = 0
        self.awaiting_interrupt = 0
        self.waiting = 0  # back-pressured writers inside their wait
        self.interrupt_heard: list[int] = []
        self.violations: list[str] = []

    @property
    def owed_total(self) -> int:
        return self.owed + sum(n for n, _ in self.requests)

    def need(self) -> int | None:
        """The bytes the servicer needs before it may send, or None when nothing is owed."""
        if self.owed:
            owed, floor = self.owed, self.floor
        elif self.requests:
            owed, floor = self.requests[0]
        else:
            return None
        if self.closed or self.consumed < self.flush_until:
            return 1
        return min(floor, owed, self.capacity)

    def request(self, n: int, pref: int, channel: int, queued: int) -> None:
        """``queued``: the buffer's size, needed only while writers wait (then the model
        cannot know how much of their data is in yet); otherwise it must match the model."""
        if n <= 0 or channel != 0:
            return
        if not self.waiting and queued != len(self.stream):
            self.violations.append(f"buffer holds {queued}, model {len(self.stream)}")
        if queued == 0:
            self.underruns += 1
        self.requests.append((n, pref if pref > 0 else DEFAULT_FRAME_BYTES))

    def frame_started(self, frame: bytes) -> None:
        def bad(why: str) -> None:
            self.violations.append(f"frame of {len(frame) - 1} bytes: {why}")

        if frame[:1] != b"\x00":
            bad("channel byte is not 0")
        payload = frame[1:]
        k = len(payload)
        if self.awaiting_interrupt:
            bad("sent after a clear began but before agent.interrupt was written")
        if self.inflight:
            bad("started while another write was in flight")
        if not self.owed:
            if not self.requests:
                bad("nothing was owed")
                return
            self.owed, self.floor = self.requests.popleft()
        if k > self.owed:
            bad(f"exceeds the {self.owed} bytes still owed")
        flushing = self.closed or self.consumed < self.flush_until
        if not flushing and k < min(self.floor, self.owed, self.capacity):
            bad(f"below the floor {self.floor} with {self.owed} owed")
        if k < 1:
            bad("empty")
        if bytes(self.stream[:k]) != payload:
            bad("is not the next bytes written (stale, reordered or invented)")
        del self.stream[:k]
        if k < self.owed and self.stream and not self.waiting:
            bad(f"left {len(self.stream)} queued bytes behind with {self.owed} owed")
        self.owed -= min(k, self.owed)
        self.inflight_start = self.consumed
        self.consumed += k
        self.inflight = k

    def frame_done(self, frame: bytes) -> None:
        self.completed += self.inflight
        self.frames += 1
        self.heard = self.inflight_start + self.inflight
        self.inflight = 0

    def interrupt_written(self) -> None:
        if self.inflight:
            self.violations.append("agent.interrupt written while a frame was being written")
        self.awaiting_interrupt -= 1
        self.interrupt_heard.append(self.heard)

    def settled(self) -> int:
        """Stream position before which every byte is sent or discarded."""
        return self.inflight_start if self.inflight else self.consumed


class ModelConnection:
    """The voice connection's side of the seam, checking each frame against the model."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.hold = False
        self.holding = False
        self.hold_interrupt = False
        self.interrupt_holding = 0
        self._release = trio.Event()
        self._release_interrupt = trio.Event()

    async def send_frame(self, data: bytes) -> None:
        self.model.frame_started(data)
        if self.hold:
            self.holding = True
            await self._release.wait()
            self._release = trio.Event()
            self.holding = False
        else:
            await trio.lowlevel.checkpoint()
        self.model.frame_done(data)

    async def release_async(self) -> None:
        self._release.set()

    # The FrameWriter side (a machine started with at_once): a held socket is busy.
    def ready(self) -> bool:
        return not self.hold and not self.holding

    def write_now(self, data: bytes) -> None:
        self.model.frame_started(data)
        self.model.frame_done(data)

    async def send_interrupt(self, written: Callable[[], None]) -> CommandResult:
        if self.hold_interrupt:
            self.interrupt_holding += 1
            await self._release_interrupt.wait()
            self.interrupt_holding -= 1
        self.model.interrupt_written()
        written()
        await trio.lowlevel.checkpoint()
        return CommandResult(True)

    async def release_interrupt_async(self) -> None:
        self._release_interrupt.set()
        self._release_interrupt = trio.Event()


sizes = st.one_of(st.integers(0, 64), st.integers(0, 3000))
prefs = st.sampled_from([0, 0, 1, 7, 160, 320, 640, 960, 3000])
requested = st.one_of(st.integers(-3, 200), st.integers(200, 6000))


class AudioPathMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.worker = TrioWorker()
        self.serial = 0
        self.writers: list[Writer] = []
        self.waiters: list[Waiter] = []
        self.clears: list[Clear] = []

    def data(self, n: int) -> bytes:
        self.serial += 1
        return random.Random(self.serial).randbytes(n)

    @initialize(capacity=st.sampled_from([16, 256, 1024, 4096]), at_once=st.booleans())
    def start(self, capacity: int, at_once: bool) -> None:
        self.model = Model(capacity)
        self.conn = ModelConnection(self.model)
        self.buf = SendAudioBuffer(capacity)
        # at_once: requests that can be are answered inside on_buffer_request.
        self.servicer = PullServicer(
            self.buf,
            send_frame=self.conn.send_frame,
            send_interrupt=self.conn.send_interrupt,
            writer=self.conn if at_once else None,
        )

        async def go() -> None:
            await self.worker.nursery.start(self.servicer.run)

        self.worker.step(go)

    # ── operations: each runs inside the trio run and moves the model in step ─────────
    #
    # The model moves synchronously with the real operation (before a write pushes, in the
    # same instant as a clear's discard), so it stays exact at every scheduling point and
    # several operations may run in one step with the scheduler interleaving them.

    def pending_writers(self) -> list[Writer]:
        return [w for w in self.writers if not w.done]

    def must_wait(self, n: int) -> bool:
        """The buffer's own rule: a write waits (or is refused) when earlier writers are
        waiting or it does not fit. ``buf.size`` is read only to predict; the invariants
        check it against the model."""
        return n > 0 and (self.model.waiting > 0 or self.buf.size + n > self.model.capacity)

    async def op_write(self, n: int) -> None:
        data = self.data(n)
        expect_full = self.must_wait(n)
        if not expect_full:
            self.model.stream += data  # before the write: the frame may leave at once
        try:
            await self.buf.send_audio(data)
        except BufferFullError:
            assert expect_full, "refused a write that fits"
        else:
            assert not expect_full, "accepted a write that does not fit"

    async def op_write_waiting(self, n: int) -> None:
        data = self.data(n)

        async def write() -> None:
            # All of this up to the first wait runs in the instant send_audio is called.
            writer = Writer(data)
            self.writers.append(writer)
            self.model.stream += data
            waits = self.must_wait(n)
            self.model.waiting += waits
            try:
                await self.buf.send_audio(data, wait=True)
            except BufferClosedError:
                writer.closed = True
            finally:
                writer.done = True
                self.model.waiting -= waits

        self.worker.spawn(write)
        await trio.lowlevel.checkpoint()

    async def op_pull(self, n: int, pref: int, channel: int) -> None:
        self.model.request(n, pref, channel, self.buf.size)
        self.servicer.on_buffer_request(BufferRequest(n, pref, channel))
        await trio.lowlevel.checkpoint()

    async def op_clear(self) -> None:
        clear = Clear(queued_before=-1, submitted_before=-1)
        self.clears.append(clear)
        m = self.model

        async def run_clear() -> None:
            # servicer.clear() discards synchronously from its first line.
            for w in self.pending_writers():
                w.abandoned = True
            clear.queued_before = self.buf.size
            clear.submitted_before = len(m.stream)
            clear.position = m.consumed + clear.queued_before
            m.stream.clear()
            m.discarded += clear.queued_before
            m.consumed += clear.queued_before  # only queued bytes had a stream position
            m.clears += 1
            m.awaiting_interrupt += 1
            clear.result = await self.servicer.clear()
            if m.inflight and m.inflight_start < clear.position:
                m.violations.append("clear returned while an older frame was being written")

        self.worker.spawn(run_clear)
        await trio.lowlevel.checkpoint()

    async def op_wait_playout(self) -> None:
        async def wait() -> None:
            m = self.model
            if m.waiting:
                return  # the target would depend on how much of the waiting writes got in
            waiter = Waiter(target=m.consumed + len(m.stream))
            self.waiters.append(waiter)
            m.flush_until = max(m.flush_until, waiter.target)
            try:
                await self.servicer.wait_for_playout()
            except WSSCallClosedError:
                waiter.closed = True
            waiter.done = True

        self.worker.spawn(wait)
        await trio.lowlevel.checkpoint()

    # ── rules ───────────────────────────────────────────────────────────────────────────

    @rule(n=sizes)
    def write(self, n: int) -> None:
        self.worker.step(lambda: self.op_write(n))

    @rule(n=st.integers(1, 5000))
    def write_waiting(self, n: int) -> None:
        self.worker.step(lambda: self.op_write_waiting(n))

    @rule(n=requested, pref=prefs, channel=st.sampled_from([0, 0, 0, 1]))
    def pull(self, n: int, pref: int, channel: int) -> None:
        self.worker.step(lambda: self.op_pull(n, pref, channel))

    @rule()
    def clear(self) -> None:
        self.worker.step(self.op_clear)

    @rule()
    def wait_playout(self) -> None:
        self.worker.step(self.op_wait_playout)

    @rule(
        ops=st.lists(
            st.one_of(
                st.tuples(st.just("write"), sizes),
                st.tuples(st.just("write_waiting"), st.integers(1, 3000)),
                st.tuples(st.just("pull"), requested, prefs),
                st.tuples(st.just("clear")),
                st.tuples(st.just("wait_playout")),
            ),
            min_size=2,
            max_size=6,
        )
    )
    def burst(self, ops: list[tuple[Any, ...]]) -> None:
        """Several operations in one step: no settling in between, so they race."""

        async def go() -> None:
            for op in ops:
                if op[0] == "pull":
                    await self.op_pull(op[1], op[2], 0)
                else:
                    await getattr(self, "op_" + op[0])(*op[1:])

        self.worker.step(go)

    @rule(hold=st.booleans())
    def hold_writes(self, hold: bool) -> None:
        self.conn.hold = hold

    @rule(hold=st.booleans())
    def hold_interrupts(self, hold: bool) -> None:
        self.conn.hold_interrupt = hold

    @precondition(lambda self: self.conn.holding)
    @rule()
    def release_write(self) -> None:
        self.worker.step(self.conn.release_async)

    @precondition(lambda self: self.conn.interrupt_holding)
    @rule()
    def release_interrupt(self) -> None:
        self.worker.step(self.conn.release_interrupt_async)

    # ── invariants ──────────────────────────────────────────────────────────────────────

    @invariant()
    def holds_up(self) -> None:
        if not hasattr(self, "model"):
            return
        m, buf, servicer = self.model, self.buf, self.servicer
        assert not self.worker.errors, self.worker.errors
        assert not m.violations, m.violations
        assert 0 <= buf.size <= buf.capacity
        pending = self.pending_writers()
        if pending:
            # A writer only waits when there is no room at all.
            assert buf.size == buf.capacity
        else:
            assert buf.size == len(m.stream)
        assert servicer.owed_bytes == m.owed_total
        # Nothing stalls: with a request owed, no write in flight and no clear waiting for
        # its interrupt, the servicer can only be idle for want of audio.
        need = m.need()
        if need is not None and not m.inflight and not m.awaiting_interrupt:
            assert buf.size < need, (buf.size, need)
        c = servicer.counters()
        assert c.sent_bytes == m.completed
        assert c.frames_sent == m.frames
        assert servicer.heard_position == m.heard
        assert c.discarded_bytes == m.discarded
        assert c.underruns == m.underruns
        assert c.clears == m.clears
        assert c.written_bytes == c.sent_bytes + m.inflight + c.discarded_bytes + buf.size
        for clear in self.clears:
            if clear.result is not None:
                r = clear.result
                assert r.discarded_bytes == clear.queued_before
                assert r.discarded_bytes + r.abandoned_bytes == clear.submitted_before
                assert r.heard_position in m.interrupt_heard
        for waiter in self.waiters:
            assert waiter.done == (m.settled() >= waiter.target), (waiter, m.settled())
        for writer in self.writers:
            if writer.abandoned:
                assert writer.done

    def teardown(self) -> None:
        try:
            if hasattr(self, "model"):
                self._finish()
        finally:
            self.worker.stop()

    def _finish(self) -> None:
        async def unblock() -> None:
            self.conn.hold = False
            self.conn.hold_interrupt = False
            await self.conn.release_async()
            await self.conn.release_interrupt_async()

        self.worker.step(unblock)
        self.holds_up()
        assert all(c.result is not None for c in self.clears), "a clear never returned"

        async def close() -> None:
            self.servicer.close()

        self.worker.step(close)
        assert all(w.done for w in self.writers), "a writer was left waiting"
        assert all(w.done for w in self.waiters), "a playout wait was left waiting"
        assert not self.worker.errors, self.worker.errors


AudioPathMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAudioPath = AudioPathMachine.TestCase


def test_worker_harness_catches_a_deadlock() -> None:
    """The step deadline turns a hang into an error (in virtual time, instantly)."""
    worker = TrioWorker()
    try:

        async def hang() -> None:
            await trio.Event().wait()

        with pytest.raises(trio.TooSlowError):
            worker.step(hang)
    finally:
        worker.stop()
