"""open_websocket (of the engine under test) over real sockets on 127.0.0.1: messages, closes,
refusals, and connection errors that say where and why without a secret."""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

import telcoflow_trio as tf
from telcoflow_trio import _transport
from telcoflow_trio._connect import os_reason
from telcoflow_trio._transport import SocketClosed
from tests.transport_choice import open_websocket

SECRET = "tok-very-secret"


@asynccontextmanager
async def ws_server(handler: Callable[[WebSocketRequest], Awaitable[None]]) -> AsyncIterator[int]:
    """A trio-websocket server on 127.0.0.1 port 0; yields its port."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(serve_websocket, handler, "127.0.0.1", 0, None, message_queue_size=1)
        )
        yield server.port
        nursery.cancel_scope.cancel()


@contextmanager
def silent_listener(backlog: int) -> Iterator[socket.socket]:
    """A listening socket nobody accepts on: the kernel completes up to ``backlog`` + 1 TCP
    handshakes, then drops further SYNs; nothing is ever answered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(backlog)
    try:
        yield listener
    finally:
        listener.close()


def url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/v1/voice/call-1?token={SECRET}"


HEADERS = {"Authorization": f"Bearer {SECRET}"}


async def test_messages_ping_and_a_polite_close() -> None:
    seen: dict[str, object] = {}
    server_done = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        seen["path"] = request.path
        seen["headers"] = dict(request.headers)
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except ConnectionClosed as exc:
            seen["code"] = exc.reason.code if exc.reason else None
            server_done.set()

    with trio.fail_after(10):
        async with ws_server(handler) as port:
            async with open_websocket(url(port), HEADERS, None, what="voice plane") as sock:
                await sock.send("hello")
                assert await sock.receive() == "hello"
                await sock.send(b"\x00\x01\x02")
                assert await sock.receive() == b"\x00\x01\x02"
                await sock.ping()
                open_inside = not sock.closed
            assert open_inside
            assert sock.closed
            await server_done.wait()
    assert seen["path"] == f"/v1/voice/call-1?token={SECRET}"
    assert seen["headers"][b"authorization"] == f"Bearer {SECRET}".encode()  # type: ignore[index]
    assert seen["code"] == 1000


async def test_the_server_closing_ends_receive_with_its_code() -> None:
    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message("last")
        await ws.aclose(4001, "bye")

    with trio.fail_after(10):
        async with (
            ws_server(handler) as port,
            open_websocket(url(port), {}, None, what="x") as sock,
        ):
            assert await sock.receive() == "last"
            with pytest.raises(SocketClosed) as info:
                await sock.receive()
            assert (info.value.code, info.value.reason) == (4001, "bye")
            assert sock.closed
            with pytest.raises(tf.WSSConnectionError, match="closed"):
                await sock.send("too late")


@pytest.mark.parametrize(
    ("status", "error"), [(503, tf.WSSConnectionError), (401, tf.WSSAuthenticationError)]
)
async def test_a_refused_upgrade_carries_its_status_and_a_redacted_body(
    status: int, error: type[tf.WSSError]
) -> None:
    async def handler(request: WebSocketRequest) -> None:
        await request.reject(status, body=f"no, {SECRET} is not welcome".encode())

    with trio.fail_after(10):
        async with ws_server(handler) as port:
            with pytest.raises(error) as info:
                async with open_websocket(
                    url(port), HEADERS, None, what="voice plane", secrets=(SECRET,)
                ):
                    pass  # pragma: no cover
    message = str(info.value)
    assert message == (
        f"voice plane: 127.0.0.1:{port} refused the connection (HTTP {status}): "
        "no, *** is not welcome"
    )
    assert info.value.status_code == status  # type: ignore[attr-defined]


async def test_a_refused_tcp_connection_names_host_port_and_the_os_reason() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with trio.fail_after(10), pytest.raises(tf.WSSConnectionError) as info:
        async with open_websocket(url(port), HEADERS, None, what="voice plane"):
            pass  # pragma: no cover
    assert (
        str(info.value) == f"voice plane: could not connect to 127.0.0.1:{port}: Connection refused"
    )
    assert info.value.status_code is None


async def test_a_connection_that_never_completes_times_out_naming_the_stage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with silent_listener(8) as listener:
        port = listener.getsockname()[1]
        # The TCP handshake completes (the kernel's backlog), but nothing answers the upgrade.
        with pytest.raises(tf.WSSConnectionError) as upgrade:
            async with open_websocket(url(port), HEADERS, None, what="control plane"):
                pass  # pragma: no cover
    assert str(upgrade.value) == (
        f"control plane: could not connect to 127.0.0.1:{port} (no handshake reply within 10 s)"
    )
    with silent_listener(0) as listener:
        port = listener.getsockname()[1]
        # This one fills the backlog; ours then gets no TCP handshake at all.
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5),
            pytest.raises(tf.WSSConnectionError) as tcp,
        ):
            async with open_websocket(url(port), HEADERS, None, what="control plane"):
                pass  # pragma: no cover
    assert str(tcp.value) == (
        f"control plane: could not connect to 127.0.0.1:{port}: no TCP connection within 10 s"
    )


async def test_a_stuck_write_drops_the_connection_for_the_peer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_transport, "WRITE_TIMEOUT", 0.5)
    client_failed = trio.Event()
    server_saw: list[int | None] = []

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        # Not reading: TCP buffers fill, and the client's writes stick.
        await client_failed.wait()
        try:
            while True:
                await ws.get_message()
        except ConnectionClosed as exc:
            server_saw.append(exc.reason.code if exc.reason else None)

    chunk = b"\x00" * 256 * 1024
    with trio.fail_after(30):
        async with (
            ws_server(handler) as port,
            open_websocket(url(port), {}, None, what="x") as sock,
        ):

            async def send_until_it_fails() -> None:
                while True:
                    await sock.send(chunk)

            with pytest.raises(tf.WSSConnectionError, match="stuck"):
                await send_until_it_fails()
            assert sock.closed
            client_failed.set()
            while not server_saw:  # noqa: ASYNC110 (bounded by fail_after)
                await trio.sleep(0.01)
    # An abnormal closure: the connection dropped, no close frame came.
    assert server_saw == [1006]


def test_os_reason_reads_the_per_address_errors_of_a_multi_attempt_failure() -> None:
    attempts = [
        ConnectionRefusedError(errno.ECONNREFUSED, "Error connecting to ('::1', 5): refused"),
        OSError(errno.ENETUNREACH, "Error connecting to ('10.0.0.1', 5): unreachable"),
        ConnectionRefusedError(errno.ECONNREFUSED, "Error connecting to ('127.0.0.1', 5)"),
    ]
    failure = OSError("all attempts to connect to h:5 failed")
    failure.__cause__ = ExceptionGroup("all attempts", attempts)
    assert os_reason(failure) == "Connection refused; Network is unreachable"
    assert os_reason(socket.gaierror(-2, "Name or service not known")) == (
        "Name or service not known"
    )
    assert os_reason(OSError("no errno")) == "OSError"
