"""Opening client WebSockets and writing to them safely; shared by the control and voice planes."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final, cast
from urllib.parse import urlsplit

import trio
import trio_websocket

from ._scope import TaskScope
from .errors import WSSAuthenticationError, WSSConnectionError

__all__ = ["WRITE_TIMEOUT", "open_client", "send_unbroken"]

logger = logging.getLogger(__name__)

WRITE_TIMEOUT: Final = 10.0
"""A write the peer has not taken within this long means the connection is dead."""
CONNECT_TIMEOUT: Final = 10.0
DISCONNECT_TIMEOUT: Final = 2.0
_BODY_LIMIT: Final = 300


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def rejection_error(
    exc: trio_websocket.ConnectionRejected, what: str, secrets: tuple[str, ...]
) -> Exception:
    """The SDK error for a refused upgrade, carrying the server's human-readable body."""
    body = (exc.body or b"").decode("utf-8", errors="replace").strip()[:_BODY_LIMIT]
    # The server should never echo a credential back, but a log line must not depend on it.
    body = _redact(body, secrets)
    status = exc.status_code
    detail = f": {body}" if body else ""
    message = f"{what} refused the connection (HTTP {status}){detail}"
    if status in (401, 403):
        return WSSAuthenticationError(message)
    if status == 426 and not body:
        message += ": upgrade required"
    return WSSConnectionError(message)


class _ReaderHost:
    """Stands in for the nursery trio-websocket starts a connection's reader task in.

    The reader runs in our nursery, but what it raises is kept (a refused upgrade arrives
    that way) and its end is signalled (a peer that hangs up mid-handshake), so the
    handshake fails at once instead of at its deadline.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.error: Exception | None = None
        self.finished = trio.Event()

    def start_soon(self, fn: Callable[[], Awaitable[object]], *args: object) -> None:
        async def run() -> None:
            try:
                await fn(*args)
            except Exception as exc:
                logger.debug("websocket reader ended: %s", type(exc).__name__)
                self.error = exc
            finally:
                self.finished.set()

        self._nursery.start_soon(run, name=fn)


def _target(url: str) -> tuple[str, int, str, str]:
    """Host, port, resource and ``Host`` header of a ``ws://`` or ``wss://`` URL."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    host = parts.hostname or ""
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return host, port, resource, host if port in (80, 443) else f"{host}:{port}"


def _tls_failure(exc: BaseException, what: str) -> Exception:
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        why = cause.verify_message or cause.reason or "certificate verification failed"
        return WSSAuthenticationError(f"{what}: TLS handshake failed: {why}")
    if isinstance(cause, ssl.SSLError):
        return WSSAuthenticationError(f"{what}: TLS handshake failed ({cause.reason})")
    return WSSConnectionError(f"{what}: TLS handshake failed ({type(exc).__name__})")


async def _connect(
    host: str, port: int, tls: ssl.SSLContext | None, what: str, deadline: float
) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
    try:
        with trio.fail_at(deadline):
            tcp = await trio.open_tcp_stream(host, port)
    except (OSError, trio.TooSlowError) as exc:
        raise WSSConnectionError(f"{what}: could not connect ({type(exc).__name__})") from None
    if tls is None:
        return tcp
    stream = trio.SSLStream(tcp, tls, server_hostname=host, https_compatible=True)
    try:
        with trio.fail_at(deadline):
            await stream.do_handshake()
    except BaseException as exc:
        await trio.aclose_forcefully(stream)
        if isinstance(exc, trio.BrokenResourceError | trio.TooSlowError | ssl.SSLError | OSError):
            raise _tls_failure(exc, what) from None
        raise
    return stream


async def _handshake(
    nursery: trio.Nursery,
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream],
    resource: str,
    host_header: str,
    extra: list[tuple[bytes, bytes]],
    message_queue_size: int,
    what: str,
    secrets: tuple[str, ...],
    deadline: float,
) -> trio_websocket.WebSocketConnection:
    reader = _ReaderHost(nursery)
    ws: trio_websocket.WebSocketConnection | None = None
    with trio.move_on_at(deadline) as timer:
        async with trio.open_nursery() as race:

            async def reader_ended() -> None:
                await reader.finished.wait()
                race.cancel_scope.cancel()

            race.start_soon(reader_ended)
            ws = await trio_websocket.wrap_client_stream(
                cast(trio.Nursery, reader),
                stream,
                host_header,
                resource,
                extra_headers=extra,
                message_queue_size=message_queue_size,
            )
            race.cancel_scope.cancel()
    if ws is not None:
        return ws
    if isinstance(reader.error, trio_websocket.ConnectionRejected):
        raise rejection_error(reader.error, what, secrets)
    if timer.cancelled_caught:
        raise WSSConnectionError(
            f"{what}: could not connect (no handshake reply within {CONNECT_TIMEOUT:g} s)"
        )
    raise WSSConnectionError(
        f"{what}: could not connect (the connection closed during the handshake)"
    )


@asynccontextmanager
async def open_client(
    url: str,
    headers: dict[str, str],
    tls: ssl.SSLContext | None,
    *,
    what: str,
    secrets: tuple[str, ...] = (),
    message_queue_size: int = 1,
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """Open a client WebSocket; failures become ``WSSAuthenticationError``/``WSSConnectionError``.

    ``what`` names the plane in error messages; ``secrets`` are scrubbed from server bodies.
    Connecting (TCP, TLS, upgrade) has one deadline, ``CONNECT_TIMEOUT``. We own the TCP
    stream rather than let ``open_websocket_url`` do it: that one, on a failed or timed-out
    handshake, leaves the socket open and waits for its reader task, which never ends while
    the server keeps the connection open without answering.
    """
    extra = [(k.encode("ascii"), v.encode("latin-1")) for k, v in headers.items()]
    host, port, resource, host_header = _target(url)
    if tls is None and url.startswith("wss://"):
        tls = ssl.create_default_context()
    deadline = trio.current_time() + CONNECT_TIMEOUT
    stream = await _connect(host, port, tls, what, deadline)
    scope = TaskScope(what)
    body_exc: BaseException | None = None
    try:
        nursery = await scope.open()
        ws = await _handshake(
            nursery,
            stream,
            resource,
            host_header,
            extra,
            message_queue_size,
            what,
            secrets,
            deadline,
        )
        try:
            yield ws
        finally:
            # Not shielded: when the owner is cancelled (its reader task with it, so no close
            # reply could be read), the socket is closed at once below instead.
            with trio.move_on_after(DISCONNECT_TIMEOUT):
                await ws.aclose()
    except BaseException as exc:
        body_exc = exc
        raise
    finally:
        # The reader task ends once its stream is closed. Shielded: a cancelled checkpoint
        # here would skip closing the nursery, which must be exited in this task.
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
        await scope.close(body_exc)


async def send_unbroken(ws: trio_websocket.WebSocketConnection, message: str | bytes) -> None:
    """Write one message whole: a write is never cancelled half way, which would corrupt
    the stream for every later frame. A write stuck for ``WRITE_TIMEOUT`` closes the socket.

    Raises ``WSSConnectionError`` if the connection is closed or dies.
    """
    # One scope, shielded from outside cancellation, with its own deadline: it is entered
    # for every audio frame, so it is kept to one.
    with trio.CancelScope(shield=True, deadline=trio.current_time() + WRITE_TIMEOUT) as write:
        try:
            await ws.send_message(message)
        except trio_websocket.ConnectionClosed:
            raise WSSConnectionError("connection is closed") from None
    if write.cancelled_caught:
        logger.warning("write stuck for %.0f s: closing the connection", WRITE_TIMEOUT)
        with trio.CancelScope(shield=True, deadline=trio.current_time() + DISCONNECT_TIMEOUT):
            await ws.aclose()
        raise WSSConnectionError("write timed out; connection closed")
