"""One TCP port for everything: WebSocket upgrades (control and voice) and plain HTTP
(REST and admin), over TLS when the sandbox has a certificate.

The request head is parsed once with h11; an upgrade is handed to trio-websocket with
the bytes already read replayed in front of the stream.
"""

from __future__ import annotations

import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Final
from urllib.parse import urlsplit

import attrs
import h11
import trio
from trio_websocket import WebSocketRequest, wrap_server_stream

__all__ = ["Credentials", "HttpRequest", "HttpResponse", "Peer", "serve_connection"]

logger = logging.getLogger(__name__)

HEAD_TIMEOUT: Final = 10.0
IDLE_TIMEOUT: Final = 60.0
TLS_HANDSHAKE_TIMEOUT: Final = 10.0
MAX_BODY: Final = 4 * 1024 * 1024
MAX_HEAD: Final = 64 * 1024


@attrs.frozen
class Credentials:
    """The sandbox connector's credentials. ``api_key`` is a secret: not in ``repr``."""

    api_key: str = attrs.field(repr=False)
    connector_uuid: str

    def check(self, headers: Iterable[tuple[bytes, bytes]], cert_verified: bool) -> str | None:
        """``None`` if the request is authenticated, else a readable reason (never a key)."""
        found = {name.lower(): value for name, value in headers}
        key = found.get(b"x-api-key")
        connector = found.get(b"x-connector-uuid")
        if key is not None or connector is not None:
            if key is None or connector is None:
                return "x-api-key and x-connector-uuid must be sent together"
            key_ok = secrets.compare_digest(key, self.api_key.encode())
            connector_ok = secrets.compare_digest(connector, self.connector_uuid.encode())
            if key_ok and connector_ok:
                return None
            return "invalid API key or connector UUID"
        if cert_verified:
            return None
        return "missing credentials: send x-api-key and x-connector-uuid, or a client certificate"


@attrs.frozen
class Peer:
    """What the transport says about the client."""

    cert_verified: bool
    tls: bool


@attrs.frozen
class HttpRequest:
    method: str
    target: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    peer: Peer

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query


@attrs.frozen
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"


HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]
WsHandler = Callable[[WebSocketRequest, trio.abc.Stream, Peer], Awaitable[None]]


class _Replay(trio.abc.Stream):
    """A stream that first gives back bytes already read from it.

    ``drop_pongs``, when it returns true, makes outgoing pong frames vanish (a fault).
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        prefix: bytes,
        drop_pongs: Callable[[], bool] | None = None,
    ) -> None:
        self._stream = stream
        self._prefix = prefix
        self._drop_pongs = drop_pongs

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            await trio.lowlevel.checkpoint()
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return bytes(data)
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        # trio-websocket writes each frame with its own send_all call; a server's pong is
        # one unmasked, unfragmented frame: FIN + opcode 0xA.
        if self._drop_pongs is not None and data[:1] == b"\x8a" and self._drop_pongs():
            await trio.lowlevel.checkpoint()
            return
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()


def _is_upgrade(request: h11.Request) -> bool:
    connection = b",".join(v for k, v in request.headers if k == b"connection").lower()
    upgrade = b",".join(v for k, v in request.headers if k == b"upgrade").lower()
    tokens = {t.strip() for t in connection.split(b",")}
    return b"upgrade" in tokens and upgrade.strip() == b"websocket"


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream, raw: bytearray) -> object:
    await trio.lowlevel.checkpoint()  # the event may be buffered already (body, pipelining)
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = bytes(await stream.receive_some(65536))
        raw += data
        conn.receive_data(data)


async def _send_response(conn: h11.Connection, stream: trio.abc.Stream, resp: HttpResponse) -> None:
    headers = [
        ("content-type", resp.content_type),
        ("content-length", str(len(resp.body))),
        ("server", "telcoflow-trio-sandbox"),
    ]
    out = conn.send(h11.Response(status_code=resp.status, headers=headers))
    out = (out or b"") + (conn.send(h11.Data(data=resp.body)) or b"")
    out += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(out)


async def serve_connection(
    tcp: trio.SocketStream,
    *,
    ssl_context: ssl.SSLContext | None,
    on_http: HttpHandler,
    on_websocket: WsHandler,
    drop_pongs: Callable[[], bool] | None = None,
) -> None:
    """Serve one TCP connection until it closes. Never raises.

    ``drop_pongs`` is a fault switch: while it returns true, WebSocket pongs are not sent.
    """
    try:
        await _serve(tcp, ssl_context, on_http, on_websocket, drop_pongs)
    except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError) as exc:
        logger.debug("connection ended: %s", type(exc).__name__)
    except Exception:
        logger.exception("sandbox connection handler failed")
    finally:
        await trio.aclose_forcefully(tcp)


async def _serve(
    tcp: trio.SocketStream,
    ssl_context: ssl.SSLContext | None,
    on_http: HttpHandler,
    on_websocket: WsHandler,
    drop_pongs: Callable[[], bool] | None = None,
) -> None:
    await trio.lowlevel.checkpoint()  # several early returns come from except clauses
    stream: trio.abc.Stream = tcp
    peer = Peer(cert_verified=False, tls=False)
    if ssl_context is not None:
        tls = trio.SSLStream(tcp, ssl_context, server_side=True, https_compatible=True)
        try:
            with trio.fail_after(TLS_HANDSHAKE_TIMEOUT):
                await tls.do_handshake()
        except (trio.BrokenResourceError, trio.TooSlowError) as exc:
            # Most often a client without the certificate mTLS requires.
            logger.info("TLS handshake failed: %s", exc.__cause__ or type(exc).__name__)
            return
        peer = Peer(cert_verified=bool(tls.getpeercert()), tls=True)
        stream = tls

    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    raw = bytearray()
    first = True
    while True:
        try:
            with trio.fail_after(HEAD_TIMEOUT if first else IDLE_TIMEOUT):
                event = await _next_event(conn, stream, raw)
        except trio.TooSlowError:
            return
        except h11.RemoteProtocolError as exc:
            logger.info("bad HTTP request: %s", exc)
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await _send_response(
                    conn,
                    stream,
                    HttpResponse(exc.error_status_hint, b"bad request\n", "text/plain"),
                )
            return
        if not isinstance(event, h11.Request):
            return
        if first and _is_upgrade(event):
            async with trio.open_nursery() as nursery:
                request = await wrap_server_stream(nursery, _Replay(stream, bytes(raw), drop_pongs))
                await on_websocket(request, tcp, peer)
                nursery.cancel_scope.cancel()
            return
        first = False
        body = bytearray()
        while True:
            with trio.fail_after(HEAD_TIMEOUT):
                part = await _next_event(conn, stream, raw)
            if isinstance(part, h11.Data):
                body += part.data
                if len(body) > MAX_BODY:
                    await _send_response(
                        conn, stream, HttpResponse(413, b'{"code":"INVALID_REQUEST"}')
                    )
                    return
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return
        request_obj = HttpRequest(
            method=event.method.decode("ascii", "replace").upper(),
            target=event.target.decode("ascii", "replace"),
            headers=tuple((k.lower(), v) for k, v in event.headers),
            body=bytes(body),
            peer=peer,
        )
        response = await on_http(request_obj)
        await _send_response(conn, stream, response)
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return
        conn.start_next_cycle()
        raw.clear()
