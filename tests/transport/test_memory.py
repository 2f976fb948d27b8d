"""The in-memory message socket pair and connector: the seam's unit-test transport."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import telcoflow_trio as tf
from telcoflow_trio._transport import (
    MemoryConnector,
    MessageSocket,
    SocketClosed,
    memory_socket_pair,
)


async def test_messages_arrive_whole_in_order_and_keep_their_kind() -> None:
    a, b = memory_socket_pair()
    await a.send("text")
    await a.send(b"\x00bytes")
    await b.send("back")
    assert [await b.receive(), await b.receive()] == ["text", b"\x00bytes"]
    assert await a.receive() == "back"
    with pytest.raises(TypeError, match="str or bytes"):
        await a.send(bytearray(b"x"))  # type: ignore[arg-type]


async def test_a_send_cancelled_from_outside_is_still_delivered() -> None:
    a, b = memory_socket_pair()
    with trio.CancelScope() as scope:
        scope.cancel()
        await a.send("whole")
    assert not scope.cancelled_caught
    assert await b.receive() == "whole"


@pytest.mark.parametrize(("close", "code"), [("aclose", 1000), ("abort", 1006)])
async def test_a_close_reaches_the_peer_after_what_was_sent_before_it(
    close: str, code: int
) -> None:
    a, b = memory_socket_pair()
    await b.send("unread by a")
    await a.send("sent before the close")
    await getattr(a, close)()
    assert a.closed
    assert b.closed
    # The peer still gets what was sent before the close, then the close itself.
    assert await b.receive() == "sent before the close"
    with pytest.raises(SocketClosed) as info:
        await b.receive()
    assert info.value.code == code
    # The end that closed discards what it had not read.
    with pytest.raises(SocketClosed):
        await a.receive()
    for end in (a, b):
        with pytest.raises(tf.WSSConnectionError, match="closed"):
            await end.send("too late")
    # Closing again is harmless and keeps the first code.
    await b.aclose()
    await a.abort()
    with pytest.raises(SocketClosed) as again:
        await b.receive()
    assert again.value.code == code


async def test_a_waiting_receive_wakes_on_close() -> None:
    a, b = memory_socket_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.abort)
        with pytest.raises(SocketClosed):
            await b.receive()


async def test_pings_are_answered_until_the_peer_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = memory_socket_pair()
    with trio.fail_after(1):
        await a.ping()
    b.stop_answering_pings()
    with trio.move_on_after(100) as waiting:
        await a.ping()
    assert waiting.cancelled_caught
    # The other direction still works: it is b's answering that stopped.
    await b.ping()
    async with trio.open_nursery() as nursery:

        async def resume() -> None:
            await trio.sleep(5)
            b.answer_pings()

        nursery.start_soon(resume)
        with trio.fail_after(10):
            await a.ping()
    b.stop_answering_pings()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(b.aclose)
        with pytest.raises(SocketClosed):
            await a.ping()


async def test_connector_hands_each_attempt_to_the_test() -> None:
    connector = MemoryConnector()
    headers = {"x-api-key": "sk-secret"}
    async with connector("ws://h/path", headers, None, what="control plane") as client:
        assert isinstance(client, MessageSocket)
        accepted = await connector.accept()
        assert (accepted.url, accepted.what) == ("ws://h/path", "control plane")
        assert accepted.headers == headers
        assert "sk-secret" not in repr(accepted)
        await client.send("hello")
        assert await accepted.socket.receive() == "hello"
        await accepted.socket.send("hi")
        assert await client.receive() == "hi"
    # Leaving the block closes politely.
    with pytest.raises(SocketClosed) as info:
        await accepted.socket.receive()
    assert info.value.code == 1000
    assert connector.attempts == 1


async def test_connector_refuses_as_a_server_would_without_leaking_secrets() -> None:
    connector = MemoryConnector()
    connector.refuse_next(503, "overloaded, key sk-secret")
    connector.refuse_next(401)
    with pytest.raises(tf.WSSConnectionError) as refused:
        async with connector("ws://h", {}, None, what="voice plane", secrets=("sk-secret",)):
            pass  # pragma: no cover
    assert refused.value.status_code == 503
    assert "voice plane" in str(refused.value)
    assert "HTTP 503" in str(refused.value)
    assert "sk-secret" not in str(refused.value)
    with pytest.raises(tf.WSSAuthenticationError) as denied:
        async with connector("ws://h", {}, None, what="voice plane"):
            pass  # pragma: no cover
    assert denied.value.status_code == 401
    # Refusals are used up one per attempt; then attempts succeed again.
    async with connector("ws://h", {}, None, what="voice plane"):
        await connector.accept()
    assert connector.attempts == 3
