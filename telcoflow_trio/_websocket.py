"""Opening client WebSockets and writing to them safely; shared by the control and voice planes."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import trio
import trio_websocket

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
    """
    extra = [(k.encode("ascii"), v.encode("latin-1")) for k, v in headers.items()]
    try:
        cm = trio_websocket.open_websocket_url(
            url,
            tls,
            extra_headers=extra,
            message_queue_size=message_queue_size,
            connect_timeout=CONNECT_TIMEOUT,
            disconnect_timeout=DISCONNECT_TIMEOUT,
        )
        ws = await cm.__aenter__()
    except trio_websocket.ConnectionRejected as exc:
        raise rejection_error(exc, what, secrets) from None
    except ssl.SSLError as exc:
        raise WSSAuthenticationError(f"{what}: TLS handshake failed ({exc.reason})") from None
    except (trio_websocket.HandshakeError, OSError, trio.BrokenResourceError) as exc:
        raise WSSConnectionError(f"{what}: could not connect ({type(exc).__name__})") from None
    try:
        yield ws
    except BaseException as exc:
        if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        await cm.__aexit__(None, None, None)


async def send_unbroken(ws: trio_websocket.WebSocketConnection, message: str | bytes) -> None:
    """Write one message whole: a write is never cancelled half way, which would corrupt
    the stream for every later frame. A write stuck for ``WRITE_TIMEOUT`` closes the socket.

    Raises ``WSSConnectionError`` if the connection is closed or dies.
    """
    with trio.CancelScope(shield=True):
        try:
            with trio.move_on_after(WRITE_TIMEOUT) as deadline:
                await ws.send_message(message)
        except trio_websocket.ConnectionClosed:
            raise WSSConnectionError("connection is closed") from None
        if deadline.cancelled_caught:
            logger.warning("write stuck for %.0f s: closing the connection", WRITE_TIMEOUT)
            with trio.move_on_after(DISCONNECT_TIMEOUT):
                await ws.aclose()
            raise WSSConnectionError("write timed out; connection closed")
