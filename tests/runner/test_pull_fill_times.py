"""The pull servicer's fill times (``call.pull_fill_times``, the ``telcoflow_pull_fill_seconds``
histogram): which requests are timed, from when to when, and that the record stays bounded.
Time is a fake clock patched into the servicer's module, so each sample is exact."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from telcoflow_trio.audio import PullServicer, SendAudioBuffer
from telcoflow_trio.audio import _servicer as servicer_module
from tests.audio._support import FakeConnection, make, pcm, req, with_deadlines

settle = trio.testing.wait_all_tasks_blocked


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


Running = tuple[SendAudioBuffer, PullServicer, FakeConnection, FakeTime]


@pytest.fixture
async def running(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    clock = FakeTime()
    monkeypatch.setattr(servicer_module, "time", clock)
    buf, servicer, conn = make(65536)
    async with trio.open_nursery() as nursery:
        await nursery.start(servicer.run)
        yield buf, servicer, conn, clock
        conn.hold = False
        conn.release()
        servicer.close()


async def test_timed_from_the_request_to_the_write_of_its_frame(running: Running) -> None:
    buf, servicer, conn, clock = running
    conn.hold = True
    await buf.send_audio(pcm(960))
    servicer.on_buffer_request(req(960, 960))
    await settle()
    assert conn.inflight is not None
    assert list(servicer.fill_times) == []  # not yet handed to the socket
    clock.now += 0.25
    conn.release()
    await settle()
    assert list(servicer.fill_times) == [0.25]


async def test_a_request_that_finds_the_buffer_empty_is_an_underrun_not_a_sample(
    running: Running,
) -> None:
    buf, servicer, conn, clock = running
    servicer.on_buffer_request(req(960, 960))
    clock.now += 5.0  # the agent is silent meanwhile
    await buf.send_audio(pcm(960))
    await settle()
    assert len(conn.frames) == 1
    assert list(servicer.fill_times) == []
    assert servicer.counters().underruns == 1


async def test_a_request_paid_in_two_frames_is_timed_at_the_second(running: Running) -> None:
    buf, servicer, conn, clock = running
    await buf.send_audio(pcm(960))
    servicer.on_buffer_request(req(1920, 960))
    await settle()
    assert len(conn.frames) == 1
    assert list(servicer.fill_times) == []
    clock.now += 0.5
    await buf.send_audio(pcm(960, 1))
    await settle()
    assert len(conn.frames) == 2
    assert list(servicer.fill_times) == [0.5]


async def test_each_request_its_own_sample_in_order(running: Running) -> None:
    buf, servicer, conn, clock = running
    await buf.send_audio(pcm(960 * 3))
    conn.hold = True
    for i in range(3):
        servicer.on_buffer_request(req(960, 960))
        clock.now += 0.1 * (i + 1)  # arrivals at +0.1, +0.3 before each next one
    # Arrivals at 100.0, 100.1, 100.3; the frames go at 100.6, 100.7, 100.8.
    clock.now = 100.6
    for expected in (1, 2, 3):
        await settle()
        conn.release()
        await settle()
        assert len(conn.frames) == expected
        clock.now += 0.1
    assert [round(t, 6) for t in servicer.fill_times] == [0.6, 0.6, 0.5]


async def test_the_record_keeps_the_latest_samples_only(running: Running) -> None:
    buf, servicer, conn, clock = running
    conn.hold = True
    n = servicer_module.FILL_SAMPLES + 10
    for i in range(n):
        await buf.send_audio(pcm(10))
        servicer.on_buffer_request(req(10, 10))
        await settle()
        clock.now += i  # request i takes i seconds
        conn.release()
    await settle()
    assert len(conn.frames) == n
    assert list(servicer.fill_times) == [float(i) for i in range(10, n)]


async def test_pending_requests_are_dropped_at_close(running: Running) -> None:
    buf, servicer, conn, _ = running
    conn.hold = True
    await buf.send_audio(pcm(960))
    servicer.on_buffer_request(req(960, 960))
    await settle()
    servicer.close()
    conn.release()
    await settle()
    assert list(servicer.fill_times) == []


with_deadlines(globals())
