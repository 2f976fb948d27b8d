"""Many calls at once: a hypothesis state machine that drives agents through the sandbox
(needs ``hypothesis``).

Subclass :class:`CallScenarios`, say which agent to run, and hypothesis plays random
interleavings of calls arriving, speaking, hanging up, failing and losing sockets, across
several agent processes (``managers``) racing to claim them::

    class EchoScenarios(CallScenarios):
        handler = staticmethod(handle_call)
        managers = 2

    TestEchoScenarios = EchoScenarios.TestCase

Every rule runs in one trio run (a worker thread, on a :class:`trio.testing.MockClock`)
and lets ``step_seconds`` of simulated time pass. When the scenario ends every live call
is hung up, the agents are stopped, and the invariants of
:data:`telcoflow_trio.testing.DEFAULT_INVARIANTS` are checked for every call, plus
``call_invariants``.
Add rules and invariants of your own in the subclass; ``self.sandbox`` is the sandbox,
``self.run(fn)`` runs ``async fn()`` inside the trio run.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, Final, TypeVar

import trio
import trio.testing
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from .._call import Call
from .._config import SessionManagerConfig
from .._errors import BufferClosedError, WSSCallClosedError
from ..sandbox import AudioSource, CallerState, Sandbox, SimulatedCall, open_sandbox
from ._agent import AgentRunner, until
from ._invariants import DEFAULT_INVARIANTS, Invariant, PlayedCall, Violation, check_call
from ._record import Recorder
from ._script import SendCallError
from .strategies import audio_sources, call_errors

__all__ = ["CallScenarios", "ScenarioFailure"]

T = TypeVar("T")
STEP_DEADLINE: Final = 120.0
"""Simulated seconds one rule may take; only a hang uses them up."""


class ScenarioFailure(AssertionError):
    """Invariants broken in a multi-call scenario; ``violations`` lists them by call."""

    def __init__(self, violations: Sequence[tuple[str, Violation]], details: str) -> None:
        self.violations: list[tuple[str, Violation]] = list(violations)
        lines = [f"{len(self.violations)} invariant(s) broken"]
        lines += [f"- call {who}: {v}" for who, v in self.violations]
        super().__init__("\n".join([*lines, details]))


class _TrioThread:
    """One trio run in a thread, with a sandbox, stepped from the test's thread."""

    def __init__(self, sandbox_options: Mapping[str, Any]) -> None:
        self.clock = trio.testing.MockClock(autojump_threshold=math.inf)
        self._options = dict(sandbox_options)
        self._ready = threading.Event()
        self._crash: BaseException | None = None
        self._thread = threading.Thread(target=self._thread_main, daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the scenario's trio thread did not start")
        if self._crash is not None:
            raise self._crash

    def _thread_main(self) -> None:
        try:
            trio.run(self._main, clock=self.clock)
        except BaseException as exc:
            self._crash = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._stop = trio.Event()
        async with open_sandbox(**self._options) as sandbox, trio.open_nursery() as nursery:
            self.sandbox: Sandbox = sandbox
            self.nursery = nursery
            self.token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def step(self, fn: Callable[[], Awaitable[T]], seconds: float = 0.0) -> T:
        """Run ``fn`` in the trio run, then let ``seconds`` of simulated time pass."""

        async def stepper() -> T:
            self.clock.autojump_threshold = 0
            try:
                with trio.fail_after(STEP_DEADLINE):
                    result = await fn()
                    await trio.sleep(seconds)
                    return result
            finally:
                # Between steps nothing moves: hypothesis alone decides what comes next.
                self.clock.autojump_threshold = math.inf

        return trio.from_thread.run(stepper, trio_token=self.token)

    def close(self) -> None:
        def stop() -> None:
            # Shutting down waits on deadlines (closing handshakes): let time run again.
            self.clock.autojump_threshold = 0
            self._stop.set()

        if self._crash is None and self._thread.is_alive():
            trio.from_thread.run_sync(stop, trio_token=self.token)
        self._thread.join(30)
        if self._thread.is_alive():
            raise RuntimeError("the scenario's trio run did not stop within 30 s")
        if self._crash is not None:
            raise self._crash


class CallScenarios(RuleBasedStateMachine):
    """A base state machine for multi-call scenarios; subclass it (see the module doc).

    Class attributes to set: ``handler`` (a ``serve_calls`` handler, via ``staticmethod``)
    or ``program`` (``async def program(config)``), ``managers`` (agent processes racing
    for calls; each runs the handler or the program), ``call_invariants`` (per-call checks added
    to the built-in ones), ``allowed_errors``, ``cut_control``, ``sandbox_options`` and
    ``step_seconds``.
    """

    handler: ClassVar[staticmethod[[Call], Awaitable[None]] | None] = None
    program: ClassVar[staticmethod[[SessionManagerConfig], Awaitable[None]] | None] = None
    managers: ClassVar[int] = 2
    call_invariants: ClassVar[Sequence[Invariant]] = ()
    sandbox_options: ClassVar[Mapping[str, Any]] = {}
    step_seconds: ClassVar[float] = 0.2
    handler_exit_deadline: ClassVar[float] = 5.0
    allowed_errors: ClassVar[tuple[type[BaseException], ...]] = (
        WSSCallClosedError,
        BufferClosedError,
    )
    cut_control: ClassVar[bool] = True
    """Whether the ``drop_control`` rule may cut agents' control connections."""

    calls: Bundle[SimulatedCall] = Bundle("calls")

    def __init__(self) -> None:
        super().__init__()
        if (type(self).handler is None) == (type(self).program is None):
            raise TypeError(f"{type(self).__name__}: set exactly one of handler and program")
        self._worker = _TrioThread(self.sandbox_options)
        self.sandbox: Sandbox = self._worker.sandbox
        self.recorder: Recorder = Recorder(self.sandbox.clock.now)
        self.placed: list[SimulatedCall] = []
        self.ended_at: dict[str, float] = {}
        self.steps: dict[str, list[tuple[float, str]]] = {}
        self.agents: list[AgentRunner] = []
        self._stopped_at: float | None = None
        try:
            self.run(self._start_agents)
        except BaseException:
            self._stop_agents()
            self._worker.close()
            raise

    # ── helpers for subclasses ───────────────────────────────────────────────────────

    def run(self, fn: Callable[[], Awaitable[T]], seconds: float = 0.0) -> T:
        """Run ``async fn()`` in the scenario's trio run; then ``seconds`` pass."""
        return self._worker.step(fn, seconds)

    def now(self) -> float:
        """The sandbox's clock, read from the test's thread."""
        clock = self.sandbox.clock
        return (self._worker.clock.current_time() - self._origin) * clock.time_scale

    def note(self, sim: SimulatedCall, what: str) -> None:
        self.steps.setdefault(sim.call_id, []).append((self.now(), what))

    async def _start_agents(self) -> None:
        clock = self.sandbox.clock
        self._origin = trio.current_time() - clock.now() / clock.time_scale
        for _ in range(self.managers):
            agent = AgentRunner(
                self.sandbox.config(), type(self).handler, type(self).program, self.recorder
            )
            self.agents.append(agent)
            self._worker.nursery.start_soon(agent.run)
        # Every manager all the way up before anything else happens.
        await until(
            lambda: (
                len(self.sandbox.control_connections) >= self.managers
                and all(a.connected.is_set() or type(self).program is not None for a in self.agents)
            ),
            30,
        )

    # ── rules ────────────────────────────────────────────────────────────────────────

    @rule(target=calls, speech=audio_sources(max_seconds=1.0))
    def place_call(self, speech: AudioSource) -> SimulatedCall:
        """A call arrives; once answered, the caller says ``speech``."""

        async def place() -> SimulatedCall:
            sim = await self.sandbox.place_call(audio=speech)
            self.placed.append(sim)

            async def watch() -> None:
                await sim.wait_terminated()
                self.ended_at[sim.call_id] = self.sandbox.clock.now()

            self._worker.nursery.start_soon(watch)
            return sim

        sim = self.run(place, self.step_seconds)
        self.note(sim, f"placed; the caller will say {speech!r}")
        return sim

    @rule(call=calls, speech=audio_sources(max_seconds=1.0))
    def caller_speaks(self, call: SimulatedCall, speech: AudioSource) -> None:
        self.note(call, f"the caller says {speech!r}")

        async def say() -> None:
            call.say(speech)
            await trio.lowlevel.checkpoint()

        self.run(say, self.step_seconds)

    @rule(call=calls)
    def caller_hangs_up(self, call: SimulatedCall) -> None:
        self.note(call, "the caller hangs up")
        self.run(call.hang_up, self.step_seconds)

    @rule(call=calls, error=call_errors())
    def call_error(self, call: SimulatedCall, error: SendCallError) -> None:
        async def inject() -> None:
            if call.voice_link is not None and call.voice_link.is_open:
                self.note(call, repr(error))
                await call.inject_error(error.code, error.message)
            else:
                await trio.lowlevel.checkpoint()

        self.run(inject, self.step_seconds)

    @rule(call=calls)
    def drop_voice(self, call: SimulatedCall) -> None:
        self.note(call, "its voice connection is cut")
        self.run(call.drop_voice, self.step_seconds)

    @rule(call=calls, seconds=st.integers(1, 15).map(lambda n: n / 10))
    def stall_pulls(self, call: SimulatedCall, seconds: float) -> None:
        async def stall() -> None:
            call.stall_pulls(seconds)
            await trio.lowlevel.checkpoint()

        self.note(call, f"the server stops pulling for {seconds:g} s")
        self.run(stall, self.step_seconds)

    @precondition(lambda self: self.cut_control)
    @rule(which=st.integers(0, 15))
    def drop_control(self, which: int) -> None:
        """One agent's control connection is cut (it reconnects)."""

        async def drop() -> None:
            live = self.sandbox.control_connections
            if live:
                await self.sandbox.drop_control_connections(live[which % len(live)].sm_ws_id)
            else:
                await trio.lowlevel.checkpoint()

        self.run(drop, self.step_seconds)

    @rule(seconds=st.integers(1, 20).map(lambda n: n / 10))
    def time_passes(self, seconds: float) -> None:
        async def nothing() -> None:
            await trio.lowlevel.checkpoint()

        self.run(nothing, seconds)

    # ── checks ───────────────────────────────────────────────────────────────────────

    @invariant()
    def agents_keep_running(self) -> None:
        """No agent process has crashed or returned."""
        for number, agent in enumerate(self.agents):
            assert agent.error is None, (
                f"agent {number} raised {type(agent.error).__name__}: {agent.error}"
            )
            assert not agent.done.is_set(), f"agent {number} stopped on its own"

    def teardown(self) -> None:
        try:
            violations = self._finish()
        finally:
            self._stop_agents()
            self._worker.close()
        if violations:
            details = "\n".join(self._played(sim).summary() for sim in self.placed)
            raise ScenarioFailure(violations, details)

    def _stop_agents(self) -> None:
        """Stop every agent that is still running (they must be gone before the sandbox)."""

        async def stop() -> None:
            for agent in self.agents:
                agent.stop()
            with trio.move_on_after(60):
                for agent in self.agents:
                    await agent.done.wait()
            await trio.lowlevel.checkpoint()

        if any(not agent.done.is_set() for agent in self.agents):
            self.run(stop)

    def _played(self, sim: SimulatedCall) -> PlayedCall:
        return PlayedCall(
            sim,
            None,
            ledgers=self.recorder.for_call_id(sim.call_id),
            handler_runs=[r for r in self.recorder.handler_runs if r.call_id == sim.call_id],
            played_steps=self.steps.get(sim.call_id, []),
            ended_at=self.ended_at.get(sim.call_id),
            stopped_at=self._stopped_at,
            handler_exit_deadline=self.handler_exit_deadline,
            allowed_errors=self.allowed_errors,
        )

    def _finish(self) -> list[tuple[str, Violation]]:
        async def finish() -> None:
            for sim in self.placed:
                if sim.state is not CallerState.ENDED:
                    self.note(sim, "(end of scenario) the caller hangs up")
                    await sim.hang_up()
            await until(
                lambda: all(r.ended is not None for r in self.recorder.handler_runs),
                self.handler_exit_deadline + 1,
            )
            self._stopped_at = self.sandbox.clock.now()
            for agent in self.agents:
                agent.stop()
            with trio.move_on_after(60):
                for agent in self.agents:
                    await agent.done.wait()

        self.run(finish)
        found: list[tuple[str, Violation]] = []
        for number, agent in enumerate(self.agents):
            if not agent.done.is_set():
                found.append(("-", Violation("agent", f"agent {number} did not stop")))
        checks = (*DEFAULT_INVARIANTS, *self.call_invariants)
        for sim in self.placed:
            found += [(sim.call_id, v) for v in check_call(self._played(sim), checks)]
        return found
