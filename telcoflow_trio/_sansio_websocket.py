"""The second engine behind the transport seam: ``websockets``' sans-I/O client protocol.

``websockets.client.ClientProtocol`` does the framing and the protocol's rules (handshake,
masking, ping/pong, the close handshake, size limits, invalid frames); this module does the
I/O over a trio stream that it owns, as ``_websocket`` does for trio-websocket, and gives
the same guarantees and errors (see :class:`telcoflow_trio._transport.MessageSocket`):

- one reader task per socket reads the stream, feeds the protocol, answers pings and the
  peer's close, and hands whole messages to ``receive_each``'s handler as it assembles
  them, or queues them (at most ``message_queue_size``) for ``receive``; given a running
  :class:`~telcoflow_trio._readhub.ReadHub`, a socket is read by the hub instead (plain
  TCP, or TLS through :class:`~telcoflow_trio._tls.MemoryTlsStream`, which decrypts what
  the hub read), many sockets in one task step, and its own task only writes and waits;
- every write (a message, a pong, a ping, a close frame, the upgrade request) goes through
  one lock and one ``send_all``, shielded, within :data:`~telcoflow_trio._transport.WRITE_TIMEOUT`;
  a write that fails, sticks or is interrupted closes the stream at once, and nothing is
  written after it;
- TCP, the connect deadline and the error messages are ``_connect``'s helpers, as for
  trio-websocket; TLS is a :class:`~telcoflow_trio._tls.MemoryTlsStream` (``trio.SSLStream``
  for trio-websocket).

It is offered because it spends less CPU per message than trio-websocket (wsproto's event
layer and trio-websocket's per-message machinery are not on its path; measured by
``bench/bench_transport.py``). Chosen with ``SessionManagerConfig(transport="websockets")``.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Final, NoReturn

import trio
import websockets
import websockets.frames
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import BytesLike
from websockets.uri import WebSocketURI
from websockets.version import version as websockets_version

from . import _connect, _transport
from ._connect import (
    SocketTasks,
    close_forcefully,
    handshake_failure,
    host_port,
    open_over,
    target,
)
from ._errors import WSSConnectionError
from ._inbox import Inbox, MessageHandler
from ._readhub import ReadHub
from ._tcp import EagerStream, needs_send, send_eagerly, write_what_fits
from ._tls import MemoryTlsStream
from ._transport import MessageSocket, SocketClosed, WriteFailures, redact, refusal_error

__all__ = [
    "MAX_MESSAGE_SIZE",
    "SansIOWebSocket",
    "open_websocket",
    "speedups_in_use",
    "wrap_stream",
]

logger = logging.getLogger(__name__)

if int(websockets_version.split(".", 1)[0]) < 15:  # pragma: no cover
    raise ImportError(
        f"the 'websockets' transport needs websockets >= 15, found {websockets_version}"
    )

MAX_MESSAGE_SIZE: Final = 2**20
"""Largest incoming message, as trio-websocket's default; a bigger one closes with 1009."""
RECEIVE_BYTES: Final = 65536
"""Bytes asked of the stream per read: a 24 kHz audio frame or a burst of them in one call."""
_DETAIL_LIMIT: Final = 200

_TEXT: Final = Opcode.TEXT
_BINARY: Final = Opcode.BINARY
_CONT: Final = Opcode.CONT
_PING: Final = Opcode.PING
_PONG: Final = Opcode.PONG
_CLOSE: Final = Opcode.CLOSE
_OPEN: Final = State.OPEN

# What _transmit is asked to write: a message, a control frame, or whatever is queued.
_FLUSH, _SEND_TEXT, _SEND_BINARY, _SEND_PING, _SEND_CLOSE = range(5)
# How a write ended.
_WRITTEN, _REFUSED, _BROKEN, _STUCK = range(4)


def speedups_in_use() -> bool:
    """Whether websockets masks frames with its C extension (else pure Python, far slower)."""
    try:
        from websockets import speedups
    except ImportError:  # pragma: no cover
        return False
    return websockets.frames.apply_mask is speedups.apply_mask  # type: ignore[attr-defined]


if not speedups_in_use():  # pragma: no cover
    logger.warning("websockets runs without its C speedups: masking frames costs more CPU")


class _NoWireLog(logging.LoggerAdapter[logging.Logger]):
    """The protocol's logger: its DEBUG lines carry the upgrade request (a bearer token,
    an API key, the token in the voice URL) and frame payloads, so they are never enabled;
    its rare warnings and errors go to this module's logger."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


class _Ping:
    __slots__ = ("answered", "pong")

    def __init__(self) -> None:
        self.answered = trio.Event()
        self.pong = False


class SansIOWebSocket(MessageSocket):
    """A :class:`MessageSocket` on ``websockets``' ``ClientProtocol`` over a stream we own.

    Made by :func:`wrap_stream` (or :func:`open_websocket`), which runs its tasks.
    """

    def __init__(
        self,
        protocol: ClientProtocol,
        stream: trio.abc.Stream,
        nursery: trio.Nursery,
        *,
        what: str,
        message_queue_size: int,
        hub: ReadHub | None = None,
    ) -> None:
        self._protocol = protocol
        self._stream = stream
        self._what = what
        self._lock = trio.Lock()
        self._closed = False
        """aclose or abort was called: no more messages or pings from us."""
        self._broken = False
        """The stream is closed (abort): nothing more is written, not even a close frame."""
        self._failures = WriteFailures(what)
        # Framed by send_now and not yet taken by the socket: written before anything else.
        self._tail = b""
        self._tasks = SocketTasks(nursery)
        self._inbox = Inbox(message_queue_size, self._closed_socket)
        self._parts: list[BytesLike] = []
        self._parts_text = False
        self._invalid = False
        self._pings: dict[bytes, _Ping] = {}
        self._ping_count = 0
        self._close_code: int | None = None
        self._close_reason: str | None = None
        self._close_requested = False
        self._response: Response | None = None
        # Set once the upgrade has an answer (accepted or not) or the reader has ended.
        self._handshake_over = trio.Event()
        self._close_reply = trio.Event()
        self._reader_done = trio.Event()
        # Reading (see _read): by this socket's task, or by a hub for a stream on a socket
        # we read ourselves (plain TCP, or TLS through memory: then _tls decrypts).
        self._fd = stream.fileno() if isinstance(stream, EagerStream) else -1
        self._tls = stream if isinstance(stream, MemoryTlsStream) else None
        self._hub = hub if self._fd >= 0 else None
        self._watched = False
        self._due: trio.Event | None = None
        # What a read left for the task to do (_absorb → _settle).
        self._pending: deque[str | bytes] = deque()
        self._flush_due = False
        self._end_due = False
        # The socket's own task is in _absorb: send_now leaves a message for it to write
        # right after (_settle), before it reads on (how a stream we cannot write without
        # a schedule point, trio's TLS where there is no ReadyFirstStream, answers at once).
        self._reading = False
        self._failed = False
        self._stopped = False

    def __repr__(self) -> str:
        return f"<SansIOWebSocket {self._what} closed={self.closed}>"

    @property
    def closed(self) -> bool:
        return self._closed or self._protocol.state is not _OPEN or self._reader_done.is_set()

    def _closed_socket(self) -> SocketClosed:
        return SocketClosed(self._close_code, self._close_reason)

    def _note_close(self, code: int | None, reason: str | None) -> None:
        # The first reason the socket closed is the one every later call reports.
        if self._close_code is None:
            self._close_code = code
            self._close_reason = reason or None

    # ── writing ─────────────────────────────────────────────────────────────────────────

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            kind, payload = _SEND_TEXT, message.encode()
        elif isinstance(message, bytes):
            kind, payload = _SEND_BINARY, message
        else:
            raise TypeError(f"message must be str or bytes, not {type(message).__name__}")
        if self._closed or self._protocol.state is not _OPEN:
            await trio.lowlevel.checkpoint()
            raise self._failures.closed()
        outcome = await self._transmit(kind, payload)
        if outcome == _WRITTEN:
            return
        if outcome != _STUCK:
            raise self._failures.closed()
        raise self._failures.stuck()

    async def _transmit(  # noqa: ASYNC910 (private; a write that happens is its checkpoint)
        self, kind: int, payload: bytes = b"", deadline: float | None = None
    ) -> int:
        """Frame ``payload`` (under the write lock), then write all the protocol has queued.

        Shielded from outside cancellation and bounded by ``deadline`` (default
        ``WRITE_TIMEOUT`` from now), like the default engine's ``send``. ``_REFUSED``: the
        socket was closed before anything was written (the stream is intact); ``_BROKEN``
        or ``_STUCK``: the write failed or did not finish by the deadline, and the stream
        has been closed forcefully.
        """
        protocol = self._protocol
        lock = self._lock
        outcome = _STUCK
        if deadline is None:
            deadline = trio.current_time() + _transport.WRITE_TIMEOUT
        try:
            # One scope per write, entered for every audio frame: kept to one.
            with trio.CancelScope(shield=True, deadline=deadline):
                # The uncontended lock is taken without a schedule point (see _write).
                if lock.locked():
                    await lock.acquire()
                else:
                    lock.acquire_nowait()
                try:
                    if self._broken or (
                        kind != _FLUSH
                        and (protocol.state is not _OPEN or (self._closed and kind != _SEND_CLOSE))
                    ):
                        outcome = _REFUSED
                    else:
                        if kind == _SEND_BINARY:
                            protocol.send_binary(payload)
                        elif kind == _SEND_TEXT:
                            protocol.send_text(payload)
                        elif kind == _SEND_PING:
                            protocol.send_ping(payload)
                        elif kind == _SEND_CLOSE:
                            protocol.send_close(_transport.NORMAL_CLOSURE)
                        # Everything queued, in the order it was framed: a pong or a close
                        # reply framed by the reader goes out with the next write, after
                        # what send_now left.
                        data = self._tail + b"".join(protocol.data_to_send())
                        self._tail = b""
                        if needs_send(self._stream, data):
                            # What the socket takes at once goes before any schedule point.
                            await send_eagerly(self._stream, data)
                        outcome = _WRITTEN
                finally:
                    lock.release()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            outcome = _BROKEN
        finally:
            if outcome in (_STUCK, _BROKEN):
                # Failed, stuck past its deadline, or interrupted (any exception leaves
                # outcome at _STUCK): how much of the frame reached the stream is unknown,
                # so nothing more may be written to it.
                await self.abort()
        return outcome  # noqa: ASYNC910 (private; the write, if any, was its checkpoint)

    def can_send_now(self) -> bool:
        return (
            (self._fd >= 0 or self._reading)
            and not self._tail
            and not (self._tls is not None and self._tls.backlogged)
            and not self._lock.locked()
            and not self._closed
            and not self._broken
            and self._protocol.state is _OPEN
        )

    def send_now(self, message: bytes) -> None:
        if not self.can_send_now():
            raise RuntimeError("send_now() without can_send_now()")
        self._protocol.send_binary(message)
        data = b"".join(self._protocol.data_to_send())
        if self._fd < 0:
            # Not a socket we write ourselves (trio's TLS): the reading task writes it as
            # it settles this read.
            self._tail = data
            self._flush_due = True
            return
        stream = self._stream
        try:
            rest = write_what_fits(stream, data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # How much reached the stream is unknown: nothing more may be written to it.
            self._mark_broken()
            self._tasks.spawn(self.abort)
            raise self._failures.closed() from None
        if needs_send(stream, rest):
            # The rest goes out first, by a task of ours, under the lock and its deadline.
            self._tail = rest
            self._tasks.spawn(self._flush)

    async def _flush(self) -> None:  # noqa: ASYNC910 (private; a write that happens is its checkpoint)
        """Write what the protocol queued by itself (the upgrade, pongs, close frames).

        A failed write closes the stream, which the reader sees next.
        """
        await self._transmit(_FLUSH)

    # ── reading ─────────────────────────────────────────────────────────────────────────

    async def receive(self) -> str | bytes:
        return await self._inbox.receive()

    async def receive_each(self, handler: MessageHandler) -> NoReturn:
        # The reader (task or hub) calls handler as it assembles each message (_absorb).
        await self._inbox.receive_each(handler)

    async def _read(self) -> None:  # noqa: ASYNC910 (private task body)
        """The reader task: stream → protocol → messages, pongs and close replies.

        With a running hub it reads nothing itself: the hub calls :meth:`readable` as data
        arrives, and this task only does what must wait (writes, a full queue, the end).
        """
        receive_some = self._stream.receive_some
        try:
            await self._flush()  # the upgrade request
            while not self._broken and not self._stopped:
                if self._watched or self._watch():
                    if not self._work_due():
                        due = self._due = trio.Event()
                        await due.wait()
                else:
                    try:
                        data = await receive_some(RECEIVE_BYTES)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        break
                    self._reading = True
                    try:
                        self._absorb(data)
                    finally:
                        self._reading = False
                    if self._tls is not None and self._tls.backlogged:
                        self._flush_due = True  # what the TLS layer has to say back
                if not await self._settle():
                    break
        except Exception:
            # A bug here must not pass for a lost connection silently.
            logger.warning("%s: websocket reader failed", self._what, exc_info=True)
            await self.abort()
        finally:
            self._unwatch()
            self._reader_done.set()
            self._note_close(_transport.ABNORMAL_CLOSURE, None)
            self._inbox.end()
            self._wake_pings()
            self._handshake_over.set()
            self._close_reply.set()

    # The hub's side (see _readhub): readable() runs in the hub's task, never waits.

    def _watch(self) -> bool:
        hub = self._hub
        if hub is None:
            return False
        if hub.watch(self._fd, self):
            self._watched = True
        else:
            self._hub = None  # not running: this task reads from now on
        return self._watched

    def _unwatch(self) -> None:
        if self._watched:
            self._watched = False
            if self._hub is not None:
                self._hub.forget(self._fd)

    def readable(self, buffer: bytearray) -> None:
        """Read what arrived and act on it; called by the hub while it watches the socket."""
        tls = self._tls
        ended = False
        try:
            # Into the hub's buffer, then a copy of the bytes read (see _readhub).
            data: bytes | bytearray = buffer[: os.readv(self._fd, (buffer,))]
            if tls is not None:
                # Often no record is whole yet: nothing to absorb, and not the end.
                data, ended = tls.feed(data, buffer)
                if tls.backlogged:
                    self._flush_due = True  # what the TLS layer has to say back
        except BlockingIOError:
            return
        except (OSError, trio.BrokenResourceError):
            self._stopped = True  # the connection broke, as receive_some would say
        else:
            try:
                if tls is None:
                    self._absorb(data)
                else:
                    if data:
                        self._absorb(data)
                    if ended:
                        self._absorb(b"")
            except Exception:
                logger.warning("%s: websocket reader failed", self._what, exc_info=True)
                self._failed = True
        if self._pending or self._stopped or self._failed:
            # Nothing more is read until the task has dealt with this (or for good).
            self._unwatch()
            self._wake()
        elif self._flush_due or self._end_due:
            self._wake()

    def hub_ended(self) -> None:
        """The hub stopped: the task reads the socket itself from now on."""
        self._watched = False
        self._hub = None
        self._wake()

    def _wake(self) -> None:
        due = self._due
        if due is not None:
            self._due = None
            due.set()

    def _work_due(self) -> bool:
        return bool(
            self._flush_due
            or self._pending
            or self._end_due
            or self._failed
            or self._stopped
            or not self._watched
        )

    def _absorb(self, data: bytes | bytearray) -> None:
        """Feed one read to the protocol and act on its events without waiting: messages
        are handed over (or kept in ``_pending`` while the queue is full), and what needs a
        write or the end of the socket is left to :meth:`_settle`."""
        protocol = self._protocol
        if not data:
            # The peer closed TCP: after its close frame (code noted then), or
            # without one (abnormal closure, noted as the reader ends).
            protocol.receive_eof()
            self._stopped = True
            return
        protocol.receive_data(data)
        for event in protocol.events_received():
            if not isinstance(event, Frame):
                if isinstance(event, Response):
                    # The upgrade's answer, accepted or not: the handshake is over.
                    self._response = event
                    self._handshake_over.set()
                continue
            opcode = event.opcode
            if opcode is _BINARY and event.fin:
                # Audio, nearly all the traffic: a whole binary message in one frame.
                if not self._invalid:
                    self._deliver(bytes(event.data))
            elif opcode is _BINARY or opcode is _TEXT or opcode is _CONT:
                if self._invalid:
                    continue
                message = self._assemble(event)
                if message is not None:
                    self._deliver(message)
            elif opcode is _PING:
                self._flush_due = True  # the protocol framed the pong
            elif opcode is _PONG:
                self._pong(bytes(event.data))
            elif opcode is _CLOSE:
                rcvd = protocol.close_rcvd
                if rcvd is not None:
                    self._note_close(rcvd.code, rcvd.reason)
                self._close_reply.set()
                self._flush_due = True  # the protocol framed its reply, if the close was the peer's
        if protocol.handshake_exc is not None:
            # Refused or malformed upgrade: wrap_stream reports it and closes the stream.
            self._handshake_over.set()
            self._stopped = True
        elif protocol.close_rcvd is not None:
            # The peer closed: receive() ends once the messages before its close are read,
            # whether or not the peer then closes TCP promptly.
            if self._pending:
                self._end_due = True
            else:
                self._inbox.end()
        elif protocol.state is State.CLOSING and not self._close_requested:
            # The protocol failed the connection (invalid frame, too big, bad UTF-8):
            # its close frame goes out, then the stream is closed, as the default engine
            # does; the owner sees the end of the socket with that close code.
            sent = protocol.close_sent
            if sent is not None:
                self._note_close(sent.code, sent.reason)
            logger.debug("%s: protocol error: %s", self._what, self._close_reason)
            self._failed = True

    def _deliver(self, message: str | bytes) -> None:
        # To receive_each's handler, or queued; a full queue keeps the rest in _pending
        # and stops reading (back-pressure), as trio-websocket's reader does.
        if not self._pending:
            try:
                self._inbox.put_nowait(message)
                return
            except trio.WouldBlock:
                pass
        self._pending.append(message)

    async def _settle(self) -> bool:  # noqa: ASYNC910 (private; called by the reader between reads)
        """Do what :meth:`_absorb` left: writes, waiting for room, the end. False: stop."""
        if self._flush_due:
            self._flush_due = False
            await self._flush()
        pending = self._pending
        while pending:
            await self._inbox.put(pending.popleft())
        if self._end_due:
            self._end_due = False
            self._inbox.end()
        if self._failed:
            await self._flush()
            await self.abort()
            return False
        return not self._stopped  # noqa: ASYNC910 (private; the reader's reads are its checkpoints)

    def _assemble(self, frame: Frame) -> str | bytes | None:
        """The whole message once its last fragment is in, else None.

        Text that is not UTF-8 fails the connection (close code 1007) and gives None.
        """
        data = frame.data
        if frame.opcode is _CONT:
            self._parts.append(data)
            if not frame.fin:
                return None
            data = b"".join(self._parts)
            text = self._parts_text
            self._parts = []
        elif not frame.fin:
            self._parts = [data]
            self._parts_text = frame.opcode is _TEXT
            return None
        else:
            text = frame.opcode is _TEXT
        if not text:
            return bytes(data)
        try:
            return str(data, "utf-8")
        except UnicodeDecodeError as exc:
            self._invalid = True
            self._protocol.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
            return None

    # ── ping ────────────────────────────────────────────────────────────────────────────

    async def ping(self) -> None:
        if self.closed:
            await trio.lowlevel.checkpoint()
            raise SocketClosed(self._close_code, self._close_reason)
        self._ping_count = (self._ping_count + 1) % 2**32
        payload = self._ping_count.to_bytes(4, "big")
        ping = _Ping()
        self._pings[payload] = ping
        # The ping frame is written by a task of the connection, so the caller's deadline
        # cuts only the wait for the pong, never the frame.
        self._tasks.spawn(partial(self._send_ping, payload, ping))
        try:
            await ping.answered.wait()
        finally:
            self._pings.pop(payload, None)
        if not ping.pong:
            raise SocketClosed(self._close_code, self._close_reason)

    async def _send_ping(self, payload: bytes, ping: _Ping) -> None:  # noqa: ASYNC910 (private task body)
        if await self._transmit(_SEND_PING, payload) != _WRITTEN:
            # Closed before or by this write (an abort wakes it too): SocketClosed.
            ping.answered.set()

    def _pong(self, payload: bytes) -> None:
        # A pong answers its ping and every earlier one (a peer may answer only the last).
        if payload not in self._pings:
            return
        for key, ping in list(self._pings.items()):
            ping.pong = True
            ping.answered.set()
            del self._pings[key]
            if key == payload:
                break

    def _wake_pings(self) -> None:
        for ping in self._pings.values():
            ping.answered.set()

    # ── closing ─────────────────────────────────────────────────────────────────────────

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        self._closed = True
        self._close_requested = True
        self._note_close(_transport.NORMAL_CLOSURE, None)
        # Unread messages are discarded and receive() ends, as trio-websocket's aclose does.
        self._inbox.discard()
        deadline = trio.current_time() + _transport.DISCONNECT_TIMEOUT
        try:
            # Shielded: the close frame is a write and must not be cut; the reader, which
            # reads the reply, is shielded too. Bounded, then forceful either way: the
            # frame's own write shares the deadline.
            with trio.CancelScope(shield=True, deadline=deadline):
                if (
                    self._protocol.state is _OPEN
                    and await self._transmit(_SEND_CLOSE, deadline=deadline) == _WRITTEN
                ):
                    await self._close_reply.wait()
                else:
                    await trio.lowlevel.checkpoint()
        finally:
            await self.abort()

    async def abort(self) -> None:
        self._mark_broken()
        self._wake_pings()
        await close_forcefully(self._stream)

    def _mark_broken(self) -> None:
        """Nothing more is written or read: the stream is about to be closed."""
        self._closed = True
        self._broken = True
        self._unwatch()  # before the descriptor is closed
        self._wake()  # a reader waiting for the hub sees the end

    # ── tasks ───────────────────────────────────────────────────────────────────────────

    def _handshake_error(
        self, what: str, where: str, secrets: tuple[str, ...], timed_out: bool
    ) -> Exception:
        """Why the upgrade did not complete, as the default engine words it."""
        exc = self._protocol.handshake_exc
        if isinstance(exc, InvalidStatus):
            response = exc.response
            body = bytes(response.body).decode("utf-8", errors="replace")
            return refusal_error(what, where, response.status_code, body, secrets)
        if exc is not None and not (
            isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError)
        ):
            detail = redact(str(exc.__cause__ or exc), secrets)[:_DETAIL_LIMIT]
            return WSSConnectionError(
                f"{what}: could not connect to {where} (invalid handshake reply: {detail})"
            )
        return handshake_failure(what, where, timed_out and exc is None)


def _client_protocol(url: str, headers: Mapping[str, str]) -> ClientProtocol:
    host, port, resource, host_header = target(url)
    # Built from _target's parts rather than parse_uri: the same URLs as the default
    # engine are accepted, and the same Host header is sent.
    uri = WebSocketURI(url.startswith("wss://"), host, port, resource, "")
    protocol = ClientProtocol(uri, max_size=MAX_MESSAGE_SIZE, logger=_NoWireLog(logger, {}))
    request = protocol.connect()
    del request.headers["Host"]
    request.headers["Host"] = host_header
    for name, value in headers.items():
        request.headers[name] = value
    protocol.send_request(request)
    return protocol


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
    hub: ReadHub | None = None,
) -> AsyncIterator[SansIOWebSocket]:
    """A WebSocket client over ``stream``, which it owns: closed on every exit path.

    The upgrade must complete by ``deadline`` (default: ``CONNECT_TIMEOUT`` from now).
    ``hub`` reads a plain-TCP stream while it runs (else the socket's own task does).
    Leaving the block closes the socket politely (bounded), then the stream forcefully.
    """
    try:
        host, port, _, _ = target(url)
        where = host_port(host, port)
        protocol = _client_protocol(url, headers)
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
    sock = SansIOWebSocket(
        protocol, stream, nursery, what=what, message_queue_size=message_queue_size, hub=hub
    )
    try:
        sock._tasks.spawn(sock._read)
        with trio.move_on_at(deadline) as timer:
            await sock._handshake_over.wait()
        if protocol.handshake_exc is not None or sock._response is None:
            raise sock._handshake_error(what, where, secrets, timer.cancelled_caught)
        try:
            yield sock
        finally:
            await sock.aclose()
    finally:
        # Nothing here may raise before the nursery is exited, in this task, in order.
        await close_forcefully(stream)
        sock._tasks.cancel()
        await nursery_manager.__aexit__(None, None, None)


def open_websocket(
    url: str,
    headers: Mapping[str, str],
    tls: ssl.SSLContext | None,
    *,
    what: str,
    secrets: tuple[str, ...] = (),
    message_queue_size: int = 1,
    hub: ReadHub | None = None,
) -> AbstractAsyncContextManager[MessageSocket]:
    """A client WebSocket on ``websockets``' sans-I/O protocol: a
    :class:`~telcoflow_trio._transport.Connector` (``hub``: see :func:`wrap_stream`)."""
    return open_over(
        wrap_stream if hub is None else partial(wrap_stream, hub=hub),
        url,
        headers,
        tls,
        what=what,
        secrets=secrets,
        message_queue_size=message_queue_size,
        memory_tls=True,
    )
