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

import json
from collections.abc import Collection, Sequence
from typing import Any, Final

from hypothesis import strategies as st

from .._enums import (
    AudioMode,
    ChannelType,
    CloseReason,
    InboundCallMode,
    SessionActivityType,
)
from ..protocol import control, handoff, rest, voice
from ..sandbox import (
    MALFORMED_CONTROL_FRAMES,
    MALFORMED_VOICE_FRAMES,
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

# ── frames ──────────────────────────────────────────────────────────────────────────────

ids = st.text(min_size=1, max_size=40)
texts = st.text(max_size=40)
ints = st.integers(min_value=-(2**63), max_value=2**63)
nullable_ints = st.none() | ints

json_scalars = (
    st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False) | texts
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(texts, json_values, max_size=5)
activities = st.sampled_from(list(SessionActivityType)) | texts

client_control_frames: st.SearchStrategy[control.ClientControlFrame] = st.one_of(
    st.builds(control.Setup, st.sampled_from(control.SAMPLE_RATES), st.sampled_from(AudioMode)),
    st.builds(control.SessionOpen, ids, ids),
    st.builds(control.SessionCreate, st.sampled_from(ChannelType), ids, ids),
    st.builds(
        control.CallFlowSetup,
        st.sampled_from(InboundCallMode),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        ids,
    ),
    st.builds(control.WaMsgOut, ids, texts, json_objects, ids, ids),
    st.builds(control.SessionReady, ids),
)

server_control_frames: st.SearchStrategy[control.ServerControlFrame] = st.one_of(
    st.builds(control.SetupDone, texts),
    st.builds(control.Response, ids, st.booleans(), json_values, st.none() | texts, json_values),
    st.builds(
        control.SessionNotify,
        ids,
        st.sampled_from(ChannelType),
        texts,
        texts,
        activities,
        ints,
    ),
    st.builds(control.CallIn, ids, ids, ids, ids, texts, texts, texts),
    st.builds(control.WaMsgIn, ids, texts, json_objects),
    st.builds(control.SessionClosed, ids, st.sampled_from(CloseReason)),
)

server_voice_frames: st.SearchStrategy[voice.ServerVoiceFrame] = st.one_of(
    st.builds(voice.BufferRequest, ints, ints, ints),
    st.builds(
        voice.CallEventFrame,
        ids,
        st.dictionaries(texts.filter(lambda k: k != "event"), json_values, max_size=4),
    ),
    st.builds(
        voice.CommandResponse, ids, st.booleans(), json_values, st.none() | texts, st.none() | texts
    ),
)

client_voice_frames = st.builds(
    voice.Command,
    ids,
    st.integers(min_value=0, max_value=2**40),
    st.none() | json_objects,
    ids,
)

audio_frames = st.builds(
    voice.AudioFrame, st.integers(min_value=0, max_value=255), st.binary(min_size=1, max_size=64)
)

session_infos = st.builds(
    rest.SessionInfo,
    ids,
    st.sampled_from(ChannelType) | ids.filter(lambda c: c not in ("TELCO", "WA")),
    texts,
    texts,
    texts,
    texts,
    nullable_ints,
    nullable_ints,
)

handoff_documents = st.builds(handoff.HandoffDocument, ids, ids, ids, texts, texts)

# Frames as they travel: text for JSON frames, bytes for binary audio frames.
server_control_texts = server_control_frames.map(control.encode_frame)
client_control_texts = client_control_frames.map(control.encode_frame)
client_voice_texts = client_voice_frames.map(voice.encode_frame)
server_voice_messages: st.SearchStrategy[str | bytes] = server_voice_frames.map(
    voice.encode_frame
) | audio_frames.map(voice.encode_audio)

# ── hostile and malformed input ─────────────────────────────────────────────────────────

KNOWN_TYPES: Final = (
    "setup",
    "setup.done",
    "session.open",
    "session.create",
    "call_flow.setup",
    "wa.msg.out",
    "session.ready",
    "response",
    "session.notify",
    "call.in",
    "wa.msg.in",
    "session.closed",
    "buffer_request",
    "call_event",
    "command_response",
    "command",
)
frame_types = st.sampled_from(list(KNOWN_TYPES))
field_names = (
    st.sampled_from(
        [
            "data",
            "sessionId",
            "reqId",
            "ok",
            "content",
            "errorCode",
            "errorContent",
            "channel",
            "remoteAddress",
            "localAddress",
            "activity",
            "createdAt",
            "callId",
            "orgUuid",
            "from",
            "to",
            "url",
            "token",
            "sender",
            "reason",
            "smWsId",
            "sampleRate",
            "audioMode",
            "requested_bytes",
            "prefer_audio_frame_bytes",
            "channelId",
            "event",
            "command_id",
            "success",
            "result",
            "error_code",
            "error_message",
            "command",
            "timeout_ms",
            "items",
            "id",
            "closedAt",
            "code",
            "message",
            "session",
            "created",
        ]
    )
    | texts
)
hostile_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars
    | st.just(float("inf"))
    | st.just(float("nan"))
    | st.sampled_from(list(ChannelType)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(field_names, inner, max_size=5),
    max_leaves=10,
)
typed_objects = st.builds(
    lambda t, rest_: {**rest_, "type": t},
    frame_types | texts,
    st.dictionaries(field_names, hostile_values, max_size=8),
)


def _paths(obj: dict[str, Any]) -> list[tuple[str, ...]]:
    """Every key path of a frame's JSON object, except ``type`` itself."""
    out: list[tuple[str, ...]] = []
    for key, value in obj.items():
        if key == "type":
            continue
        out.append((key,))
        if isinstance(value, dict):
            out.extend((key, *sub) for sub in _paths(value))
    return out


def _other_type(value: Any) -> st.SearchStrategy[Any]:
    """Values whose JSON type differs from ``value``'s."""
    choices: list[st.SearchStrategy[Any]] = [
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    ]
    kinds = (type(None), bool, int, float, str, list, dict)
    own = next(
        (k for k in kinds if type(value) is k),  # exact: bool is not an int here
        None,
    )
    return st.one_of([s for s, k in zip(choices, kinds, strict=True) if k is not own])


@st.composite
def _mutated(draw: st.DrawFn, frames: st.SearchStrategy[Any]) -> str:
    frame = draw(frames)
    obj = json.loads(json.dumps(frame.to_json_obj()))
    kind = draw(st.sampled_from(["missing_key", "wrong_type", "unknown_type", "truncated"]))
    paths = _paths(obj)
    if kind in ("missing_key", "wrong_type") and paths:
        path = draw(st.sampled_from(paths))
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        if kind == "missing_key":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_other_type(parent[path[-1]]))
        return json.dumps(obj)
    if kind == "unknown_type":
        obj["type"] = draw(texts.filter(lambda t: t not in KNOWN_TYPES))
        return json.dumps(obj)
    text = json.dumps(obj)
    return text[: draw(st.integers(0, len(text) - 1))]


def malformed_control_texts() -> st.SearchStrategy[str | bytes]:
    """Control-plane messages a broken server might send: valid server frames with a key
    missing, a value of the wrong type, an unknown ``type``, or the text cut short; plus
    the sandbox's catalogue of malformed frames. A client must survive every one (decode
    it as something valid, or log and ignore it)."""
    catalogue: list[str | bytes] = list(MALFORMED_CONTROL_FRAMES.values())
    return _mutated(server_control_frames) | st.sampled_from(catalogue)


def malformed_voice_messages() -> st.SearchStrategy[str | bytes]:
    """Voice-plane messages a broken server might send: mutated JSON frames as in
    :func:`malformed_control_texts`, truncated binary audio (under 2 bytes, or cut at an
    odd length), and the sandbox's catalogue of malformed voice frames."""
    catalogue: list[str | bytes] = list(MALFORMED_VOICE_FRAMES.values())
    truncated = audio_frames.map(voice.encode_audio).flatmap(
        lambda data: st.integers(0, len(data) - 1).map(lambda n: data[:n])
    )
    return _mutated(server_voice_frames) | truncated | st.sampled_from(catalogue)


# ── audio ───────────────────────────────────────────────────────────────────────────────

sample_rates = st.sampled_from(control.SAMPLE_RATES)


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
    sample_rate: int | st.SearchStrategy[int] = 16000,
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
    sample_rate: int | st.SearchStrategy[int] = 16000,
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
