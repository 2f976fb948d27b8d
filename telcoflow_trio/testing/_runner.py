"""The call-script runner: play a :class:`CallScript` against an agent through the sandbox,
then check the agent-level invariants.

:func:`run_script` is synchronous: it runs the sandbox, the agent and the script in a fresh
``trio.run`` on a :class:`trio.testing.MockClock` that jumps ahead whenever every task is
waiting, so seconds of simulated call take milliseconds and every deadline is exact, with
trio's scheduler seeded so that a script replays the same way every time.
:func:`play_script` does the same inside a trio run you already have (whose scheduling
is that run's own).

An agent is either a ``serve_calls`` handler (``async def handler(call: tf.Call)``; the
runner serves it with a :class:`~telcoflow_trio.SessionManager`) or a whole program
(``async def program(config: tf.SessionManagerConfig)`` that runs until cancelled).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import trio
import trio.testing

from .._errors import BufferClosedError, WSSCallClosedError
from ..sandbox import CallerState, Sandbox, Silence, SimulatedCall, open_sandbox
from ._agent import AgentRunner, Handler, Program, all_tasks, leaks, open_sockets, until
from ._invariants import (
    DEFAULT_INVARIANTS,
    Invariant,
    PlayedCall,
    Violation,
    check_call,
)
from ._record import Recorder
from ._script import (
    CallScript,
    DropControl,
    DropVoice,
    HangUp,
    Pause,
    SendCallError,
    SetConnect,
    Shutdown,
    SlowCommands,
    Speak,
    StallPulls,
    Step,
)
from ._seeding import check_seed, seeded_scheduling

__all__ = ["Handler", "Program", "RunOptions", "ScriptFailure", "play_script", "run_script"]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class RunOptions:
    """How the runner plays a script. Deadlines are simulated seconds.

    - ``invariants``: checked in addition to the built-in ones (all of
      :data:`DEFAULT_INVARIANTS`, unless ``builtin_invariants=False``).
    - ``allowed_errors``: what a handler may raise once its call is over.
    - ``handler_exit_deadline``: how soon after its call ends a handler must return.
    - ``connect_deadline`` / ``stop_deadline`` / ``settle_deadline``: for the agent to
      connect, to stop once asked, and for its connections and tasks to go after that.
    - ``sandbox``: keyword arguments for :func:`open_sandbox` (``pull_interval``, ...);
      ``config``: for ``sandbox.config()`` (``call_audio``, ...).
    - ``autojump_threshold``: the MockClock's (:func:`run_script` only).
    - ``check_leaks``: look for tasks and sockets left behind (own sandbox only).
    """

    invariants: tuple[Invariant, ...] = ()
    builtin_invariants: bool = True
    allowed_errors: tuple[type[BaseException], ...] = (WSSCallClosedError, BufferClosedError)
    handler_exit_deadline: float = 5.0
    connect_deadline: float = 15.0
    stop_deadline: float = 30.0
    settle_deadline: float = 10.0
    sandbox: Mapping[str, Any] = attrs.field(factory=dict)
    config: Mapping[str, Any] = attrs.field(factory=dict)
    autojump_threshold: float = 0.0
    check_leaks: bool = True

    @property
    def all_invariants(self) -> tuple[Invariant, ...]:
        return (DEFAULT_INVARIANTS if self.builtin_invariants else ()) + self.invariants


class ScriptFailure(AssertionError):
    """A script broke at least one invariant. ``script``, ``played`` and ``violations``
    say which, and how; ``str()`` is a report for humans."""

    def __init__(self, played: PlayedCall) -> None:
        self.played = played
        self.script: CallScript | None = played.script
        self.violations: list[Violation] = list(played.violations)
        lines = [f"{len(self.violations)} invariant(s) broken by {self.script!r}"]
        lines += [f"- {v}" for v in self.violations]
        lines.append(played.summary())
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        # Hypothesis may pickle errors when it reports; keep the message, drop the objects.
        return (AssertionError, (str(self),))


# ── playing ─────────────────────────────────────────────────────────────────────────────


class _Player:
    def __init__(self, sandbox: Sandbox, sim: SimulatedCall, played: PlayedCall) -> None:
        self.sandbox = sandbox
        self.sim = sim
        self.played = played
        self.cut = 0
        """Connections the script cut (their client sockets may linger, see _agent.leaks)."""

    def note(self, what: str) -> None:
        self.played.played_steps.append((self.sandbox.clock.now(), what))

    async def step(self, step: Step) -> None:
        await trio.lowlevel.checkpoint()  # several steps only set a switch
        sim = self.sim
        link_open = sim.voice_link is not None and sim.voice_link.is_open
        match step:
            case Speak():
                self.note(repr(step))
                sim.say(step.source())
                await self.sandbox.clock.sleep(step.seconds)
            case Pause():
                self.note(repr(step))
                if sim.live.is_set() and sim.state is not CallerState.ENDED:
                    # A silent caller's line still carries audio: silence, frame by frame.
                    sim.say(Silence(step.seconds))
                await self.sandbox.clock.sleep(step.seconds)
            case HangUp():
                self.note(repr(step))
                await sim.hang_up()
            case SendCallError() if link_open:
                self.note(repr(step))
                await sim.inject_error(step.code, step.message)
            case DropVoice() if link_open:
                self.note(repr(step))
                self.cut += 1
                await sim.drop_voice()
            case SendCallError() | DropVoice():
                self.note(f"{step!r} skipped: the call has no voice connection")
            case DropControl():
                cut = await self.sandbox.drop_control_connections()
                self.cut += cut
                self.note(f"{step!r}: {cut} connection(s) cut")
            case StallPulls():
                self.note(repr(step))
                sim.stall_pulls(step.seconds)
            case SlowCommands():
                self.note(repr(step))
                self.sandbox.faults.command_response_delay = self.sandbox.clock.to_real(
                    step.seconds
                )
            case SetConnect():
                self.note(repr(step))
                sim.connect_behaviour = step.behaviour()
            case Shutdown():
                self.note(repr(step))
            case _:  # pragma: no cover - the script model admits nothing else
                raise TypeError(f"unknown script step {step!r}")


@asynccontextmanager
async def _sandbox_for(sandbox: Sandbox | None, options: RunOptions) -> AsyncIterator[Sandbox]:
    if sandbox is not None:
        yield sandbox
        return
    async with open_sandbox(**options.sandbox) as own:
        yield own


async def play_script(
    script: CallScript,
    handler: Handler | None = None,
    *,
    program: Program | None = None,
    sandbox: Sandbox | None = None,
    invariants: Iterable[Invariant] = (),
    raise_on_failure: bool = True,
    **options: Any,
) -> PlayedCall:
    """Play ``script`` against an agent inside the current trio run; see :func:`run_script`.

    With ``sandbox`` the call is placed on that running sandbox (its faults are changed
    by the script's steps and put back afterwards); without, a sandbox is opened for the
    script and closed after it. The clock is whatever the current run uses, and so is
    the scheduling: nothing is seeded here (trio's scheduler serves the whole run, whose
    other tasks the kit cannot replay); for a replayable verdict use :func:`run_script`.
    """
    if not isinstance(script, CallScript):
        raise TypeError(f"script must be a CallScript, got {type(script).__name__}")
    if (handler is None) == (program is None):
        raise TypeError("give exactly one agent: a serve_calls handler, or program=...")
    opts = RunOptions(invariants=tuple(invariants), **options)
    own = sandbox is None
    async with _sandbox_for(sandbox, opts) as sb:
        saved_delay = sb.faults.command_response_delay
        try:
            played = await _play(
                sb, script, handler, program, opts, check_leaks=own and opts.check_leaks
            )
        finally:
            sb.faults.command_response_delay = saved_delay
    if raise_on_failure and played.violations:
        raise ScriptFailure(played)
    return played


async def _play(
    sb: Sandbox,
    script: CallScript,
    handler: Handler | None,
    program: Program | None,
    opts: RunOptions,
    *,
    check_leaks: bool,
) -> PlayedCall:
    recorder = Recorder(sb.clock.now)
    config = sb.config(sample_rate=script.sample_rate, **opts.config)
    agent = AgentRunner(config, handler, program, recorder)
    run_violations: list[Violation] = []
    tasks_before = all_tasks()
    sockets_before = open_sockets()
    connections_before = len(sb.control_connections)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.run)

        # A handler's manager must be all the way up before the script can stop it:
        # cancelling a SessionManager while it is still entering can leave it hanging.
        def up() -> bool:
            if agent.done.is_set():
                return True
            entered = program is not None or agent.connected.is_set()
            return entered and len(sb.control_connections) > connections_before

        if not await until(up, opts.connect_deadline) or agent.done.is_set():
            run_violations.append(
                Violation("agent", "the agent did not connect to the sandbox in time")
            )
        sim = await sb.place_call(script.caller)
        played = PlayedCall(
            sim,
            script,
            allowed_errors=opts.allowed_errors,
            handler_exit_deadline=opts.handler_exit_deadline,
        )

        async def watch_end() -> None:
            await sim.wait_terminated()
            played.ended_at = sb.clock.now()

        nursery.start_soon(watch_end)
        player = _Player(sb, sim, played)
        for step in script.steps:
            await player.step(step)
        if script.ending == "hang_up" and not (
            script.steps and isinstance(script.steps[-1], HangUp)
        ):
            player.note("(end of script) the caller hangs up")
            await sim.hang_up()
        if script.ending == "hang_up":
            await until(
                lambda: all(r.ended is not None for r in recorder.handler_runs),
                opts.handler_exit_deadline + 1,
            )
        played.stopped_at = sb.clock.now()
        agent.stop()
        if not await until(agent.done.is_set, opts.stop_deadline):
            run_violations.append(
                Violation(
                    "agent",
                    f"the agent did not stop within {opts.stop_deadline:g} s of being "
                    "cancelled (it blocks cancellation)",
                )
            )
        nursery.cancel_scope.cancel()

    played.ledgers = recorder.for_call_id(sim.call_id)
    played.handler_runs = [r for r in recorder.handler_runs if r.call_id == sim.call_id]
    if agent.error is not None:
        run_violations.append(
            Violation("agent", f"the agent raised {type(agent.error).__name__}: {agent.error}")
        )
    run_violations += await _settle(sb, sim, opts, connections_before)
    if check_leaks:
        run_violations += await leaks(
            tasks_before, sockets_before, opts.settle_deadline, player.cut
        )
    played.violations = run_violations + check_call(played, opts.all_invariants)
    return played


async def _settle(
    sb: Sandbox, sim: SimulatedCall, opts: RunOptions, connections_before: int
) -> list[Violation]:
    found: list[Violation] = []
    if not await until(
        lambda: len(sb.control_connections) <= connections_before, opts.settle_deadline
    ):
        found.append(Violation("leaks", "a control connection stayed open after the agent stopped"))
    if not await until(lambda: sim.voice_link is None, opts.settle_deadline):
        found.append(Violation("leaks", "the call's voice connection stayed open"))
    return found


def run_script(
    script: CallScript,
    handler: Handler | None = None,
    *,
    program: Program | None = None,
    invariants: Sequence[Invariant] = (),
    raise_on_failure: bool = True,
    seed: int | None = 0,
    **options: Any,
) -> PlayedCall:
    """Play ``script`` against an agent on a fresh sandbox and check the invariants.

    The agent is ``handler`` (served with ``serve_calls``) or ``program=`` (given the
    sandbox's config; cancelled when the script is over). Everything runs in a new
    ``trio.run`` on a :class:`trio.testing.MockClock`, so call it from a synchronous test,
    such as a hypothesis ``@given`` one. Raises :class:`ScriptFailure` (an
    ``AssertionError``) listing every broken invariant, or with
    ``raise_on_failure=False`` returns the :class:`PlayedCall` with its ``violations``.
    Other keyword arguments are :class:`RunOptions`.

    ``seed`` fixes the order in which trio runs tasks that are ready at the same moment,
    as hypothesis does inside ``@given`` (where it seeds with 0, the default here, so a
    script hypothesis reports replays with the scheduling it failed with): the same
    script, agent and seed give the same task order every time. Python's :mod:`random`
    is seeded too; both are put back afterwards. ``seed=None`` leaves trio's scheduling
    random, as in a plain ``trio.run``. What a seed cannot fix: the sandbox and the agent
    talk over real loopback sockets, and the simulated clock jumps only when every task
    is waiting, so a kernel slow to deliver bytes could still change the course of a
    call; nor does it seed a ``random.Random()`` of your own, or the jitter of the SDK's
    reconnection backoff (a script that cuts the control connection may see it vary).
    """
    seed = check_seed(seed)
    threshold = float(options.get("autojump_threshold", 0.0))
    clock = trio.testing.MockClock(autojump_threshold=threshold)
    run = partial(
        play_script,
        script,
        handler,
        program=program,
        invariants=invariants,
        raise_on_failure=raise_on_failure,
        **options,
    )
    with seeded_scheduling(seed):
        return trio.run(run, clock=clock)
