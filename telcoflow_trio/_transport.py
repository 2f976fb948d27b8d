"""The transport seam: one small message-socket interface, shared by the control and voice planes.

A :class:`MessageSocket` carries whole WebSocket messages: :meth:`~MessageSocket.send` never
cuts one in half, :meth:`~MessageSocket.receive` returns the next one or raises
:class:`SocketClosed` (or :meth:`~MessageSocket.receive_each` hands each one to a synchronous
handler as it arrives), :meth:`~MessageSocket.ping` waits for the pong, and the socket closes
politely (:meth:`~MessageSocket.aclose`) or at once (:meth:`~MessageSocket.abort`).
Each engine's reader task puts whole messages into an :class:`~._inbox.Inbox`.

A :class:`Connector` opens one: ``async with connect(url, headers, tls, what=...) as sock``.
The default is ``_websocket.open_websocket``, a real WebSocket on trio-websocket;
:class:`MemoryConnector` hands out the ends of :func:`memory_socket_pair` instead, so the
connection classes are unit-tested without sockets, as ``trio.testing.memory_stream_pair``
does for streams.
"""

from __future__ import annotations

import abc
import logging
import math
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, NoReturn, Protocol

import attrs
import trio

from ._errors import WSSAuthenticationError, WSSConnectionError, WSSError
from ._inbox import Inbox, MessageHandler

__all__ = [
    "DISCONNECT_TIMEOUT",
    "WRITE_TIMEOUT",
    "Accepted",
    "Connector",
    "MemoryConnector",
    "MemorySocket",
    "MessageSocket",
    "SocketClosed",
    "WriteFailures",
    "keep_alive",
    "memory_socket_pair",
    "refusal_error",
]

logger = logging.getLogger(__name__)

WRITE_TIMEOUT: Final = 10.0
"""A write the peer has not taken within this long means the connection is dead."""
DISCONNECT_TIMEOUT: Final = 2.0
"""How long a polite close may wait for the peer's close reply."""
ABNORMAL_CLOSURE: Final = 1006
NORMAL_CLOSURE: Final = 1000
_BODY_LIMIT: Final = 300


class SocketClosed(Exception):
    """The socket is closed: the peer closed it, it died, or we closed it.

    Internal to the connection classes (not a ``WSSError``): each turns it into the end of
    its connection. ``code`` and ``reason`` are the WebSocket close code and reason, if any.
    """

    def __init__(self, code: int | None = None, reason: str | None = None) -> None:
        shown = f" (code {code}{f': {reason}' if reason else ''})" if code is not None else ""
        super().__init__(f"socket closed{shown}")
        self.code = code
        self.reason = reason


class MessageSocket(abc.ABC):
    """A connected message socket (one WebSocket). Owned by one connection class."""

    @abc.abstractmethod
    async def send(self, message: str | bytes) -> None:
        """Write one message whole (text for ``str``, binary for ``bytes``).

        Not a cancellation point: once called, the message is written whole, whatever
        happens outside, within its own deadline (:data:`WRITE_TIMEOUT`). A schedule point
        when it has to wait; a message the socket takes at once may be written without one
        (the ``websockets`` engine on plain TCP). A write that
        fails, is stuck past the deadline, or is interrupted all the same leaves the stream
        in an unknown state, so the socket is then closed forcefully: no further frame, not
        even a close frame, is written to it. Raises ``WSSConnectionError`` in those cases
        and when the socket is already closed.
        """

    def can_send_now(self) -> bool:
        """Whether :meth:`send_now` would take a message at once (no write in progress).

        False for an engine without such a path (the in-memory socket). The ``websockets``
        engine takes one at any time on plain TCP; over TLS, and on trio-websocket, only
        from ``receive_each``'s handler, in the reader task."""
        return False

    def send_now(self, message: bytes) -> None:
        """Write one binary message at once, from synchronous code, whole: what the socket
        does not take now is written before anything else, by a task of the socket (from
        the handler: the reader, as soon as the handler returns).

        Only after :meth:`can_send_now` said True, with no schedule point between. Raises
        ``WSSConnectionError`` when the socket is closed or the write failed (the socket is
        then closed forcefully, as after a failed :meth:`send`); a write left to a task
        that fails closes the socket all the same, which its owner sees next."""
        raise NotImplementedError(f"{type(self).__name__} has no synchronous write")

    @abc.abstractmethod
    async def receive(self) -> str | bytes:
        """The next message; raises :class:`SocketClosed` once the socket is closed."""

    async def receive_each(self, handler: MessageHandler) -> NoReturn:
        """Hand every message to ``handler``, in order, until the socket closes; then raise
        :class:`SocketClosed` as :meth:`receive` would.

        An engine with a reader task calls ``handler`` from that task as each message is
        parsed (see ``_inbox.Inbox``), so a message reaches its owner without a hop through a
        channel and a task of the owner's; hence ``handler`` must not block. An exception
        from ``handler`` ends the delivery and is raised here, in the caller's task.
        Messages queued before the call are handed over first. Cancelling the call ends the
        delivery: later messages queue for :meth:`receive` again. One call at a time, and
        no :meth:`receive` meanwhile.
        """
        while True:
            handler(await self.receive())

    @abc.abstractmethod
    async def ping(self) -> None:
        """Send a ping and return when its pong arrives; the caller puts a deadline on it.

        Raises :class:`SocketClosed` if the socket is or becomes closed first.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close politely (close handshake), within :data:`DISCONNECT_TIMEOUT`, then forcefully.

        Idempotent. Shielded from outer cancellation, and bounded by its deadline.
        """

    @abc.abstractmethod
    async def abort(self) -> None:
        """Close forcefully at once, without a close frame (the peer sees the connection drop)."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once the socket is closed, by either side, or has died."""


class Connector(Protocol):
    """Opens a :class:`MessageSocket`; ``_websocket.open_websocket`` is the real one.

    ``what`` names the plane in error messages (``"control plane"``); ``secrets`` are
    scrubbed from anything the server says back. A refused upgrade raises
    ``WSSAuthenticationError`` (HTTP 401/403) or ``WSSConnectionError`` carrying
    ``status_code``; a failure to connect, ``WSSConnectionError`` naming host:port and why.
    Leaving the block closes the socket politely (:meth:`MessageSocket.aclose`).
    """

    def __call__(
        self,
        url: str,
        headers: Mapping[str, str],
        tls: ssl.SSLContext | None,
        *,
        what: str,
        secrets: tuple[str, ...] = (),
        message_queue_size: int = 1,
    ) -> AbstractAsyncContextManager[MessageSocket]: ...


class WriteFailures:
    """How an engine's ``send`` fails, worded once for every engine: the socket is closed, or a
    write was stuck past :data:`WRITE_TIMEOUT`. The stuck warning is logged once per socket:
    a dead peer would otherwise log it for every frame still queued."""

    __slots__ = ("_warned", "_what")

    def __init__(self, what: str) -> None:
        self._what = what
        self._warned = False

    def closed(self) -> WSSConnectionError:
        return WSSConnectionError(f"{self._what}: the connection is closed")

    def stuck(self) -> WSSConnectionError:
        if not self._warned:
            self._warned = True
            logger.warning(
                "%s: a write was stuck for %g s: closing the connection", self._what, WRITE_TIMEOUT
            )
        return WSSConnectionError(
            f"{self._what}: a write was stuck for {WRITE_TIMEOUT:g} s; connection closed"
        )


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def refusal_error(
    what: str, where: str, status: int, body: str, secrets: tuple[str, ...]
) -> WSSError:
    """The error for an upgrade the server refused with HTTP ``status`` and ``body``."""
    # The server should never echo a credential back, but a log line must not depend on it.
    body = redact(body.strip()[:_BODY_LIMIT], secrets)
    detail = f": {body}" if body else ""
    if status == 426 and not body:
        detail = ": upgrade required"
    message = f"{what}: {where} refused the connection (HTTP {status}){detail}"
    if status in (401, 403):
        return WSSAuthenticationError(message, status_code=status)
    return WSSConnectionError(message, status_code=status)


async def keep_alive(
    sock: MessageSocket, *, interval: float, pong_timeout: float, what: str
) -> None:
    """Ping every ``interval`` seconds; a pong missing for ``pong_timeout`` aborts the socket.

    The owner then sees the socket end as any lost socket ends (:class:`SocketClosed` from
    ``receive``). Returns once the socket is closed.
    """
    while True:
        await trio.sleep(interval)
        with trio.move_on_after(pong_timeout) as waiting:
            try:
                await sock.ping()
            except SocketClosed:
                return
        if waiting.cancelled_caught:
            logger.warning("%s: no pong within %g s: connection lost", what, pong_timeout)
            await sock.abort()
            return


# ── in memory, for unit tests ───────────────────────────────────────────────────────────


class _Link:
    """What both ends of a memory pair share: whether it is closed, and how."""

    def __init__(self) -> None:
        self.code: int | None = None
        self.reason: str | None = None
        self.changed: trio.Event = trio.Event()

    @property
    def closed(self) -> bool:
        return self.code is not None

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class MemorySocket(MessageSocket):
    """One end of :func:`memory_socket_pair`: messages go whole to the other end.

    Messages sent before a close still reach the peer; then its ``receive`` raises
    :class:`SocketClosed` with code 1000 (:meth:`aclose`) or 1006 (:meth:`abort`). The end
    that closes discards what it had not received, as a WebSocket does. Pings are answered
    by the peer until the peer calls :meth:`stop_answering_pings` (a half-dead path).
    While the peer runs :meth:`receive_each`, ``send`` calls its handler (the sender's task
    plays the engine's reader task).
    """

    def __init__(self, link: _Link) -> None:
        self._link = link
        self._inbox = Inbox(math.inf, self._closed_error)
        self._peer: MemorySocket = self
        self._answers_pings = True

    def __repr__(self) -> str:
        return f"<MemorySocket closed={self.closed}>"

    def _closed_error(self) -> SocketClosed:
        return SocketClosed(self._link.code, self._link.reason)

    @property
    def closed(self) -> bool:
        return self._link.closed

    def stop_answering_pings(self) -> None:
        """From now on, the peer's pings wait for ever (until a close or :meth:`answer_pings`)."""
        self._answers_pings = False

    def answer_pings(self) -> None:
        """Answer pings again, including those waiting."""
        self._answers_pings = True
        self._link.notify()

    async def send(self, message: str | bytes) -> None:
        if not isinstance(message, str | bytes):
            raise TypeError(f"message must be str or bytes, not {type(message).__name__}")
        if self._link.closed:
            await trio.lowlevel.checkpoint()
            raise WSSConnectionError("memory socket: the connection is closed")
        # The peer's receive_each handler, if one runs, takes it here, in this task: as an
        # engine's reader task would, that is, with no hop through a task of the peer's.
        self._peer._inbox.put_nowait(message)
        # Delivered whole first, as a real write is shielded; then only a schedule point.
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def receive(self) -> str | bytes:
        return await self._inbox.receive()

    async def receive_each(self, handler: MessageHandler) -> NoReturn:
        await self._inbox.receive_each(handler)

    async def ping(self) -> None:
        await trio.lowlevel.checkpoint()
        while True:
            if self._link.closed:
                raise SocketClosed(self._link.code, self._link.reason)
            if self._peer._answers_pings:
                return
            await self._link.changed.wait()

    async def aclose(self) -> None:
        self._close(NORMAL_CLOSURE)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def abort(self) -> None:
        self._close(ABNORMAL_CLOSURE)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def _close(self, code: int) -> None:
        if self._link.closed:
            return
        self._link.code = code
        self._inbox.discard()
        self._peer._inbox.end()
        self._link.notify()


def memory_socket_pair() -> tuple[MemorySocket, MemorySocket]:
    """Two connected :class:`MemorySocket` ends, like ``trio.testing.memory_stream_pair``."""
    link = _Link()
    a, b = MemorySocket(link), MemorySocket(link)
    a._peer, b._peer = b, a
    return a, b


@attrs.frozen
class Accepted:
    """One connection the SDK made through a :class:`MemoryConnector`, from the server's side."""

    socket: MemorySocket
    url: str
    headers: Mapping[str, str] = attrs.field(repr=False)
    what: str


class MemoryConnector:
    """A :class:`Connector` over memory pairs; the test plays the server.

    Each connection attempt makes a :func:`memory_socket_pair`, gives the SDK one end and
    queues the other (with the URL and headers) for :meth:`accept`. :meth:`refuse_next`
    makes the next attempt fail as a refused upgrade would.
    """

    def __init__(self) -> None:
        self._accepted_send, self._accepted = trio.open_memory_channel[Accepted](math.inf)
        self._refusals: deque[tuple[int, str]] = deque()
        self.attempts: int = 0
        """Connection attempts so far, refused ones included."""

    def refuse_next(self, status_code: int, body: str = "") -> None:
        """Refuse the next attempt with HTTP ``status_code`` (queued: call again for more)."""
        self._refusals.append((status_code, body))

    async def accept(self) -> Accepted:
        """The server's side of the next connection the SDK makes (waits for it)."""
        return await self._accepted.receive()

    def __call__(
        self,
        url: str,
        headers: Mapping[str, str],
        tls: ssl.SSLContext | None,
        *,
        what: str,
        secrets: tuple[str, ...] = (),
        message_queue_size: int = 1,
    ) -> AbstractAsyncContextManager[MessageSocket]:
        return self._connect(url, dict(headers), what, secrets)

    @asynccontextmanager
    async def _connect(
        self, url: str, headers: dict[str, str], what: str, secrets: tuple[str, ...]
    ) -> AsyncIterator[MessageSocket]:
        await trio.lowlevel.checkpoint()
        self.attempts += 1
        if self._refusals:
            status, body = self._refusals.popleft()
            raise refusal_error(what, "memory", status, body, secrets)
        client, server = memory_socket_pair()
        self._accepted_send.send_nowait(Accepted(server, url, headers, what))
        try:
            yield client
        finally:
            await client.aclose()
