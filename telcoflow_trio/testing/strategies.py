"""Hypothesis strategies for property-based tests of Telcoflow agents (needs ``hypothesis``).

Three families:

- **Frames** of both WebSocket planes (``PROTOCOL.md``), as frozen frame objects
  (``server_control_frames``, ``client_voice_frames``, ...), as wire text
  (``server_control_texts``, ...), and malformed: :func:`malformed_control_texts`,
  :func:`malformed_voice_messages` (wrong types, missing keys, unknown types, truncated
  text and binary), plus hostile JSON (``typed_objects``).
- **Audio**: :func:`pcm` (silence, tones, noise, test signals of a given duration and
  sample rate) and :func:`audio_sources` (the same as sandbox :class:`AudioSource` objects).
- **Call scripts**: :func:`call_scripts` and one strategy per step kind, for
  :func:`telcoflow_trio.testing.run_script`.

Importing :mod:`telcoflow_trio.testing` never needs hypothesis; this module does.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Final

from hypothesis import strategies as st

from ..protocol import control
from ..sandbox import (
    AudioSource,
    Silence,
    TestSignal,
    Tone,
)
from ._script import (
    CallScript,
    DropControl,
    DropVoice,
    HangUp,
    Noise,
    Pause,
    SendCallError,
    SetConnect,
    Shutdown,
    SlowCommands,
    Speak,
    StallPulls,
    Step,
)
from ._wire_strategies import (
    activities,
    audio_frames,
    client_control_frames,
    client_control_texts,
    client_voice_frames,
    client_voice_texts,
    field_names,
    frame_types,
    handoff_documents,
    hostile_values,
    ids,
    ints,
    json_objects,
    json_scalars,
    json_values,
    malformed_control_texts,
    malformed_voice_messages,
    nullable_ints,
    server_control_frames,
    server_control_texts,
    server_voice_frames,
    server_voice_messages,
    session_infos,
    texts,
    typed_objects,
)

__all__ = [
    "STEP_KINDS",
    "activities",
    "audio_frames",
    "audio_sources",
    "call_errors",
    "call_scripts",
    "client_control_frames",
    "client_control_texts",
    "client_voice_frames",
    "client_voice_texts",
    "connect_outcomes",
    "field_names",
    "frame_types",
    "handoff_documents",
    "hostile_values",
    "ids",
    "ints",
    "json_objects",
    "json_scalars",
    "json_values",
    "malformed_control_texts",
    "malformed_voice_messages",
    "nullable_ints",
    "pauses",
    "pcm",
    "pull_stalls",
    "raw_pcm",
    "sample_rates",
    "server_control_frames",
    "server_control_texts",
    "server_voice_frames",
    "server_voice_messages",
    "session_infos",
    "slow_commands",
    "speech",
    "steps",
    "texts",
    "typed_objects",
]

# ── audio ───────────────────────────────────────────────────────────────────────────────

sample_rates: st.SearchStrategy[control.SampleRate] = st.sampled_from(control.SAMPLE_RATES)


def _durations(min_seconds: float, max_seconds: float) -> st.SearchStrategy[float]:
    # Whole centiseconds: they shrink to short, readable values.
    low, high = round(min_seconds * 100), round(max_seconds * 100)
    if not 0 <= low <= high:
        raise ValueError(f"need 0 <= min_seconds <= max_seconds, got {min_seconds}, {max_seconds}")
    return st.integers(low, high).map(lambda n: n / 100)


def audio_sources(
    *,
    min_seconds: float = 0.0,
    max_seconds: float = 2.0,
    kinds: Collection[str] = ("silence", "tone", "noise", "signal"),
) -> st.SearchStrategy[AudioSource]:
    """Sandbox audio sources (render them for any rate): silence, sine tones, white noise
    and test signals, lasting between ``min_seconds`` and ``max_seconds``."""
    seconds = _durations(min_seconds, max_seconds)
    options: dict[str, st.SearchStrategy[AudioSource]] = {
        "silence": st.builds(Silence, seconds),
        "tone": st.builds(
            Tone,
            frequency=st.integers(50, 3400).map(float),
            seconds=seconds,
            amplitude=st.integers(1, 100).map(lambda n: n / 100),
        ),
        "noise": st.builds(
            Noise,
            seconds,
            st.integers(0, 2**32),
            st.integers(1, 100).map(lambda n: n / 100),
        ),
        "signal": st.builds(TestSignal, seconds, st.integers(0, 1000)),
    }
    unknown = set(kinds) - set(options)
    if unknown or not kinds:
        raise ValueError(f"kinds must be some of {sorted(options)}, got {sorted(kinds)}")
    return st.one_of([options[k] for k in options if k in kinds])


def pcm(
    *,
    sample_rate: control.SampleRate | st.SearchStrategy[control.SampleRate] = 16000,
    min_seconds: float = 0.0,
    max_seconds: float = 1.0,
    kinds: Collection[str] = ("silence", "tone", "noise", "signal"),
) -> st.SearchStrategy[bytes]:
    """PCM bytes (16-bit little-endian mono) at ``sample_rate`` (a rate, or a strategy of
    rates such as :data:`sample_rates`), lasting ``min_seconds``..``max_seconds``."""
    rates = sample_rate if isinstance(sample_rate, st.SearchStrategy) else st.just(sample_rate)
    sources = audio_sources(min_seconds=min_seconds, max_seconds=max_seconds, kinds=kinds)
    return st.tuples(sources, rates).map(lambda pair: pair[0].render(pair[1]))


def raw_pcm(*, max_bytes: int = 2048) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes of whole 16-bit samples (at most ``max_bytes``)."""
    return st.binary(max_size=max_bytes).map(lambda b: b[: len(b) - len(b) % 2])


# ── call scripts ────────────────────────────────────────────────────────────────────────


def speech(
    *, min_seconds: float = 0.1, max_seconds: float = 2.0, sounds: Sequence[str] | None = None
) -> st.SearchStrategy[Speak]:
    """The caller speaks: a test signal, a tone, noise or silence."""
    chosen = ("signal", "tone", "noise", "silence") if sounds is None else tuple(sounds)
    return st.builds(
        Speak,
        _durations(min_seconds, max_seconds),
        st.sampled_from(chosen),
        st.integers(0, 1000),
    )


def pauses(*, min_seconds: float = 0.1, max_seconds: float = 2.0) -> st.SearchStrategy[Pause]:
    """The caller stays silent."""
    return st.builds(Pause, _durations(min_seconds, max_seconds))


def call_errors() -> st.SearchStrategy[SendCallError]:
    """A ``call.error`` from the server."""
    return st.builds(
        SendCallError,
        st.sampled_from(["TTS_SESSION_ERROR", "ASR_SESSION_ERROR", "MEDIA_ERROR"]),
        st.sampled_from(["simulated error", "the media server hiccuped"]),
    )


def pull_stalls(*, max_seconds: float = 1.5) -> st.SearchStrategy[StallPulls]:
    """The server stops pulling agent audio for a while."""
    return st.builds(StallPulls, _durations(0.1, max_seconds))


def slow_commands(*, max_seconds: float = 3.0) -> st.SearchStrategy[SlowCommands]:
    """Command responses come late (0 restores prompt responses)."""
    return st.builds(SlowCommands, _durations(0.0, max_seconds))


def connect_outcomes() -> st.SearchStrategy[SetConnect]:
    """How the destination of the next ``call.connect`` behaves."""
    return st.builds(
        SetConnect,
        st.sampled_from(["ANSWERED", "UNANSWERED", "FAILED"]),
        _durations(0.0, 3.0),
    )


STEP_KINDS: Final = frozenset(
    {
        "speak",
        "pause",
        "call_error",
        "drop_voice",
        "drop_control",
        "stall_pulls",
        "slow_commands",
        "connect",
    }
)
ENDINGS: Final = frozenset({"hang_up", "shutdown", "implicit"})


def steps(
    kinds: Collection[str] = STEP_KINDS, *, max_seconds: float = 2.0
) -> st.SearchStrategy[Step]:
    """One non-final script step of the given ``kinds`` (see :data:`STEP_KINDS`)."""
    unknown = set(kinds) - STEP_KINDS
    if unknown or not kinds:
        raise ValueError(f"kinds must be some of {sorted(STEP_KINDS)}, got {sorted(kinds)}")
    options: dict[str, st.SearchStrategy[Step]] = {
        "speak": speech(max_seconds=max_seconds),
        "pause": pauses(max_seconds=max_seconds),
        "call_error": call_errors(),
        "drop_voice": st.just(DropVoice()),
        "drop_control": st.just(DropControl()),
        "stall_pulls": pull_stalls(max_seconds=max_seconds),
        "slow_commands": slow_commands(),
        "connect": connect_outcomes(),
    }
    # Speech and pauses first: hypothesis shrinks towards the first alternative.
    order = ["pause", "speak", "call_error", "connect", "stall_pulls", "slow_commands"]
    order += ["drop_voice", "drop_control"]
    return st.one_of([options[k] for k in order if k in kinds])


@st.composite
def call_scripts(
    draw: st.DrawFn,
    kinds: Collection[str] = STEP_KINDS,
    *,
    max_steps: int = 8,
    max_seconds: float = 6.0,
    endings: Collection[str] = ENDINGS,
    sample_rate: control.SampleRate | st.SearchStrategy[control.SampleRate] = 16000,
) -> CallScript:
    """Whole call scripts: up to ``max_steps`` steps of the given ``kinds``, lasting at
    most ``max_seconds`` of simulated time, ended by the caller hanging up (``hang_up``,
    or ``implicit``: the runner hangs up after the last step) or by the agent being shut
    down (``shutdown``). Shrinks towards fewer, shorter, calmer steps."""
    unknown = set(endings) - ENDINGS
    if unknown or not endings:
        raise ValueError(f"endings must be some of {sorted(ENDINGS)}, got {sorted(endings)}")
    drawn = draw(st.lists(steps(kinds, max_seconds=min(2.0, max_seconds)), max_size=max_steps))
    kept: list[Step] = []
    total = 0.0
    for step in drawn:
        if total + step.duration > max_seconds:
            break
        kept.append(step)
        total += step.duration
    ending = draw(st.sampled_from(sorted(endings, key=["implicit", "hang_up", "shutdown"].index)))
    if ending == "hang_up":
        kept.append(HangUp())
    elif ending == "shutdown":
        kept.append(Shutdown())
    rate = draw(sample_rate) if isinstance(sample_rate, st.SearchStrategy) else sample_rate
    return CallScript(kept, sample_rate=rate)
