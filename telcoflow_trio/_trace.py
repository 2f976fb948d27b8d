"""An explicit hook through which a test kit observes what an application does with its calls.

The SDK reports to the :class:`Observer` set in :data:`OBSERVER` (for the current task and the
tasks it starts) every call ``Session.incoming_call`` hands out, every command method of a
:class:`~telcoflow_trio.Call` and every ``send_audio``. With no observer set, the cost is one
``ContextVar.get`` per method call.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, Protocol, TypeVar

import trio

from ._errors import BufferClosedError, BufferFullError
from ._results import CommandResult

__all__ = ["OBSERVER", "Ended", "Observer", "audio", "command"]

P = ParamSpec("P")
T = TypeVar("T")
CallT = TypeVar("CallT", contravariant=True)
SessionT = TypeVar("SessionT", contravariant=True)

Ended = Callable[[str], object]
"""Told how an operation ended: ``ok``, ``refused:CODE``, ``raised:Type``, ``cancelled``;
for audio ``queued``, ``full``, ``closed``, ``cancelled``, ``raised:Type``."""


class Observer(Protocol[CallT, SessionT]):
    """What the SDK tells an observer (an ``Observer[Call, Session]``). Called synchronously;
    must not raise.

    Generic so that this module, which the call and session modules import, imports neither.
    """

    def call_seen(self, call: CallT, session: SessionT) -> None:
        """``session.incoming_call()`` returned ``call``."""

    def operation_started(self, call: CallT, name: str, deadline_s: float) -> Ended:
        """Command method ``name`` was called; it returns within ``deadline_s`` seconds."""
        ...

    def audio_started(self, call: CallT, pcm: bytes | bytearray | memoryview) -> Ended:
        """``send_audio(pcm)`` was called (``pcm`` is what the application passed)."""
        ...


OBSERVER: contextvars.ContextVar[Observer[Any, Any] | None] = contextvars.ContextVar(
    "telcoflow_trio_observer", default=None
)


def _failure(exc: BaseException) -> str:
    if isinstance(exc, trio.Cancelled):
        return "cancelled"
    return f"raised:{type(exc).__name__}"


async def command(
    call: object,
    name: str,
    deadline_s: float,
    operation: Callable[P, Awaitable[T]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """``await operation(*args, **kwargs)``, reported to the observer if one is set."""
    observer = OBSERVER.get()
    if observer is None:
        return await operation(*args, **kwargs)
    ended = observer.operation_started(call, name, deadline_s)
    try:
        result = await operation(*args, **kwargs)
    except BaseException as exc:
        ended(_failure(exc))
        raise
    if isinstance(result, CommandResult) and not result:
        ended(f"refused:{result.error_code}")
    else:
        ended("ok")
    return result


async def audio(
    observer: Observer[Any, Any],
    call: object,
    pcm: bytes | bytearray | memoryview,
    operation: Callable[P, Awaitable[None]],
    *args: P.args,
    **kwargs: P.kwargs,
) -> None:
    """``send_audio``'s observed path (its caller has already found ``observer``)."""
    ended = observer.audio_started(call, pcm)
    try:
        await operation(*args, **kwargs)
    except BufferFullError:
        ended("full")
        raise
    except BufferClosedError:
        ended("closed")
        raise
    except BaseException as exc:
        ended(_failure(exc))
        raise
    ended("queued")
