"""CallServer over the in-memory transport (virtual time): drain, close_calls, each call's
outcome, and the signals' edge cases (before run, after run, twice)."""

from __future__ import annotations

import logging
import math

import pytest
import trio
import trio.testing

import telcoflow_trio as tf

from ._fake_server import FakeServer, fake_server


class Handler:
    """Answers each call, then: raises for a call in :attr:`fail`; returns once told with
    :meth:`end`; otherwise waits until the call is over (or, for a call in :attr:`deaf`,
    for ever: a handler that does not notice the caller hanging up)."""

    def __init__(self) -> None:
        self.served: list[str] = []
        self.fail: set[str] = set()
        self.deaf: set[str] = set()
        self.answered: set[str] = set()
        self._changed = trio.Event()
        self._end: dict[str, trio.Event] = {}

    async def __call__(self, call: tf.Call) -> None:
        self.served.append(call.id)
        assert await call.answer()
        self.answered.add(call.id)
        self._changed.set()
        self._changed = trio.Event()
        if call.id in self.fail:
            raise RuntimeError("the agent broke")
        ended = self._end.setdefault(call.id, trio.Event())
        async with trio.open_nursery() as nursery:

            async def first(wait: trio.Event | tf.Call) -> None:
                await (wait.wait() if isinstance(wait, trio.Event) else wait.wait_terminated())
                nursery.cancel_scope.cancel()

            nursery.start_soon(first, ended)
            if call.id not in self.deaf:
                nursery.start_soon(first, call)

    def end(self, call_id: str) -> None:
        self._end.setdefault(call_id, trio.Event()).set()

    async def wait_answered(self, *call_ids: str) -> None:
        """Until ``answer()`` has returned for these calls (the server saw it earlier)."""
        while not self.answered.issuperset(call_ids):
            await self._changed.wait()


class Outcomes:
    """An ``on_call_end`` that records what it heard, and whether the call was over."""

    def __init__(self) -> None:
        self.seen: dict[str, tf.CallOutcome] = {}
        self.over_when_told: list[bool] = []
        self._changed = trio.Event()

    def __call__(self, call: tf.Call, outcome: tf.CallOutcome) -> None:
        self.seen[call.id] = outcome
        self.over_when_told.append(call.state is tf.CallState.TERMINATED)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_count(self, count: int) -> None:
        with trio.fail_after(600):  # a safety net for a hang (virtual seconds)
            while len(self.seen) < count:
                await self._changed.wait()


def calls_for(fs: FakeServer, *numbers: int) -> None:
    for n in numbers:
        fs.calls_on_ready[f"s-{n}"] = f"c-{n}"


def claims(fs: FakeServer) -> list[str]:
    return [line.rsplit(" ", 1)[1] for line in fs.log if " session.open " in line]


async def test_drain_stops_claiming_lets_the_live_call_end_and_run_returns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler, outcomes = Handler(), Outcomes()
    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1, 2)
        server = tf.CallServer(sm, handler, on_call_end=outcomes)
        returned = trio.Event()
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                await server.run()
                returned.set()

            nursery.start_soon(run)
            await fs.notify("s-1")
            await fs.wait_logged("voice c-1 call.answer")
            assert server.calls[0].id == "c-1"
            server.drain(60)
            assert server.draining
            await fs.notify("s-2")  # after the drain: read and dropped, never claimed
            await trio.sleep(30)
            assert not returned.is_set()
            assert [c.id for c in server.calls] == ["c-1"]
            handler.end("c-1")
        assert returned.is_set()
        assert trio.current_time() < 60  # it ended with its call, not at the deadline
        assert claims(fs) == ["s-1"]
        assert "voice c-1 call.close" in fs.log
        assert outcomes.seen == {"c-1": "completed"}
        assert outcomes.over_when_told == [True]
        assert server.calls == ()


async def test_at_the_drain_deadline_a_live_call_is_closed_and_run_returns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler, outcomes = Handler(), Outcomes()
    handler.deaf.add("c-1")
    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1)
        server = tf.CallServer(sm, handler, on_call_end=outcomes, close_drain_timeout=2)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.run)
            await fs.notify("s-1")
            await fs.wait_logged("voice c-1 call.answer")
            start = trio.current_time()
            server.drain(10)
            await fs.wait_logged("voice c-1 call.close")
            assert trio.current_time() - start >= 10
        assert outcomes.seen == {"c-1": "closed"}
        assert server.calls == ()
        assert sm.claim_stats.active_calls == 0


async def test_a_later_drain_brings_the_deadline_closer_never_further(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    handler.deaf.add("c-1")
    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1)
        server = tf.CallServer(sm, handler, close_drain_timeout=0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.run)
            await fs.notify("s-1")
            await fs.wait_logged("voice c-1 call.answer")
            start = trio.current_time()
            server.drain(None)
            await trio.sleep(100)
            server.drain(20)
            server.drain(1000)
        assert 120 <= trio.current_time() - start < 130


async def test_held_notifications_are_let_go_at_drain_and_never_claimed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1, 2, 3)
        server = tf.CallServer(sm, handler, max_calls=1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.run)
            for n in (1, 2, 3):
                await fs.notify(f"s-{n}")
            await fs.wait_logged("voice c-1 call.answer")
            await trio.testing.wait_all_tasks_blocked()
            assert sm.claim_stats.held == 2
            server.drain()
            assert sm.claim_stats.held == 0
            handler.end("c-1")  # its slot frees: nothing held is claimed with it
        assert claims(fs) == ["s-1"]
        assert handler.served == ["c-1"]


async def test_close_calls_ends_every_live_call_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler, outcomes = Handler(), Outcomes()
    handler.deaf.update({"c-1", "c-2"})
    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1, 2)
        server = tf.CallServer(sm, handler, on_call_end=outcomes)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.run)
            await fs.notify("s-1")
            await fs.notify("s-2")
            await handler.wait_answered("c-1", "c-2")
            assert {c.id for c in server.calls} == {"c-1", "c-2"}
            start = trio.current_time()
            server.drain(600)
            server.close_calls()
            server.close_calls()  # idempotent
        assert trio.current_time() - start < 1
        assert {"voice c-1 call.close", "voice c-2 call.close"} <= set(fs.log)
        assert outcomes.seen == {"c-1": "closed", "c-2": "closed"}
        assert server.draining


async def test_close_calls_cuts_the_audio_drain_of_the_deadline_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    handler.deaf.add("c-1")

    async def speaker(call: tf.Call) -> None:
        await call.send_audio(b"\0" * 3200)  # never pulled: the fake server asks for none
        await handler(call)

    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1)
        server = tf.CallServer(sm, speaker, close_drain_timeout=50)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.run)
            await fs.notify("s-1")
            await fs.wait_logged("voice c-1 call.answer")
            server.drain(1)
            await trio.sleep(5)  # past the deadline, waiting for the audio to be pulled
            assert "voice c-1 call.close" not in fs.log
            server.close_calls()
        assert "voice c-1 call.close" in fs.log
        assert trio.current_time() < 20


@pytest.mark.parametrize("when", ["before run", "after run"])
async def test_the_signals_before_run_or_after_it_ended_are_harmless(
    when: str, autojump_clock: trio.testing.MockClock
) -> None:
    handler = Handler()
    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1)
        server = tf.CallServer(sm, handler)
        if when == "before run":
            server.drain(5)
            server.close_calls()
            await server.run()  # serves nothing, returns at once
        else:
            with trio.move_on_after(1):
                await server.run()
            server.drain(5)
            server.close_calls()
            server.drain()
        await fs.notify("s-1")
        await trio.testing.wait_all_tasks_blocked()
        assert claims(fs) == []
        assert "CallServer" in repr(server)
        with pytest.raises(RuntimeError, match="only once"):
            await server.run()


async def test_each_outcome_is_reported_once_after_the_call_is_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler, outcomes = Handler(), Outcomes()
    handler.fail.add("c-2")
    handler.deaf.add("c-4")
    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1, 2, 3, 4)
        server = tf.CallServer(sm, handler, on_call_end=outcomes)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.run)
            for n in (1, 2, 3, 4):
                await fs.notify(f"s-{n}")
            await handler.wait_answered("c-1", "c-3", "c-4")
            await fs.wait_logged("voice c-2 call.close")
            handler.end("c-1")  # completed
            await fs.voice_event("c-3", "call.terminated")  # the caller hung up
            await outcomes.wait_count(3)
            nursery.cancel_scope.cancel()  # c-4 is live: closed by the cancellation
        assert outcomes.seen == {
            "c-1": "completed",
            "c-2": "failed",
            "c-3": "hung_up",
            "c-4": "closed",
        }
        assert outcomes.over_when_told == [True] * 4
        assert "voice c-4 call.close" in fs.log


async def test_a_raising_on_call_end_is_logged_and_serving_goes_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    handler = Handler()

    def on_call_end(call: tf.Call, outcome: tf.CallOutcome) -> None:
        raise ValueError(f"metrics broke on {call.id}")

    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1, 2)
        server = tf.CallServer(sm, handler, on_call_end=on_call_end)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.run)
            await fs.notify("s-1")
            await fs.wait_logged("voice c-1 call.answer")
            handler.end("c-1")
            await fs.wait_logged("voice c-1 call.close")
            await fs.notify("s-2")  # still serving
            await fs.wait_logged("voice c-2 call.answer")
            server.drain()
            handler.end("c-2")
    raised = [r for r in caplog.records if "on_call_end raised" in r.getMessage()]
    assert len(raised) == 2
    assert raised[0].levelno == logging.ERROR
    assert raised[0].exc_info is not None


async def test_cancelling_during_drain_closes_every_call_and_comes_out_as_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler, outcomes = Handler(), Outcomes()
    handler.deaf.add("c-1")
    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1)
        server = tf.CallServer(sm, handler, on_call_end=outcomes)
        with trio.CancelScope() as cancel:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server.run)
                await fs.notify("s-1")
                await fs.wait_logged("voice c-1 call.answer")
                server.drain(600)
                await trio.sleep(5)
                cancel.cancel()
        assert cancel.cancelled_caught
        assert "voice c-1 call.close" in fs.log
        assert outcomes.seen == {"c-1": "closed"}
        assert sm.claim_stats.active_calls == 0


async def test_calls_are_listed_in_claim_order(autojump_clock: trio.testing.MockClock) -> None:
    handler = Handler()
    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1, 2, 3)
        server = tf.CallServer(sm, handler)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.run)
            for n in (3, 1, 2):
                await fs.notify(f"s-{n}")
            for n in (1, 2, 3):
                await fs.wait_logged(f"voice c-{n} call.answer")
            assert [c.id for c in server.calls] == ["c-3", "c-1", "c-2"]
            assert server.claim_stats is sm.claim_stats
            handler.end("c-1")
            await fs.wait_logged("voice c-1 call.close")
            await trio.testing.wait_all_tasks_blocked()
            assert [c.id for c in server.calls] == ["c-3", "c-2"]
            server.close_calls()


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"close_drain_timeout": -1}, ValueError, "close_drain_timeout"),
        ({"close_drain_timeout": math.inf}, ValueError, "close_drain_timeout"),
        ({"on_call_end": "log"}, TypeError, "on_call_end"),
        ({"admit": 0.8}, TypeError, "admit"),
        ({"max_calls": 0}, ValueError, "max_calls"),
    ],
)
async def test_bad_arguments_are_refused_by_name(
    kwargs: dict[str, object], error: type[Exception], name: str
) -> None:
    async with fake_server() as fs, fs.manager() as sm:
        with pytest.raises(error, match=name):
            tf.CallServer(sm, Handler(), **kwargs)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="handler"):
            tf.CallServer(sm, None)  # type: ignore[arg-type]
        server = tf.CallServer(sm, Handler())
        with pytest.raises(ValueError, match="timeout"):
            server.drain(-1)
        with pytest.raises(TypeError, match="timeout"):
            server.drain("soon")  # type: ignore[arg-type]
        assert not server.draining
    with pytest.raises(TypeError, match="manager must be a SessionManager"):
        tf.CallServer(object(), Handler())  # type: ignore[arg-type]


async def test_while_admit_says_no_notifications_are_held_and_claimed_in_order_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    loaded = True
    asked: list[float] = []

    def admit() -> bool:
        asked.append(trio.current_time())
        return not loaded

    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1, 2, 3)
        server = tf.CallServer(sm, handler, admit=admit)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.run)
            for n in (2, 1):
                await fs.notify(f"s-{n}")
            await trio.sleep(10)
            assert claims(fs) == []
            assert sm.claim_stats.held == 2
            assert len(asked) >= 10  # asked again while some are held
            loaded = False
            await fs.wait_logged("voice c-1 call.answer")
            await fs.wait_logged("voice c-2 call.answer")
            assert sorted(claims(fs)) == ["s-1", "s-2"]  # both at once, in one step
            assert [c.id for c in server.calls] == ["c-2", "c-1"]  # in arrival order
            assert sm.claim_stats.held == 0
            loaded = True
            await fs.notify("s-3")
            handler.end("c-2")  # a call ends: asked again, still no
            await fs.wait_logged("voice c-2 call.close")
            await trio.sleep(5)
            assert len(claims(fs)) == 2
            server.close_calls()
        assert sm.claim_stats.held == 0


async def test_an_admit_that_raises_is_logged_and_claims_go_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    def admit() -> bool:
        raise OSError("no cgroup here")

    async with fake_server() as fs, fs.manager() as sm:
        calls_for(fs, 1)
        server = tf.CallServer(sm, Handler(), admit=admit)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.run)
            await fs.notify("s-1")
            await fs.wait_logged("voice c-1 call.answer")
            server.close_calls()
    assert any("admit() raised" in r.getMessage() for r in caplog.records)
