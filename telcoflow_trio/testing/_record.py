"""What the script runner records about an agent: its calls as the client saw them.

While a :class:`Recorder` is active (in the trio tasks that inherit its context), the
public methods of every :class:`~telcoflow_trio.Call` report to it: each ``send_audio``
with its bytes, each ``clear_send_audio_buffer``, each command with its deadline and
outcome. The methods are wrapped on the class for as long as any recorder is active, and
behave exactly as before; tasks outside a recorder's context are not recorded.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import attrs
import trio

from ..call import Call
from ..protocol import voice
from ..results import CommandResult
from ..session import Session

__all__ = ["AudioWrite", "CallLedger", "ClearCall", "CommandCall", "HandlerRun", "Recorder"]

_GRACE: Final = voice.COMMAND_GRACE_SECONDS
_DEFAULT_TIMEOUT: Final = voice.CommandName.ANSWER.default_timeout_ms / 1000


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


class Recorder:
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
        _install()
        token = _CURRENT.set(self)
        try:
            yield
        finally:
            _CURRENT.reset(token)
            _uninstall()

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


_CURRENT: contextvars.ContextVar[Recorder] = contextvars.ContextVar("telcoflow_trio_recorder")
_LOCK = threading.Lock()
_installed = 0
_originals: dict[tuple[type, str], Any] = {}


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, trio.Cancelled):
        return "cancelled"
    return f"raised:{type(exc).__name__}"


def _command_deadline(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
    if name == "connect":
        ring = kwargs.get("ring_time_seconds", args[0] if args else 60)
        seconds = float(ring) if isinstance(ring, int) else _DEFAULT_TIMEOUT
        return seconds + _GRACE
    if name == "close":
        drain = kwargs.get("drain_timeout", 0.0)
        extra = float(drain) if isinstance(drain, int | float) else 0.0
        return _DEFAULT_TIMEOUT + _GRACE + extra
    return _DEFAULT_TIMEOUT + _GRACE


def _wrap_command(name: str, original: Any) -> Any:
    @functools.wraps(original)
    async def wrapper(self: Call, *args: Any, **kwargs: Any) -> Any:
        recorder = _CURRENT.get(None)
        if recorder is None:
            return await original(self, *args, **kwargs)
        ledger = recorder.ledger(self)
        entry = CommandCall(name, _command_deadline(name, args, kwargs), recorder.now())
        ledger.commands.append(entry)
        clear: ClearCall | None = None
        if name == "clear_send_audio_buffer":
            clear = ClearCall(entry.started)
            ledger.clears.append(clear)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            entry.outcome = _outcome(exc)
            raise
        else:
            if isinstance(result, CommandResult) and not result:
                entry.outcome = f"refused:{result.error_code}"
            else:
                entry.outcome = "ok"
            return result
        finally:
            entry.ended = recorder.now()
            if clear is not None:
                clear.ended, clear.outcome = entry.ended, entry.outcome

    return wrapper


def _wrap_send_audio(original: Any) -> Any:
    @functools.wraps(original)
    async def send_audio(self: Call, pcm: Any, *args: Any, **kwargs: Any) -> None:
        recorder = _CURRENT.get(None)
        if recorder is None or not isinstance(pcm, bytes | bytearray | memoryview):
            await original(self, pcm, *args, **kwargs)
            return
        ledger = recorder.ledger(self)
        write = AudioWrite(recorder.now(), len(ledger.clears), bytes(pcm))
        ledger.writes.append(write)
        try:
            await original(self, pcm, *args, **kwargs)
        except BaseException as exc:
            name = type(exc).__name__
            write.outcome = {"BufferFullError": "full", "BufferClosedError": "closed"}.get(
                name, _outcome(exc)
            )
            raise
        else:
            write.outcome = "queued"
        finally:
            write.ended = recorder.now()

    return send_audio


def _wrap_incoming_call(original: Any) -> Any:
    @functools.wraps(original)
    async def incoming_call(self: Session, *args: Any, **kwargs: Any) -> Call:
        call: Call = await original(self, *args, **kwargs)
        recorder = _CURRENT.get(None)
        if recorder is not None:
            recorder.ledger(call)
        return call

    return incoming_call


_COMMANDS: Final = (
    "answer",
    "connect",
    "whisper",
    "barge",
    "spy",
    "disconnect",
    "close",
    "clear_send_audio_buffer",
)


def _install() -> None:
    global _installed
    with _LOCK:
        _installed += 1
        if _installed > 1:
            return
        patches: dict[tuple[type, str], Any] = {}
        for name in _COMMANDS:
            patches[(Call, name)] = _wrap_command(name, getattr(Call, name))
        patches[(Call, "send_audio")] = _wrap_send_audio(Call.send_audio)
        patches[(Session, "incoming_call")] = _wrap_incoming_call(Session.incoming_call)
        for (cls, name), wrapper in patches.items():
            _originals[(cls, name)] = cls.__dict__[name]
            setattr(cls, name, wrapper)


def _uninstall() -> None:
    global _installed
    with _LOCK:
        _installed -= 1
        if _installed > 0:
            return
        for (cls, name), original in _originals.items():
            setattr(cls, name, original)
        _originals.clear()


def without_cancelled(exc: BaseException) -> BaseException | None:
    """``exc`` minus the ``trio.Cancelled`` in it (a cancellation is not a failure)."""
    if isinstance(exc, trio.Cancelled):
        return None
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1]
    return exc
