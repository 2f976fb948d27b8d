"""The trio-websocket engine behind :func:`telcoflow_trio._transport.open_websocket`.

We own the TCP (and TLS) stream rather than let ``trio_websocket.open_websocket_url`` do it:
that one, on a failed or timed-out handshake, leaves the socket open and waits for its
reader task, which never ends while the server keeps the connection open without answering.
Owning the stream also lets us close it forcefully whenever a write went wrong.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import NoReturn, TypeAlias, cast

import attrs
import trio
import trio_websocket
import wsproto  # trio-websocket's protocol library (see _direct_parts)
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, TextMessage

from . import _connect, _transport
from ._connect import close_forcefully, handshake_failure, host_port, open_over, target
from ._errors import WSSConnectionError
from ._inbox import MessageHandler
from ._tcp import ReadyFirstStream, send_eagerly
from ._transport import MessageSocket, SocketClosed, WriteFailures, refusal_error
from ._websocket_host import TaskHost

__all__ = ["TrioWebSocket", "open_websocket", "wrap_stream"]

logger = logging.getLogger(__name__)


@attrs.define(eq=False)
class _Ping:
    answered: trio.Event = attrs.field(factory=trio.Event)
    pong: bool = False


class TrioWebSocket(MessageSocket):
    """A :class:`MessageSocket` on a trio-websocket connection whose stream we own."""

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        stream: trio.abc.Stream,
        host: TaskHost,
        what: str,
    ) -> None:
        self._ws = ws
        self._stream = stream
        self._host = host
        self._what = what
        self._closed = False
        self._failures = WriteFailures(what)
        self._pings: set[_Ping] = set()
        self._writes = 0  # in progress, ours and our pings (send_now waits for none)
        self._direct = _direct_parts(ws, stream)
        host.on_reader_done = self._wake_pings
        if host.feed is not None:
            host.feed.write_due = self._write_due

    def __repr__(self) -> str:
        return f"<TrioWebSocket {self._what} closed={self.closed}>"

    @property
    def closed(self) -> bool:
        return self._closed or self._ws.closed is not None or self._host.reader_done.is_set()

    async def send(self, message: str | bytes) -> None:
        if not isinstance(message, str | bytes):
            raise TypeError(f"message must be str or bytes, not {type(message).__name__}")
        direct = self._direct
        # Refused before anything is written (the stream stays intact), also while the peer's
        # close is being answered and trio-websocket has not yet marked the socket closed.
        if self.closed or (direct is not None and direct[0].state is not ConnectionState.OPEN):
            await trio.lowlevel.checkpoint()
            raise self._failures.closed()
        written = False
        try:
            # One scope, shielded from outside cancellation, with its own deadline: it is
            # entered for every audio frame, so it is kept to one.
            with trio.CancelScope(
                shield=True, deadline=trio.current_time() + _transport.WRITE_TIMEOUT
            ):
                self._writes += 1
                try:
                    if direct is not None:
                        await _send_direct(direct, message)
                    else:
                        await self._ws.send_message(message)
                finally:
                    self._writes -= 1
                written = True
        except (
            trio_websocket.ConnectionClosed,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
        ):
            raise self._failures.closed() from None
        finally:
            if not written:
                # Failed, stuck past its deadline, or interrupted: how much of the frame
                # reached the stream is unknown, so nothing more may be written to it.
                await self.abort()
        if not written:
            raise self._failures.stuck()

    def can_send_now(self) -> bool:
        # Only from the handler, in the reader task (see _websocket_host.Feed), no write under way.
        feed = self._host.feed
        return (
            feed is not None
            and feed.delivering
            and feed.due is None
            and not self._writes
            and not self.closed
        )

    def send_now(self, message: bytes) -> None:
        """Leave ``message`` for the reader task, which writes it (as :meth:`send` does)
        as soon as the handler returns, before it reads on and before any other write;
        a failure then closes the socket, which its owner sees next."""
        feed = self._host.feed
        if feed is None or not self.can_send_now():
            raise RuntimeError("send_now() without can_send_now()")
        feed.due = message

    async def _write_due(self, message: bytes) -> None:  # noqa: ASYNC910 (private; send is the checkpoint)
        try:
            await self.send(message)
        except WSSConnectionError:
            logger.debug("%s: a message left by send_now was not written", self._what)

    @property
    def fed(self) -> bool:
        """Messages come through our inbox (``_websocket_host.Feed``), not trio-websocket's
        channel."""
        return self._host.feed is not None

    async def receive(self) -> str | bytes:
        if self._host.feed is not None:
            return await self._host.inbox.receive()
        try:
            return await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            why = exc.reason
            raise SocketClosed(why.code if why else None, why.reason if why else None) from None

    async def receive_each(self, handler: MessageHandler) -> NoReturn:
        if self._host.feed is not None:
            await self._host.inbox.receive_each(handler)
        await super().receive_each(handler)

    async def ping(self) -> None:
        if self.closed:
            await trio.lowlevel.checkpoint()
            raise SocketClosed(*self._close_reason())
        ping = _Ping()
        self._pings.add(ping)
        # The ping frame is written by a task of the connection, so the caller's deadline
        # cuts only the wait for the pong, never the frame.
        self._host.spawn(partial(self._send_ping, ping))
        try:
            await ping.answered.wait()
        finally:
            self._pings.discard(ping)
        if not ping.pong:
            raise SocketClosed(*self._close_reason())

    async def _send_ping(self, ping: _Ping) -> None:
        if self.closed:
            ping.answered.set()
            await trio.lowlevel.checkpoint()
            return
        self._writes += 1
        try:
            await self._ws.ping()
        except trio_websocket.ConnectionClosed:
            # The socket was open a moment ago: the ping's write failed.
            await self.abort()
        else:
            ping.pong = True
        finally:
            self._writes -= 1
            ping.answered.set()

    def _wake_pings(self) -> None:
        for ping in self._pings:
            ping.answered.set()

    def _close_reason(self) -> tuple[int | None, str | None]:
        why = self._ws.closed
        return (why.code, why.reason) if why is not None else (None, None)

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        self._closed = True
        # Unread messages are discarded and receive() ends, as trio-websocket's aclose does.
        self._host.inbox.discard()
        try:
            # Shielded: the close frame is a write, and must not be cut; the reader that
            # reads the peer's reply is shielded too. Bounded, then forceful either way.
            with trio.CancelScope(
                shield=True, deadline=trio.current_time() + _transport.DISCONNECT_TIMEOUT
            ):
                await self._ws.aclose()
        finally:
            await self.abort()

    async def abort(self) -> None:
        self._closed = True
        self._wake_pings()
        await close_forcefully(self._stream)


_Direct: TypeAlias = tuple[wsproto.WSConnection, trio.StrictFIFOLock, ReadyFirstStream]


def _direct_parts(
    ws: trio_websocket.WebSocketConnection, stream: trio.abc.Stream
) -> _Direct | None:
    """trio-websocket's protocol object and write lock, where they are what this was written
    against (0.12) and the stream is plain TCP; else None (its ``send_message`` is used).

    With them a message is framed and written under that lock as trio-websocket's own send
    does, but what the socket takes at once is written before any schedule point: its send
    yields on taking the free lock, and again in the socket's send, so the frame would wait
    for a pass of the scheduler, and a pull request's answer with it.
    """
    protocol = getattr(ws, "_wsproto", None)
    lock = getattr(ws, "_stream_lock", None)
    if (
        isinstance(stream, ReadyFirstStream)
        and isinstance(protocol, wsproto.WSConnection)
        and isinstance(lock, trio.StrictFIFOLock)
    ):
        return protocol, lock, stream
    return None


async def _send_direct(direct: _Direct, message: str | bytes) -> None:  # noqa: ASYNC910 (private; a schedule point only when it has to wait, as MessageSocket.send says)
    protocol, lock, stream = direct
    event = BytesMessage(data=message) if isinstance(message, bytes) else TextMessage(message)
    data = protocol.send(event)
    if lock.locked():
        await lock.acquire()
    else:
        lock.acquire_nowait()
    try:
        await send_eagerly(stream, data)
    finally:
        lock.release()


async def _handshake(
    host: TaskHost,
    stream: trio.abc.Stream,
    resource: str,
    host_header: str,
    headers: Mapping[str, str],
    message_queue_size: int,
    what: str,
    where: str,
    secrets: tuple[str, ...],
    deadline: float,
) -> trio_websocket.WebSocketConnection:
    extra = [(k.encode("ascii"), v.encode("latin-1")) for k, v in headers.items()]
    ws: trio_websocket.WebSocketConnection | None = None
    with trio.move_on_at(deadline) as timer:
        async with trio.open_nursery() as race:

            @trio.lowlevel.enable_ki_protection  # an internal task: see _scope
            async def reader_ended() -> None:
                await host.reader_done.wait()
                race.cancel_scope.cancel()

            race.start_soon(reader_ended)
            ws = await trio_websocket.wrap_client_stream(
                cast(trio.Nursery, host),
                cast(trio.SocketStream, stream),
                host_header,
                resource,
                extra_headers=extra,
                message_queue_size=message_queue_size,
            )
            race.cancel_scope.cancel()
    if ws is not None:
        return ws
    if isinstance(host.error, trio_websocket.ConnectionRejected):
        rejected = host.error
        body = (rejected.body or b"").decode("utf-8", errors="replace")
        raise refusal_error(what, where, rejected.status_code or 0, body, secrets)
    raise handshake_failure(what, where, timer.cancelled_caught)


@asynccontextmanager
async def wrap_stream(
    stream: trio.abc.Stream,
    url: str,
    headers: Mapping[str, str],
    *,
    what: str,
    secrets: tuple[str, ...] = (),
    message_queue_size: int = 1,
    deadline: float | None = None,
) -> AsyncIterator[TrioWebSocket]:
    """A WebSocket client over ``stream``, which it owns: closed on every exit path.

    The upgrade must complete by ``deadline`` (default: :data:`_connect.CONNECT_TIMEOUT` from now).
    Leaving the block closes the socket politely (bounded), then the stream forcefully.
    """
    try:
        host_name, port, resource, host_header = target(url)
        where = host_port(host_name, port)
        if deadline is None:
            deadline = trio.current_time() + _connect.CONNECT_TIMEOUT
        # Entered and exited by hand so that an exception from the block comes out as
        # itself, not wrapped in a group; its tasks are shielded, so exiting it raises
        # nothing of theirs once the stream is closed and they are cancelled.
        nursery_manager = trio.open_nursery()
        nursery = await nursery_manager.__aenter__()
    except BaseException:
        await close_forcefully(stream)
        raise
    host = TaskHost(nursery, message_queue_size)
    try:
        ws = await _handshake(
            host,
            stream,
            resource,
            host_header,
            headers,
            message_queue_size,
            what,
            where,
            secrets,
            deadline,
        )
        sock = TrioWebSocket(ws, stream, host, what)
        try:
            yield sock
        finally:
            await sock.aclose()
    finally:
        # Nothing here may raise before the nursery is exited, in this task, in order.
        await close_forcefully(stream)
        host.cancel()
        await nursery_manager.__aexit__(None, None, None)


def open_websocket(
    url: str,
    headers: Mapping[str, str],
    tls: ssl.SSLContext | None,
    *,
    what: str,
    secrets: tuple[str, ...] = (),
    message_queue_size: int = 1,
) -> AbstractAsyncContextManager[MessageSocket]:
    """A client WebSocket on trio-websocket: a :class:`~telcoflow_trio._transport.Connector`."""
    return open_over(
        wrap_stream,
        url,
        headers,
        tls,
        what=what,
        secrets=secrets,
        message_queue_size=message_queue_size,
    )
