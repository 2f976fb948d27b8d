"""ReadyFirstStream: trio's own stream conformance checks and the edge cases, over real
loopback sockets."""

from __future__ import annotations

import os
import socket

import pytest
import trio
import trio.testing

from telcoflow_trio._connect import connect_stream
from telcoflow_trio._tcp import ReadyFirstStream

pytestmark = pytest.mark.skipif(os.name != "posix", reason="reads sockets as descriptors")


async def socket_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    listener = listeners[0]
    try:
        port = listener.socket.getsockname()[1]
        client = await trio.open_tcp_stream("127.0.0.1", port)
        server = await listener.accept()
    finally:
        await listener.aclose()
    return client, server


async def wrapped_pair() -> tuple[ReadyFirstStream, ReadyFirstStream]:
    client, server = await socket_pair()
    return ReadyFirstStream(client), ReadyFirstStream(server)


async def fill(stream: ReadyFirstStream) -> None:
    """Send until the kernel's buffers take no more (every task blocked: the send waits)."""
    async with trio.open_nursery() as nursery:

        async def sender() -> None:
            while True:
                await stream.send_all(b"x" * 65536)

        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()


async def clogged_pair() -> tuple[ReadyFirstStream, ReadyFirstStream]:
    left, right = await wrapped_pair()
    await fill(left)
    await fill(right)
    return left, right


async def test_trio_conformance() -> None:
    # trio's own checks: ordering, EOF, close while blocked, conflicts, cancellation.
    await trio.testing.check_half_closeable_stream(wrapped_pair, clogged_pair)


async def test_receives_in_order_and_eof() -> None:
    left, right = await wrapped_pair()
    async with left, right:
        await left.send_all(b"hello ")
        await left.send_all(b"world")
        await left.send_eof()
        got = b""
        with trio.fail_after(5):
            while chunk := await right.receive_some(3):
                assert len(chunk) <= 3
                got += chunk
        assert got == b"hello world"
        assert await right.receive_some() == b""


async def test_close_wakes_a_waiting_reader() -> None:
    left, right = await wrapped_pair()
    async with left:
        caught: list[BaseException] = []

        async def reader() -> None:
            with pytest.raises(trio.ClosedResourceError) as info:
                await right.receive_some()
            caught.append(info.value)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()
                await right.aclose()
        assert len(caught) == 1
        with pytest.raises(trio.ClosedResourceError):
            await right.receive_some()


async def test_concurrent_receive_is_busy() -> None:
    left, right = await wrapped_pair()
    async with left, right:
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(right.receive_some)
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(trio.BusyResourceError):
                    await right.receive_some()
                await left.send_all(b"x")


async def test_cancelled_receive_loses_nothing() -> None:
    left, right = await wrapped_pair()
    async with left, right:
        with trio.move_on_after(0.05) as scope:
            await right.receive_some()
        assert scope.cancelled_caught
        await left.send_all(b"kept")
        with trio.fail_after(5):
            assert await right.receive_some() == b"kept"


async def test_receive_checkpoints_with_data_waiting() -> None:
    left, right = await wrapped_pair()
    async with left, right:
        await left.send_all(b"ready")
        await trio.sleep(0.01)  # let it arrive (no assertion depends on the time)
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await right.receive_some()
        with trio.fail_after(5):
            assert await right.receive_some() == b"ready"


async def test_reset_by_peer_is_broken() -> None:
    client, server = await socket_pair()
    right = ReadyFirstStream(server)
    async with right:
        # SO_LINGER 0: closing sends RST, so the reader sees ECONNRESET.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        await client.aclose()
        with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
            await right.receive_some()


async def test_bad_size_is_refused() -> None:
    left, right = await wrapped_pair()
    async with left, right:
        with pytest.raises(ValueError, match="max_bytes"):
            await right.receive_some(0)


async def test_connect_stream_wraps_plain_tcp() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    async with listener:
        port = listener.socket.getsockname()[1]
        deadline = trio.current_time() + 5
        stream = await connect_stream("127.0.0.1", port, None, "test", deadline)
        async with stream, await listener.accept() as server:
            assert isinstance(stream, ReadyFirstStream)
            await server.send_all(b"hi")
            with trio.fail_after(5):
                assert await stream.receive_some() == b"hi"


async def test_send_nowait_writes_what_fits_and_never_waits() -> None:
    left, right = await wrapped_pair()
    async with left, right:
        assert left.send_nowait(b"hello") == 5
        with trio.fail_after(5):
            assert await right.receive_some() == b"hello"
        # Once the kernel's buffers are full it takes part of a chunk, then nothing.
        chunk = b"y" * 65536
        taken = [left.send_nowait(chunk) for _ in range(200)]
        assert taken[-1] == 0
        assert 0 < sum(taken) < 200 * len(chunk)
        received = 0
        with trio.fail_after(5):
            while received < sum(taken):
                received += len(await right.receive_some())
        assert received == sum(taken)


async def test_send_nowait_on_a_closed_or_broken_socket() -> None:
    left, right = await wrapped_pair()
    await left.aclose()
    with pytest.raises(trio.ClosedResourceError):
        left.send_nowait(b"late")
    client, server = await socket_pair()
    wrapped = ReadyFirstStream(client)
    async with wrapped:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        await server.aclose()
        await right.aclose()
        with trio.fail_after(5):
            while True:  # the first write may still be taken before the reset is seen
                try:
                    wrapped.send_nowait(b"x")
                except trio.BrokenResourceError:
                    break
                await trio.sleep(0.01)
