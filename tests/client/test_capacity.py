"""serve_calls(max_calls=1) in two agent processes' managers, against the sandbox over real
WebSockets: the claim race spreads calls by capacity, and a held call goes to whichever
manager frees a slot first."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import trio
import trio.testing

import telcoflow_trio as tf
from telcoflow_trio.sandbox import CallerState
from telcoflow_trio.testing import Sandbox


class Agent:
    """One manager's handler: answers, holds the call until the caller hangs up, and
    records how many of its calls were live at once."""

    def __init__(self, name: str, changed: trio.Condition) -> None:
        self.name = name
        self.live: set[str] = set()
        self.served: list[str] = []
        self.most_live = 0
        self._changed = changed

    async def __call__(self, call: tf.Call) -> None:
        self.live.add(call.id)
        self.served.append(call.id)
        self.most_live = max(self.most_live, len(self.live))
        try:
            assert await call.answer()
            async with self._changed:
                self._changed.notify_all()
            await call.wait_terminated()
        finally:
            self.live.discard(call.id)
            async with self._changed:
                self._changed.notify_all()


async def test_two_managers_with_one_slot_each_serve_three_calls_two_at_a_time(
    sandbox: Sandbox,
) -> None:
    changed = trio.Condition()
    agents = [Agent("a", changed), Agent("b", changed)]

    async def until(predicate: Callable[[], bool]) -> None:
        async with changed:
            while not predicate():
                await changed.wait()

    with trio.fail_after(60):  # a safety net for a hang, not a timing assertion
        async with (
            tf.SessionManager(sandbox.config()) as sm_a,
            tf.SessionManager(sandbox.config()) as sm_b,
            trio.open_nursery() as nursery,
        ):
            for sm, agent in zip((sm_a, sm_b), agents, strict=True):
                nursery.start_soon(partial(sm.serve_calls, agent, max_calls=1))
            await sandbox.wait_control_connections(2)
            calls = [await sandbox.place_call(caller=f"+1555000000{i}") for i in range(3)]
            by_id = {call.call_id: call for call in calls}

            await until(lambda: sum(len(a.served) for a in agents) == 2)
            await trio.testing.wait_all_tasks_blocked()
            # One live call each; the third waits, held by both managers, claimed by neither.
            assert [len(a.live) for a in agents] == [1, 1]
            offered = [c for c in calls if c.state is CallerState.OFFERED]
            assert len(offered) == 1, [c.state for c in calls]
            waiting = offered[0]
            # The winner of the first claim still holds the second call too (taken by the
            # other manager meanwhile: its claim will lose, and be skipped).
            assert sorted(sm.claim_stats.held for sm in (sm_a, sm_b)) == [1, 2]

            # Agent b's caller hangs up first: b frees its slot and claims the third call.
            first_freed = agents[1]
            await by_id[next(iter(first_freed.live))].hang_up()
            await until(lambda: waiting.call_id in first_freed.served)
            await by_id[waiting.call_id].wait_answered()
            assert waiting.call_id not in agents[0].served

            for call in calls:
                await call.hang_up()
            await until(lambda: not any(a.live for a in agents))
            # Agent a's held copy of the third call was claimed too late: a lost claim, or
            # (if a's slot freed before the hang-ups reached it) one it never made.
            stats = [sm_a.claim_stats, sm_b.claim_stats]
            assert sum(s.won for s in stats) == 3
            for call in calls:
                await sandbox.sessions[call.session_id].closed.wait()
            assert sorted(id for a in agents for id in a.served) == sorted(by_id)
            assert [a.most_live for a in agents] == [1, 1]
            nursery.cancel_scope.cancel()
    assert [s.active_calls for s in stats] == [0, 0]
    assert all(call.state is CallerState.ENDED for call in calls)
