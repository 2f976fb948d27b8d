"""TLS through memory buffers over a plain-TCP stream: :class:`MemoryTlsStream`.

``trio.SSLStream`` drives its ``SSLObject`` through locks, a conflict detector and a retry
loop of awaits on every read and write; over TLS at 50 echo calls that machinery, and a
reader task per socket, cost the ``websockets`` engine 1.45x the official client's CPU
(``bench/bench_calls.py --tls``; 0.88x with this class, bench/results/tls.md). Here the
``SSLObject`` sits between two ``ssl.MemoryBIO``\\ s, as in asyncio's transports, and the
caller moves the bytes: :meth:`MemoryTlsStream.feed`
decrypts what a read took from the socket (so a :class:`~._readhub.ReadHub` can read TLS
sockets as it reads plain ones), :meth:`MemoryTlsStream.send_nowait` encrypts and writes
what the socket takes at once. Ciphertext the socket did not take waits in one backlog,
written before anything encrypted later, so records go out in the order they were made.

Like ``SSLStream(..., https_compatible=True)``: the end of the TCP stream ends the TLS
stream whether or not a ``close_notify`` came first, and closing does not wait for the
peer's. Writes are serialised by the caller (the socket's write lock), as for
:class:`~._tcp.ReadyFirstStream`.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import cast

import trio

from ._tcp import EagerStream, ReadyFirstStream

__all__ = ["MemoryTlsStream"]

_READ_SIZE = 65536


class MemoryTlsStream(EagerStream):
    """A TLS client stream over a :class:`~._tcp.ReadyFirstStream`; see the module docstring.

    Made by :meth:`connect`, which completes the handshake.
    """

    __slots__ = (
        "_backlog",
        "_closed",
        "_eof",
        "_incoming",
        "_object",
        "_outgoing",
        "_raw",
        "_receiving",
        "_sending",
    )

    def __init__(self, raw: ReadyFirstStream, context: ssl.SSLContext, server_hostname: str):
        self._raw = raw
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._object = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False, server_hostname=server_hostname
        )
        self._backlog = b""
        self._eof = False
        self._closed = False
        self._receiving = False
        self._sending = False

    @classmethod
    async def connect(
        cls, raw: ReadyFirstStream, context: ssl.SSLContext, server_hostname: str
    ) -> MemoryTlsStream:
        """TLS over ``raw``, handshaken (certificate and host name checked as ``context``
        says). Raises ``trio.BrokenResourceError`` from the ``ssl`` error if it fails."""
        stream = cls(raw, context, server_hostname)
        await stream._handshake()
        return stream

    async def _handshake(self) -> None:
        while True:
            try:
                self._object.do_handshake()
            except ssl.SSLWantReadError:
                await self._send_backlog()
                data = await self._raw.receive_some(_READ_SIZE)
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()  # the next try raises SSLEOFError
            except ssl.SSLError as exc:
                raise trio.BrokenResourceError(f"TLS handshake failed: {exc}") from exc
            else:
                await self._send_backlog()
                return

    @property
    def socket(self) -> trio.socket.SocketType:
        """The TCP socket under the TLS layer (for addresses and socket options)."""
        return self._raw.socket

    def fileno(self) -> int:
        """The TCP socket's descriptor (-1 once closed)."""
        return self._raw.fileno()

    @property
    def backlogged(self) -> bool:
        """Ciphertext waits for the socket: the next write (``send_all(b"")`` will do)
        sends it first."""
        return bool(self._backlog or self._outgoing.pending)

    # ── reading ─────────────────────────────────────────────────────────────────────────

    def feed(self, data: bytes | bytearray, scratch: bytearray) -> tuple[bytes | bytearray, bool]:
        """Decrypt what a read took from the socket (``b""``: the TCP stream ended).

        Returns the plaintext now whole (often empty: a record not yet complete) and
        whether the TLS stream has ended. ``scratch`` is the caller's buffer to decrypt
        into (a read hub's, free again once ``data`` was copied out of it): as with the
        hub's reads, a fresh buffer per record shrunk to what came would fragment the heap.
        Raises ``trio.BrokenResourceError`` for data that is not valid TLS. What the TLS
        layer has to say back (post-handshake messages) goes to the backlog: see
        :attr:`backlogged`.
        """
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()
        parts: list[bytearray] = []
        read = self._object.read
        size = len(scratch)
        try:
            while True:
                # With a buffer, read() returns how many bytes it wrote (typeshed: bytes).
                n = cast(int, read(size, scratch))
                if not n:
                    # The peer's close_notify (no data yet raises SSLWantReadError).
                    self._eof = True
                    break
                parts.append(scratch[:n])
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            self._eof = True  # close_notify, or the TCP stream ended without one
        except ssl.SSLError as exc:
            raise trio.BrokenResourceError(f"TLS error: {exc}") from exc
        if self._outgoing.pending:
            self._backlog += self._outgoing.read()
        plain = parts[0] if len(parts) == 1 else b"".join(parts)
        return plain, self._eof

    def _read_now(self, max_bytes: int) -> bytes | None:
        """Plaintext already whole (``b""``: the end), or None if more must be read."""
        if self._eof:
            return b""
        try:
            data = self._object.read(max_bytes)
        except ssl.SSLWantReadError:
            return None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            self._eof = True
            return b""
        except ssl.SSLError as exc:
            raise trio.BrokenResourceError(f"TLS error: {exc}") from exc
        # Empty: the peer's close_notify (no data yet raises SSLWantReadError).
        self._eof = not data
        return data

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` bytes of plaintext once some are whole; ``b""`` at the end."""
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this stream")
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("this TLS stream was already closed")
        max_bytes = _READ_SIZE if max_bytes is None else max_bytes
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self._receiving = True
        try:
            try:
                data = self._read_now(max_bytes)
            except trio.BrokenResourceError:
                await trio.lowlevel.checkpoint()
                raise
            if data is not None:
                await trio.lowlevel.checkpoint()
                return data
            while True:
                raw = await self._raw.receive_some(_READ_SIZE)
                if raw:
                    self._incoming.write(raw)
                else:
                    self._incoming.write_eof()  # the next read says how it ended
                if self._outgoing.pending:
                    self._backlog += self._outgoing.read()
                data = self._read_now(max_bytes)
                if data is not None:
                    return data
        finally:
            self._receiving = False

    # ── writing ─────────────────────────────────────────────────────────────────────────

    def _encrypt(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this TLS stream was already closed")
        try:
            self._object.write(data)
        except ssl.SSLError as exc:
            raise trio.BrokenResourceError(f"TLS error: {exc}") from exc
        self._backlog += self._outgoing.read()

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Encrypt ``data`` and write what the socket takes at once; the rest of the
        ciphertext waits in the backlog (:attr:`backlogged`). Returns ``len(data)``: all
        of it is taken."""
        if data:
            self._encrypt(data)
        elif self._outgoing.pending:
            self._backlog += self._outgoing.read()
        backlog = self._backlog
        if backlog:
            sent = self._raw.send_nowait(backlog)
            self._backlog = backlog[sent:] if sent < len(backlog) else b""
        return len(data)

    async def _send_backlog(self) -> None:  # noqa: ASYNC910 (private; a write that happens is its checkpoint)
        if self._outgoing.pending:
            self._backlog += self._outgoing.read()
        backlog, self._backlog = self._backlog, b""
        if backlog:
            self._sending = True
            try:
                await self._raw.send_all(backlog)
            finally:
                self._sending = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data`` and send it, after the backlog."""
        try:
            if self._closed:
                raise trio.ClosedResourceError("this TLS stream was already closed")
            if data:
                self._encrypt(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await trio.lowlevel.checkpoint()  # a checkpoint on every path, as trio's
            raise
        if self._backlog or self._outgoing.pending:
            await self._send_backlog()
        else:
            await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        """The TCP stream's."""
        await self._raw.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Close the TCP stream, with a ``close_notify`` if the socket takes it at once."""
        # Not while a write is in flight (its task is being cancelled): a close_notify
        # there would land inside the record it was writing.
        if not self._closed and not self._sending:
            # unwrap() frames our close_notify, then wants the peer's: not waited for.
            with contextlib.suppress(ssl.SSLError, ValueError):
                self._object.unwrap()
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                self.send_nowait(b"")
        self._closed = True
        self._backlog = b""
        await self._raw.aclose()
