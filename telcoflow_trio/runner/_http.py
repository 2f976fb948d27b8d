"""The runner's HTTP endpoint: ``GET /healthz`` and ``GET /metrics``, served by hypercorn's
trio worker on a socket we bind ourselves.

Binding here, before hypercorn starts, is what lets a port in use be one clear
:class:`RunConfigError` (hypercorn would fail deep inside its worker) and lets port 0 report
the port it got. Hypercorn takes the socket through its ``Config.create_sockets``, which
:class:`_BoundConfig` overrides to hand over ours: hypercorn listens on it and serves it, and
we close it when serving ends (its ``fd://N`` binding would make a second socket object owning
the same descriptor, to be closed twice).

Hypercorn's logs go through the standard loggers ``hypercorn.error`` and ``hypercorn.access``
with no handler of ours: silent (one line per request, at INFO, for access) until the
application configures logging.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from functools import partial
from typing import Final

import trio

from ._errors import RunConfigError

try:
    from hypercorn.config import Config, Sockets
    from hypercorn.trio import serve
    from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope
except ImportError as exc:  # pragma: no cover - the extra is part of the test install
    raise ImportError(
        "telcoflow_trio.runner's HTTP server needs hypercorn: pip install 'telcoflow-trio[run]'"
    ) from exc

__all__ = ["HealthCheck", "HealthMetricsApp", "MetricsSource", "serve_http"]

logger = logging.getLogger(__name__)

HealthCheck = Callable[[], bool]
"""True when ``/healthz`` should answer 200."""
MetricsSource = Callable[[], tuple[bytes, str]]
"""The ``/metrics`` body and its content type (``Metrics.render``)."""

_TEXT: Final = b"text/plain; charset=utf-8"
_GRACE: Final = 1.0
"""Seconds hypercorn gives open connections once serving stops (cancellation does not wait)."""


class HealthMetricsApp:
    """The ASGI application: ``GET``/``HEAD`` on ``/healthz`` (200 ``ok`` when ``healthy()``,
    503 ``unhealthy`` otherwise) and ``/metrics`` (``metrics()``), 405 for another method on
    those paths, 404 for any other path, WebSockets refused. A raising ``healthy`` is 503, a
    raising ``metrics`` 500; both are logged."""

    def __init__(self, healthy: HealthCheck, metrics: MetricsSource) -> None:
        self._healthy = healthy
        self._metrics = metrics

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            status, content_type, body = self._answer(scope)
            headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
            if status == 405:
                headers.append((b"allow", b"GET, HEAD"))
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": headers,
                    "trailers": False,
                }
            )
            if scope["method"] == "HEAD":
                body = b""
            await send({"type": "http.response.body", "body": body, "more_body": False})
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": None})

    def _answer(self, scope: HTTPScope) -> tuple[int, bytes, bytes]:
        """(status, content type, body) for one request."""
        path = scope["path"]
        if path not in ("/healthz", "/metrics"):
            return 404, _TEXT, b"not found\n"
        if scope["method"] not in ("GET", "HEAD"):
            return 405, _TEXT, b"method not allowed\n"
        if path == "/healthz":
            try:
                ok = self._healthy()
            except Exception:
                logger.exception("/healthz: the health check raised; answering 503")
                ok = False
            return (200, _TEXT, b"ok\n") if ok else (503, _TEXT, b"unhealthy\n")
        try:
            body, content_type = self._metrics()
        except Exception:
            logger.exception("/metrics: rendering the metrics raised; answering 500")
            return 500, _TEXT, b"metrics unavailable\n"
        return 200, content_type.encode("latin-1"), body


class _BoundConfig(Config):
    """A hypercorn config that serves a socket already bound (and listening)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def create_sockets(self) -> Sockets:
        return Sockets(secure_sockets=[], insecure_sockets=[self._sock], quic_sockets=[])


async def _bind(host: str, port: int) -> socket.socket:
    """A non-blocking listening TCP socket on ``host:port``; RunConfigError saying why not."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = await trio.socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise RunConfigError(f"HTTP server: cannot listen on {where}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # Restarts may bind again while old connections sit in TIME_WAIT; a listening
        # socket elsewhere on the port still makes bind() or listen() fail.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(100)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise RunConfigError(f"HTTP server: cannot listen on {where}: {why}") from None
    return sock


async def serve_http(
    host: str,
    port: int,
    *,
    healthy: HealthCheck,
    metrics: MetricsSource,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/healthz`` and ``/metrics`` on ``host:port`` until cancelled.

    Start it with ``await nursery.start(serve_http, ...)``: that returns the port bound (the
    one chosen when ``port`` is 0) once the server accepts connections. Raises
    :class:`RunConfigError` (one line naming ``host:port`` and why) when it cannot listen
    there: the port is in use, the host is not an address of this machine or does not resolve.
    """
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, got {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535, got {port}")
    if not isinstance(host, str) or not host:
        raise TypeError(f"host must be a non-empty str, got {host!r}")
    if not callable(healthy) or not callable(metrics):
        raise TypeError("healthy and metrics must be callables")
    sock = await _bind(host, port)
    try:
        config = _BoundConfig(sock)
        config.accesslog = logging.getLogger("hypercorn.access")
        config.errorlog = logging.getLogger("hypercorn.error")
        config.graceful_timeout = _GRACE
        config.include_server_header = False
        app = HealthMetricsApp(healthy, metrics)
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(serve, app, config, mode="asgi"))
            logger.info("HTTP server on %s (/healthz, /metrics)", ", ".join(binds))
            task_status.started(sock.getsockname()[1])
    finally:
        sock.close()
