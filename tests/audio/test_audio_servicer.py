"""PullServicer: wire behaviour, interruption, playout, heard position, drain, counters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import trio
import trio.testing

from telcoflow_trio import BufferClosedError, CommandResult, WSSCallClosedError
from telcoflow_trio.audio import MAX_REQUEST_RUNS, ClearResult, PullServicer, SendAudioBuffer

from ._support import INTERRUPT, FakeConnection, make, pcm, req, with_deadlines

settle = trio.testing.wait_all_tasks_blocked


@pytest.fixture(params=[False, True], ids=["task", "at-once"])
async def running(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[SendAudioBuffer, PullServicer, FakeConnection]]:
    # Every test on a running servicer, with and without a FrameWriter: the requests that
    # can be answered at once must behave on the wire exactly as the task answers them.
    buf, servicer, conn = make(16384, at_once=request.param)
    async with trio.open_nursery() as nursery:
        await nursery.start(servicer.run)
        yield buf, servicer, conn
        conn.hold = False  # a failed test may leave a write held
        conn.release()
        servicer.close()


Running = tuple[SendAudioBuffer, PullServicer, FakeConnection]


def sizes(conn: FakeConnection) -> list[int]:
    return [len(f) - 1 for f in conn.frames]


# ── wire behaviour ──────────────────────────────────────────────────────────────────────


async def test_sends_everything_held_up_to_owed_in_one_frame(running: Running) -> None:
    buf, servicer, conn = running
    await buf.send_audio(pcm(4800))
    servicer.on_buffer_request(req(4800, 960))
    await settle()
    assert sizes(conn) == [4800]
    assert conn.frames[0][0] == 0
    assert conn.payload == pcm(4800)


async def test_many_small_chunks_make_one_frame(running: Running) -> None:
    buf, servicer, conn = running
    for i in range(10):
        await buf.send_audio(pcm(480, i))
    servicer.on_buffer_request(req(4800, 960))
    await settle()
    assert sizes(conn) == [4800]
    assert conn.payload == b"".join(pcm(480, i) for i in range(10))


async def test_waits_for_the_floor(running: Running) -> None:
    buf, servicer, conn = running
    servicer.on_buffer_request(req(4800, 960))
    await buf.send_audio(pcm(500))
    await settle()
    assert conn.frames == []
    await buf.send_audio(pcm(500, 1))
    await settle()
    assert sizes(conn) == [1000]
    assert servicer.owed_bytes == 3800


async def test_frame_never_exceeds_what_is_owed(running: Running) -> None:
    buf, servicer, conn = running
    await buf.send_audio(pcm(3000))
    servicer.on_buffer_request(req(1000, 960))
    await settle()
    assert sizes(conn) == [1000]
    assert buf.size == 2000
    servicer.on_buffer_request(req(1500, 960))
    await settle()
    assert sizes(conn) == [1000, 1500]
    assert conn.payload == pcm(3000)[:2500]


async def test_floor_is_owed_when_less_is_owed(running: Running) -> None:
    buf, servicer, conn = running
    servicer.on_buffer_request(req(100, 960))
    servicer.on_buffer_request(req(1000, 200))
    await buf.send_audio(pcm(50))
    await settle()
    assert conn.frames == []  # 50 < min(960, 100)
    await buf.send_audio(pcm(2000, 1))
    await settle()
    assert sizes(conn) == [100, 1000]  # answered in order, never across requests


async def test_default_floor_is_960(running: Running) -> None:
    buf, servicer, conn = running
    servicer.on_buffer_request(req(4000, 0))
    await buf.send_audio(pcm(959))
    await settle()
    assert conn.frames == []
    await buf.send_audio(pcm(1))
    await settle()
    assert sizes(conn) == [960]


async def test_floor_is_capped_at_capacity() -> None:
    buf, servicer, conn = make(1024)
    async with trio.open_nursery() as nursery:
        await nursery.start(servicer.run)
        servicer.on_buffer_request(req(10_000, 4096))
        await buf.send_audio(pcm(2048), wait=True)  # only ever 1024 fit at once
        await settle()
        assert sizes(conn) == [1024, 1024]
        servicer.close()


async def test_other_channels_and_empty_requests_are_not_owed(running: Running) -> None:
    buf, servicer, conn = running
    servicer.on_buffer_request(req(960, 0, channel=1))
    servicer.on_buffer_request(req(0))
    servicer.on_buffer_request(req(-5))
    await buf.send_audio(pcm(2000))
    await settle()
    assert conn.frames == []
    assert servicer.owed_bytes == 0
    c = servicer.counters()
    assert (c.skipped_requests, c.ignored_requests) == (1, 2)


async def test_on_buffer_request_checks_its_argument() -> None:
    _, servicer, _ = make()
    with pytest.raises(TypeError, match="request"):
        servicer.on_buffer_request({"requested_bytes": 10})  # type: ignore[arg-type]


async def test_requests_before_run_are_kept() -> None:
    buf, servicer, conn = make()
    servicer.on_buffer_request(req(960))
    await buf.send_audio(pcm(960))
    async with trio.open_nursery() as nursery:
        await nursery.start(servicer.run)
        await settle()
        assert sizes(conn) == [960]
        servicer.close()


async def test_run_only_once(running: Running) -> None:
    _, servicer, _ = running
    with pytest.raises(RuntimeError):
        await servicer.run()


async def test_repeated_requests_are_run_length_encoded_and_bounded(running: Running) -> None:
    buf, servicer, conn = running
    for _ in range(10_000):
        servicer.on_buffer_request(req(2, 2))
    assert servicer.counters().coalesced_requests == 0
    for i in range(MAX_REQUEST_RUNS + 10):
        servicer.on_buffer_request(req(3 + i % 2, 2))
    assert servicer.counters().coalesced_requests > 0
    total = 2 * 10_000 + sum(3 + i % 2 for i in range(MAX_REQUEST_RUNS + 10))
    assert servicer.owed_bytes == total
    await buf.send_audio(pcm(4000))
    await settle()
    assert sizes(conn)[:3] == [2, 2, 2]  # frames still respect each request


async def test_underruns_count_requests_that_find_the_buffer_empty(running: Running) -> None:
    buf, servicer, _ = running
    servicer.on_buffer_request(req(960))
    servicer.on_buffer_request(req(960))
    await buf.send_audio(pcm(100))
    servicer.on_buffer_request(req(960))
    assert servicer.counters().underruns == 2


# ── the tail, playout and heard position ────────────────────────────────────────────────


async def test_tail_is_held_until_more_audio_comes(running: Running) -> None:
    buf, servicer, conn = running
    servicer.on_buffer_request(req(10_000, 960))
    await buf.send_audio(pcm(1500))
    await settle()
    assert sizes(conn) == [1500]
    await buf.send_audio(pcm(500, 1))
    await settle()
    assert sizes(conn) == [1500]  # the official behaviour while audio flows
    await buf.send_audio(pcm(500, 2))
    await settle()
    assert sizes(conn) == [1500, 1000]


async def test_wait_for_playout_flushes_the_tail(running: Running) -> None:
    buf, servicer, conn = running
    servicer.on_buffer_request(req(10_000, 960))
    await buf.send_audio(pcm(1500))
    await settle()
    await buf.send_audio(pcm(100, 1))
    await settle()
    assert sizes(conn) == [1500]  # the tail waits for the floor...
    with trio.fail_after(5):
        await servicer.wait_for_playout()  # ...until someone waits for it
    assert sizes(conn) == [1500, 100]
    assert conn.payload == pcm(1500) + pcm(100, 1)
    assert buf.size == 0
    assert servicer.heard_position == 1600 == servicer.sent_bytes


async def test_wait_for_playout_returns_at_once_when_nothing_queued(running: Running) -> None:
    _, servicer, _ = running
    with trio.fail_after(5):
        await servicer.wait_for_playout()  # no requests at all: still immediate


async def test_wait_for_playout_waits_for_the_write_in_flight(running: Running) -> None:
    buf, servicer, conn = running
    conn.hold = True
    servicer.on_buffer_request(req(960))
    await buf.send_audio(pcm(960))
    await settle()
    assert conn.inflight is not None and buf.size == 0
    done = trio.Event()

    async def waiter() -> None:
        await servicer.wait_for_playout()
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await settle()
        assert not done.is_set()
        conn.release()
        await settle()
        assert done.is_set()


async def test_wait_for_playout_raises_when_the_call_ends_first(running: Running) -> None:
    buf, servicer, _ = running
    await buf.send_audio(pcm(100))
    with pytest.RaisesGroup(WSSCallClosedError):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(servicer.wait_for_playout)
            await settle()
            servicer.close()
    with pytest.raises(WSSCallClosedError):
        await servicer.wait_for_playout()  # those 100 bytes will never play


async def test_wait_for_playout_after_a_clean_close_returns() -> None:
    _, servicer, _ = make()
    servicer.close()
    with trio.fail_after(5):
        await servicer.wait_for_playout()


async def test_wait_for_playout_returns_when_a_clear_drops_the_rest(running: Running) -> None:
    buf, servicer, _ = running
    await buf.send_audio(pcm(100))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(servicer.wait_for_playout)
        await settle()
        await servicer.clear()
    assert servicer.heard_position == 0


# ── interruption ────────────────────────────────────────────────────────────────────────


async def test_clear_discards_sends_interrupt_and_resumes_owed(running: Running) -> None:
    buf, servicer, conn = running
    servicer.on_buffer_request(req(3000, 960))
    await buf.send_audio(pcm(1000))
    await settle()
    await buf.send_audio(pcm(700, 1))  # below the floor: held
    await settle()
    result = await servicer.clear()
    assert result == ClearResult(700, 0, 1000, CommandResult(True))
    assert servicer.last_clear == result
    assert conn.log[-1] == INTERRUPT
    assert servicer.owed_bytes == 2000  # still owed after the clear
    await buf.send_audio(pcm(2000, 2))
    await settle()
    assert conn.payload == pcm(1000) + pcm(2000, 2)
    c = servicer.counters()
    assert (c.discarded_bytes, c.clears, c.sent_bytes) == (700, 1, 3000)


async def test_clear_wins_over_a_chunk_already_handed_to_the_servicer(
    running: Running,
) -> None:
    buf, servicer, conn = running
    servicer.on_buffer_request(req(3000, 960))
    await buf.send_audio(pcm(500))
    await settle()  # staged, below the floor; the servicer waits on the channel
    await buf.send_audio(pcm(500, 1))  # handed straight to the waiting servicer...
    await servicer.clear()  # ...which has not run yet when the clear comes
    await buf.send_audio(pcm(960, 2))
    await settle()
    assert conn.log == [INTERRUPT, b"\x00" + pcm(960, 2)]


async def test_clear_drops_a_partly_assembled_frame(running: Running) -> None:
    buf, servicer, conn = running
    servicer.on_buffer_request(req(3000, 960))
    for i in range(3):  # three chunks staged by the servicer, short of the floor
        await buf.send_audio(pcm(300, i))
        await settle()
    result = await servicer.clear()
    assert result.discarded_bytes == 900
    await buf.send_audio(pcm(960, 9))
    await settle()
    assert conn.frames == [b"\x00" + pcm(960, 9)]


async def test_clear_waits_for_the_write_in_flight(running: Running) -> None:
    buf, servicer, conn = running
    conn.hold = True
    servicer.on_buffer_request(req(960))
    servicer.on_buffer_request(req(960))
    await buf.send_audio(pcm(960) + pcm(960, 1))
    await settle()
    assert conn.inflight is not None
    results: list[ClearResult] = []

    async def clearer() -> None:
        results.append(await servicer.clear())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(clearer)
        await settle()
        assert results == []  # the frame in flight is never cut
        await buf.send_audio(pcm(960, 2))  # queued after the clear began
        conn.hold = False
        conn.release()
    assert results[0].discarded_bytes == 960
    assert results[0].heard_position == 960
    await settle()
    assert conn.log == [b"\x00" + pcm(960), INTERRUPT, b"\x00" + pcm(960, 2)]


async def test_fresh_audio_waits_until_the_interrupt_is_written(running: Running) -> None:
    buf, servicer, conn = running
    conn.hold_interrupt = True
    servicer.on_buffer_request(req(960))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(servicer.clear)
        await settle()
        await buf.send_audio(pcm(960))
        await settle()
        assert conn.log == []  # agent.interrupt not on the wire yet
        conn.release_interrupt()
    await settle()
    assert conn.log == [INTERRUPT, b"\x00" + pcm(960)]


async def test_a_failing_interrupt_still_releases_fresh_audio(running: Running) -> None:
    buf, servicer, conn = running
    conn.interrupt_error = WSSCallClosedError("gone")
    servicer.on_buffer_request(req(960))
    with pytest.raises(WSSCallClosedError):
        await servicer.clear()
    await buf.send_audio(pcm(960))
    await settle()
    assert sizes(conn) == [960]


async def test_clear_without_hook_and_concurrent_clears() -> None:
    buf, servicer, conn = make(interrupt=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(servicer.run)
        await buf.send_audio(pcm(10))
        async with trio.open_nursery() as inner:
            inner.start_soon(servicer.clear)
            inner.start_soon(servicer.clear)
        assert servicer.counters().clears == 2
        assert servicer.counters().discarded_bytes == 10
        assert servicer.last_clear is not None and servicer.last_clear.interrupt is None
        servicer.close()
    assert conn.log == []


async def test_clear_abandons_back_pressured_writers(running: Running) -> None:
    buf, servicer, conn = running
    await buf.send_audio(pcm(buf.capacity))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: buf.send_audio(pcm(5000, 1), wait=True))
        await settle()
        result = await servicer.clear()
    assert (result.discarded_bytes, result.abandoned_bytes) == (buf.capacity, 5000)
    servicer.on_buffer_request(req(10_000))
    await buf.send_audio(pcm(100, 2))
    await servicer.wait_for_playout()
    assert conn.payload == pcm(100, 2)


async def test_clear_on_a_closed_call_raises() -> None:
    _, servicer, _ = make()
    servicer.close()
    with pytest.raises(WSSCallClosedError):
        await servicer.clear()


async def test_heard_since_measures_an_utterance(running: Running) -> None:
    buf, servicer, _ = running
    servicer.on_buffer_request(req(100_000, 960))
    await buf.send_audio(pcm(2000))
    await servicer.wait_for_playout()
    await servicer.clear()
    mark = buf.written_bytes
    servicer.on_buffer_request(req(1000, 0))  # less than the utterance: part is heard
    await buf.send_audio(pcm(4000, 1))
    await settle()
    result = await servicer.clear()
    assert result.heard_since(mark) == servicer.sent_bytes - 2000
    assert result.heard_since(buf.written_bytes) == 0


# ── failure, close and drain ────────────────────────────────────────────────────────────


async def test_closed_connection_closes_the_servicer_quietly() -> None:
    buf = SendAudioBuffer(4096)

    async def send_frame(_: bytes) -> None:
        raise WSSCallClosedError("socket gone")

    servicer = PullServicer(buf, send_frame=send_frame)
    async with trio.open_nursery() as nursery:
        await nursery.start(servicer.run)
        servicer.on_buffer_request(req(960))
        await buf.send_audio(pcm(1000))
        await settle()
    assert servicer.closed
    with pytest.raises(BufferClosedError):
        await buf.send_audio(b"ab")
    assert servicer.counters().dropped_bytes == 1000  # 960 lost in the write, 40 left queued


async def test_other_send_errors_propagate_and_close() -> None:
    buf = SendAudioBuffer(4096)

    async def send_frame(_: bytes) -> None:
        raise OSError("boom")

    servicer = PullServicer(buf, send_frame=send_frame)
    with pytest.RaisesGroup(OSError):
        async with trio.open_nursery() as nursery:
            await nursery.start(servicer.run)
            servicer.on_buffer_request(req(960))
            await buf.send_audio(pcm(960))
    assert servicer.closed


async def test_cancelling_the_task_closes_the_servicer() -> None:
    buf, servicer, _ = make()
    async with trio.open_nursery() as nursery:
        await nursery.start(servicer.run)
        await buf.send_audio(pcm(10))
        nursery.cancel_scope.cancel()
    assert servicer.closed
    with pytest.raises(BufferClosedError):
        await buf.send_audio(b"ab")


async def test_close_wakes_everyone() -> None:
    buf, servicer, _ = make(8)
    await buf.send_audio(pcm(8))
    outcomes: list[str] = []

    async def catch(name: str, fn: Callable[[], object]) -> None:
        try:
            await fn()  # type: ignore[misc]
        except (WSSCallClosedError, BufferClosedError) as exc:
            outcomes.append(f"{name}:{type(exc).__name__}")

    async with trio.open_nursery() as nursery:
        await nursery.start(servicer.run)
        nursery.start_soon(catch, "writer", lambda: buf.send_audio(b"x", wait=True))
        nursery.start_soon(catch, "playout", servicer.wait_for_playout)
        await settle()
        assert servicer.close() == 8
        assert servicer.close() == 0
    assert sorted(outcomes) == ["playout:WSSCallClosedError", "writer:BufferClosedError"]
    assert servicer.counters().dropped_bytes == 8
    servicer.on_buffer_request(req(960))  # ignored once closed
    assert servicer.owed_bytes == 0


async def test_aclose_drains_queued_audio_first(running: Running) -> None:
    buf, servicer, conn = running
    await buf.send_audio(pcm(1500))
    async with trio.open_nursery() as nursery:

        async def server() -> None:
            for _ in range(3):
                await trio.sleep(0.1)
                servicer.on_buffer_request(req(640, 640))

        nursery.start_soon(server)
        with trio.fail_after(5):
            assert await servicer.aclose(drain_timeout=2) == 0
    assert conn.payload == pcm(1500)
    assert sizes(conn) == [640, 640, 220]  # the tail is flushed


async def test_aclose_gives_up_at_the_deadline(
    running: Running, autojump_clock: trio.testing.MockClock
) -> None:
    buf, servicer, conn = running
    await buf.send_audio(pcm(1500))
    servicer.on_buffer_request(req(1000))
    start = trio.current_time()
    assert await servicer.aclose(drain_timeout=3) == 500
    assert trio.current_time() - start == pytest.approx(3)
    assert sizes(conn) == [1000]
    assert servicer.counters().dropped_bytes == 500


async def test_aclose_refuses_writes_while_draining(running: Running) -> None:
    buf, servicer, _ = running
    await buf.send_audio(pcm(10))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: servicer.aclose(drain_timeout=1))
        await settle()
        with pytest.raises(BufferClosedError):
            await buf.send_audio(b"ab")
        servicer.on_buffer_request(req(960))


@pytest.mark.parametrize(
    ("bad", "error"),
    [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError), (None, TypeError)],
)
async def test_aclose_checks_drain_timeout(bad: object, error: type[Exception]) -> None:
    _, servicer, _ = make()
    with pytest.raises(error, match="drain_timeout"):
        await servicer.aclose(drain_timeout=bad)  # type: ignore[arg-type]
    assert not servicer.closed


def test_constructor_checks_its_arguments() -> None:
    buf = SendAudioBuffer(64)

    async def send_frame(_: bytes) -> None: ...

    with pytest.raises(TypeError, match="buffer"):
        PullServicer(64, send_frame=send_frame)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="send_frame"):
        PullServicer(buf, send_frame=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="send_interrupt"):
        PullServicer(buf, send_frame=send_frame, send_interrupt=3)  # type: ignore[arg-type]


async def test_counters_add_up(running: Running) -> None:
    buf, servicer, _ = running
    servicer.on_buffer_request(req(1000, 100))
    await buf.send_audio(pcm(1500))
    await settle()
    await servicer.clear()
    await buf.send_audio(pcm(300))
    c = servicer.counters()
    assert c.written_bytes == c.sent_bytes + c.discarded_bytes + c.dropped_bytes + buf.size
    assert (c.sent_bytes, c.frames_sent, c.discarded_bytes) == (1000, 1, 500)
    assert buf.size == 300


with_deadlines(globals())


# ── answered at once (a FrameWriter) ────────────────────────────────────────────────────


@pytest.fixture
async def at_once() -> AsyncIterator[Running]:
    buf, servicer, conn = make(16384, at_once=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(servicer.run)
        await settle()  # the task waits for requests
        yield buf, servicer, conn
        conn.hold = False
        conn.release()
        servicer.close()


async def test_a_request_with_audio_queued_is_answered_before_it_returns(at_once: Running) -> None:
    buf, servicer, conn = at_once
    await buf.send_audio(pcm(6000))
    await settle()
    servicer.on_buffer_request(req(4800, 960))
    # No schedule point since: the frame went out in this task, inside on_buffer_request.
    assert sizes(conn) == [4800] and conn.writes_now == 1
    assert servicer.heard_position == 4800 and servicer.sent_bytes == 4800
    assert len(servicer.fill_times) == 1
    servicer.on_buffer_request(req(4800, 960))  # 1200 held: above the floor, all of it
    assert sizes(conn) == [4800, 1200] and servicer.owed_bytes == 3600
    await buf.send_audio(pcm(3600, 1))
    await settle()  # the rest waited for audio: the task sends it
    assert sizes(conn) == [4800, 1200, 3600] and conn.writes_now == 2
    assert conn.payload == pcm(6000) + pcm(3600, 1)


async def test_too_little_audio_leaves_the_request_to_the_task(at_once: Running) -> None:
    buf, servicer, conn = at_once
    await buf.send_audio(pcm(500))
    servicer.on_buffer_request(req(4800, 960))
    assert conn.frames == [] and servicer.owed_bytes == 4800
    await buf.send_audio(pcm(500, 1))
    await settle()
    assert sizes(conn) == [1000] and conn.writes_now == 0


async def test_a_busy_socket_leaves_the_request_to_the_task(at_once: Running) -> None:
    buf, servicer, conn = at_once
    await buf.send_audio(pcm(1920))
    conn.hold = True  # as a socket with a write in progress: not ready
    servicer.on_buffer_request(req(960, 960))
    assert conn.frames == []
    await settle()
    assert conn.inflight is not None  # the task took it, and its write is held
    conn.hold = False
    conn.release()
    await settle()
    assert sizes(conn) == [960] and conn.writes_now == 0
    servicer.on_buffer_request(req(960, 960))
    assert sizes(conn) == [960, 960] and conn.writes_now == 1


async def test_nothing_goes_out_at_once_while_a_clear_holds_fresh_audio(at_once: Running) -> None:
    buf, servicer, conn = at_once
    conn.hold_interrupt = True
    await buf.send_audio(pcm(4800))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(servicer.clear)
        await settle()
        await buf.send_audio(pcm(960, 7))  # fresh audio, queued after the clear
        servicer.on_buffer_request(req(960, 960))
        await settle()
        assert conn.frames == []  # held until agent.interrupt is written
        conn.release_interrupt()
    await settle()
    assert conn.log == [INTERRUPT, b"\x00" + pcm(960, 7)]


async def test_a_socket_gone_under_the_write_closes_the_servicer(at_once: Running) -> None:
    buf, servicer, conn = at_once
    await buf.send_audio(pcm(960))
    conn.gone = True
    servicer.on_buffer_request(req(960, 960))
    assert servicer.closed and conn.frames == []
    assert servicer.counters().dropped_bytes == 960  # lost with the connection, counted
