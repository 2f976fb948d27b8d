"""MemoryTlsStream, the websockets engine's TLS: a real TLS server (trio's ``SSLStream``,
server side) on 127.0.0.1, the client through memory buffers over a ReadyFirstStream."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
import trustme
from websockets.frames import Opcode

from telcoflow_trio._sansio_websocket import wrap_stream
from telcoflow_trio._tcp import ReadyFirstStream, needs_send, send_eagerly, write_what_fits
from telcoflow_trio._tls import MemoryTlsStream
from telcoflow_trio._transport import SocketClosed

from ._peer import HEADERS, Peer, frame, url
from .test_readhub import running_hub

Behaviour = Callable[[trio.SSLStream[trio.SocketStream]], Awaitable[None]]


def _server_context(ca: trustme.CA, host: str = "127.0.0.1") -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(ctx)
    return ctx


def _client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@asynccontextmanager
async def _server(
    ctx: ssl.SSLContext, behaviour: Behaviour, *, https_compatible: bool = True
) -> AsyncIterator[int]:
    """A one-connection TLS server on a free port, running ``behaviour`` once handshaken."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def serve() -> None:
        tcp = await listeners[0].accept()
        tls = trio.SSLStream(tcp, ctx, server_side=True, https_compatible=https_compatible)
        async with tls:
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError:
                return
            await behaviour(tls)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            try:
                yield port
            finally:
                nursery.cancel_scope.cancel()
    finally:
        # Outside the cancelled nursery: a checkpoint in there would raise Cancelled,
        # which the nursery swallows along with whatever the test raised.
        for listener in listeners:
            await listener.aclose()


async def _raw(port: int) -> ReadyFirstStream:
    return ReadyFirstStream(await trio.open_tcp_stream("127.0.0.1", port))


async def _echo(tls: trio.SSLStream[trio.SocketStream]) -> None:
    while data := await tls.receive_some():
        await tls.send_all(data)


async def test_a_large_echo_comes_back_byte_exact_through_the_backlog(ca: trustme.CA) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB: more than the socket takes at once
    async with _server(_server_context(ca), _echo) as port:
        stream = await MemoryTlsStream.connect(await _raw(port), _client_context(ca), "127.0.0.1")
        received = bytearray()

        async def read() -> None:
            while len(received) < len(payload):
                received.extend(await stream.receive_some(65536))

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                rest = write_what_fits(stream, payload)
                assert rest == b""  # a TLS stream takes all of it...
                waiting = stream.backlogged  # ...and keeps what the socket did not
                assert waiting and needs_send(stream, rest)
                await send_eagerly(stream, b"")
                assert not needs_send(stream, b"")
        await stream.aclose()
    assert received == payload


async def test_receive_some_respects_max_bytes_and_checkpoints(ca: trustme.CA) -> None:
    async def hello(tls: trio.SSLStream[trio.SocketStream]) -> None:
        await tls.send_all(b"hello")
        await trio.sleep_forever()

    async with _server(_server_context(ca), hello) as port:
        stream = await MemoryTlsStream.connect(await _raw(port), _client_context(ca), "127.0.0.1")
        with trio.fail_after(10):
            assert await stream.receive_some(2) == b"he"
            # The rest is decrypted already: no read of the socket, still a checkpoint.
            with trio.testing.assert_checkpoints():
                assert await stream.receive_some(10) == b"llo"
        with pytest.raises(ValueError, match="max_bytes"):
            await stream.receive_some(0)
        await stream.aclose()


@pytest.mark.parametrize("close_notify", [True, False])
async def test_the_end_of_tcp_ends_the_stream_with_or_without_close_notify(
    ca: trustme.CA, close_notify: bool
) -> None:
    async def bye(tls: trio.SSLStream[trio.SocketStream]) -> None:
        await tls.send_all(b"bye")
        if close_notify:
            await tls.aclose()  # not https-compatible: sends close_notify, then ends TCP
        else:
            await tls.transport_stream.aclose()  # TCP ends with no close_notify

    async with _server(_server_context(ca), bye, https_compatible=not close_notify) as port:
        stream = await MemoryTlsStream.connect(await _raw(port), _client_context(ca), "127.0.0.1")
        got = b""
        with trio.fail_after(10):
            while data := await stream.receive_some():
                got += data
            assert await stream.receive_some() == b""  # and stays ended
        assert got == b"bye"
        await stream.aclose()


@pytest.mark.parametrize("close_notify", [True, False])
async def test_feed_decrypts_what_a_hub_read_took(ca: trustme.CA, close_notify: bool) -> None:
    """The hub's way: read the socket, hand the bytes to feed(), absorb the plaintext;
    the end is seen at the peer's close_notify, or at the end of TCP without one."""
    message = b"x" * 100_000

    async def send_then_close(tls: trio.SSLStream[trio.SocketStream]) -> None:
        await tls.send_all(message)
        if close_notify:
            await tls.aclose()
        else:
            await tls.transport_stream.aclose()

    ctx = _server_context(ca)
    async with _server(ctx, send_then_close, https_compatible=not close_notify) as port:
        raw = await _raw(port)
        stream = await MemoryTlsStream.connect(raw, _client_context(ca), "127.0.0.1")
        plain = b""
        ended = False
        scratch = bytearray(1000)  # smaller than a record: decrypted in several goes
        with trio.fail_after(10):
            while not ended:
                data = await raw.receive_some(4096)  # often less than a record
                more, ended = stream.feed(data, scratch)
                plain += more
        assert plain == message
        await stream.aclose()


async def test_bytes_that_are_not_tls_break_the_stream(ca: trustme.CA) -> None:
    async def garbage(tls: trio.SSLStream[trio.SocketStream]) -> None:
        await tls.transport_stream.send_all(b"\x17\x03\x03\x00\x10" + b"not a real record")
        await trio.sleep_forever()

    async with _server(_server_context(ca), garbage) as port:
        stream = await MemoryTlsStream.connect(await _raw(port), _client_context(ca), "127.0.0.1")
        with trio.fail_after(10), pytest.raises(trio.BrokenResourceError) as info:
            await stream.receive_some()
        assert isinstance(info.value.__cause__, ssl.SSLError)
        await stream.aclose()


@pytest.mark.parametrize(
    ("server_host", "why"),
    [("wrong.example.org", "mismatch"), ("127.0.0.1", "unable to get local issuer")],
)
async def test_a_certificate_that_does_not_verify_fails_the_handshake(
    ca: trustme.CA, server_host: str, why: str
) -> None:
    server_ca = ca if server_host != "127.0.0.1" else trustme.CA()
    async with _server(_server_context(server_ca, server_host), _echo) as port:
        raw = await _raw(port)
        with trio.fail_after(10), pytest.raises(trio.BrokenResourceError) as info:
            await MemoryTlsStream.connect(raw, _client_context(ca), "127.0.0.1")
        await raw.aclose()
    cause = info.value.__cause__
    assert isinstance(cause, ssl.SSLCertVerificationError)
    assert why in str(cause.verify_message)


async def test_a_peer_that_hangs_up_during_the_handshake_breaks_it() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def hang_up() -> None:
        tcp = await listeners[0].accept()
        await tcp.receive_some()  # the ClientHello
        await tcp.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hang_up)
        raw = await _raw(port)
        with trio.fail_after(10), pytest.raises(trio.BrokenResourceError) as info:
            await MemoryTlsStream.connect(raw, ssl.create_default_context(), "127.0.0.1")
        await raw.aclose()
        await listeners[0].aclose()
    assert isinstance(info.value.__cause__, ssl.SSLError)


async def test_closing_sends_close_notify(ca: trustme.CA) -> None:
    ended = trio.Event()

    async def wait_for_end(tls: trio.SSLStream[trio.SocketStream]) -> None:
        # Not https-compatible: an end without close_notify would raise here instead.
        assert await tls.receive_some() == b""
        ended.set()

    ctx = _server_context(ca)
    async with _server(ctx, wait_for_end, https_compatible=False) as port:
        stream = await MemoryTlsStream.connect(await _raw(port), _client_context(ca), "127.0.0.1")
        assert stream.fileno() >= 0 and stream.socket.family is not None
        await stream.aclose()
        assert stream.fileno() == -1
        with trio.fail_after(10):
            await ended.wait()
        await stream.aclose()  # again: nothing to do
        for call in (stream.send_all(b"x"), stream.receive_some()):
            with trio.testing.assert_checkpoints(), pytest.raises(trio.ClosedResourceError):
                await call


async def test_the_hub_reads_a_tls_socket_to_its_end_at_the_peers_close_notify(
    ca: trustme.CA,
) -> None:
    """The websockets engine's way: a hub reads the TLS socket, the messages come in its
    task, and the peer's close_notify (then FIN, no WebSocket close) ends the socket."""
    ctx = _server_context(ca)
    peer_done = trio.Event()

    async def peer_side(tls: trio.SSLStream[trio.SocketStream]) -> None:
        peer = Peer(tls)
        await peer.handshake()
        for i in range(3):
            await tls.send_all(frame(Opcode.BINARY, bytes([i]) * 5000))
        await tls.aclose()  # not https-compatible: close_notify, then the end of TCP
        peer_done.set()

    got: list[bytes] = []
    tasks: set[trio.lowlevel.Task] = set()

    def handler(message: str | bytes) -> None:
        assert isinstance(message, bytes)
        tasks.add(trio.lowlevel.current_task())
        got.append(message)

    with trio.fail_after(10):
        async with (
            _server(ctx, peer_side, https_compatible=False) as port,
            running_hub() as (hub, hub_task, _),
        ):
            raw = await _raw(port)
            stream = await MemoryTlsStream.connect(raw, _client_context(ca), "127.0.0.1")
            wss = url(port).replace("ws://", "wss://", 1)
            async with wrap_stream(stream, wss, HEADERS, what="test plane", hub=hub) as sock:
                with pytest.raises(SocketClosed):
                    await sock.receive_each(handler)
                await peer_done.wait()
            assert hub.watching == 0
    assert got == [bytes([i]) * 5000 for i in range(3)]
    assert tasks == {hub_task}
