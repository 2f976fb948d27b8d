"""serve_calls(max_calls=...): a slot reserved before each claim, notifications held at
capacity and claimed in order as slots free, over the in-memory transport."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

import telcoflow_trio as tf

from ._fake_server import FakeServer, fake_server


class Handler:
    """Answers each call and holds it until the test ends it with :meth:`end` or the call
    is over; a call listed in :attr:`fail` raises instead."""

    def __init__(self) -> None:
        self.served: list[str] = []
        self.live: set[str] = set()
        self.most_live = 0
        self.fail: set[str] = set()
        self._end: dict[str, trio.Event] = {}

    async def __call__(self, call: tf.Call) -> None:
        self.served.append(call.id)
        self.live.add(call.id)
        self.most_live = max(self.most_live, len(self.live))
        try:
            assert await call.answer()
            if call.id in self.fail:
                raise RuntimeError("the agent broke")
            async with trio.open_nursery() as nursery:  # until told, or the call is over
                nursery.start_soon(_first, nursery, call.wait_terminated)
                await _first(nursery, self._end.setdefault(call.id, trio.Event()).wait)
        finally:
            self.live.discard(call.id)

    def end(self, call_id: str) -> None:
        self._end.setdefault(call_id, trio.Event()).set()


async def _first(nursery: trio.Nursery, wait: Callable[[], Awaitable[object]]) -> None:
    await wait()
    nursery.cancel_scope.cancel()


def calls_for(fs: FakeServer, *numbers: int) -> None:
    """Session s-N gets call c-N as soon as it is claimed and ready."""
    for n in numbers:
        fs.calls_on_ready[f"s-{n}"] = f"c-{n}"


def claims(fs: FakeServer) -> list[str]:
    return [line.rsplit(" ", 1)[1] for line in fs.log if " session.open " in line]


async def notify_all(fs: FakeServer, *numbers: int) -> None:
    """One notification per session, in this order, as a burst."""
    await trio.lowlevel.checkpoint()
    for n in numbers:
        await fs.notify(f"s-{n}")


async def test_a_burst_claims_only_max_calls_and_the_rest_in_order_as_calls_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    async with fake_server() as fs, fs.manager() as sm, trio.open_nursery() as nursery:
        calls_for(fs, 1, 2, 3, 4)
        nursery.start_soon(lambda: sm.serve_calls(handler, max_calls=2))
        await notify_all(fs, 1, 2, 3, 4)
        await fs.wait_logged("voice c-2 call.answer")
        await trio.testing.wait_all_tasks_blocked()
        assert claims(fs) == ["s-1", "s-2"]
        stats = sm.claim_stats
        assert (stats.won, stats.active_calls, stats.held) == (2, 2, 2)
        handler.end("c-2")
        await fs.wait_logged("voice c-3 call.answer")
        # The slot came free only once c-2's session was closed on the server.
        assert fs.log.index("voice c-2 call.close") < fs.log.index("control#1 session.open s-3")
        handler.end("c-1")
        await fs.wait_logged("voice c-4 call.answer")
        assert claims(fs) == ["s-1", "s-2", "s-3", "s-4"]
        assert handler.most_live == 2
        assert (stats.won, stats.lost, stats.active_calls, stats.held) == (4, 0, 2, 0)
        handler.end("c-3")
        handler.end("c-4")
        await fs.wait_logged("voice c-4 call.close")
        await trio.testing.wait_all_tasks_blocked()
        assert stats.active_calls == 0
        nursery.cancel_scope.cancel()


async def test_a_lost_claim_frees_its_slot_at_once_and_is_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    async with fake_server() as fs, fs.manager() as sm, trio.open_nursery() as nursery:
        calls_for(fs, 1, 2, 3)
        fs.open_replies["s-1"].append("SESSION_BUSY")
        fs.open_replies["s-2"].append("SESSION_CLOSED")
        nursery.start_soon(lambda: sm.serve_calls(handler, max_calls=1))
        await notify_all(fs, 1, 2, 3)
        await fs.wait_logged("voice c-3 call.answer")
        assert claims(fs) == ["s-1", "s-2", "s-3"]
        assert (sm.claim_stats.won, sm.claim_stats.lost) == (1, 2)
        assert handler.served == ["c-3"]
        nursery.cancel_scope.cancel()


async def test_a_handler_error_or_a_lost_voice_socket_frees_the_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    handler.fail.add("c-1")
    async with fake_server() as fs, fs.manager() as sm, trio.open_nursery() as nursery:
        calls_for(fs, 1, 2, 3)
        nursery.start_soon(lambda: sm.serve_calls(handler, max_calls=1))
        await notify_all(fs, 1, 2, 3)
        await fs.wait_logged("voice c-2 call.answer")  # c-1's handler raised
        await fs.cut_voice("c-2")
        await fs.wait_logged("voice c-3 call.answer")
        assert handler.served == ["c-1", "c-2", "c-3"]
        assert handler.most_live == 1
        nursery.cancel_scope.cancel()


async def test_held_notifications_expire_unclaimed_and_are_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    async with fake_server() as fs, fs.manager() as sm, trio.open_nursery() as nursery:
        calls_for(fs, 1, 2, 3)
        nursery.start_soon(lambda: sm.serve_calls(handler, max_calls=1, max_held_age=5))
        await notify_all(fs, 1, 2)
        await fs.wait_logged("voice c-1 call.answer")
        await trio.sleep(4)
        await fs.notify("s-3")
        await trio.sleep(2)  # s-2 is 6 s old: expired by the loop's own deadline
        assert (sm.claim_stats.expired, sm.claim_stats.held) == (1, 1)
        handler.end("c-1")
        await fs.wait_logged("voice c-3 call.answer")
        assert claims(fs) == ["s-1", "s-3"]
        nursery.cancel_scope.cancel()


async def test_at_capacity_with_a_full_queue_notifications_are_skipped_and_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    async with fake_server() as fs, fs.manager() as sm, trio.open_nursery() as nursery:
        calls_for(fs, 1, 2, 3, 4)
        nursery.start_soon(lambda: sm.serve_calls(handler, max_calls=1, max_held=1))
        await notify_all(fs, 1, 2, 3, 4)
        await fs.wait_logged("voice c-1 call.answer")
        await trio.testing.wait_all_tasks_blocked()
        assert (sm.claim_stats.skipped_at_capacity, sm.claim_stats.held) == (2, 1)
        handler.end("c-1")
        await fs.wait_logged("voice c-2 call.answer")
        handler.end("c-2")
        await fs.wait_logged("voice c-2 call.close")
        await trio.testing.wait_all_tasks_blocked()
        assert claims(fs) == ["s-1", "s-2"]
        nursery.cancel_scope.cancel()


async def test_cancelling_serve_calls_claims_nothing_held_and_closes_the_live_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1, 2)
        with trio.move_on_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: sm.serve_calls(handler, max_calls=1))
                await notify_all(fs, 1, 2)
        await trio.testing.wait_all_tasks_blocked()
        assert "voice c-1 call.close" in fs.log
        assert claims(fs) == ["s-1"]
        assert (sm.claim_stats.active_calls, sm.claim_stats.held) == (0, 0)


async def test_without_max_calls_every_notification_is_claimed_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    async with fake_server() as fs, fs.manager() as sm, trio.open_nursery() as nursery:
        calls_for(fs, 1, 2, 3)
        nursery.start_soon(sm.serve_calls, handler)
        await notify_all(fs, 1, 2, 3)
        await fs.wait_logged("voice c-3 call.answer")
        await fs.wait_logged("voice c-1 call.answer")
        await fs.wait_logged("voice c-2 call.answer")
        assert handler.most_live == 3
        assert (sm.claim_stats.won, sm.claim_stats.active_calls) == (3, 3)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_calls": 0}, ValueError),
        ({"max_calls": "2"}, TypeError),
        ({"max_held": -1}, ValueError),
        ({"max_held_age": float("nan")}, ValueError),
    ],
)
async def test_bad_limits_are_refused_before_anything_is_claimed(
    kwargs: dict[str, object], error: type[Exception]
) -> None:
    async with fake_server() as fs, fs.manager() as sm:
        with pytest.raises(error, match=next(iter(kwargs))):
            await sm.serve_calls(Handler(), **kwargs)  # type: ignore[arg-type]
