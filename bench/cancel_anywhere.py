"""Cancel the SDK at random moments, thousands of times, and count what goes wrong.

Issue 13, policy P1: cancellation, or an exception such as ``KeyboardInterrupt``, at any
moment of ``SessionManager.__aenter__``, ``open_session``, ``incoming_call``, any command
or ``serve_calls`` never hangs and leaves nothing running; once the manager's scope is
left, no call the agent touched is live on the server and no session is bound to it
unserved.

Each try is a fresh in-process sandbox (real WebSockets on 127.0.0.1) and one
``SessionManager``, in a ``trio.run`` of its own in a daemon thread: a try that does not
end within its bound is counted as a hang and abandoned, and cannot block the script.
A try runs one flow:

- ``enter``: enter the manager (connect) and leave it;
- ``claim``: notification, ``open_session``, ``ready``, ``incoming_call``, ``answer``,
  one chunk of audio received and sent back;
- ``commands``: ``answer``, ``send_audio``, ``get_send_audio_buffer_size``,
  ``clear_send_audio_buffer``, ``send_audio(wait=True)``, ``wait_for_playout``,
  ``connect``, ``whisper``, ``barge``, ``spy``, then ``close`` or ``disconnect``;
- ``serve``: ``serve_calls`` echoing two calls, stopped once both are live;

cut short at a random moment in one of three ways:

- ``outer``: the scope around the whole manager is cancelled (entry, body or exit);
- ``inner``: only the flow is cancelled; the manager carries on, must have let go of
  everything the flow touched, and must still serve a new call;
- ``raise``: ``KeyboardInterrupt`` or ``SystemExit`` is raised from the user's code (the
  manager's body, the session's body, or a ``serve_calls`` handler), whichever is running
  at that moment (the SDK call it was awaiting is cancelled first, as the user's own
  timeout would); it must come out of ``async with SessionManager`` as itself. (Not a real
  signal: the tries run in threads, and trio takes signals only in the main thread.)

The moment is either a time or a count of trio task steps (an instrument cancels after
the k-th step of any task, the sandbox's included), counted from the start of the region:
the manager's entry for ``outer``, the flow's start for ``inner`` and ``raise`` (user code
can raise only once it runs). It is drawn over the region's length, measured first on
this machine; half the draws fall early: while the manager connects (``outer``), or in
the flow's first 50 ms or quarter of its steps (a claim's round trip).

Counted (every count should be 0; the exit code is 1 otherwise):

- ``hangs``: the try did not end within its bound (``--hang-seconds`` after the flow's
  measured length), or its ``trio.run`` never returned;
- ``leaked_tasks``: SDK tasks running after the manager's scope was left, or any task
  left once the sandbox was closed;
- ``undocumented_exceptions``: anything that came out other than the SDK's documented
  errors (``WSSError``, ``BufferClosedError``, ``BufferFullError``); for ``raise``, anything
  but the raised exception itself (an exception group counts);
- ``calls_left_live``: a call the agent received (``call.in``) still up on the server;
- ``sessions_left_bound``: a session still open and bound to the agent with nobody
  serving it (after the manager, or, for ``inner``, once the flow's scopes were over);
- ``connections_left_open``: a control connection still up after the manager;
- ``manager_broken``: after an ``inner`` cancel, the manager could not claim, answer and
  close a new call;
- ``flow_failures``: a flow that was not cut short did not get to its end.

    python bench/cancel_anywhere.py --quick          # ~100 tries (the smoke run)
    python bench/cancel_anywhere.py                  # 2,000 tries
    python bench/cancel_anywhere.py --max-seconds 900 --seed 7 --json
    python bench/cancel_anywhere.py --flows enter,claim --tries 500
    python bench/cancel_anywhere.py --replay claim:inner:time:0.0435 --tries 50

A failing try is printed with its replay spec (``flow:where:trigger:value``, ``where``
being ``outer``, ``inner``, ``ki`` or ``exit``); ``--replay SPEC`` runs that try
``--tries`` times (races make one replay not always enough).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

import trio

import telcoflow_trio as tf
from telcoflow_trio.protocol import Backoff
from telcoflow_trio.sandbox import CallerState, Sandbox, SimulatedCall, TestSignal, open_sandbox

COUNTS: Final = (
    "hangs",
    "leaked_tasks",
    "undocumented_exceptions",
    "calls_left_live",
    "sessions_left_bound",
    "connections_left_open",
    "manager_broken",
    "flow_failures",
)
DOCUMENTED: Final = (tf.WSSError, tf.BufferClosedError, tf.BufferFullError)
STOPS: Final[dict[str, type[BaseException]]] = {"ki": KeyboardInterrupt, "exit": SystemExit}
"""The exceptions a ``raise`` try throws from the user's code, by their spec name."""
TRIGGERS: Final = frozenset({"time", "steps"})
TOUCHED: Final = frozenset({CallerState.DELIVERED, CallerState.LIVE})
"""Caller states of a call some agent received."""
TIME_SCALE: Final = 10.0
"""The sandbox's speed-up: callers speak, pulls and rings run ten times faster."""
EARLY_SECONDS: Final = 0.05
"""Half the time draws of ``inner`` and ``raise`` fall in the flow's first stretch."""
INNER_SETTLE: Final = 2.0
"""Seconds the server may take, after an inner cancel, to see the flow's scopes end."""
FOLLOW_UP_SECONDS: Final = 3.0
"""Seconds an inner-cancelled manager has to claim, answer and close a new call."""
TASKS_SETTLE: Final = 1.0
SERVER_SETTLE: Final = 2.0
SLACK: Final = 5.0
"""Real seconds past every bound above before a try's thread is abandoned."""
PCM: Final = bytes(range(256)) * 25
"""6,400 bytes: 0.2 s of 16 kHz audio."""
ECHOED_ENOUGH: Final = 3200
"""Bytes each ``serve`` call echoes before the flow stops ``serve_calls`` by itself."""

FLOWS_WHERE: Final = (
    ("enter", "outer"),
    ("enter", "raise"),
    ("claim", "outer"),
    ("claim", "inner"),
    ("claim", "raise"),
    ("commands", "outer"),
    ("commands", "inner"),
    ("commands", "raise"),
    ("serve", "outer"),
    ("serve", "inner"),
    ("serve", "raise"),
)
"""The rotation of tries (``raise`` becomes ``ki`` or ``exit`` at random)."""


# ── one try ─────────────────────────────────────────────────────────────────────────────


@dataclass
class Try:
    """One try's parameters, what it measured, and everything it found wrong."""

    index: int
    flow: str
    where: str
    trigger: str
    """``time`` (``at`` in seconds) or ``steps`` (``at`` in trio task steps)."""
    at: float
    problems: list[tuple[str, str]] = field(default_factory=list)
    documented: list[tuple[str, str]] = field(default_factory=list)
    """Documented errors that came out (allowed; reported): type and message."""
    undocumented: list[str] = field(default_factory=list)
    """Types of what came out that should not have."""
    cut: bool = False
    """Whether the cancellation or the exception landed before the flow ended."""
    raised_from: int | None = None
    """For ``ki``/``exit``: the depth of the user's layer that raised (1: the manager's
    body, 2: a session's body or a ``serve_calls`` handler)."""
    completed: bool = False
    """Whether the flow got to its end."""
    region: tuple[float, int] = (0.0, 0)
    entered: tuple[float, int] = (0.0, 0)
    flow_span: tuple[float, int] = (0.0, 0)
    """Seconds and task steps of the cut region, of the manager's entry (``outer``) and of
    the flow, when not cut."""

    @property
    def spec(self) -> str:
        if math.isinf(self.at):
            at = "inf"
        else:
            at = f"{self.at:.4f}" if self.trigger == "time" else str(int(self.at))
        return f"{self.flow}:{self.where}:{self.trigger}:{at}"

    def problem(self, kind: str, text: str) -> None:
        self.problems.append((kind, text))

    def escaped(self, what: str, text: str) -> None:
        self.undocumented.append(what)
        self.problem("undocumented_exceptions", text)


@dataclass(frozen=True)
class Bounds:
    """Real seconds a try's region may run, and its whole thread."""

    region: float

    @property
    def thread(self) -> float:
        return self.region + INNER_SETTLE + FOLLOW_UP_SECONDS + TASKS_SETTLE + SERVER_SETTLE + SLACK


class Trigger(trio.abc.Instrument):
    """Cuts the region short at one moment: a deadline (``time``) or after the ``at``-th
    task step of any task (``steps``, as an instrument).

    What it cuts: the scopes passed to :meth:`watch` (the ``outer`` or ``inner`` scope),
    and, for ``ki``/``exit`` tries, the innermost layers of the user's code running at that
    moment (:meth:`enter_level`): only those, so that the exception is raised from where
    the user's code is, not from an outer layer that a cancellation would reach first.
    """

    def __init__(self, kind: str, at: float) -> None:
        self.kind = kind
        self.at = at
        self.scopes: list[trio.CancelScope] = []
        self.levels: list[tuple[int, trio.CancelScope]] = []
        self.fired = False
        self.steps = 0
        self.armed_at = 0.0
        self.deadline = math.inf
        self.armed = False

    def arm(self) -> None:
        """The region begins."""
        self.armed = True
        self.steps = 0
        self.armed_at = trio.current_time()
        if self.kind == "time":
            self.deadline = self.armed_at + self.at
        else:
            trio.lowlevel.add_instrument(self)

    def disarm(self) -> tuple[float, int]:
        """The region is over: its length in seconds and task steps."""
        if self.armed:
            self.armed = False
            if self.kind == "steps":
                trio.lowlevel.remove_instrument(self)
        return trio.current_time() - self.armed_at, self.steps

    def watch(self, scope: trio.CancelScope) -> None:
        self.scopes.append(scope)
        self._aim(scope, on=True)

    def enter_level(self, depth: int, scope: trio.CancelScope) -> None:
        self.levels.append((depth, scope))
        self._aim_levels()

    def leave_level(self, scope: trio.CancelScope, *, rearm: bool) -> None:
        """A layer is left; the layers around it are aimed at again only if it ended
        normally (an exception going through them must not meet a cancellation too)."""
        self.levels = [(d, s) for d, s in self.levels if s is not scope]
        if rearm:
            self._aim_levels()

    def _aim_levels(self) -> None:
        top = max((depth for depth, _ in self.levels), default=0)
        for depth, scope in self.levels:
            self._aim(scope, on=depth == top)

    def _aim(self, scope: trio.CancelScope, *, on: bool) -> None:
        if self.kind == "time":
            scope.deadline = self.deadline if on else math.inf
        elif on and self.fired:
            scope.cancel()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1
        if not self.fired and self.steps >= self.at:
            self.fired = True
            for scope in self.scopes:
                scope.cancel()
            self._aim_levels()


@dataclass
class Ctx:
    """What a flow works with."""

    t: Try
    sandbox: Sandbox
    trigger: Trigger
    sm: tf.SessionManager | None = None
    flow_started: tuple[float, int] = (0.0, 0)

    @property
    def manager(self) -> tf.SessionManager:
        assert self.sm is not None
        return self.sm

    @contextmanager
    def level(self, depth: int) -> Iterator[None]:
        """A layer of the user's code, ``depth`` layers in. For ``ki``/``exit`` tries, the
        innermost layer running when the moment comes turns its cancellation into the
        exception, raised from there (the SDK's scopes around it then see it go by)."""
        stop = STOPS.get(self.t.where)
        if stop is None:
            yield
            return
        ended = False
        with trio.CancelScope() as scope:
            self.trigger.enter_level(depth, scope)
            try:
                yield
                ended = True
            finally:
                self.trigger.leave_level(scope, rearm=ended)
        if scope.cancelled_caught:
            self.t.cut = True
            self.t.raised_from = depth
            raise stop()

    def flow_begins(self) -> None:
        self.flow_started = (trio.current_time(), self.trigger.steps)

    def flow_ends(self) -> None:
        self.t.completed = True
        began, steps = self.flow_started
        self.t.flow_span = (trio.current_time() - began, self.trigger.steps - steps)


# ── the flows; each ends by itself when nothing cuts it ─────────────────────────────────


async def enter_flow(ctx: Ctx) -> None:
    ctx.flow_begins()
    with ctx.level(1):
        await ctx.manager.wait_connected()
        ctx.flow_ends()


async def _claimed(ctx: Ctx) -> str:
    await ctx.sandbox.place_call(audio=TestSignal(seconds=2))
    note = await ctx.manager.session_notifications.receive()
    return note.session_id


async def claim_flow(ctx: Ctx) -> None:
    ctx.flow_begins()
    with ctx.level(1):
        session_id = await _claimed(ctx)
        async with ctx.manager.open_session(session_id) as session:
            with ctx.level(2):
                await session.ready()
                call = await session.incoming_call()
                if not await call.answer():
                    return
                stream = await call.audio_stream()
                await call.send_audio(await stream.receive())
                ctx.flow_ends()


async def commands_flow(ctx: Ctx) -> None:
    ctx.flow_begins()
    with ctx.level(1):
        session_id = await _claimed(ctx)
        async with ctx.manager.open_session(session_id) as session:
            with ctx.level(2):
                call = await session.incoming_call()
                if not await call.answer():
                    return
                await call.send_audio(PCM)
                await call.get_send_audio_buffer_size()
                await call.clear_send_audio_buffer()
                await call.send_audio(PCM[:1280], wait=True)
                await call.wait_for_playout()
                if await call.connect(ring_time_seconds=1):
                    await call.whisper()
                    await call.barge()
                    await call.spy()
                ended = await (call.disconnect() if ctx.t.index % 2 else call.close())
                if ended:
                    ctx.flow_ends()


async def serve_flow(ctx: Ctx) -> None:
    ctx.flow_begins()
    with ctx.level(1):
        for i in range(2):
            await ctx.sandbox.place_call(audio=TestSignal(seconds=2, seed=i))
        echoed: dict[str, int] = {}
        with trio.CancelScope() as enough:

            async def handler(call: tf.Call) -> None:
                with ctx.level(2):
                    if not await call.answer():
                        return
                    echoed[call.id] = 0
                    try:
                        async for chunk in call.audio_stream():
                            await call.send_audio(chunk, wait=True)
                            echoed[call.id] += len(chunk)
                            if len(echoed) == 2 and min(echoed.values()) >= ECHOED_ENOUGH:
                                enough.cancel()
                    except (tf.BufferClosedError, tf.WSSCallClosedError):
                        pass

            await ctx.manager.serve_calls(handler)
        if enough.cancelled_caught:
            ctx.flow_ends()


FLOWS: Final[dict[str, Callable[[Ctx], Awaitable[None]]]] = {
    "enter": enter_flow,
    "claim": claim_flow,
    "commands": commands_flow,
    "serve": serve_flow,
}


# ── what is left behind ─────────────────────────────────────────────────────────────────


def all_tasks() -> list[trio.lowlevel.Task]:
    found: list[trio.lowlevel.Task] = []
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        found.append(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


def sdk_tasks() -> list[str]:
    """Running tasks of the SDK (not the sandbox's, not this script's)."""
    return [
        t.name
        for t in all_tasks()
        if t.name.startswith("telcoflow_trio.") and ".testing." not in t.name
    ]


def live_calls(sandbox: Sandbox) -> list[SimulatedCall]:
    return [c for c in sandbox.calls.values() if c.state in TOUCHED and not c.terminated.is_set()]


def bound_sessions(sandbox: Sandbox, mine: str | None = None) -> list[str]:
    """Open sessions bound to a connection: any (``mine`` None), or to ``mine`` or to a
    connection that is gone."""
    up = {c.sm_ws_id for c in sandbox.control_connections}
    return [
        f"session {r.id} open and bound to {r.bound_sm_ws_id}"
        for r in sandbox.sessions.values()
        if r.is_open
        and r.bound_sm_ws_id is not None
        and (mine is None or r.bound_sm_ws_id == mine or r.bound_sm_ws_id not in up)
    ]


async def poll(done: Callable[[], bool], seconds: float) -> None:
    with trio.move_on_after(seconds):
        while not done():  # noqa: ASYNC110 (bounded just above; no one event to wait on)
            await trio.sleep(0.005)


def describe(exc: BaseException) -> str:
    """An exception's type; a group's with its leaves' types."""
    if isinstance(exc, BaseExceptionGroup):
        inner = ", ".join(describe(e) for e in exc.exceptions)
        return f"{type(exc).__name__}[{inner}]"
    return type(exc).__name__


# ── running a try ───────────────────────────────────────────────────────────────────────


async def play(t: Try, bounds: Bounds) -> None:
    """Run try ``t`` on a fresh sandbox; fills in ``t``."""
    before = set(all_tasks())
    async with open_sandbox(time_scale=TIME_SCALE) as sandbox:
        ctx = Ctx(t, sandbox, Trigger(t.trigger, t.at))
        escaped: BaseException | None = None
        with trio.move_on_after(bounds.region) as guard:
            try:
                await _region(ctx)
            except BaseException as exc:
                # Everything that comes out is judged below, a Cancelled the guard sent
                # included (the guard's scope is left at once).
                escaped = exc
        ctx.trigger.disarm()
        if guard.cancel_called:
            t.problem("hangs", f"still running {bounds.region:.1f} s after the region began")
        _judge_exit(t, escaped, guard.cancel_called)
        if not t.cut and not t.completed and not guard.cancel_called:
            t.problem("flow_failures", "not cut short, yet the flow did not get to its end")
        await poll(lambda: not sdk_tasks(), TASKS_SETTLE)
        for name in sdk_tasks():
            t.problem("leaked_tasks", f"SDK task running after the manager: {name}")
        await _after_the_manager(sandbox, t)
    left = sorted(task.name for task in set(all_tasks()) - before)
    if left:
        t.problem("leaked_tasks", f"tasks left once the sandbox was closed: {left}")


async def _region(ctx: Ctx) -> None:
    t = ctx.t
    flow = FLOWS[t.flow]
    if t.where == "outer":
        ctx.trigger.arm()
    with trio.CancelScope() as outer:
        if t.where == "outer":
            ctx.trigger.watch(outer)
        async with tf.SessionManager(
            ctx.sandbox.config(), backoff=Backoff(first=0.02, maximum=0.1)
        ) as sm:
            ctx.sm = sm
            t.entered = (trio.current_time() - ctx.trigger.armed_at, ctx.trigger.steps)
            if t.where == "inner":
                ctx.trigger.arm()
                with trio.CancelScope() as inner:
                    ctx.trigger.watch(inner)
                    await flow(ctx)
                t.region = ctx.trigger.disarm()
                t.cut = inner.cancelled_caught
                await _inner_checks(ctx)
            elif t.where == "outer":
                await flow(ctx)
            else:
                # The user's code can raise only once it runs: the region is the flow.
                ctx.trigger.arm()
                await flow(ctx)
                t.region = ctx.trigger.disarm()
    if t.where == "outer":
        t.region = ctx.trigger.disarm()
    if outer.cancelled_caught:
        t.cut = True


def _judge_exit(t: Try, escaped: BaseException | None, guard_fired: bool) -> None:
    stop = STOPS.get(t.where)
    if stop is not None and t.cut:
        if escaped is None:
            t.escaped("(nothing)", f"the {stop.__name__} raised never came out")
        elif type(escaped) is not stop:
            what = describe(escaped)
            t.escaped(what, f"the {stop.__name__} raised came out as {what}: {escaped!r}")
        return
    if escaped is None or (guard_fired and isinstance(escaped, trio.Cancelled)):
        return
    if isinstance(escaped, DOCUMENTED):
        t.documented.append((type(escaped).__name__, str(escaped)))
    else:
        t.escaped(describe(escaped), f"{describe(escaped)} came out: {escaped!r}")


async def _inner_checks(ctx: Ctx) -> None:
    """The flow was cut but the manager lives on: what the flow claimed or answered is
    over on the server, and the manager still serves a new call."""
    sandbox, sm, t = ctx.sandbox, ctx.manager, ctx.t
    mine = sm.sm_ws_id
    await poll(lambda: not bound_sessions(sandbox, mine) and not live_calls(sandbox), INNER_SETTLE)
    for found in bound_sessions(sandbox, mine):
        t.problem("sessions_left_bound", f"manager still up, the flow's scopes over: {found}")
    for call in live_calls(sandbox):
        t.problem("calls_left_live", f"manager still up: call {call.call_id} {call.state.value}")
    try:
        failure = await _follow_up(sandbox, sm)
    except Exception as exc:
        failure = f"{describe(exc)}: {exc}"
    if failure is not None:
        t.problem("manager_broken", f"a new call after the inner cancel: {failure}")


async def _follow_up(sandbox: Sandbox, sm: tf.SessionManager) -> str | None:
    """Claim, answer and close one new call; what went wrong, or None."""
    sim = await sandbox.place_call()
    with trio.move_on_after(FOLLOW_UP_SECONDS):
        # Notifications of the flow's own calls may still be queued: skip them.
        async for note in sm.session_notifications:
            if note.session_id == sim.session_id:
                break
        async with sm.open_session(sim.session_id) as session:
            call = await session.incoming_call()
            if not await call.answer():
                return "answer() failed"
            if not await call.close():
                return "close() failed"
        return None
    return f"not done within {FOLLOW_UP_SECONDS:g} s"


async def _after_the_manager(sandbox: Sandbox, t: Try) -> None:
    def clean() -> bool:
        return not (live_calls(sandbox) or bound_sessions(sandbox) or sandbox.control_connections)

    await poll(clean, SERVER_SETTLE)
    for call in live_calls(sandbox):
        t.problem(
            "calls_left_live",
            f"call {call.call_id} {call.state.value} ({call.voice_connections} voice sockets)",
        )
    for found in bound_sessions(sandbox):
        t.problem("sessions_left_bound", f"after the manager: {found}")
    for conn in sandbox.control_connections:
        t.problem("connections_left_open", f"control connection {conn.sm_ws_id} still up")


def run_try(t: Try, bounds: Bounds) -> Try:
    """``play(t)`` in its own ``trio.run`` in a daemon thread, waited for at most
    ``bounds.thread`` seconds; a run still going then is abandoned and counted."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            trio.run(play, t, bounds)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"try {t.index} {t.spec}", daemon=True)
    thread.start()
    thread.join(bounds.thread)
    if thread.is_alive():
        t.problem("hangs", f"trio.run did not return within {bounds.thread:.1f} s (abandoned)")
    elif errors:
        what = describe(errors[0])
        t.escaped(what, f"trio.run raised {what}: {errors[0]!r}")
    return t


# ── planning tries ──────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Span:
    """A flow's measured length, uncut: its region with the manager, and the flow alone."""

    region_seconds: float
    region_steps: int
    enter_seconds: float
    enter_steps: int
    flow_seconds: float
    flow_steps: int


def bounds_for(t: Try, span: Span, hang_seconds: float) -> Bounds:
    """A try's region may take its flow's measured length and ``hang_seconds`` more (and,
    for ``inner``, the checks made while the manager is still up)."""
    extra = INNER_SETTLE + FOLLOW_UP_SECONDS if t.where == "inner" else 0.0
    return Bounds(span.region_seconds + hang_seconds + extra)


def calibrate(flow: str, hang_seconds: float) -> Span:
    """The longest of two uncut runs of ``flow`` (step counting on), with 20 % to spare,
    after one to warm up (the first connection in a process is several times slower)."""
    runs = []
    for i in range(3):
        t = run_try(Try(-1 - i, flow, "outer", "steps", math.inf), Bounds(hang_seconds * 4))
        if t.problems or not t.completed:
            problems = "; ".join(text for _, text in t.problems) or "did not complete"
            raise SystemExit(f"calibration: the {flow} flow fails even uncut: {problems}")
        runs.append(t)
    del runs[0]
    return Span(
        max(t.region[0] for t in runs) * 1.2,
        int(max(t.region[1] for t in runs) * 1.2) + 1,
        max(t.entered[0] for t in runs) * 1.2,
        int(max(t.entered[1] for t in runs) * 1.2) + 1,
        max(t.flow_span[0] for t in runs) * 1.2,
        int(max(t.flow_span[1] for t in runs) * 1.2) + 1,
    )


def plan(
    index: int, rng: random.Random, spans: dict[str, Span], rotation: list[tuple[str, str]]
) -> Try:
    flow, where = rotation[index % len(rotation)]
    if where == "raise":
        where = rng.choice(sorted(STOPS))
    span = spans[flow]
    # Half the draws early: while the manager connects (outer), or in the flow's first
    # 50 ms or quarter of its steps (a claim's round trip); half over the whole region.
    early = rng.random() < 0.5
    if rng.random() < 0.5:
        if where == "outer":
            top = span.enter_seconds if early else span.region_seconds
        else:
            top = min(span.flow_seconds, EARLY_SECONDS) if early else span.flow_seconds
        return Try(index, flow, where, "time", rng.uniform(0, top))
    if where == "outer":
        most = span.enter_steps if early else span.region_steps
    else:
        most = span.flow_steps // 4 if early else span.flow_steps
    return Try(index, flow, where, "steps", rng.randint(1, max(1, most)))


def parse_spec(spec: str) -> tuple[str, str, str, float]:
    """``flow:where:trigger:value``, as a failed try prints it."""
    try:
        flow, where, trigger, value = spec.split(":")
        at = float(value) if trigger == "time" else int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not flow:where:trigger:value: {spec!r}") from None
    if flow not in FLOWS or where not in {"outer", "inner", *STOPS} or trigger not in TRIGGERS:
        raise argparse.ArgumentTypeError(f"unknown flow, where or trigger in {spec!r}")
    if flow == "enter" and where == "inner":
        raise argparse.ArgumentTypeError("the enter flow has no inner cut")
    return flow, where, trigger, at


# ── the run ─────────────────────────────────────────────────────────────────────────────


@dataclass
class Totals:
    tries: int = 0
    cut: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    exception_types: Counter[str] = field(default_factory=Counter)
    documented: Counter[str] = field(default_factory=Counter)
    documented_examples: list[str] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    """Tries by ``flow:where``."""
    raised_from: Counter[str] = field(default_factory=Counter)
    failed: list[Try] = field(default_factory=list)

    def add(self, t: Try) -> None:
        self.tries += 1
        self.cut += t.cut
        self.by_kind[f"{t.flow}:{t.where}"] += 1
        if t.raised_from is not None:
            self.raised_from[("manager body", "session body or handler")[t.raised_from - 1]] += 1
        for kind, message in t.documented:
            self.documented[kind] += 1
            if len(self.documented_examples) < 5:
                self.documented_examples.append(f"try {t.index} ({t.spec}): {kind}: {message}")
        self.exception_types.update(t.undocumented)
        # A hang is counted once per try (the guard and the thread may both see it).
        self.counts["hangs"] += any(kind == "hangs" for kind, _ in t.problems)
        for kind, _ in t.problems:
            if kind != "hangs":
                self.counts[kind] += 1
        if t.problems:
            self.failed.append(t)


def report(totals: Totals, seconds: float, args: argparse.Namespace) -> dict[str, object]:
    return {
        "tries": totals.tries,
        "seed": args.seed,
        "seconds": round(seconds, 1),
        "tries_per_second": round(totals.tries / seconds, 2) if seconds else None,
        "cut_short": totals.cut,
        "counts": {kind: totals.counts[kind] for kind in COUNTS},
        "undocumented_exception_types": dict(totals.exception_types),
        "documented_errors": dict(totals.documented),
        "documented_error_examples": totals.documented_examples,
        "tries_by_flow": dict(sorted(totals.by_kind.items())),
        "raised_from": dict(totals.raised_from),
        "failed_tries": [
            {"index": t.index, "spec": t.spec, "problems": [f"{k}: {v}" for k, v in t.problems]}
            for t in totals.failed[:50]
        ],
    }


def print_text(summary: dict[str, object], totals: Totals) -> None:
    for t in totals.failed[:20]:
        print(f"try {t.index} ({t.spec}):")
        for kind, text in t.problems:
            print(f"    {kind}: {text}")
    if len(totals.failed) > 20:
        print(f"... and {len(totals.failed) - 20} more failed tries")
    print(
        f"{summary['tries']} tries in {summary['seconds']} s "
        f"({summary['tries_per_second']} a second), seed {summary['seed']}; "
        f"{summary['cut_short']} cut short"
    )
    counts = summary["counts"]
    assert isinstance(counts, dict)
    for kind in COUNTS:
        print(f"  {kind:24} {counts[kind]}")
    if totals.exception_types:
        print(f"  undocumented exception types: {dict(totals.exception_types)}")
    print(f"  tries by flow: {summary['tries_by_flow']}")
    print(f"  exceptions raised from: {summary['raised_from']}")
    if totals.documented:
        print(f"  documented errors (allowed): {dict(totals.documented)}")
        for example in totals.documented_examples:
            print(f"    {example}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tries", type=int, default=2000, help="tries to run (default 2000)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the draws (default 13)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: about 100 tries")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--hang-seconds",
        type=float,
        default=5.0,
        help="real seconds past a flow's measured length after which a try has hung (5)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=math.inf,
        help="start no new try after this many seconds (the tries done are reported)",
    )
    parser.add_argument(
        "--replay", type=parse_spec, metavar="SPEC", help="run only this try, --tries times"
    )
    parser.add_argument(
        "--flows",
        type=lambda text: text.split(","),
        default=list(FLOWS),
        metavar="LIST",
        help=f"only these flows, comma-separated (default {','.join(FLOWS)})",
    )
    parser.add_argument("--verbose", action="store_true", help="progress and failures on stderr")
    args = parser.parse_args(argv)
    if args.quick:
        args.tries = min(args.tries, 10 * len(FLOWS_WHERE))
    if args.tries < 1 or args.hang_seconds <= 0:
        parser.error("--tries and --hang-seconds must be positive")
    if not args.flows or not set(args.flows) <= set(FLOWS):
        parser.error(f"--flows must name some of {', '.join(FLOWS)}")
    rotation = [(flow, where) for flow, where in FLOWS_WHERE if flow in args.flows]

    started = time.monotonic()
    flows = sorted({args.replay[0]} if args.replay else set(args.flows))
    spans = {flow: calibrate(flow, args.hang_seconds) for flow in flows}
    rng = random.Random(args.seed)
    totals = Totals()
    for i in range(args.tries):
        if time.monotonic() - started > args.max_seconds:
            break
        t = Try(i, *args.replay) if args.replay else plan(i, rng, spans, rotation)
        span = spans[t.flow]
        t = run_try(t, bounds_for(t, span, args.hang_seconds))
        totals.add(t)
        if args.verbose:
            if t.problems:
                print(f"try {i} ({t.spec}): {t.problems}", file=sys.stderr, flush=True)
            if (i + 1) % 100 == 0:
                elapsed = time.monotonic() - started
                bad = sum(totals.counts.values())
                print(f"{i + 1} tries, {elapsed:.0f} s, {bad} problems", file=sys.stderr)
    summary = report(totals, time.monotonic() - started, args)
    if args.json:
        print(json.dumps(summary))
    else:
        print_text(summary, totals)
    return 1 if any(totals.counts[kind] for kind in COUNTS) else 0


if __name__ == "__main__":
    sys.exit(main())
