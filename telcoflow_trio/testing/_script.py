"""Call scripts: what a simulated caller (and the network under it) does, step by step.

A :class:`CallScript` is a sequence of steps played in order against an agent through the
sandbox (see :func:`telcoflow_trio.testing.run_script`). Steps that last (``Speak``,
``Pause``) move the script's clock on; the others happen at an instant and their effects
carry on in the background (speech keeps playing while the next step runs, a pull stall
lasts its time). ``HangUp`` and ``Shutdown`` end a script; a script without either ends
with the caller hanging up.

Every class here is frozen and its ``repr`` is a Python expression, so a failing script
printed by hypothesis can be pasted back into a test.
"""

from __future__ import annotations

import random
import sys
from array import array
from collections.abc import Iterable
from typing import Any, Final, Literal, TypeAlias

import attrs

from .._config import SampleRate
from ..sandbox import (
    AudioSource,
    ConnectBehaviour,
    ConnectOutcome,
    Silence,
    TestSignal,
    Tone,
)

__all__ = [
    "CallScript",
    "DropControl",
    "DropVoice",
    "HangUp",
    "Noise",
    "Pause",
    "SendCallError",
    "SetConnect",
    "Shutdown",
    "SlowCommands",
    "Speak",
    "StallPulls",
    "Step",
]

Sound = Literal["signal", "tone", "noise", "silence"]
SOUNDS: Final[tuple[Sound, ...]] = ("signal", "tone", "noise", "silence")


def _compact_repr(self: Any) -> str:
    """``Name(field=value, ...)`` with only the fields that differ from their defaults."""
    parts: list[str] = []
    for field in attrs.fields(type(self)):
        value = getattr(self, field.name)
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if field.default is attrs.NOTHING or value != default:
            parts.append(f"{field.name}={value!r}")
    return f"{type(self).__name__}({', '.join(parts)})"


@attrs.frozen(repr=False)
class Noise:
    """``seconds`` of white noise at ``amplitude`` (0..1 of full scale); ``seed`` fixes it."""

    __repr__ = _compact_repr

    seconds: float = 1.0
    seed: int = 0
    amplitude: float = 0.3

    def render(self, sample_rate: int) -> bytes:
        count = round(sample_rate * self.seconds)
        peak = round(32767 * max(0.0, min(1.0, self.amplitude)))
        rng = random.Random(self.seed)
        samples = array("h", (rng.randint(-peak, peak) for _ in range(count)))
        if sys.byteorder == "big":
            samples.byteswap()
        return samples.tobytes()


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"seconds must be a number, got {type(value).__name__}")
    if not 0 <= value < 3600:
        raise ValueError(f"seconds must be in [0, 3600), got {value}")
    return float(value)


class _StepBase:
    """What every step shares: a pasteable repr, and no script time of its own (the steps
    that last, ``Speak`` and ``Pause``, override :attr:`duration`)."""

    __slots__ = ()
    __repr__ = _compact_repr

    @property
    def duration(self) -> float:
        return 0.0


@attrs.frozen(repr=False)
class Speak(_StepBase):
    """The caller speaks for ``seconds``: a ``sound`` (``signal``, ``tone``, ``noise`` or
    ``silence``, varied by ``seed``), or any :class:`AudioSource` given as ``audio``."""

    seconds: float = attrs.field(converter=_seconds)
    sound: Sound = "signal"
    seed: int = 0
    audio: AudioSource | None = attrs.field(default=None, kw_only=True)

    def source(self) -> AudioSource:
        """What the caller says."""
        if self.audio is not None:
            return self.audio
        if self.sound == "tone":
            return Tone(frequency=200 + 50 * (self.seed % 30), seconds=self.seconds)
        if self.sound == "noise":
            return Noise(self.seconds, self.seed)
        if self.sound == "silence":
            return Silence(self.seconds)
        return TestSignal(self.seconds, self.seed)

    @property
    def duration(self) -> float:
        return self.seconds


@attrs.frozen(repr=False)
class Pause(_StepBase):
    """The caller stays silent for ``seconds`` (once the call is live, the line carries
    silence, frame by frame, as a phone line does)."""

    seconds: float = attrs.field(converter=_seconds)

    @property
    def duration(self) -> float:
        return self.seconds


@attrs.frozen(repr=False)
class HangUp(_StepBase):
    """The caller hangs up (``call.terminated``). Ends the script."""


@attrs.frozen(repr=False)
class Shutdown(_StepBase):
    """The agent is stopped while the call is up, as a deploy would stop it. Ends the script;
    the agent must close what it holds."""


@attrs.frozen(repr=False)
class SendCallError(_StepBase):
    """The server sends a ``call.error`` event on the voice plane; the call stays up."""

    code: str = "TTS_SESSION_ERROR"
    message: str = "simulated error"


@attrs.frozen(repr=False)
class DropVoice(_StepBase):
    """The call's voice WebSocket is cut without a close frame (the call stays up)."""


@attrs.frozen(repr=False)
class DropControl(_StepBase):
    """Every control WebSocket is cut without a close frame; agents reconnect."""


@attrs.frozen(repr=False)
class StallPulls(_StepBase):
    """The server pulls no agent audio for ``seconds``, then resumes at its normal pace."""

    seconds: float = attrs.field(converter=_seconds)


@attrs.frozen(repr=False)
class SlowCommands(_StepBase):
    """From now on the server answers voice commands ``seconds`` late (past a command's
    own timeout it answers ``TIMEOUT`` at that timeout, as the protocol says); 0 restores."""

    seconds: float = attrs.field(converter=_seconds)


@attrs.frozen(repr=False)
class SetConnect(_StepBase):
    """How the destination of the agent's next ``call.connect`` behaves: picks up after
    ``answer_after`` seconds, rings out (``UNANSWERED``) or is refused (``FAILED``)."""

    outcome: Literal["ANSWERED", "UNANSWERED", "FAILED"] = "ANSWERED"
    answer_after: float = attrs.field(default=1.0, converter=_seconds)

    def behaviour(self) -> ConnectBehaviour:
        return ConnectBehaviour(ConnectOutcome(self.outcome), self.answer_after)


Step: TypeAlias = (
    Speak
    | Pause
    | HangUp
    | Shutdown
    | SendCallError
    | DropVoice
    | DropControl
    | StallPulls
    | SlowCommands
    | SetConnect
)
STEP_TYPES: Final = (
    Speak,
    Pause,
    HangUp,
    Shutdown,
    SendCallError,
    DropVoice,
    DropControl,
    StallPulls,
    SlowCommands,
    SetConnect,
)
TERMINAL_STEPS: Final = (HangUp, Shutdown)


def _steps(value: Iterable[Step]) -> tuple[Step, ...]:
    steps = tuple(value)
    for i, step in enumerate(steps):
        if not isinstance(step, STEP_TYPES):
            raise TypeError(f"steps[{i}] is not a script step: {type(step).__name__}")
        if isinstance(step, TERMINAL_STEPS) and i != len(steps) - 1:
            raise ValueError(f"steps[{i}]: {type(step).__name__}() must be the last step")
    return steps


def _sample_rate(_inst: object, _attr: object, value: int) -> None:
    if value not in (8000, 16000, 24000):
        raise ValueError(f"sample_rate must be 8000, 16000 or 24000, got {value!r}")


@attrs.frozen
class CallScript:
    """One inbound call, from the caller's side: ``steps`` in order, at ``sample_rate``.

    ``CallScript([Speak(1.0), Pause(0.5), HangUp()])``
    """

    steps: tuple[Step, ...] = attrs.field(converter=_steps)
    sample_rate: SampleRate = attrs.field(default=16000, validator=_sample_rate, kw_only=True)
    caller: str = attrs.field(default="+15557654321", kw_only=True)

    def __repr__(self) -> str:
        extra = ""
        if self.sample_rate != 16000:
            extra += f", sample_rate={self.sample_rate}"
        if self.caller != "+15557654321":
            extra += f", caller={self.caller!r}"
        return f"CallScript([{', '.join(map(repr, self.steps))}]{extra})"

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def duration(self) -> float:
        """Seconds of script time the steps take (speech and pauses)."""
        return sum(step.duration for step in self.steps)

    @property
    def ending(self) -> Literal["hang_up", "shutdown"]:
        """How the script ends: the caller hangs up, or the agent is shut down."""
        return "shutdown" if self.steps and isinstance(self.steps[-1], Shutdown) else "hang_up"

    def describe(self) -> str:
        """One line per step with its start time, for humans."""
        lines: list[str] = []
        at = 0.0
        for step in self.steps:
            lines.append(f"{at:7.2f}s  {step!r}")
            at += step.duration
        if self.ending == "hang_up" and not (self.steps and isinstance(self.steps[-1], HangUp)):
            lines.append(f"{at:7.2f}s  (the caller hangs up)")
        return "\n".join(lines)
