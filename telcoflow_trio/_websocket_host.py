"""What trio-websocket's connection is given in place of its own parts, so that we own its
tasks and its messages: :class:`TaskHost` for the nursery its reader task starts in,
:class:`Feed` for the memory channel its reader sends each message into.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio
import trio_websocket

from ._connect import SocketTasks
from ._inbox import Inbox
from ._transport import SocketClosed

__all__ = ["Feed", "TaskHost"]

logger = logging.getLogger(__name__)


class Feed:
    """Stands in for the memory channel into which trio-websocket's reader task sends each
    whole message (the connection's private ``_send_channel``), and puts the messages into
    our :class:`~telcoflow_trio._inbox.Inbox` instead: so ``receive_each``'s handler
    runs in that reader task, with no hop through the channel and a task of the owner's.

    While the handler runs, the socket can take a binary message at once
    (:meth:`TrioWebSocket.send_now`): the reader task writes it as soon as the handler
    returns, before it reads on. So a pull request is answered in the task that read it.

    It has what the reader uses of the channel: ``send``, ``aclose`` (the peer closed) and
    ``async with`` (the reader ended). Installed only where that attribute is the memory
    channel this was written against (trio-websocket 0.12); elsewhere the socket
    reads with ``get_message`` as before (:attr:`TrioWebSocket.fed` says which).
    """

    __slots__ = ("_inbox", "delivering", "due", "write_due")

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self.delivering = False
        """The handler is running, in the reader task: a message can be left in ``due``."""
        self.due: bytes | None = None
        self.write_due: Callable[[bytes], Awaitable[None]] | None = None

    @staticmethod
    def install(connection: trio_websocket.WebSocketConnection, inbox: Inbox) -> Feed | None:
        if not isinstance(getattr(connection, "_send_channel", None), trio.MemorySendChannel):
            return None
        feed = Feed(inbox)
        setattr(connection, "_send_channel", feed)  # noqa: B010 (a private attribute)
        return feed

    async def send(self, message: str | bytes) -> None:  # noqa: ASYNC910 (the reader's reads are its checkpoints, as in Inbox.put)
        inbox = self._inbox
        if not inbox.handing:
            await inbox.put(message)
            return
        self.delivering = True
        try:
            inbox.put_nowait(message)  # the handler, here and now
        finally:
            self.delivering = False
        due = self.due
        if due is not None and self.write_due is not None:
            self.due = None
            await self.write_due(due)

    async def aclose(self) -> None:
        self._inbox.end()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> Feed:
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class TaskHost(SocketTasks):
    """Stands in for the nursery trio-websocket starts its reader task in; hosts our pings.

    Each task runs shielded from outside cancellation, so no frame it writes (the upgrade
    request, a pong, a close reply, a ping) is cut by its owner's cancellation. The owner
    ends them on every exit path: it closes the stream, then calls :meth:`cancel`. What the
    reader raises is kept (a refused upgrade arrives that way) and its end is signalled, so
    the handshake fails at once when the peer hangs up instead of at its deadline. The
    reader's messages go to ``inbox`` (see :class:`Feed`).
    """

    def __init__(self, nursery: trio.Nursery, message_queue_size: int) -> None:
        super().__init__(nursery)
        self._connection: trio_websocket.WebSocketConnection | None = None
        self.inbox = Inbox(message_queue_size, self.closed_socket)
        self.feed: Feed | None = None
        self.error: Exception | None = None
        self.reader_done = trio.Event()
        self.on_reader_done: Callable[[], None] | None = None

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """trio-websocket's call, once per connection, for its reader task."""
        connection = getattr(fn, "__self__", None)
        if isinstance(connection, trio_websocket.WebSocketConnection):
            self._connection = connection
            # Before the reader first runs, so that every message goes through the feed.
            self.feed = Feed.install(connection, self.inbox)

        async def reader() -> None:
            try:
                await fn(*args)
            except Exception as exc:
                logger.debug("websocket reader ended: %s", type(exc).__name__)
                self.error = exc
                await trio.lowlevel.checkpoint()
            finally:
                self.reader_done.set()
                self.inbox.end()
                if self.on_reader_done is not None:
                    self.on_reader_done()

        self.spawn(reader, name=fn)

    def closed_socket(self) -> SocketClosed:
        """The end of the messages, with the close code and reason if there were any."""
        why = self._connection.closed if self._connection is not None else None
        return SocketClosed(why.code, why.reason) if why is not None else SocketClosed()
