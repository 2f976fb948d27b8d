"""SendAudioBuffer on its own: bounds, back-pressure, argument checks, discard and close."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

from telcoflow_trio import BufferClosedError, BufferFullError, CallAudioConfig
from telcoflow_trio.audio import SendAudioBuffer

from ._support import pcm, with_deadlines


def drain(buf: SendAudioBuffer) -> bytes:
    """What a reader of the current epoch would get, consumed as the servicer would."""
    out = bytearray()
    while True:
        try:
            out += buf.receive_channel.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    if out:
        buf.consume(len(out))
    return bytes(out)


# ── construction ────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("bad", ["1024", 1.5, None, True])
def test_capacity_type_is_checked(bad: object) -> None:
    with pytest.raises(TypeError, match="capacity"):
        SendAudioBuffer(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1])
def test_capacity_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        SendAudioBuffer(bad)


def test_from_config_uses_buffer_size() -> None:
    buf = SendAudioBuffer.from_config(CallAudioConfig(buffer_size=2048))
    assert buf.capacity == 2048
    assert buf.size == 0
    with pytest.raises(TypeError, match="config"):
        SendAudioBuffer.from_config(2048)  # type: ignore[arg-type]


# ── arguments ───────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("bad", ["pcm", 12, None, [1, 2], 3.0])
async def test_send_audio_refuses_non_bytes(bad: object) -> None:
    buf = SendAudioBuffer(64)
    with pytest.raises(TypeError, match="pcm"):
        await buf.send_audio(bad)  # type: ignore[arg-type]
    assert buf.size == 0


async def test_send_audio_refuses_non_bool_wait() -> None:
    buf = SendAudioBuffer(64)
    with pytest.raises(TypeError, match="wait"):
        await buf.send_audio(b"ab", wait=1)  # type: ignore[arg-type]
    assert buf.size == 0


async def test_released_memoryview_is_a_value_error() -> None:
    view = memoryview(b"abcd")
    view.release()
    with pytest.raises(ValueError, match="pcm"):
        await SendAudioBuffer(64).send_audio(view)


async def test_accepts_bytes_likes_and_copies_mutable_ones() -> None:
    buf = SendAudioBuffer(64)
    mutable = bytearray(b"abcd")
    await buf.send_audio(b"01")
    await buf.send_audio(mutable)
    await buf.send_audio(memoryview(mutable)[1:3])
    await buf.send_audio(memoryview(bytearray(b"wxyz")).cast("H"))  # 2-byte items
    mutable[:] = b"ZZZZ"
    assert drain(buf) == b"01abcdbcwxyz"


async def test_empty_write_is_a_noop() -> None:
    buf = SendAudioBuffer(4)
    await buf.send_audio(b"abcd")
    await buf.send_audio(b"")  # fits even when full
    assert buf.size == 4
    assert buf.written_bytes == 4


# ── the bound ───────────────────────────────────────────────────────────────────────────


async def test_full_buffer_raises_and_queues_nothing() -> None:
    buf = SendAudioBuffer(8)
    await buf.send_audio(b"123456")
    with pytest.raises(BufferFullError):
        await buf.send_audio(b"abc")
    assert buf.size == 6
    await buf.send_audio(b"ab")  # an exact fit is fine
    assert buf.size == 8
    with pytest.raises(BufferFullError):
        await buf.send_audio(b"x")
    assert buf.counters().rejected_writes == 2
    assert drain(buf) == b"123456ab"


async def test_larger_than_capacity_without_wait_raises() -> None:
    with pytest.raises(BufferFullError):
        await SendAudioBuffer(8).send_audio(bytes(9))


async def test_wait_blocks_until_room_then_queues() -> None:
    buf = SendAudioBuffer(8)
    await buf.send_audio(b"12345678")
    done = trio.Event()

    async def writer() -> None:
        await buf.send_audio(b"abcd", wait=True)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        assert buf.size == 8
        assert buf.receive_channel.receive_nowait() == b"12345678"
        buf.consume(8)
        await trio.testing.wait_all_tasks_blocked()
        assert done.is_set()
    assert drain(buf) == b"abcd"


async def test_waiting_write_larger_than_capacity_goes_in_pieces() -> None:
    buf = SendAudioBuffer(4)
    data = pcm(10)
    got = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: buf.send_audio(data, wait=True))
        while len(got) < len(data):
            await trio.testing.wait_all_tasks_blocked()
            assert 0 < buf.size <= 4
            got += drain(buf)
    assert got == data


async def test_waiting_writers_keep_call_order_and_block_nowait_writes() -> None:
    buf = SendAudioBuffer(4)
    await buf.send_audio(b"0000")
    async with trio.open_nursery() as nursery:
        for i, chunk in enumerate((b"aaa", b"b", b"cc")):
            nursery.start_soon(partial(buf.send_audio, chunk, wait=True))
            await trio.testing.wait_all_tasks_blocked()
            if i == 0:
                drain(buf)  # room for b"b" now, yet "aaa" is ahead of it
                await trio.testing.wait_all_tasks_blocked()
        # b"b" would fit in the 1 byte left, but earlier writers are still waiting
        with pytest.raises(BufferFullError):
            await buf.send_audio(b"z")
        got = bytearray()
        while len(got) < 6:
            got += drain(buf)
            await trio.testing.wait_all_tasks_blocked()
    assert got == b"aaabcc"


async def test_a_nowait_write_never_jumps_ahead_of_a_woken_writer() -> None:
    buf = SendAudioBuffer(4)
    await buf.send_audio(b"0000")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(buf.send_audio, b"ab", wait=True))
        await trio.testing.wait_all_tasks_blocked()
        assert drain(buf) == b"0000"  # room now; the writer is woken but has not run
        with pytest.raises(BufferFullError):
            await buf.send_audio(b"z")
    assert drain(buf) == b"ab"


async def test_discard_drops_queue_and_abandons_waiting_writers() -> None:
    buf = SendAudioBuffer(4)
    await buf.send_audio(b"old!")
    returned = []
    async with trio.open_nursery() as nursery:

        async def writer() -> None:
            await buf.send_audio(b"stale-audio", wait=True)
            returned.append(True)

        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        assert buf.discard() == (4, 11)
    assert returned == [True]  # returns normally, nothing more queued
    assert buf.size == 0
    await buf.send_audio(b"new")
    assert drain(buf) == b"new"
    c = buf.counters()
    assert (c.discarded_bytes, c.abandoned_bytes, c.written_bytes) == (4, 11, 7)


async def test_cancelled_waiting_writer_keeps_what_it_queued() -> None:
    buf = SendAudioBuffer(4)
    await buf.send_audio(b"ab")
    with trio.move_on_after(1) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: buf.send_audio(b"cdefgh", wait=True))
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
    assert buf.size == 4
    # the cancelled writer's rest is not "waiting" any more
    assert buf.discard() == (4, 0)


async def test_closed_buffer_refuses_writes_and_wakes_waiting_writers() -> None:
    buf = SendAudioBuffer(4)
    await buf.send_audio(b"abcd")
    errors: list[BaseException] = []

    async def writer() -> None:
        try:
            await buf.send_audio(b"ef", wait=True)
        except BufferClosedError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        buf.close()
    assert len(errors) == 1
    with pytest.raises(BufferClosedError):
        await buf.send_audio(b"x")
    with pytest.raises(BufferClosedError):
        await buf.send_audio(b"")
    assert buf.size == 4  # kept for a drain
    assert buf.drop() == 4
    assert buf.size == 0
    assert buf.counters().dropped_bytes == 4


async def test_send_audio_is_a_checkpoint() -> None:
    buf = SendAudioBuffer(64)
    with trio.CancelScope() as scope:
        scope.cancel()
        await buf.send_audio(b"ab")
    assert scope.cancelled_caught
    assert buf.size == 0


with_deadlines(globals())
