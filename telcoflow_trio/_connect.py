"""Connecting a WebSocket's stream, shared by both engines: TCP (and TLS) to the URL's host
under one deadline, errors that name ``host:port`` and the OS's reason (never the path or
query, which may carry a token), and closing a stream at once."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, Protocol
from urllib.parse import urlsplit

import trio

from ._errors import WSSAuthenticationError, WSSConnectionError
from ._tcp import ReadyFirstStream, ready_first
from ._tls import MemoryTlsStream
from ._transport import MessageSocket

__all__ = [
    "CONNECT_TIMEOUT",
    "SocketTasks",
    "WrapStream",
    "close_forcefully",
    "connect_stream",
    "handshake_failure",
    "host_port",
    "open_over",
    "os_reason",
    "target",
]

CONNECT_TIMEOUT: Final = 10.0
"""One deadline for connecting: TCP, TLS and the upgrade together."""


class SocketTasks:
    """A socket's own tasks (its reader, pings, writes left to a task), in its nursery.

    Each runs shielded from outside cancellation, so that no frame a task writes is cut by
    its owner's cancellation and the reader can still read the peer's close reply while the
    owner is being cancelled. The engine's ``wrap_stream`` ends them on every exit path: it
    closes the stream, then calls :meth:`cancel`.
    """

    __slots__ = ("_cancelled", "_nursery", "_scopes")

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._scopes: set[trio.CancelScope] = set()
        self._cancelled = False

    def spawn(self, fn: Callable[[], Awaitable[object]], *, name: object = None) -> None:
        scope = trio.CancelScope(shield=True)
        if self._cancelled:
            scope.cancel()
        self._scopes.add(scope)

        # Protected from KeyboardInterrupt as trio's own tasks are: Ctrl+C raised in a
        # socket reader would look like a lost connection.
        @trio.lowlevel.enable_ki_protection
        async def shielded() -> None:
            try:
                with scope:
                    await fn()
            finally:
                self._scopes.discard(scope)

        self._nursery.start_soon(shielded, name=name or fn)

    def cancel(self) -> None:
        """End every task, now and any spawned later."""
        self._cancelled = True
        for scope in self._scopes:
            scope.cancel()


def target(url: str) -> tuple[str, int, str, str]:
    """Host, port, resource and ``Host`` header of a ``ws://`` or ``wss://`` URL."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    host = parts.hostname or ""
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    shown = f"[{host}]" if ":" in host else host
    return host, port, resource, shown if port in (80, 443) else f"{shown}:{port}"


def host_port(host: str, port: int) -> str:
    """``host:port`` for messages: never the path or query, which may carry a token."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def os_reason(exc: BaseException) -> str:
    """Why a connection attempt failed, as the OS says it (``Connection refused``).

    trio's ``open_tcp_stream`` raises one ``OSError`` for all the addresses it tried, with
    the per-address errors in its ``__cause__`` group: those are what we report.
    """
    reasons: list[str] = []

    def visit(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                visit(inner)
            return
        if not isinstance(error, OSError):
            return
        if isinstance(error, socket.gaierror) and error.strerror:
            text = error.strerror
        elif error.errno is not None and error.errno > 0:
            # Not strerror: trio's carries the address tuple around the OS's words.
            text = os.strerror(error.errno)
        elif error.__cause__ is not None:
            visit(error.__cause__)
            return
        else:
            text = error.strerror or type(error).__name__
        if text not in reasons:
            reasons.append(text)

    visit(exc)
    return "; ".join(reasons) or type(exc).__name__


def tls_failure(exc: BaseException, what: str, where: str) -> Exception:
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
    prefix = f"{what}: {where}: TLS handshake failed"
    if isinstance(cause, ssl.SSLCertVerificationError):
        why = cause.verify_message or cause.reason or "certificate verification failed"
        return WSSAuthenticationError(f"{prefix}: {why}")
    if isinstance(cause, ssl.SSLError):
        return WSSAuthenticationError(f"{prefix} ({cause.reason})")
    if isinstance(exc, trio.TooSlowError):
        return WSSConnectionError(f"{prefix}: no reply within {CONNECT_TIMEOUT:g} s")
    if isinstance(cause, OSError):
        return WSSConnectionError(f"{prefix}: {os_reason(cause)}")
    return WSSConnectionError(f"{prefix} ({type(exc).__name__})")


async def close_forcefully(stream: trio.abc.Stream) -> None:
    """Close at once; not a cancellation point (it runs in cleanup that must go on)."""
    # The descriptor is closed before the first checkpoint; the shield keeps an outer
    # cancellation from surfacing here, where it would skip the cleanup that follows.
    with trio.CancelScope(shield=True):
        await trio.aclose_forcefully(stream)


async def connect_stream(
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    what: str,
    deadline: float,
    *,
    memory_tls: bool = False,
) -> trio.abc.Stream:
    """A connected stream to ``host:port`` by ``deadline``: TLS over TCP when ``tls`` is given,
    else plain TCP that waits for readiness before reading (see :mod:`._tcp`). TLS is
    ``trio.SSLStream``, or with ``memory_tls`` a :class:`~._tls.MemoryTlsStream` where the
    platform has :class:`~._tcp.ReadyFirstStream`."""
    where = host_port(host, port)
    try:
        with trio.fail_at(deadline):
            tcp = await trio.open_tcp_stream(host, port)
    except trio.TooSlowError:
        raise WSSConnectionError(
            f"{what}: could not connect to {where}: no TCP connection within {CONNECT_TIMEOUT:g} s"
        ) from None
    except OSError as exc:
        raise WSSConnectionError(
            f"{what}: could not connect to {where}: {os_reason(exc)}"
        ) from None
    if tls is None:
        return ready_first(tcp)
    raw = ready_first(tcp) if memory_tls else tcp
    try:
        with trio.fail_at(deadline):
            if isinstance(raw, ReadyFirstStream):
                return await MemoryTlsStream.connect(raw, tls, host)
            stream = trio.SSLStream(tcp, tls, server_hostname=host, https_compatible=True)
            await stream.do_handshake()
    except BaseException as exc:
        await close_forcefully(raw)
        if isinstance(exc, trio.BrokenResourceError | trio.TooSlowError | ssl.SSLError | OSError):
            raise tls_failure(exc, what, where) from None
        raise
    return stream


def handshake_failure(what: str, where: str, timed_out: bool) -> WSSConnectionError:
    """The upgrade got no answer: none within the deadline, or the connection closed."""
    if timed_out:
        return WSSConnectionError(
            f"{what}: could not connect to {where} (no handshake reply within "
            f"{CONNECT_TIMEOUT:g} s)"
        )
    return WSSConnectionError(
        f"{what}: could not connect to {where} (the connection closed during the handshake)"
    )


class WrapStream(Protocol):
    """An engine's ``wrap_stream``: a client WebSocket over a stream it then owns."""

    def __call__(
        self,
        stream: trio.abc.Stream,
        url: str,
        headers: Mapping[str, str],
        *,
        what: str,
        secrets: tuple[str, ...] = (),
        message_queue_size: int = 1,
        deadline: float | None = None,
    ) -> AbstractAsyncContextManager[MessageSocket]: ...


@asynccontextmanager
async def open_over(
    wrap: WrapStream,
    url: str,
    headers: Mapping[str, str],
    tls: ssl.SSLContext | None,
    *,
    what: str,
    secrets: tuple[str, ...] = (),
    message_queue_size: int = 1,
    memory_tls: bool = False,
) -> AsyncIterator[MessageSocket]:
    """Connect to ``url`` and upgrade over ``wrap``, all within one :data:`CONNECT_TIMEOUT`
    (TLS with the system's trust store for ``wss://`` when no context is given;
    ``memory_tls``: see :func:`connect_stream`)."""
    host, port, _, _ = target(url)
    if tls is None and url.startswith("wss://"):
        tls = ssl.create_default_context()
    deadline = trio.current_time() + CONNECT_TIMEOUT
    stream = await connect_stream(host, port, tls, what, deadline, memory_tls=memory_tls)
    async with wrap(
        stream,
        url,
        headers,
        what=what,
        secrets=secrets,
        message_queue_size=message_queue_size,
        deadline=deadline,
    ) as sock:
        yield sock
