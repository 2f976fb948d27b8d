"""What the script runner records about an agent: its calls as the client saw them.

While a :class:`Recorder` is active (in the trio tasks that inherit its context), it is
the SDK's observer (:mod:`telcoflow_trio._trace`): the public methods of every
:class:`~telcoflow_trio.Call` report to it each ``send_audio`` with its bytes, each
``clear_send_audio_buffer``, each command with its deadline and outcome. Tasks outside a
recorder's context are not recorded.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import attrs
import trio

from .. import _trace
from .._call import Call
from .._session import Session

__all__ = ["AudioWrite", "CallLedger", "ClearCall", "CommandCall", "HandlerRun", "Recorder"]


@attrs.define
class AudioWrite:
    """One ``send_audio`` call: when it began, how many clears had begun before it, its
    bytes, and how it ended (``queued``, ``full``, ``closed``, ``cancelled``, ``error``)."""

    started: float
    epoch: int
    data: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    ended: float | None = None
    outcome: str = "pending"


@attrs.define
class ClearCall:
    """One ``clear_send_audio_buffer`` call."""

    started: float
    ended: float | None = None
    outcome: str = "pending"


@attrs.define
class CommandCall:
    """One command method call (``answer``, ``connect``, ..., ``clear_send_audio_buffer``):
    its deadline in seconds, and its outcome (``ok``, ``refused:CODE``, ``raised:Type``,
    ``cancelled``)."""

    name: str
    deadline: float
    started: float
    ended: float | None = None
    outcome: str = "pending"


@attrs.define(eq=False)
class CallLedger:
    """Everything recorded about one client-side :class:`Call` object."""

    call: Call
    session: Session | None = None
    """The session that handed the call out (``None`` for a call made by ``Call.from_json``)."""
    writes: list[AudioWrite] = attrs.field(factory=list)
    clears: list[ClearCall] = attrs.field(factory=list)
    commands: list[CommandCall] = attrs.field(factory=list)

    @property
    def call_id(self) -> str:
        return self.call.id


@attrs.define
class HandlerRun:
    """One run of a ``serve_calls`` handler: when it started and ended, and what it raised."""

    call_id: str
    call: Call
    started: float
    ended: float | None = None
    error: BaseException | None = None


class Recorder(_trace.Observer[Call, Session]):
    """Collects ledgers and handler runs for the tasks that run in its context."""

    def __init__(self, now: Callable[[], float] = trio.current_time) -> None:
        self.now = now
        """The clock every record is stamped with (the sandbox's, in the runner)."""
        self.ledgers: list[CallLedger] = []
        self._by_call: dict[int, CallLedger] = {}
        self.handler_runs: list[HandlerRun] = []

    def ledger(self, call: Call) -> CallLedger:
        ledger = self._by_call.get(id(call))
        if ledger is None or ledger.call is not call:
            ledger = CallLedger(call)
            self._by_call[id(call)] = ledger
            self.ledgers.append(ledger)
        return ledger

    def for_call_id(self, call_id: str) -> list[CallLedger]:
        return [ledger for ledger in self.ledgers if ledger.call_id == call_id]

    @contextmanager
    def active(self) -> Iterator[None]:
        """Record the current task and every task started from it while inside."""
        token = _trace.OBSERVER.set(self)
        try:
            yield
        finally:
            _trace.OBSERVER.reset(token)

    # ── the SDK's observer ──────────────────────────────────────────────────────────────

    def call_seen(self, call: Call, session: Session) -> None:
        self.ledger(call).session = session

    def operation_started(self, call: Call, name: str, deadline_s: float) -> _trace.Ended:
        ledger = self.ledger(call)
        entry = CommandCall(name, deadline_s, self.now())
        ledger.commands.append(entry)
        clear: ClearCall | None = None
        if name == "clear_send_audio_buffer":
            clear = ClearCall(entry.started)
            ledger.clears.append(clear)

        def ended(outcome: str) -> None:
            entry.ended, entry.outcome = self.now(), outcome
            if clear is not None:
                clear.ended, clear.outcome = entry.ended, entry.outcome

        return ended

    def audio_started(self, call: Call, pcm: object) -> _trace.Ended:
        if not isinstance(pcm, bytes | bytearray | memoryview):
            return _ignore  # the SDK raises TypeError; nothing was written
        ledger = self.ledger(call)
        write = AudioWrite(self.now(), len(ledger.clears), bytes(pcm))
        ledger.writes.append(write)

        def ended(outcome: str) -> None:
            write.ended, write.outcome = self.now(), outcome

        return ended

    def wrap_handler(
        self, handler: Callable[[Call], Awaitable[None]]
    ) -> Callable[[Call], Awaitable[None]]:
        """``handler`` with its runs recorded; exceptions still propagate."""

        @functools.wraps(handler)
        async def recorded(call: Call) -> None:
            self.ledger(call)
            run = HandlerRun(call.id, call, self.now())
            self.handler_runs.append(run)
            try:
                await handler(call)
            except BaseException as exc:
                run.error = without_cancelled(exc)
                raise
            finally:
                run.ended = self.now()

        return recorded


def _ignore(outcome: str) -> None:
    pass


def without_cancelled(exc: BaseException) -> BaseException | None:
    """``exc`` minus the ``trio.Cancelled`` in it (a cancellation is not a failure)."""
    if isinstance(exc, trio.Cancelled):
        return None
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1]
    return exc
