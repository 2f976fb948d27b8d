"""Fuzz the SDK's call and session lifecycle against the sandbox, and count what goes wrong.

Each round is a fresh sandbox and several agent processes in miniature (a
``SessionManager`` each, running ``serve_calls``, or every third one claiming sessions
itself and abandoning some claims half way) in one ``trio.run`` on a
``trio.testing.MockClock`` that jumps ahead whenever every task waits, over real sockets
on 127.0.0.1. Calls arrive at random; handlers echo, interrupt themselves, ring a human,
or give up half way; meanwhile voice sockets are cut, control sockets are cut, voice
upgrades are refused, the server answers late, and whole agents are stopped and
restarted. At the end of the round
the agents are stopped while some calls are still up.

Counted (every count should be 0):

- ``hangs``: a round that did not end (in real time), or an agent that did not stop
  within its deadline once cancelled.
- ``leaked_tasks``: SDK tasks still running once every agent had stopped.
- ``undocumented_exceptions``: anything an SDK call or an agent's scope raised that is
  not a ``WSSError`` (``BufferClosedError``, ``BufferFullError`` included) or a
  cancellation, exception groups included.
- ``lost_audio`` / ``stale_audio``: what a caller heard is not what the agent sent; for
  an echo, not a prefix of what the caller said (all of it, for an undisturbed call);
  after an interruption, audio queued before it, or not the audio queued after it.
- ``calls_left_live`` / ``sessions_left_bound``: after the agents stopped, a call an agent
  received still up, or a session still bound to a connection.
- ``unserved_calls``: a caller who gave up ringing (never answered, never told) although
  agents were running all along.
- ``calls_served_twice``: a second handler run answered a call whose voice socket was
  never cut (no agent here crashes, so no such call needs a failover: a clean stop closes its
  calls, a control blip leaves them with their holder).

Run ``python bench/lifecycle_fuzz.py --quick`` for a smoke run; the last line printed
is a JSON summary; the exit code is 1 if any count is not 0.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import trio
import trio.testing

import telcoflow_trio as tf
from telcoflow_trio.protocol import Backoff
from telcoflow_trio.sandbox import (
    CallerState,
    EndedBy,
    Sandbox,
    SimulatedCall,
    TestSignal,
    open_sandbox,
)

COUNTS: Final = (
    "hangs",
    "leaked_tasks",
    "undocumented_exceptions",
    "lost_audio",
    "stale_audio",
    "calls_left_live",
    "sessions_left_bound",
    "unserved_calls",
    "calls_served_twice",
)
RATE: Final = 8000
"""Sample rate of every call: the lowest, as the bytes carry no more information here."""
HANDLERS: Final = ("echo", "echo", "echo", "interrupt", "connect", "give_up")
ROUND_SECONDS: Final = 14.0
"""Simulated seconds of a round before its agents are stopped."""
STOP_DEADLINE: Final = 40.0
"""Simulated seconds an agent may take to stop once cancelled (close deadlines are 15 s)."""
SETTLE_SECONDS: Final = 5.0
QUIET_BEFORE_CHECK: Final = 1.5
"""An undisturbed echo is compared in full only if the caller stayed this long after
speaking (the last echoed bytes are pulled at real-time pace)."""
DOCUMENTED: Final = (tf.WSSError, trio.Cancelled)
LEAVE_SECONDS: Final = 8.0
"""Real seconds a judged round may take to close its sandbox and end its trio run."""


# ── bookkeeping ─────────────────────────────────────────────────────────────────────────


@dataclass
class Counts:
    """Problems found, and a few examples of each kind for the report."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    calls: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    checked: Counter[str] = field(default_factory=Counter)
    """How many calls' audio was compared, and how (``full`` or ``prefix``)."""
    endings: Counter[str] = field(default_factory=Counter)
    """How the calls ended on the server (``ended_by``, or the state of those not ended)."""
    judged: threading.Event = field(default_factory=threading.Event)
    """Set (from the round's thread) once the round has been judged."""

    def add(self, kind: str, example: str, n: int = 1) -> None:
        self.counts[kind] += n
        kept = self.examples.setdefault(kind, [])
        if len(kept) < 5:
            kept.append(example)

    def merge(self, other: Counts) -> None:
        self.counts.update(other.counts)
        self.faults.update(other.faults)
        self.checked.update(other.checked)
        self.endings.update(other.endings)
        self.calls += other.calls
        for kind, found in other.examples.items():
            for example in found:
                kept = self.examples.setdefault(kind, [])
                if len(kept) < 5:
                    kept.append(example)


def documented(exc: BaseException) -> bool:
    """Whether ``exc`` is something the SDK documents (groups never are, unless they
    hold nothing but cancellations, which is how trio ends a nursery cancelled from
    outside)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(isinstance(e, trio.Cancelled) for e in _leaves(exc))
    return isinstance(exc, DOCUMENTED)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def sdk_task_names() -> list[str]:
    found: list[str] = []
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        if task.name.startswith("telcoflow_trio.") and ".testing." not in task.name:
            found.append(task.name)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


@dataclass
class CallPlan:
    """What the round does with one call, and what the agent side recorded of it."""

    index: int
    speech_seconds: float
    placed_at: float
    hang_up_at: float
    sim: SimulatedCall | None = None
    voice_cut: bool = False
    handler: str | None = None
    expected: bytes | None = None
    """For an interrupted call: exactly what the caller must end up hearing."""
    played_out_at: float | None = None
    speech_done_at: float | None = None
    echo_from: float | None = None
    """When the handler began echoing (a connect flow rings and whispers first)."""
    answered_by: list[str] = field(default_factory=list)
    """The agent of each handler run that answered this call, in order."""


# ── the agents ──────────────────────────────────────────────────────────────────────────


class Agent:
    """One agent process in miniature: a manager serving calls, stopped and restarted at
    random by the round. Everything it catches is judged by :func:`documented`."""

    def __init__(self, name: str, round_: Round, *, manual: bool = False) -> None:
        self.name = name
        self.round = round_
        self.manual = manual
        """Claims sessions itself (``open_session``), some claims cut short at random,
        instead of running ``serve_calls``."""
        self.cancel_next_life_after: float | None = None
        """Cancel the next life this many seconds after it starts: while the manager is
        still entering (the sandbox delays setup.done at times), or soon after."""
        self.scope: trio.CancelScope | None = None
        self.sm: tf.SessionManager | None = None
        self.up = trio.Event()
        self.stopped = trio.Event()
        self.retired = trio.Event()
        """Set when the round is over: stop, and do not come back."""

    async def run_forever(self) -> None:
        try:
            while not self.retired.is_set():
                await self._run_once()
                self.stopped.set()
                if self.retired.is_set():
                    break
                await trio.sleep(self.round.rng.uniform(0.1, 1.0))
                if self.retired.is_set():
                    break
                # New events only between two lives: waiters hold the ones they saw.
                self.up = trio.Event()
                self.stopped = trio.Event()
        finally:
            self.stopped.set()

    async def _run_once(self) -> None:
        config = self.round.sandbox.config(sample_rate=RATE)
        backoff = Backoff(first=0.05, maximum=0.5, rng=random.Random(self.round.rng.random()))
        with trio.CancelScope() as self.scope:
            if self.cancel_next_life_after is not None:
                self.scope.deadline = trio.current_time() + self.cancel_next_life_after
                self.cancel_next_life_after = None
            if self.retired.is_set():
                # Retired between two lives: stop() cancelled the previous scope.
                self.scope.cancel()
            try:
                async with tf.SessionManager(config, backoff=backoff) as sm:
                    self.sm = sm
                    self.up.set()
                    if self.manual:
                        await self._claim_by_hand(sm)
                    else:
                        await sm.serve_calls(self._handle)
            except BaseException as exc:
                if not documented(exc):
                    self.round.counts.add(
                        "undocumented_exceptions",
                        f"agent {self.name}: the manager's scope raised {exc!r}",
                    )
                if not isinstance(exc, Exception):
                    raise
        self.sm = None

    def stop(self) -> None:
        if self.scope is not None:
            self.scope.cancel()

    async def _claim_by_hand(self, sm: tf.SessionManager) -> None:
        async with trio.open_nursery() as nursery:
            async for note in sm.session_notifications:
                if note.channel == tf.ChannelType.TELCO:
                    nursery.start_soon(self._claim, sm, note.session_id)

    async def _claim(self, sm: tf.SessionManager, session_id: str) -> None:
        rng = self.round.rng
        # A third of the claims are abandoned within 0.3 s: often while session.open is
        # in flight (the sandbox delays its answers at times), or before call.in.
        patience = rng.uniform(0.0, 0.3) if rng.random() < 0.33 else float("inf")
        with trio.move_on_after(patience):
            try:
                async with sm.open_session(session_id) as session:
                    call = await session.incoming_call()
                    await self._handle(call)
            except tf.WSSSessionBusy:
                pass
            except Exception as exc:
                if not documented(exc):
                    self.round.counts.add(
                        "undocumented_exceptions",
                        f"agent {self.name}: claiming {session_id} raised {exc!r}",
                    )

    async def _handle(self, call: tf.Call) -> None:
        plan = self.round.plan_for(call.id)
        kind = HANDLERS[zlib.crc32(call.id.encode()) % len(HANDLERS)]
        if plan is not None:
            plan.handler = plan.handler or kind
        try:
            await HANDLER_FLOWS[kind](Turn(self.round, plan, self.name), call)
        except BaseException as exc:
            if not documented(exc):
                self.round.counts.add(
                    "undocumented_exceptions", f"{kind} handler of call {call.id} raised {exc!r}"
                )
            raise


@dataclass
class Turn:
    """One handler run: the round, the call's plan (None for a call the round did not
    place), and the agent running it."""

    round: Round
    plan: CallPlan | None
    agent: str
    answered: bool = False

    async def answer(self, call: tf.Call) -> bool:
        answered = bool(await call.answer())
        if answered and not self.answered and self.plan is not None:
            # Once per handler run: the same agent serving a call twice counts too.
            self.plan.answered_by.append(self.agent)
        self.answered = self.answered or answered
        return answered


async def echo_flow(turn: Turn, call: tf.Call) -> None:
    if not await turn.answer(call):
        return
    if turn.plan is not None and turn.plan.echo_from is None:
        turn.plan.echo_from = trio.current_time()
    async for chunk in call.audio_stream():
        await call.send_audio(chunk, wait=True)


async def interrupt_flow(turn: Turn, call: tf.Call) -> None:
    """Talk, interrupt at a random moment, say something else: the caller must hear the
    first utterance up to the interruption's heard position, then all of the second."""
    if not await turn.answer(call):
        return
    plan = turn.plan
    seed = zlib.crc32(call.id.encode())
    first = TestSignal(seconds=2, seed=seed % 1000).render(RATE)
    second = TestSignal(seconds=0.5, seed=seed % 1000 + 1).render(RATE)
    await call.send_audio(first)
    await trio.sleep(turn.round.rng.uniform(0.0, 2.5))
    await call.clear_send_audio_buffer()
    clear = call.last_clear
    assert clear is not None
    await call.send_audio(second)
    if plan is not None and plan.expected is None:
        plan.expected = first[: clear.heard_position] + second
    await call.wait_for_playout()
    if plan is not None:
        plan.played_out_at = trio.current_time()
    await call.wait_terminated()


async def connect_flow(turn: Turn, call: tf.Call) -> None:
    """Ring a human, whisper, barge, then echo."""
    if not await turn.answer(call):
        return
    if await call.connect(ring_time_seconds=turn.round.rng.randint(1, 3)):
        await call.whisper()
        await call.barge()
    await echo_flow(turn, call)


async def give_up_flow(turn: Turn, call: tf.Call) -> None:
    """Start an operation and abandon it half way (a cancellation mid-command)."""
    rng = turn.round.rng
    with trio.move_on_after(rng.uniform(0.0, 0.05)):
        if await turn.answer(call):
            await call.send_audio(bytes(1600))
            await call.clear_send_audio_buffer()
            await call.wait_for_playout()
    with trio.move_on_after(rng.uniform(0.0, 0.5)):
        await echo_flow(turn, call)


HANDLER_FLOWS: Final[dict[str, Callable[[Turn, tf.Call], Awaitable[None]]]] = {
    "echo": echo_flow,
    "interrupt": interrupt_flow,
    "connect": connect_flow,
    "give_up": give_up_flow,
}


# ── a round ─────────────────────────────────────────────────────────────────────────────


class Round:
    def __init__(
        self,
        sandbox: Sandbox,
        clock: trio.testing.MockClock,
        seed: int,
        calls: int,
        managers: int,
        counts: Counts,
        faults: bool,
    ) -> None:
        self.sandbox = sandbox
        self.clock = clock
        self.faults = faults
        self.rng = random.Random(seed)
        self.seed = seed
        self.counts = counts
        self.start = trio.current_time()
        self.plans = [
            CallPlan(
                index=i,
                # Whole 0.1 s: an echo's last bytes short of the pull's frame floor
                # (20 ms) stay queued until more audio comes, by design.
                speech_seconds=round(self.rng.uniform(0.5, 3.0), 1),
                placed_at=self.rng.uniform(0.5, ROUND_SECONDS - 3.0),
                hang_up_at=0.0,
            )
            for i in range(calls)
        ]
        for plan in self.plans:
            # Most callers hang up; the others are still on the line when the agents stop.
            stays = self.rng.uniform(4.0, 7.0) if self.rng.random() < 0.6 else 14.0
            plan.hang_up_at = plan.placed_at + stays
        self.plans.sort(key=lambda p: p.placed_at)
        self.by_call_id: dict[str, CallPlan] = {}
        self.agents = [Agent(f"agent-{i}", self, manual=i % 3 == 2) for i in range(managers)]

    def now(self) -> float:
        return trio.current_time() - self.start

    def plan_for(self, call_id: str) -> CallPlan | None:
        return self.by_call_id.get(call_id)

    def note(self, example: str) -> str:
        return f"seed {self.seed}: {example}"

    async def run(self) -> None:
        async with trio.open_nursery() as agents:
            for agent in self.agents:
                agents.start_soon(agent.run_forever)
            for agent in self.agents:
                await agent.up.wait()
            async with trio.open_nursery() as chaos:
                chaos.start_soon(self._callers)
                if self.faults:
                    chaos.start_soon(self._chaos)
                await trio.sleep_until(self.start + ROUND_SECONDS)
                chaos.cancel_scope.cancel()
            await self._stop_agents()
            # Judged before the nursery is left: an agent that cannot be cancelled would
            # block that exit, and the round is then abandoned with this verdict.
            await self._judge()
            self.counts.judged.set()
            if self.counts.counts["hangs"]:
                # A task that will never end may still have timers (a heartbeat): let the
                # clock jump only after a real pause, or the abandoned thread would spin.
                self.clock.autojump_threshold = 1.0
            agents.cancel_scope.cancel()

    async def _stop_agents(self) -> None:
        for agent in self.agents:
            agent.retired.set()
            agent.stop()
        with trio.move_on_after(STOP_DEADLINE):
            for agent in self.agents:
                await agent.stopped.wait()
        for agent in self.agents:
            if not agent.stopped.is_set():
                self.counts.add("hangs", self.note(f"{agent.name} did not stop when cancelled"))

    # ── the callers ─────────────────────────────────────────────────────────────────

    async def _callers(self) -> None:
        async with trio.open_nursery() as nursery:
            for plan in self.plans:
                await trio.sleep_until(self.start + plan.placed_at)
                speech = TestSignal(seconds=plan.speech_seconds, seed=plan.index)
                sim = await self.sandbox.place_call(audio=speech)
                plan.sim = sim
                self.by_call_id[sim.call_id] = plan
                self.counts.calls += 1
                nursery.start_soon(self._caller, plan, sim)

    async def _caller(self, plan: CallPlan, sim: SimulatedCall) -> None:
        async def speech_done() -> None:
            await sim.wait_spoken()
            plan.speech_done_at = trio.current_time()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(speech_done)
            await trio.sleep_until(self.start + plan.hang_up_at)
            nursery.cancel_scope.cancel()
        if sim.terminated.is_set():
            return
        if sim.state in (CallerState.OFFERED, CallerState.DELIVERED) and self._agents_were_up():
            self.counts.add(
                "unserved_calls",
                self.note(
                    f"call {sim.call_id} rang {plan.hang_up_at - plan.placed_at:.1f} s "
                    f"({sim.state.value}, session bound to {sim.session.bound_sm_ws_id})"
                ),
            )
        await sim.hang_up()

    def _agents_were_up(self) -> bool:
        return any(a.up.is_set() and not a.stopped.is_set() for a in self.agents)

    # ── faults ──────────────────────────────────────────────────────────────────────

    async def _chaos(self) -> None:
        faults = (
            (self._cut_voice, 0.4),
            (self._cut_control, 0.25),
            (self._refuse_upgrade, 0.2),
            (self._stop_an_agent, 0.08),
            (self._slow_answers, 0.3),
        )
        async with trio.open_nursery() as nursery:
            for act, per_second in faults:
                nursery.start_soon(self._every, act, per_second)

    async def _every(self, act: Callable[[], Awaitable[None]], per_second: float) -> None:
        while True:
            await trio.sleep(self.rng.expovariate(per_second))
            await act()

    async def _cut_voice(self) -> None:
        live = [
            p
            for p in self.plans
            if p.sim is not None and p.sim.voice_link is not None and p.sim.voice_link.is_open
        ]
        if live:
            plan = self.rng.choice(live)
            assert plan.sim is not None
            plan.voice_cut = True
            self.counts.faults["voice_cuts"] += 1
            await plan.sim.drop_voice()

    async def _cut_control(self) -> None:
        connections = self.sandbox.control_connections
        if connections:
            target = self.rng.choice(connections)
            self.counts.faults["control_cuts"] += 1
            await self.sandbox.drop_control_connections(target.sm_ws_id)

    async def _refuse_upgrade(self) -> None:
        self.counts.faults["refused_upgrades"] += 1
        self.sandbox.faults.refuse_status = self.rng.choice((503, 500, 502))
        self.sandbox.faults.refuse_voice += 1
        await trio.lowlevel.checkpoint()

    async def _slow_answers(self) -> None:
        """The server answers control requests and voice commands late, or promptly."""
        faults = self.sandbox.faults
        faults.response_delay = self.rng.choice((0.0, 0.0, 0.1, 0.3))
        faults.command_response_delay = self.rng.choice((0.0, 0.0, 0.2, 1.0))
        faults.setup_done_delay = self.rng.choice((0.0, 0.0, 0.1, 0.3))
        self.counts.faults["slow_answers"] += 1
        await trio.lowlevel.checkpoint()

    async def _stop_an_agent(self) -> None:
        running = [a for a in self.agents if a.up.is_set() and not a.stopped.is_set()]
        if len(running) > 1:
            self.counts.faults["agents_stopped"] += 1
            agent = self.rng.choice(running)
            agent.stop()
            if self.rng.random() < 0.5:
                self.counts.faults["restarts_cancelled"] += 1
                agent.cancel_next_life_after = self.rng.uniform(0.0, 0.4)
        await trio.lowlevel.checkpoint()

    # ── judging ─────────────────────────────────────────────────────────────────────

    async def _judge(self) -> None:
        names = await self.sdk_tasks_after_settling()
        if names:
            self.counts.add("leaked_tasks", self.note(f"{names}"), len(names))
        with trio.move_on_after(SETTLE_SECONDS):
            while self._leftovers():  # noqa: ASYNC110 (bounded just above)
                await trio.sleep(0.05)
        live, bound = self._leftovers()
        for sim in live:
            self.counts.add(
                "calls_left_live",
                self.note(
                    f"call {sim.call_id} {sim.state.value} after the agents stopped "
                    f"(voice cut: {self._plan(sim).voice_cut}, handler: "
                    f"{self._plan(sim).handler})"
                ),
            )
        for session_id, sm_ws_id in bound:
            self.counts.add(
                "sessions_left_bound",
                self.note(f"session {session_id} still bound to {sm_ws_id}"),
            )
        for plan in self.plans:
            if plan.sim is not None:
                ended = plan.sim.ended_by
                self.counts.endings[ended.value if ended is not None else plan.sim.state.value] += 1
            if len(plan.answered_by) > 1 and plan.sim is not None:
                if not plan.voice_cut:
                    # No policy lets a second handler answer here: a clean stop closes the
                    # call, a control blip leaves it with its holder (a claimer's answer
                    # raises WSSSessionBusy). After a voice cut another agent may fail over
                    # before the holder has ended the call.
                    self.counts.add(
                        "calls_served_twice",
                        self.note(f"call {plan.sim.call_id}: answered by {plan.answered_by}"),
                    )
                continue
            self._judge_audio(plan)

    async def sdk_tasks_after_settling(self) -> list[str]:
        with trio.move_on_after(SETTLE_SECONDS):
            while sdk_task_names():  # noqa: ASYNC110 (bounded just above)
                await trio.sleep(0.05)
        return sdk_task_names()

    def _plan(self, sim: SimulatedCall) -> CallPlan:
        return self.by_call_id[sim.call_id]

    def _leftovers(self) -> tuple[list[SimulatedCall], list[tuple[str, str | None]]]:
        live = [
            c
            for c in self.sandbox.calls.values()
            if c.state in (CallerState.DELIVERED, CallerState.LIVE) and not c.terminated.is_set()
        ]
        bound = [
            (s.id, s.bound_sm_ws_id)
            for s in self.sandbox.sessions.values()
            if s.is_open and s.bound is not None
        ]
        return live, bound

    def _judge_audio(self, plan: CallPlan) -> None:
        sim = plan.sim
        if sim is None or not sim.answered:
            return
        heard = sim.heard
        if plan.handler == "interrupt":
            expected = plan.expected
            if expected is None:
                return
            self.counts.checked["interrupt"] += 1
            if not expected.startswith(heard):
                kind = "stale_audio" if len(heard) > len(expected) else "lost_audio"
                at = _mismatch(heard, expected)
                self.counts.add(
                    kind,
                    self.note(
                        f"interrupted call {sim.call_id}: heard {len(heard)} bytes, "
                        f"expected a prefix of {len(expected)}; first difference at {at} "
                        f"({self._story(plan)})"
                    ),
                )
            elif not self._undisturbed(plan, plan.played_out_at):
                return
            elif heard != expected:
                self.counts.add(
                    "lost_audio",
                    self.note(
                        f"interrupted call {sim.call_id}: played out, but the caller heard "
                        f"{len(heard)} of {len(expected)} bytes ({self._story(plan)})"
                    ),
                )
            return
        if plan.handler not in ("echo", "connect"):
            return
        spoken = bytes(sim.spoken)
        self.counts.checked["echo"] += 1
        if not spoken.startswith(heard):
            self.counts.add(
                "lost_audio",
                self.note(
                    f"echo call {sim.call_id}: heard {len(heard)} bytes that are not what "
                    f"the caller said (first difference at {_mismatch(heard, spoken)}; "
                    f"{self._story(plan)})"
                ),
            )
        elif not self._undisturbed(plan, _later(plan.speech_done_at, plan.echo_from)):
            return
        elif len(heard) < len(spoken):
            self.counts.add(
                "lost_audio",
                self.note(
                    f"echo call {sim.call_id}: undisturbed, but the caller heard "
                    f"{len(heard)} of the {len(spoken)} bytes said ({self._story(plan)})"
                ),
            )

    def _story(self, plan: CallPlan) -> str:
        """What happened to a call, for a report."""
        sim = plan.sim
        assert sim is not None
        commands = [
            f"{c.command}@{c.time:.2f}:{'ok' if c.success else c.error_code}" for c in sim.commands
        ]
        return (
            f"{plan.handler} handler answered by {plan.answered_by}; placed at "
            f"{plan.placed_at:.2f}, speech done at {_rel(plan.speech_done_at, self.start)}, "
            f"echo from {_rel(plan.echo_from, self.start)}, "
            f"hang-up at {plan.hang_up_at:.2f}; {sim.voice_connections} voice connection(s); "
            f"{sim.bytes_requested} bytes pulled; commands {commands}"
        )

    def _undisturbed(self, plan: CallPlan, done_at: float | None) -> bool:
        """Whether the call's audio must have arrived whole: no cut of its voice socket,
        ended by the caller, who stayed on the line a while after the last of it."""
        full = (
            plan.sim is not None
            and not plan.voice_cut
            and plan.sim.ended_by is EndedBy.CALLER_HANGUP
            and done_at is not None
            and done_at + QUIET_BEFORE_CHECK < self.start + plan.hang_up_at
        )
        if full:
            self.counts.checked["in full"] += 1
        return full


def _later(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else max(a, b)


def _rel(when: float | None, start: float) -> str:
    return "-" if when is None else f"{when - start:.2f}"


def _mismatch(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


async def play_round(
    clock: trio.testing.MockClock,
    seed: int,
    calls: int,
    managers: int,
    counts: Counts,
    faults: bool,
) -> None:
    async with open_sandbox(time_scale=1.0, caller_frame_seconds=0.1) as sandbox:
        await Round(sandbox, clock, seed, calls, managers, counts, faults).run()


# ── driving rounds ──────────────────────────────────────────────────────────────────────


def run_round(seed: int, calls: int, managers: int, timeout: float, faults: bool) -> Counts:
    """One round in its own ``trio.run`` on a MockClock, in a thread: a round that hangs
    is abandoned after ``timeout`` real seconds and counted, not waited for. What it had
    judged by then (it judges before waiting for its agents' tasks) is kept."""
    counts = Counts()
    box: dict[str, BaseException] = {}

    def target() -> None:
        clock = trio.testing.MockClock(autojump_threshold=0)
        try:
            trio.run(play_round, clock, seed, calls, managers, counts, faults, clock=clock)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"round {seed}", daemon=True)
    thread.start()
    counts.judged.wait(timeout)
    thread.join(LEAVE_SECONDS if counts.judged.is_set() else 0)
    if not counts.judged.is_set():
        counts.add("hangs", f"seed {seed}: the round did not end within {timeout:g} s")
    elif thread.is_alive() and not counts.counts["hangs"]:
        counts.add("hangs", f"seed {seed}: the round could not be left after it was judged")
    elif "error" in box:
        error = box["error"]
        kind = "undocumented_exceptions" if not documented(error) else "hangs"
        counts.add(kind, f"seed {seed}: the round raised {error!r}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=50, help="rounds to play (default 50)")
    parser.add_argument("--calls", type=int, default=20, help="calls per round (default 20)")
    parser.add_argument("--managers", type=int, default=3, help="agents per round (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="first round's seed (default 0)")
    parser.add_argument(
        "--round-timeout",
        type=float,
        default=120.0,
        help="real seconds after which a round counts as hung (default 120)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 3 rounds of 8 calls, 30 s per round at most",
    )
    parser.add_argument("--verbose", action="store_true", help="a line per round on stderr")
    parser.add_argument(
        "--no-faults", action="store_true", help="no cuts, refusals or stops (a baseline)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.calls = 3, 8
        args.round_timeout = min(args.round_timeout, 30.0)
    if args.rounds < 1 or args.calls < 1 or args.managers < 2:
        parser.error("--rounds and --calls must be at least 1, --managers at least 2")

    total = Counts()
    started = time.monotonic()
    for r in range(args.rounds):
        seed = args.seed * 1_000_003 + r
        found = run_round(seed, args.calls, args.managers, args.round_timeout, not args.no_faults)
        total.merge(found)
        if args.verbose:
            bad = {k: v for k, v in found.counts.items() if v}
            print(f"round {r} (seed {seed}): {found.calls} calls, {bad or 'ok'}", file=sys.stderr)

    for kind in COUNTS:
        for example in total.examples.get(kind, []):
            print(f"{kind}: {example}")
    summary = {
        "rounds": args.rounds,
        "calls": total.calls,
        "managers": args.managers,
        "seed": args.seed,
        "seconds": round(time.monotonic() - started, 1),
        "faults": dict(total.faults),
        "audio_checked": dict(total.checked),
        "endings": dict(total.endings),
        "counts": {kind: total.counts[kind] for kind in COUNTS},
    }
    print(json.dumps(summary))
    return 1 if any(total.counts[kind] for kind in COUNTS) else 0


if __name__ == "__main__":
    sys.exit(main())
