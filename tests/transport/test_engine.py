"""The engine under test (``TELCOFLOW_TEST_TRANSPORT``) over a recording stream: writes are
never cut, and a write that fails or sticks closes the stream with nothing written after it.
On a MockClock.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

import telcoflow_trio as tf
from telcoflow_trio._transport import DISCONNECT_TIMEOUT, WRITE_TIMEOUT, MessageSocket, SocketClosed
from tests.transport_choice import wrap_stream

from ._fake import FakeTransport

URL = "ws://fake.example:8080/v1/voice/abc?token=tok-secret"


@asynccontextmanager
async def connected(fake: FakeTransport) -> AsyncIterator[MessageSocket]:
    async with wrap_stream(fake, URL, {"Authorization": "Bearer tok"}, what="test plane") as sock:
        yield sock


async def test_upgrade_then_messages_both_ways_then_a_polite_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeTransport()
    async with connected(fake) as sock:
        assert fake.request is not None
        assert fake.request.host == "fake.example:8080"
        assert fake.request.target == "/v1/voice/abc?token=tok-secret"
        assert (b"authorization", b"Bearer tok") in fake.request.extra_headers
        await sock.send("text")
        await sock.send(b"\x00pcm")
        fake.send_to_client("from server")
        assert await sock.receive() == "from server"
        with trio.fail_after(1):
            await sock.ping()
    assert fake.messages == ["text", b"\x00pcm"]
    assert fake.close_frames == 1
    assert fake.closed
    assert fake.writes_after_close == 0


async def test_a_write_cancelled_from_outside_mid_frame_still_completes_whole(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeTransport()
    message = "x" * 10_000
    async with connected(fake) as sock, trio.open_nursery() as nursery:
        fake.stall = True
        outcome: list[str] = []

        async def write() -> None:
            with trio.CancelScope() as scope:
                cancel_scopes.append(scope)
                await sock.send(message)
                outcome.append("returned")

        cancel_scopes: list[trio.CancelScope] = []
        nursery.start_soon(write)
        await trio.testing.wait_all_tasks_blocked()
        assert len(fake.writes) == 2  # the upgrade request, then this frame (half sent)
        cancel_scopes[0].cancel()
        await trio.sleep(WRITE_TIMEOUT / 2)
        assert not sock.closed
        fake.stall = False
        fake.unstall.set()
    assert outcome == ["returned"]
    assert fake.messages == [message]


@pytest.mark.parametrize("fault", ["stall", "fail"])
async def test_a_write_that_sticks_or_fails_aborts_the_stream_and_writes_nothing_more(
    fault: str, caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    caplog.set_level(logging.WARNING, logger="telcoflow_trio")
    fake = FakeTransport()
    async with connected(fake) as sock:
        setattr(fake, fault, True)
        writes_before = len(fake.writes)
        failures: list[Exception] = []

        async def write(n: int) -> None:
            try:
                await sock.send(f"frame {n}")
            except tf.WSSConnectionError as exc:
                failures.append(exc)

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for n in range(3):
                nursery.start_soon(write, n)
        assert trio.current_time() - start <= WRITE_TIMEOUT
        assert len(failures) == 3
        assert sock.closed
        assert fake.closed
        # Only the first write reached the stream; no close frame or anything else after it
        # (writers queued behind it may still try, on the closed stream, which refuses).
        assert len(fake.writes) == writes_before + 1
        assert fake.close_frames == 0
        with pytest.raises(SocketClosed):
            await sock.receive()
        with pytest.raises(tf.WSSConnectionError, match="closed"):
            await sock.send("later")
    assert len(fake.writes) == writes_before + 1
    assert fake.close_frames == 0
    stuck = [r for r in caplog.records if "stuck" in r.getMessage()]
    assert len(stuck) == (1 if fault == "stall" else 0)


async def test_a_close_nobody_answers_is_bounded_then_forceful(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeTransport()
    fake.answer_close = False
    async with connected(fake) as sock:
        start = trio.current_time()
        await sock.aclose()
        assert trio.current_time() - start == pytest.approx(DISCONNECT_TIMEOUT)
        assert fake.close_frames == 1
        assert fake.closed
        await sock.aclose()  # idempotent


async def test_a_close_under_cancellation_still_writes_its_frame_whole(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeTransport()
    async with connected(fake) as sock:
        with trio.CancelScope() as scope:
            scope.cancel()
            await sock.aclose()
    assert fake.close_frames == 1
    assert fake.closed


async def test_the_peer_closing_ends_receive_with_its_code(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeTransport()
    async with connected(fake) as sock:
        fake.send_to_client("last words")
        fake.close_from_server(4001, "bye")
        assert await sock.receive() == "last words"
        with pytest.raises(SocketClosed) as info:
            await sock.receive()
        assert (info.value.code, info.value.reason) == (4001, "bye")
        assert sock.closed


async def test_an_unanswered_ping_waits_and_an_abort_wakes_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeTransport()
    fake.answer_pings = False
    async with connected(fake) as sock:
        with trio.move_on_after(30) as waiting:
            await sock.ping()
        assert waiting.cancelled_caught
        async with trio.open_nursery() as nursery:

            async def abort_later() -> None:
                await trio.sleep(1)
                await sock.abort()

            nursery.start_soon(abort_later)
            with pytest.raises(SocketClosed):
                await sock.ping()
    assert fake.close_frames == 0


async def test_an_error_in_the_block_comes_out_unwrapped_and_closes_the_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeTransport()
    with pytest.raises(KeyError):
        async with connected(fake):
            raise KeyError("mine")
    assert fake.closed


async def test_a_peer_that_hangs_up_during_the_upgrade_fails_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeTransport()
    fake._to_client_send.close()  # EOF before any reply
    start = trio.current_time()
    with pytest.raises(tf.WSSConnectionError) as info:
        async with connected(fake):
            pass  # pragma: no cover
    assert trio.current_time() == start
    message = str(info.value)
    assert message.startswith("test plane: could not connect to fake.example:8080")
    assert "closed during the handshake" in message
    assert "tok-secret" not in message
    assert "/v1/voice" not in message
    assert fake.closed
