"""A played call as invariants see it, and the invariants every telephony agent must keep.

An invariant is any callable taking a :class:`PlayedCall`; it fails by raising
``AssertionError`` (a plain ``assert`` will do), and its message says what went wrong.
Times are simulated seconds on the sandbox's clock throughout.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

from .._errors import BufferClosedError, WSSCallClosedError
from ..sandbox import CallerState, SimulatedCall
from ._record import AudioWrite, CallLedger, HandlerRun
from ._script import CallScript

__all__ = [
    "DEFAULT_INVARIANTS",
    "Invariant",
    "PlayedCall",
    "QuietWhileInterrupted",
    "Violation",
    "audible",
    "commands_answered_within_deadline",
    "ends_closed_on_both_sides",
    "no_stale_audio_after_interrupt",
    "no_undocumented_errors",
]

Invariant = Callable[["PlayedCall"], object]
"""Takes a :class:`PlayedCall`; raises ``AssertionError`` when the agent broke it."""

AUDIBLE_LEVEL: Final = 300
"""Peak sample magnitude above which a frame counts as sound rather than silence."""
DEADLINE_SLACK: Final = 1.0
"""Seconds granted beyond a command's own deadline (scheduling, a frame being written)."""


def audible(pcm: bytes, level: int = AUDIBLE_LEVEL) -> bool:
    """Whether 16-bit PCM has any sample louder than ``level``."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return any(abs(s) > level for s in samples)


@attrs.frozen
class Violation:
    """An invariant that did not hold: its name and what went wrong."""

    invariant: str
    message: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"


@attrs.define(eq=False)
class PlayedCall:
    """One call as it was played: the script, the sandbox's view (``sim``) and the
    agent's (``ledgers``: every client-side :class:`~telcoflow_trio.Call` object the agent
    got for it, with its audio writes, clears and commands; ``handler_runs``)."""

    sim: SimulatedCall
    script: CallScript | None = None
    ledgers: list[CallLedger] = attrs.field(factory=list)
    handler_runs: list[HandlerRun] = attrs.field(factory=list)
    played_steps: list[tuple[float, str]] = attrs.field(factory=list)
    """``(time, what happened)`` for every step the runner played."""
    ended_at: float | None = None
    """When the call ended on the sandbox, if it did."""
    stopped_at: float | None = None
    """When the runner began stopping the agent."""
    allowed_errors: tuple[type[BaseException], ...] = (WSSCallClosedError, BufferClosedError)
    handler_exit_deadline: float = 5.0
    violations: list[Violation] = attrs.field(factory=list)
    """Filled in by the runner: every invariant that did not hold."""

    # ── reading the call ─────────────────────────────────────────────────────────────

    @property
    def call_id(self) -> str:
        return self.sim.call_id

    @property
    def heard(self) -> bytes:
        """Everything the caller heard from the agent (channel 0)."""
        return self.sim.heard

    @property
    def spoken(self) -> bytes:
        """Everything the caller said."""
        return bytes(self.sim.spoken)

    @property
    def answered_at(self) -> float | None:
        """When the sandbox accepted ``call.answer``, if it did."""
        for record in self.sim.commands:
            if record.command == "call.answer" and record.success:
                return record.time
        return None

    @property
    def agent_answered_at(self) -> float | None:
        """When the agent's ``answer()`` returned success (the server's answer may be late)."""
        for ledger in self.ledgers:
            for entry in ledger.commands:
                if entry.name == "answer" and entry.outcome == "ok":
                    return entry.ended
        return None

    def heard_between(self, start: float, end: float = math.inf) -> bytes:
        """Agent audio that reached the caller in ``[start, end)``."""
        return b"".join(
            f.pcm for f in self.sim.heard_frames if f.channel == 0 and start <= f.time < end
        )

    def audible_between(self, start: float, end: float = math.inf) -> bool:
        """Whether the caller heard the agent make a sound in ``[start, end)``."""
        return audible(self.heard_between(start, end))

    def caller_turns(self, gap: float = 0.1) -> list[tuple[float, float]]:
        """``(start, end)`` of each stretch in which the caller made a sound; pauses shorter
        than ``gap`` do not split a turn."""
        marks = self.sim.spoken_marks
        spoken = self.sim.spoken
        rate = self.sim.bytes_per_second()
        turns: list[tuple[float, float]] = []
        for i, (time, offset) in enumerate(marks):
            end_offset = marks[i + 1][1] if i + 1 < len(marks) else len(spoken)
            if not audible(bytes(spoken[offset:end_offset])):
                continue
            end = time + (end_offset - offset) / rate
            if turns and time - turns[-1][1] <= gap:
                turns[-1] = (turns[-1][0], end)
            else:
                turns.append((time, end))
        return turns

    @property
    def writes(self) -> list[AudioWrite]:
        """Every ``send_audio`` of every client-side call object, in order."""
        return [w for ledger in self.ledgers for w in ledger.writes]

    def summary(self) -> str:
        """A few lines for a failure message."""
        sim = self.sim
        lines = [f"call {sim.call_id}: {sim.state.value}, ended by {sim.ended_by}"]
        lines += [f"  {t:7.2f}s  {what}" for t, what in self.played_steps]
        commands = ", ".join(
            f"{c.command}@{c.time:.2f}={'ok' if c.success else c.error_code}" for c in sim.commands
        )
        lines.append(f"  server saw commands: {commands or 'none'}")
        lines.append(
            f"  heard {len(sim.heard)} bytes, caller spoke {len(sim.spoken)} bytes, "
            f"{len(sim.interrupts)} interrupts"
        )
        for run in self.handler_runs:
            ended = "still running" if run.ended is None else f"returned at {run.ended:.2f}s"
            error = "" if run.error is None else f", raised {type(run.error).__name__}"
            lines.append(f"  handler started at {run.started:.2f}s, {ended}{error}")
        return "\n".join(lines)


# ── the built-in invariants ─────────────────────────────────────────────────────────────


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def no_undocumented_errors(played: PlayedCall) -> None:
    """The handler returned normally, or raised only what the SDK documents for a call
    that ends under it (``allowed_errors``: ``WSSCallClosedError``, ``BufferClosedError``),
    alone or in an exception group."""
    for run in played.handler_runs:
        if run.error is None:
            continue
        for leaf in _leaves(run.error):
            assert isinstance(leaf, played.allowed_errors), (
                f"the handler raised {type(leaf).__module__}.{type(leaf).__qualname__}: {leaf}"
            )


def ends_closed_on_both_sides(played: PlayedCall) -> None:
    """Once the agent stopped, every call it received is over on the server (ended, its
    session closed) and on the client (the ``Call`` terminated, its session closed); and a
    handler returns within ``handler_exit_deadline`` of its call ending."""
    sim = played.sim
    if played.ledgers:
        handed_off = all(ledger.call.handed_off for ledger in played.ledgers)
        assert sim.state is CallerState.ENDED, (
            f"the call is still {sim.state.value} on the server after the agent stopped"
            + (": it was handed off (to_json) and nobody took it" if handed_off else "")
        )
        assert not sim.session.is_open, "the call's session is still open on the server"
    for ledger in played.ledgers:
        call = ledger.call
        if call.handed_off:
            continue
        assert call.state.value == "TERMINATED", (
            f"the agent's Call object is still {call.state.value} after the agent stopped"
        )
        session = ledger.session
        assert session is None or session.is_closed, "the agent's Session is still open"
    if played.ended_at is None:
        return
    for run in played.handler_runs:
        finished = run.ended if run.ended is not None else played.stopped_at
        if finished is None:
            continue
        late = finished - max(played.ended_at, run.started)
        assert late <= played.handler_exit_deadline, (
            f"the handler was still running {late:.1f} s after the call ended "
            f"(allowed {played.handler_exit_deadline:g} s)"
        )


def commands_answered_within_deadline(played: PlayedCall) -> None:
    """Every command the agent sent (``answer``, ``connect``, ..., the interrupt of
    ``clear_send_audio_buffer``) got its result, truthy or falsy, within its deadline
    (timeout plus the protocol's 5 s grace)."""
    for ledger in played.ledgers:
        for entry in ledger.commands:
            finished = entry.ended if entry.ended is not None else played.stopped_at
            if finished is None:
                continue
            took = finished - entry.started
            assert took <= entry.deadline + DEADLINE_SLACK, (
                f"{entry.name} took {took:.1f} s (deadline {entry.deadline:g} s, "
                f"outcome {entry.outcome})"
            )


def _common_prefix(a: bytes, b: bytes) -> int:
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def _accounts_for(segment: bytes, writes: Sequence[AudioWrite], cut: Sequence[bool]) -> int:
    """How much of ``segment`` the writes explain, in order; a write marked ``cut`` may
    have been only partly queued (a clear or a cancellation came while it waited)."""
    best = 0
    failed: set[tuple[int, int]] = set()
    budget = 10_000

    def walk(i: int, pos: int) -> bool:
        nonlocal best, budget
        best = max(best, pos)
        if pos == len(segment):
            return True
        if i == len(writes) or (i, pos) in failed or budget <= 0:
            return False
        budget -= 1
        data = writes[i].data
        common = _common_prefix(segment[pos:], data)
        if not cut[i]:
            whole = common == len(data) or pos + common == len(segment)
            if whole and walk(i + 1, pos + common):
                return True
        else:
            for length in range(common, -1, -1):
                if walk(i + 1, pos + length):
                    return True
                if budget <= 0:
                    break
        failed.add((i, pos))
        return False

    return len(segment) if walk(0, 0) else best


def no_stale_audio_after_interrupt(played: PlayedCall) -> None:
    """No audio handed to ``send_audio`` before an interruption (``clear_send_audio_buffer``)
    began reaches the caller after the server got the interrupt; and every byte the caller
    heard is the agent's audio, in the order the agent queued it, never more than was pulled.

    Checked byte for byte when the agent used one ``Call`` object for the call (the usual
    case); a call resumed on a second object after a control-plane blip is not checked."""
    sim = played.sim
    assert sim.excess_bytes == 0, f"the agent sent {sim.excess_bytes} bytes more than pulled"
    active = [ledger for ledger in played.ledgers if ledger.writes or ledger.clears]
    if len(active) != 1:
        return
    ledger = active[0]
    interrupts = sim.interrupts
    assert len(interrupts) <= len(ledger.clears), (
        f"the server got {len(interrupts)} interrupts for {len(ledger.clears)} clears"
    )
    heard = sim.heard
    bounds = [0, *(i.heard_bytes for i in interrupts), len(heard)]
    for epoch in range(len(interrupts) + 1):
        segment = heard[bounds[epoch] : bounds[epoch + 1]]
        if not segment:
            continue
        # A write refused as full queued nothing; any other may have queued only a prefix
        # if it was cancelled, closed or still waiting when the next clear began.
        writes = [w for w in ledger.writes if w.epoch == epoch and w.outcome != "full"]
        clear_at = ledger.clears[epoch].started if epoch < len(ledger.clears) else math.inf
        cut = [w.outcome != "queued" or w.ended is None or w.ended >= clear_at for w in writes]
        explained = _accounts_for(segment, writes, cut)
        where = "before the first interrupt" if epoch == 0 else f"after interrupt {epoch}"
        assert explained == len(segment), (
            f"the caller heard {len(segment)} bytes {where}; only the first {explained} are "
            f"audio the agent queued after that interruption began (the rest is stale, "
            f"reordered or foreign)"
        )


@attrs.frozen
class QuietWhileInterrupted:
    """For agents that stop talking when the caller talks over them (barge-in): once the
    agent has interrupted itself during a caller's turn, the caller hears no sound from it
    from ``grace`` seconds after the interrupt until the caller stops talking.

    Not a default: an echo agent talks over its caller by design. Add it with
    ``invariants=[QuietWhileInterrupted()]``.
    """

    grace: float = 0.3
    gap: float = 0.25

    def __call__(self, played: PlayedCall) -> None:
        turns = played.caller_turns(self.gap)
        for number, interrupt in enumerate(played.sim.interrupts, 1):
            for start, end in turns:
                if not start <= interrupt.time <= end:
                    continue
                quiet_from = interrupt.time + self.grace
                assert not played.audible_between(quiet_from, end), (
                    f"after interrupt {number} at {interrupt.time:.2f}s the agent kept talking "
                    f"while the caller was still speaking (until {end:.2f}s)"
                )

    @property
    def __name__(self) -> str:
        return "quiet_while_interrupted"


DEFAULT_INVARIANTS: Final[tuple[Invariant, ...]] = (
    no_undocumented_errors,
    ends_closed_on_both_sides,
    commands_answered_within_deadline,
    no_stale_audio_after_interrupt,
)


def invariant_name(invariant: Any) -> str:
    return str(getattr(invariant, "__name__", None) or type(invariant).__name__)


def check_call(played: PlayedCall, invariants: Sequence[Invariant]) -> list[Violation]:
    """Run ``invariants`` over ``played``; the violations, in order."""
    found: list[Violation] = []
    for invariant in invariants:
        try:
            invariant(played)
        except AssertionError as exc:
            found.append(Violation(invariant_name(invariant), str(exc) or "assertion failed"))
    return found
