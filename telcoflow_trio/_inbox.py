"""Whole messages on their way from a socket's reader task to the socket's owner.

Each engine behind the transport seam (:mod:`._transport`) puts what its reader task
assembles into an :class:`Inbox`; so does the in-memory socket, from the sender's task.
The owner either receives them one at a time, or has them handed to a handler as they
arrive (``MessageSocket.receive_each``), which saves a task switch per message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import NoReturn, TypeAlias

import trio

__all__ = ["Inbox", "MessageHandler"]

MessageHandler: TypeAlias = Callable[[str | bytes], None]
"""Takes one whole message; synchronous, and must not block (see :meth:`Inbox.receive_each`)."""


class Inbox:
    """Whole messages on their way from a socket's reader to the socket's owner.

    The reader gives each message to :meth:`put`. While the owner runs
    :meth:`receive_each`, the message goes straight to its handler, in the reader's task;
    otherwise it is queued (at most ``size``; :meth:`put` then waits for room, which stops
    the reader) for :meth:`receive`. :meth:`end` means no more messages will come (the
    queued ones are still received), :meth:`discard` that the owner closed the socket (the
    queued ones are dropped, and so is anything put later). ``closed`` makes the exception that
    :meth:`receive` and :meth:`receive_each` raise then (the engine's ``SocketClosed``,
    with its close code).
    """

    __slots__ = ("_closed", "_error", "_handler", "_recv", "_send", "_woken")

    def __init__(self, size: float, closed: Callable[[], Exception]) -> None:
        self._send, self._recv = trio.open_memory_channel[str | bytes](size)
        self._closed = closed
        self._handler: MessageHandler | None = None
        self._error: Exception | None = None
        self._woken: trio.Event | None = None

    # ── the reader's side ───────────────────────────────────────────────────────────────

    @property
    def handing(self) -> bool:
        """Whether :meth:`put` calls ``receive_each``'s handler now (synchronously)."""
        return self._handler is not None

    def put_nowait(self, message: str | bytes) -> None:
        """:meth:`put` for an unbounded inbox; raises ``trio.WouldBlock`` if it is full."""
        handler = self._handler
        if handler is not None:
            self._hand(handler, message)
            return
        # Discarded by the owner's close, or put after the end: dropped.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            self._send.send_nowait(message)

    async def put(self, message: str | bytes) -> None:  # noqa: ASYNC910 (the reader's reads are its checkpoints)
        """Hand over or queue one message; waits only while the queue is full.

        Not a schedule point when it does not wait: the reader's socket reads are its own.
        """
        handler = self._handler
        if handler is not None:
            self._hand(handler, message)
            return  # noqa: ASYNC910 (see the docstring)
        try:
            self._send.send_nowait(message)
        except trio.WouldBlock:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self._send.send(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # discarded by the owner's close, or put after the end: dropped

    def _hand(self, handler: MessageHandler, message: str | bytes) -> None:
        try:
            handler(message)
        except Exception as exc:
            # Raised in the owner's task by receive_each; the reader reads on, unharmed.
            self._handler = None
            self._error = exc
            self._wake()

    def end(self) -> None:
        """No more messages: after the queued ones, the owner sees the socket closed."""
        self._handler = None
        self._send.close()
        self._wake()

    def discard(self) -> None:
        """The owner closed the socket: queued and later messages are dropped."""
        self._handler = None
        self._recv.close()
        self._wake()

    def _wake(self) -> None:
        if self._woken is not None:
            self._woken.set()

    # ── the owner's side ────────────────────────────────────────────────────────────────

    async def receive(self) -> str | bytes:
        try:
            return await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise self._closed() from None

    async def receive_each(self, handler: MessageHandler) -> NoReturn:
        """Hand every message to ``handler`` until the end; then raise ``closed()``.

        Queued messages first, in this task; then each :meth:`put` calls ``handler`` in the
        reader's task. An exception from ``handler`` ends the delivery and is raised here.
        Cancelling this ends the delivery too: messages queue again.
        """
        if self._woken is not None:
            raise RuntimeError("receive_each is already running on this socket")
        await trio.lowlevel.checkpoint_if_cancelled()
        recv = self._recv
        while True:  # what was queued before the call, in order
            try:
                message = recv.receive_nowait()
            except trio.WouldBlock:
                break
            except (trio.EndOfChannel, trio.ClosedResourceError):
                await trio.lowlevel.cancel_shielded_checkpoint()
                raise self._closed() from None
            handler(message)
        # From here on nothing is queued: each put goes to the handler, until end,
        # discard or a failed handler wakes us.
        woken = self._woken = trio.Event()
        self._handler = handler
        try:
            await woken.wait()
        finally:
            self._handler = None
            self._woken = None
        error, self._error = self._error, None
        if error is not None:
            raise error
        raise self._closed()
