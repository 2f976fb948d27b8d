"""CallServer's drain and close_calls against the sandbox over real WebSockets: a drain lets
a live call end and claims nothing more, its deadline closes a call with the queued audio
heard, close_calls and cancellation leave nothing live on the server, and each call's
outcome is reported."""

from __future__ import annotations

import logging

import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio.sandbox import CallerState, EndedBy, SimulatedCall
from telcoflow_trio.testing import Sandbox

# Two seconds of a recognisable pattern at the sandbox config's 16 kHz, 16-bit mono.
SPEECH = bytes(range(1, 201)) * 320


class Agent:
    """Answers each call, then does what its caller's number says: ``...1`` returns,
    ``...2`` raises, ``...3`` speaks :data:`SPEECH` when told and then ignores the call's
    end, anything else waits until the call is over."""

    def __init__(self) -> None:
        self.answered: dict[str, tf.Call] = {}
        self.changed = trio.Event()
        self.speak = trio.Event()
        self.spoken = trio.Event()

    async def __call__(self, call: tf.Call) -> None:
        assert await call.answer()
        self.answered[call.caller_number] = call
        self.changed.set()
        self.changed = trio.Event()
        last = call.caller_number[-1]
        if last == "1":
            return
        if last == "2":
            raise RuntimeError("the agent broke")
        if last == "3":
            await self.speak.wait()
            await call.send_audio(SPEECH)
            self.spoken.set()
            await trio.sleep_forever()
        await call.wait_terminated()

    async def wait_answered(self, count: int) -> None:
        while len(self.answered) < count:
            await self.changed.wait()


class Outcomes:
    """``on_call_end``: records each outcome (and the call's outgoing audio counters)."""

    def __init__(self) -> None:
        self.seen: dict[str, tf.CallOutcome] = {}
        self.counters: dict[str, tf.AudioCounters | None] = {}
        self._changed = trio.Event()

    def __call__(self, call: tf.Call, outcome: tf.CallOutcome) -> None:
        self.seen[call.caller_number] = outcome
        self.counters[call.caller_number] = call.audio_counters
        self._changed.set()
        self._changed = trio.Event()

    async def wait_count(self, count: int) -> None:
        while len(self.seen) < count:
            await self._changed.wait()


def nothing_live(sandbox: Sandbox) -> bool:
    calls_over = all(c.state is CallerState.ENDED for c in sandbox.calls.values())
    return calls_over and not any(s.is_open for s in sandbox.sessions.values())


class Watch(logging.Handler):
    """Hears ``telcoflow_trio._serving``'s log lines (attached with ``with Watch() as w:``)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self._changed = trio.Event()

    def __enter__(self) -> Watch:
        logging.getLogger("telcoflow_trio._serving").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("telcoflow_trio._serving").removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, message: str) -> None:
        while message not in self.messages:
            await self._changed.wait()


async def run_marking(server: tf.CallServer, returned: trio.Event) -> None:
    await server.run()
    returned.set()


async def test_a_drain_lets_the_live_call_end_and_claims_nothing_more(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "telcoflow_trio._serving")
    agent, outcomes = Agent(), Outcomes()
    returned = trio.Event()
    with trio.fail_after(30), Watch() as watch:  # a safety net for a hang
        async with (
            tf.SessionManager(sandbox.config()) as sm_a,
            tf.SessionManager(sandbox.config()) as sm_b,
            trio.open_nursery() as nursery,
        ):
            server = tf.CallServer(sm_a, agent, on_call_end=outcomes)
            nursery.start_soon(run_marking, server, returned)
            first = await sandbox.place_call(caller="+15550000004")
            await first.wait_answered()
            server.drain(60)
            # Another agent process, still serving: it takes the call placed after the drain.
            nursery.start_soon(sm_b.serve_calls, Agent())
            await sandbox.wait_control_connections(2)
            second = await sandbox.place_call(caller="+15550000005")
            await second.wait_answered()
            # The draining manager saw the notification too, and dropped it unclaimed.
            await watch.wait_for(f"draining: session {second.session_id} not claimed")
            assert sandbox.sessions[second.session_id].bound_sm_ws_id == sm_b.sm_ws_id
            assert (sm_a.claim_stats.won, sm_a.claim_stats.lost) == (1, 0)
            assert not returned.is_set()
            assert [c.id for c in server.calls] == [first.call_id]
            assert first.state is CallerState.LIVE

            await first.hang_up()  # the natural end: run() returns with it
            await returned.wait()
            assert server.calls == ()
            assert outcomes.seen == {"+15550000004": "hung_up"}
            await second.hang_up()
            nursery.cancel_scope.cancel()
    assert first.ended_by is EndedBy.CALLER_HANGUP


@pytest.mark.parametrize("signal", ["drain deadline", "close_calls"])
async def test_the_drain_deadline_closes_a_call_with_its_queued_audio_heard(
    sandbox: Sandbox, signal: str
) -> None:
    agent, outcomes = Agent(), Outcomes()
    with trio.fail_after(30):  # a safety net for a hang, not a timing assertion
        async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
            server = tf.CallServer(sm, agent, on_call_end=outcomes, close_drain_timeout=5)
            returned = trio.Event()
            nursery.start_soon(run_marking, server, returned)
            caller = await sandbox.place_call(caller="+15550000003")
            await agent.wait_answered(1)
            # The media server pauses: the speech is still queued when the signal comes.
            caller.stall_pulls(10)  # simulated seconds: 1 s here
            agent.speak.set()
            await agent.spoken.wait()
            if signal == "drain deadline":
                server.drain(0.2)
            else:
                server.close_calls()
            await returned.wait()
    assert caller.ended_by is EndedBy.AGENT_CLOSE
    assert outcomes.seen == {"+15550000003": "closed"}
    counters = outcomes.counters["+15550000003"]
    assert counters is not None
    if signal == "drain deadline":
        # Closed only once the speech was pulled: the caller heard every word.
        assert caller.heard.endswith(SPEECH)
        assert counters.dropped_bytes == 0
    else:  # at once: most of the speech never left the buffer
        assert len(caller.heard) < len(SPEECH)
        assert counters.dropped_bytes > len(SPEECH) // 2


async def test_close_calls_ends_every_live_call_at_once_leaving_nothing_live(
    sandbox: Sandbox,
) -> None:
    agent = Agent()
    with trio.fail_after(30):  # a safety net for a hang, not a timing assertion
        async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
            server = tf.CallServer(sm, agent)
            returned = trio.Event()
            nursery.start_soon(run_marking, server, returned)
            callers = [await sandbox.place_call(caller=f"+1555000000{n}") for n in (4, 6)]
            await agent.wait_answered(2)
            server.drain(600)
            server.close_calls()
            await returned.wait()
            # Closed on the server by the time run() returned, with the manager still up.
            assert all(c.ended_by is EndedBy.AGENT_CLOSE for c in callers)
            for caller in callers:
                await sandbox.sessions[caller.session_id].closed.wait()
            assert nothing_live(sandbox)
            assert sm.claim_stats.active_calls == 0


async def test_each_outcome_is_reported_and_a_raising_on_call_end_is_only_logged(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    agent, outcomes = Agent(), Outcomes()

    def on_call_end(call: tf.Call, outcome: tf.CallOutcome) -> None:
        outcomes(call, outcome)
        if outcome == "failed":
            raise ValueError("the metrics broke too")

    with trio.fail_after(30):  # a safety net for a hang, not a timing assertion
        async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
            server = tf.CallServer(sm, agent, on_call_end=on_call_end)
            nursery.start_soon(server.run)
            by_number: dict[str, SimulatedCall] = {}
            for n in (1, 2, 3, 4):
                caller = await sandbox.place_call(caller=f"+1555000000{n}")
                by_number[caller.caller] = caller
            await agent.wait_answered(4)
            await by_number["+15550000004"].hang_up()
            await outcomes.wait_count(3)
            server.close_calls()  # the third is still live: closed
    assert outcomes.seen == {
        "+15550000001": "completed",
        "+15550000002": "failed",
        "+15550000003": "closed",
        "+15550000004": "hung_up",
    }
    assert nothing_live(sandbox)
    raised = [r for r in caplog.records if "on_call_end raised" in r.getMessage()]
    assert [r.levelno for r in raised] == [logging.ERROR]


async def test_cancelling_during_a_drain_closes_every_call_on_the_server(
    sandbox: Sandbox,
) -> None:
    agent = Agent()
    with trio.fail_after(30):  # a safety net for a hang, not a timing assertion
        async with tf.SessionManager(sandbox.config()) as sm:
            server = tf.CallServer(sm, agent)
            with trio.CancelScope() as cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(server.run)
                    callers = [await sandbox.place_call(caller=f"+1555000000{n}") for n in (4, 5)]
                    await agent.wait_answered(2)
                    server.drain(600)
                    await trio.sleep(0.1)
                    cancel.cancel()
            assert cancel.cancelled_caught
            assert all(c.state is CallerState.ENDED for c in callers)
            for caller in callers:
                await sandbox.sessions[caller.session_id].closed.wait()
            assert nothing_live(sandbox)
