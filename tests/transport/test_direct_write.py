"""The default engine over plain TCP writes a frame straight to the socket: framed by
trio-websocket's protocol object, under its write lock, but what the socket takes at once
is written before any schedule point (``_websocket._send_direct``). Over another stream
(TLS, or the recording fake here) it writes through trio-websocket's ``send_message``.
Real sockets on 127.0.0.1; the peer is websockets' server protocol. Concurrent writers run
over both engines: each frame goes out whole, in each writer's order.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
import trio
import trio.testing
from websockets.frames import Opcode

from telcoflow_trio import _sansio_websocket, _websocket
from telcoflow_trio._transport import MessageSocket

from ._fake import FakeTransport
from ._peer import Peer, serve_one, url

Open = Callable[..., AbstractAsyncContextManager[MessageSocket]]


async def test_a_frame_the_socket_takes_is_written_without_a_schedule_point() -> None:
    got = trio.Event()

    async def peer_side(peer: Peer) -> None:
        await peer.handshake()
        frame = await peer.next_frame()
        assert (frame.opcode, bytes(frame.data)) == (Opcode.BINARY, b"\x00small")
        got.set()
        await peer.read_to_end()

    with trio.fail_after(10):
        async with (
            serve_one(peer_side) as port,
            _websocket.open_websocket(url(port), {}, None, what="x") as sock,
        ):
            assert isinstance(sock, _websocket.TrioWebSocket)
            assert sock._direct is not None
            with trio.testing.assert_no_checkpoints():
                await sock.send(b"\x00small")
            await got.wait()


async def test_a_frame_bigger_than_the_socket_takes_goes_out_whole_before_the_next() -> None:
    big = b"\x00" + b"z" * (16 * 2**20)  # far more than loopback's buffers hold
    reading = trio.Event()
    done = trio.Event()

    async def peer_side(peer: Peer) -> None:
        await peer.handshake()
        await reading.wait()
        frames = await peer.frames_until(2)
        assert [(f.opcode, bytes(f.data)) for f in frames[:2]] == [
            (Opcode.BINARY, big),
            (Opcode.TEXT, b"after"),
        ]
        done.set()
        await peer.read_to_end()

    with trio.fail_after(20):
        async with (
            serve_one(peer_side) as port,
            _websocket.open_websocket(url(port), {}, None, what="x") as sock,
        ):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sock.send, big)
                await trio.testing.wait_all_tasks_blocked()  # the rest waits in send_all
                nursery.start_soon(sock.send, "after")  # behind the lock, in order
                await trio.testing.wait_all_tasks_blocked()
                reading.set()
            await done.wait()


@pytest.mark.parametrize(
    "open_websocket",
    [_websocket.open_websocket, _sansio_websocket.open_websocket],
    ids=["trio-websocket", "websockets"],
)
async def test_concurrent_writers_each_frame_goes_out_whole(open_websocket: Open) -> None:
    count = 50
    received: list[bytes] = []
    done = trio.Event()

    async def peer_side(peer: Peer) -> None:
        await peer.handshake()
        received.extend(bytes(f.data) for f in await peer.frames_until(3 * count))
        done.set()
        await peer.read_to_end()

    with trio.fail_after(10):
        async with (
            serve_one(peer_side) as port,
            open_websocket(url(port), {}, None, what="x") as sock,
        ):

            async def write(tag: bytes) -> None:
                for n in range(count):
                    await sock.send(tag * (1000 + n))

            async with trio.open_nursery() as nursery:
                for tag in (b"a", b"b", b"c"):
                    nursery.start_soon(write, tag)
            await done.wait()
    assert len(received) == 3 * count
    for tag in (b"a", b"b", b"c"):
        assert [m for m in received if m[:1] == tag] == [tag * (1000 + n) for n in range(count)]


async def test_over_a_stream_that_is_not_plain_tcp_it_writes_through_trio_websocket() -> None:
    fake = FakeTransport()
    async with _websocket.wrap_stream(fake, "ws://fake.example/x", {}, what="x") as sock:
        assert sock._direct is None
        await sock.send(b"\x00through")
        await trio.testing.wait_all_tasks_blocked()
        assert fake.messages == [b"\x00through"]
