"""What is specific to the ``websockets`` engine (``_sansio_websocket``), always run on it.

The shared guarantees run over it in ``test_engine.py`` and ``test_open_websocket.py`` with
``TELCOFLOW_TEST_TRANSPORT=websockets``; here, over real sockets on 127.0.0.1 port 0, a
server made of ``websockets``' own sans-I/O ``ServerProtocol`` lets each test write exactly
the bytes it wants: frames split across many reads, fragments, pings and pongs, invalid
frames, a close without a TCP close, an upgrade refused or never answered, a peer that stops
reading. Long waits run on an autojumping MockClock; nothing asserts wall-clock time.
"""

from __future__ import annotations

import logging
import struct

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Close, Opcode
from websockets.http11 import Request

import telcoflow_trio as tf
from telcoflow_trio import _sansio_websocket, _transport, _websocket
from telcoflow_trio._sansio_websocket import (
    MAX_MESSAGE_SIZE,
    SansIOWebSocket,
    open_websocket,
    wrap_stream,
)
from telcoflow_trio._transport import SocketClosed
from tests.transport_choice import WrapStream

from ._fake import FakeTransport
from ._peer import HEADERS, SECRET, Peer, frame, serve_one, url


class Trickle(trio.abc.Stream):
    """A real socket stream whose reads return at most ``limit`` bytes: every frame the
    engine gets arrives in many pieces, deterministically."""

    def __init__(self, inner: trio.abc.Stream, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.reads = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        self.reads += 1
        return await self.inner.receive_some(self.limit)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


# ── reading: frames in pieces, fragments, sizes, invalid frames ───────────────────────


async def test_frames_split_across_many_reads_and_fragments_arrive_whole() -> None:
    text = "ça va? " * 500  # multi-byte UTF-8 cut anywhere by the 3-byte reads
    audio = bytes(range(256)) * 20
    done = trio.Event()

    async def handler(peer: Peer) -> None:
        await peer.handshake()
        await peer.send_raw(frame(Opcode.TEXT, text.encode()), pieces=40)
        # One binary message in three fragments, a ping between two of them.
        await peer.send_raw(frame(Opcode.BINARY, audio[:1000], fin=False), pieces=7)
        await peer.send_raw(frame(Opcode.CONT, audio[1000:3000], fin=False), pieces=7)
        await peer.send_raw(frame(Opcode.PING, b"mid"), pieces=3)
        await peer.send_raw(frame(Opcode.CONT, audio[3000:], fin=True), pieces=7)
        await peer.send_raw(frame(Opcode.TEXT, b""))
        pong = await peer.next_frame()
        assert (pong.opcode, pong.data) == (Opcode.PONG, b"mid")
        await done.wait()

    with trio.fail_after(10):
        async with serve_one(handler) as port:
            raw = await trio.open_tcp_stream("127.0.0.1", port)
            trickle = Trickle(raw, limit=3)
            async with wrap_stream(trickle, url(port), HEADERS, what="test plane") as sock:
                assert await sock.receive() == text
                assert await sock.receive() == audio
                assert await sock.receive() == ""
                done.set()
    assert trickle.reads > (len(text.encode()) + len(audio)) // 3


@settings(max_examples=40, deadline=None)
@given(
    messages=st.lists(
        st.one_of(st.text(max_size=300), st.binary(max_size=300)), min_size=1, max_size=6
    ),
    fragment=st.integers(min_value=1, max_value=400),
    piece=st.integers(min_value=1, max_value=64),
)
def test_any_messages_in_any_fragments_and_pieces_arrive_whole_and_in_order(
    messages: list[str | bytes], fragment: int, piece: int
) -> None:
    # In memory (no sockets): the engine's parsing and reassembly, for any split.
    async def main() -> list[str | bytes]:
        client_end, server_end = trio.testing.memory_stream_pair()
        peer = Peer(server_end)
        got: list[str | bytes] = []
        async with trio.open_nursery() as nursery:

            async def serve() -> None:
                await peer.handshake()
                wire = b""
                for message in messages:
                    data = message.encode() if isinstance(message, str) else message
                    first = Opcode.TEXT if isinstance(message, str) else Opcode.BINARY
                    chunks = [data[i : i + fragment] for i in range(0, len(data), fragment)]
                    chunks = chunks or [b""]
                    for n, chunk in enumerate(chunks):
                        opcode = first if n == 0 else Opcode.CONT
                        wire += frame(opcode, chunk, fin=n == len(chunks) - 1)
                for start in range(0, len(wire), piece):
                    await server_end.send_all(wire[start : start + piece])
                await peer.read_to_end()  # answers the client's close

            nursery.start_soon(serve)
            async with wrap_stream(
                client_end, "ws://mem.example/x", {}, what="mem", message_queue_size=100
            ) as sock:
                for _ in messages:
                    got.append(await sock.receive())
        assert peer.close_frames == [Close(1000, "")]
        return got

    assert trio.run(main) == messages


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (b"\x83\x00", 1002),  # a reserved opcode
        (b"\x81\x80\x00\x00\x00\x00", 1002),  # masked: a server must not mask
        (frame(Opcode.TEXT, b"\xff\xfe not utf-8"), 1007),
        (frame(Opcode.CONT, b"nothing to continue"), 1002),
        (b"\x82\x7f" + struct.pack("!Q", MAX_MESSAGE_SIZE + 1), 1009),  # the header is enough
    ],
    ids=["reserved-opcode", "masked", "bad-utf8", "stray-continuation", "too-big"],
)
async def test_an_invalid_frame_closes_with_its_code_after_the_messages_before_it(
    wire: bytes, code: int
) -> None:
    server: list[Peer] = []

    async def handler(peer: Peer) -> None:
        server.append(peer)
        await peer.handshake()
        await peer.send_raw(frame(Opcode.TEXT, b"before"))
        await peer.send_raw(wire)
        await peer.read_to_end()

    with trio.fail_after(10):
        async with (
            serve_one(handler) as port,
            open_websocket(url(port), HEADERS, None, what="voice plane") as sock,
        ):
            assert await sock.receive() == "before"
            with pytest.raises(SocketClosed) as info:
                await sock.receive()
            assert info.value.code == code
            assert sock.closed
            with pytest.raises(tf.WSSConnectionError, match="closed"):
                await sock.send("after")
            while not server[0].eof:  # noqa: ASYNC110 (bounded by fail_after)
                await trio.sleep(0.001)
    # The client said why, once, then hung up: nothing after its close frame.
    assert [c.code for c in server[0].close_frames] == [code]
    assert server[0].frames[-1].opcode is Opcode.CLOSE


async def test_a_message_of_exactly_the_limit_is_delivered() -> None:
    big = b"\x00" * MAX_MESSAGE_SIZE

    async def handler(peer: Peer) -> None:
        await peer.handshake()
        await peer.send_raw(frame(Opcode.BINARY, big))
        await peer.read_to_end()

    with trio.fail_after(10):
        async with (
            serve_one(handler) as port,
            open_websocket(url(port), {}, None, what="x") as sock,
        ):
            assert await sock.receive() == big


async def test_a_close_frame_ends_receive_even_if_the_peer_keeps_tcp_open() -> None:
    server: list[Peer] = []
    release, replied = trio.Event(), trio.Event()

    async def handler(peer: Peer) -> None:
        server.append(peer)
        await peer.handshake()
        peer.auto_reply = False
        goodbye = frame(Opcode.CLOSE, Close(4001, "bye").serialize())
        await peer.send_raw(frame(Opcode.TEXT, b"last") + goodbye)
        reply = await peer.next_frame()
        assert reply.opcode is Opcode.CLOSE
        replied.set()
        await release.wait()  # TCP stays open

    with trio.fail_after(10):
        async with (
            serve_one(handler) as port,
            open_websocket(url(port), {}, None, what="x") as sock,
        ):
            assert await sock.receive() == "last"
            with pytest.raises(SocketClosed) as info:
                await sock.receive()
            assert (info.value.code, info.value.reason) == (4001, "bye")
            await replied.wait()
            release.set()
    assert [(c.code, c.reason) for c in server[0].close_frames] == [(4001, "bye")]


async def test_tcp_closed_without_a_close_frame_is_an_abnormal_closure() -> None:
    async def handler(peer: Peer) -> None:
        await peer.handshake()
        await peer.send_raw(frame(Opcode.BINARY, b"\x00pcm"))

    with trio.fail_after(10):
        async with (
            serve_one(handler) as port,
            open_websocket(url(port), {}, None, what="x") as sock,
        ):
            assert await sock.receive() == b"\x00pcm"
            with pytest.raises(SocketClosed) as info:
                await sock.receive()
            assert info.value.code == 1006
            with pytest.raises(SocketClosed):
                await sock.ping()


# ── ping and pong ─────────────────────────────────────────────────────────────────────


async def test_pings_both_ways() -> None:
    answered: list[int] = []
    server_pinged = trio.Event()

    async def handler(peer: Peer) -> None:
        await peer.handshake()
        peer.auto_reply = False
        # The server's ping is answered with its payload.
        await peer.send_raw(frame(Opcode.PING, b"srv-1"))
        pong = await peer.next_frame()
        assert (pong.opcode, pong.data) == (Opcode.PONG, b"srv-1")
        server_pinged.set()
        # Two client pings; the server holds back its pongs, then answers only the second,
        # which answers both; a pong nobody asked for answers nothing.
        first, second = await peer.next_frame(), await peer.next_frame()
        assert first.opcode is second.opcode is Opcode.PING
        assert first.data != second.data
        peer.protocol.data_to_send()  # the automatic pongs are dropped
        await peer.send_raw(frame(Opcode.PONG, b"unsolicited"))
        assert answered == []
        await peer.send_raw(frame(Opcode.PONG, second.data))
        peer.auto_reply = True
        await peer.read_to_end()

    with trio.fail_after(10):
        async with (
            serve_one(handler) as port,
            open_websocket(url(port), {}, None, what="x") as sock,
            trio.open_nursery() as nursery,
        ):

            async def ping(n: int) -> None:
                await sock.ping()
                answered.append(n)

            await server_pinged.wait()
            nursery.start_soon(ping, 1)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(ping, 2)
    assert sorted(answered) == [1, 2]


async def test_a_ping_cancelled_by_its_caller_leaves_the_connection_usable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.handshake()
        peer.auto_reply = False
        ping = await peer.next_frame()
        assert ping.opcode is Opcode.PING
        peer.protocol.data_to_send()  # never answered
        peer.auto_reply = True
        message = await peer.next_frame()
        await peer.send_raw(frame(Opcode.TEXT, message.data))
        await peer.read_to_end()

    async with (
        serve_one(handler) as port,
        open_websocket(url(port), {}, None, what="x") as sock,
    ):
        with trio.move_on_after(10) as waiting:
            await sock.ping()
        assert waiting.cancelled_caught
        assert not sock.closed
        await sock.send("still here")
        assert await sock.receive() == "still here"


# ── the upgrade ───────────────────────────────────────────────────────────────────────


async def test_the_upgrade_carries_our_headers_and_the_default_engines_host() -> None:
    seen: list[Request] = []

    async def handler(peer: Peer) -> None:
        await peer.handshake()
        assert peer.request is not None
        seen.append(peer.request)
        await peer.read_to_end()

    with trio.fail_after(10):
        async with (
            serve_one(handler) as port,
            open_websocket(url(port), HEADERS, None, what="x"),
        ):
            pass
    request = seen[0]
    assert request.path == f"/v1/voice/call-1?token={SECRET}"
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert request.headers.get_all("Host") == [f"127.0.0.1:{port}"]


@pytest.mark.parametrize(
    ("status", "error"), [(503, tf.WSSConnectionError), (403, tf.WSSAuthenticationError)]
)
async def test_a_refused_upgrade_gives_its_status_code_and_redacted_body(
    status: int, error: type[tf.WSSError]
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.handshake(status, f"go away, {SECRET}")

    with trio.fail_after(10):
        async with serve_one(handler) as port:
            with pytest.raises(error) as info:
                async with open_websocket(
                    url(port), HEADERS, None, what="voice plane", secrets=(SECRET,)
                ):
                    pass  # pragma: no cover
    assert info.value.status_code == status  # type: ignore[attr-defined]
    assert str(info.value) == (
        f"voice plane: 127.0.0.1:{port} refused the connection (HTTP {status}): go away, ***"
    )


async def test_an_upgrade_never_answered_ends_at_the_connect_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_to_end()  # reads the request, never answers

    async with serve_one(handler) as port:
        start = trio.current_time()
        with pytest.raises(tf.WSSConnectionError) as info:
            async with open_websocket(url(port), HEADERS, None, what="control plane"):
                pass  # pragma: no cover
        assert trio.current_time() - start == pytest.approx(10)
    assert str(info.value) == (
        f"control plane: could not connect to 127.0.0.1:{port} (no handshake reply within 10 s)"
    )


async def test_a_reply_that_is_not_http_is_a_connection_error_without_secrets() -> None:
    async def handler(peer: Peer) -> None:
        await peer.read()
        await peer.stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await peer.read_to_end()

    with trio.fail_after(10):
        async with serve_one(handler) as port:
            with pytest.raises(tf.WSSConnectionError) as info:
                async with open_websocket(url(port), HEADERS, None, what="x", secrets=(SECRET,)):
                    pass  # pragma: no cover
    message = str(info.value)
    assert message.startswith(f"x: could not connect to 127.0.0.1:{port} (invalid handshake reply")
    assert SECRET not in message
    assert info.value.status_code is None


# ── writing ───────────────────────────────────────────────────────────────────────────


async def test_a_stuck_write_closes_the_socket_and_writes_nothing_after_it(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    server: list[Peer] = []
    client_failed = trio.Event()

    async def handler(peer: Peer) -> None:
        server.append(peer)
        await peer.handshake()
        await client_failed.wait()  # not reading: the client's writes stick
        await peer.read_to_end()

    chunk = b"\x00" * 256 * 1024

    async with (
        serve_one(handler) as port,
        open_websocket(url(port), {}, None, what="voice plane") as sock,
    ):

        async def send_until_it_fails() -> None:
            while True:
                await sock.send(chunk)

        start = trio.current_time()
        with pytest.raises(tf.WSSConnectionError, match="stuck for 10 s"):
            await send_until_it_fails()
        assert trio.current_time() - start >= _transport.WRITE_TIMEOUT
        assert sock.closed
        with pytest.raises(tf.WSSConnectionError, match="closed"):
            await sock.send("later")
        with pytest.raises(SocketClosed):
            await sock.ping()
        client_failed.set()
        while not server[0].eof:  # noqa: ASYNC110 (the autojump clock bounds it)
            await trio.sleep(0.01)
    peer = server[0]
    # Whole frames, then the cut one: no close frame, nothing after the stuck write.
    assert all(f.opcode is Opcode.BINARY and f.data == chunk for f in peer.frames)
    assert peer.close_frames == []
    assert peer.protocol.close_code == 1006
    assert [r.getMessage() for r in caplog.records if "stuck" in r.getMessage()] == [
        "voice plane: a write was stuck for 10 s: closing the connection"
    ]


@pytest.mark.parametrize(
    "engine", [_websocket.wrap_stream, wrap_stream], ids=["trio-websocket", "websockets"]
)
async def test_a_close_frame_that_cannot_be_written_is_bounded_by_the_disconnect_timeout(
    engine: WrapStream, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeTransport()
    async with engine(fake, "ws://fake.example/x", {}, what="test plane") as sock:
        fake.stall = True  # the close frame's write gets half way, then hangs
        start = trio.current_time()
        await sock.aclose()
        assert trio.current_time() - start == pytest.approx(_transport.DISCONNECT_TIMEOUT)
        assert fake.closed
        assert fake.writes_after_close == 0
    assert [r for r in caplog.records if "stuck" in r.getMessage()] == []


# ── the module ────────────────────────────────────────────────────────────────────────


def test_websockets_masks_with_its_c_speedups() -> None:
    assert _sansio_websocket.speedups_in_use()


async def test_no_wire_detail_reaches_the_log_even_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def handler(peer: Peer) -> None:
        await peer.handshake()
        await peer.send_raw(frame(Opcode.TEXT, SECRET.encode()))
        await peer.read_to_end()

    with trio.fail_after(10):
        async with (
            serve_one(handler) as port,
            open_websocket(url(port), HEADERS, None, what="x") as sock,
        ):
            assert isinstance(sock, SansIOWebSocket)
            assert await sock.receive() == SECRET
            await sock.send(f"echo {SECRET}")
    assert caplog.records == [] or all(SECRET not in r.getMessage() for r in caplog.records)
