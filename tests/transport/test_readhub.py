"""The read hub (``_readhub``): one task reads many plain-TCP sockets of the ``websockets``
engine. Over real sockets on 127.0.0.1 port 0, with the sans-I/O server of ``_peer``:
messages arrive whole and in order and are handed over in the hub's own task; a full queue
stops reading without losing a message; pings, the peer's close and a TCP end work through
the hub; a socket leaves the hub when it closes; and when the hub stops, every socket it
watched goes on reading by itself. Also the engine's synchronous write (``send_now``),
which the hub's task uses to answer pull requests at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from socket import SO_LINGER, SOL_SOCKET

import pytest
import trio
import trio.lowlevel
import trio.testing
from websockets.frames import Opcode

from telcoflow_trio._errors import WSSConnectionError
from telcoflow_trio._readhub import ReadHub
from telcoflow_trio._sansio_websocket import SansIOWebSocket, wrap_stream
from telcoflow_trio._tcp import ReadyFirstStream, ready_first
from telcoflow_trio._transport import SocketClosed

from ._peer import HEADERS, Peer, frame, serve_one, url


@asynccontextmanager
async def running_hub() -> AsyncIterator[tuple[ReadHub, trio.lowlevel.Task, trio.CancelScope]]:
    """A hub running in a task of its own: the hub, that task, and its cancel scope."""
    hub = ReadHub()
    async with trio.open_nursery() as nursery:

        async def hub_task(
            *, task_status: trio.TaskStatus[tuple[trio.lowlevel.Task, trio.CancelScope]]
        ) -> None:
            with trio.CancelScope() as scope:
                await hub.run(task_status=_Relay(task_status, scope))  # type: ignore[arg-type]

        task, scope = await nursery.start(hub_task)
        yield hub, task, scope
        nursery.cancel_scope.cancel()


class _Relay:
    """Passes ``started()`` on with the hub's task and scope."""

    def __init__(
        self,
        status: trio.TaskStatus[tuple[trio.lowlevel.Task, trio.CancelScope]],
        scope: trio.CancelScope,
    ) -> None:
        self.status = status
        self.scope = scope

    def started(self, value: object = None) -> None:
        self.status.started((trio.lowlevel.current_task(), self.scope))


@asynccontextmanager
async def hub_socket(port: int, hub: ReadHub, *, queue: int = 1) -> AsyncIterator[SansIOWebSocket]:
    raw = await trio.open_tcp_stream("127.0.0.1", port)
    stream = ready_first(raw)
    assert isinstance(stream, ReadyFirstStream)
    async with wrap_stream(
        stream, url(port), HEADERS, what="test plane", hub=hub, message_queue_size=queue
    ) as sock:
        yield sock


@asynccontextmanager
async def connected(
    peer_side: Callable[[Peer], Awaitable[None]], *, queue: int = 1
) -> AsyncIterator[tuple[ReadHub, SansIOWebSocket]]:
    """A server running ``peer_side``, a running hub, and one socket to the server on it."""
    async with (
        serve_one(peer_side) as port,
        running_hub() as (hub, _, _),
        hub_socket(port, hub, queue=queue) as sock,
    ):
        yield hub, sock


async def test_one_hub_reads_many_sockets_in_its_own_task() -> None:
    count, per_socket = 12, 6
    go = trio.Event()

    async def peer_side(peer: Peer) -> None:
        await peer.handshake()
        await go.wait()
        for i in range(per_socket):
            await peer.stream.send_all(frame(Opcode.BINARY, bytes([i]) * 960))
        await peer.read_to_end()

    got: dict[int, list[bytes]] = {n: [] for n in range(count)}
    tasks: set[trio.lowlevel.Task] = set()
    all_in = trio.Event()

    def handler(n: int, message: str | bytes) -> None:
        assert isinstance(message, bytes)
        tasks.add(trio.lowlevel.current_task())
        got[n].append(message)
        if sum(map(len, got.values())) == count * per_socket:
            all_in.set()

    async def reader(sock: SansIOWebSocket, n: int) -> None:  # noqa: ASYNC910 (receive_each always waits)
        with suppress(SocketClosed):
            await sock.receive_each(lambda m: handler(n, m))

    with trio.fail_after(10):
        async with serve_one(peer_side) as port, running_hub() as (hub, hub_task, _):
            async with trio.open_nursery() as nursery:
                for n in range(count):
                    sock = await nursery.start(_held, port, hub)
                    nursery.start_soon(reader, sock, n)
                await trio.testing.wait_all_tasks_blocked()
                assert hub.watching == count
                go.set()
                await all_in.wait()
                nursery.cancel_scope.cancel()
            # Every socket left the hub as it closed.
            assert hub.watching == 0
    assert tasks == {hub_task}
    for n in range(count):
        assert got[n] == [bytes([i]) * 960 for i in range(per_socket)]


async def _held(port: int, hub: ReadHub, *, task_status: trio.TaskStatus[SansIOWebSocket]) -> None:
    async with hub_socket(port, hub) as sock:
        task_status.started(sock)
        await trio.sleep_forever()


async def test_a_full_queue_stops_reading_and_nothing_is_lost() -> None:
    messages = [f"message {i}".encode() * 40 for i in range(60)]

    async def peer_side(peer: Peer) -> None:
        await peer.handshake()
        # All at once: far more than the queue holds; the hub must stop reading.
        await peer.stream.send_all(b"".join(frame(Opcode.BINARY, m) for m in messages))
        await peer.read_to_end()

    with trio.fail_after(10):
        async with connected(peer_side, queue=1) as (hub, sock):
            received = []
            for _ in messages:
                received.append(await sock.receive())
                await trio.lowlevel.checkpoint()  # a slow consumer
            assert received == messages
            assert hub.watching == 1  # read by the hub again once there was room


async def test_pings_and_the_peers_close_work_through_the_hub() -> None:
    go = trio.Event()

    async def peer_side(peer: Peer) -> None:
        await peer.handshake()
        await go.wait()
        await peer.stream.send_all(frame(Opcode.PING, b"are you there"))
        pong = await peer.next_frame()
        assert (pong.opcode, pong.data) == (Opcode.PONG, b"are you there")
        await peer.stream.send_all(frame(Opcode.TEXT, b"last words"))
        peer.protocol.send_close(4001, "done here")
        await peer.flush()
        await peer.read_to_end()

    with trio.fail_after(10):
        async with serve_one(peer_side) as port, running_hub() as (hub, _, _):
            async with hub_socket(port, hub) as sock:
                await trio.testing.wait_all_tasks_blocked()
                assert hub.watching == 1
                go.set()
                assert await sock.receive() == "last words"
                with pytest.raises(SocketClosed) as info:
                    await sock.receive()
                assert info.value.code == 4001
            assert hub.watching == 0


async def test_a_tcp_end_without_a_close_frame_is_an_abnormal_closure() -> None:
    async def peer_side(peer: Peer) -> None:
        await peer.handshake()
        await peer.stream.send_all(frame(Opcode.BINARY, b"\x00audio"))
        await peer.stream.aclose()

    with trio.fail_after(10):
        async with connected(peer_side) as (hub, sock):
            assert await sock.receive() == b"\x00audio"
            with pytest.raises(SocketClosed) as info:
                await sock.receive()
            assert info.value.code == 1006
            assert hub.watching == 0


async def test_sockets_read_by_themselves_once_the_hub_stops() -> None:
    go = trio.Event()

    async def peer_side(peer: Peer) -> None:
        await peer.handshake()
        await peer.stream.send_all(frame(Opcode.TEXT, b"before"))
        await go.wait()
        await peer.stream.send_all(frame(Opcode.TEXT, b"after"))
        await peer.stream.send_all(frame(Opcode.PING, b"still"))
        pong = await peer.next_frame()
        assert pong.data == b"still"
        await peer.stream.send_all(frame(Opcode.TEXT, b"pong seen"))
        await peer.read_to_end()

    with trio.fail_after(10):
        async with (
            serve_one(peer_side) as port,
            running_hub() as (hub, _, hub_scope),
            hub_socket(port, hub) as first,
            hub_socket(port, hub) as second,
        ):
            assert await first.receive() == "before"
            assert await second.receive() == "before"
            assert hub.watching == 2
            hub_scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert not hub.running and hub.watching == 0
            go.set()
            for sock in (first, second):
                assert await sock.receive() == "after"
                assert await sock.receive() == "pong seen"


async def test_a_hub_that_is_not_running_leaves_each_socket_to_itself() -> None:
    async def peer_side(peer: Peer) -> None:
        await peer.handshake()
        await peer.stream.send_all(frame(Opcode.TEXT, b"hello"))
        await peer.read_to_end()

    hub = ReadHub()
    assert not hub.running
    with trio.fail_after(10):
        async with serve_one(peer_side) as port, hub_socket(port, hub) as sock:
            assert await sock.receive() == "hello"
            assert hub.watching == 0


async def test_a_hub_runs_once_at_a_time() -> None:
    async with running_hub() as (hub, _, _):
        with pytest.raises(RuntimeError, match="already running"):
            await hub.run()


# ── writing at once (send_now, for pull requests answered in the reader's task) ─────────


async def test_send_now_writes_a_whole_message_in_order() -> None:
    audio = b"\x00" + bytes(range(256)) * 19

    async def peer_side(peer: Peer) -> None:
        await peer.handshake()
        frames = await peer.frames_until(2)
        assert [(f.opcode, bytes(f.data)) for f in frames[:2]] == [
            (Opcode.BINARY, audio),
            (Opcode.TEXT, b"then this"),
        ]
        await peer.read_to_end()

    with trio.fail_after(10):
        async with connected(peer_side) as (_, sock):
            assert sock.can_send_now()
            sock.send_now(audio)
            await sock.send("then this")


async def test_what_the_socket_does_not_take_at_once_goes_out_first() -> None:
    big = b"\x00" + b"z" * (16 * 2**20)  # far more than loopback's buffers hold
    reading = trio.Event()

    async def peer_side(peer: Peer) -> None:
        await peer.handshake()
        await reading.wait()
        frames = await peer.frames_until(2)
        assert [bytes(f.data) for f in frames[:2]] == [big, b"after"]
        await peer.read_to_end()

    with trio.fail_after(20):
        async with connected(peer_side) as (_, sock):
            sock.send_now(big)
            # The rest is the socket's to write: nothing else may be written at once,
            # and a later send waits behind it.
            assert not sock.can_send_now()
            with pytest.raises(RuntimeError, match="can_send_now"):
                sock.send_now(b"\x00no")
            reading.set()
            await sock.send(b"after")


async def test_send_now_on_a_reset_connection_fails_and_closes_the_socket() -> None:
    async def peer_side(peer: Peer) -> None:
        await peer.handshake()
        # SO_LINGER 0: the close is a reset.
        sock = peer.stream.socket  # type: ignore[attr-defined]
        sock.setsockopt(SOL_SOCKET, SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        await peer.stream.aclose()

    with trio.fail_after(10):
        async with connected(peer_side) as (_, sock):
            failed = False
            while not failed:  # the first writes may be taken before the reset is seen
                assert sock.can_send_now(), "closed before a write failed"
                try:
                    sock.send_now(b"\x00audio")
                except WSSConnectionError:
                    failed = True
                await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked()
            assert sock.closed and not sock.can_send_now()
            with pytest.raises(SocketClosed):
                await sock.receive()


async def test_only_plain_tcp_sockets_write_at_once() -> None:
    async def peer_side(peer: Peer) -> None:
        await peer.handshake()
        await peer.read_to_end()

    with trio.fail_after(10):
        async with serve_one(peer_side) as port:
            raw = await trio.open_tcp_stream("127.0.0.1", port)  # not a ReadyFirstStream
            async with wrap_stream(raw, url(port), HEADERS, what="test plane") as sock:
                assert not sock.can_send_now()
