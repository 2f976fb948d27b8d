"""Hypothesis strategies for the wire: frames of both WebSocket planes as objects and as
text, hostile JSON, and malformed frames (public in :mod:`telcoflow_trio.testing.strategies`)."""

from __future__ import annotations

import json
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
from ..sandbox import MALFORMED_CONTROL_FRAMES, MALFORMED_VOICE_FRAMES

__all__ = [
    "activities",
    "audio_frames",
    "client_control_frames",
    "client_control_texts",
    "client_voice_frames",
    "client_voice_texts",
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
    "server_control_frames",
    "server_control_texts",
    "server_voice_frames",
    "server_voice_messages",
    "session_infos",
    "texts",
    "typed_objects",
]


# ── frames ──────────────────────────────────────────────────────────────────────────────

ids: st.SearchStrategy[str] = st.text(min_size=1, max_size=40)
texts: st.SearchStrategy[str] = st.text(max_size=40)
ints: st.SearchStrategy[int] = st.integers(min_value=-(2**63), max_value=2**63)
nullable_ints: st.SearchStrategy[int | None] = st.none() | ints

json_scalars: st.SearchStrategy[bool | int | float | str | None] = (
    st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False) | texts
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(texts, json_values, max_size=5)
activities: st.SearchStrategy[SessionActivityType | str] = (
    st.sampled_from(list(SessionActivityType)) | texts
)

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

client_voice_frames: st.SearchStrategy[voice.Command] = st.builds(
    voice.Command,
    ids,
    st.integers(min_value=0, max_value=2**40),
    st.none() | json_objects,
    ids,
)

audio_frames: st.SearchStrategy[voice.AudioFrame] = st.builds(
    voice.AudioFrame, st.integers(min_value=0, max_value=255), st.binary(min_size=1, max_size=64)
)

session_infos: st.SearchStrategy[rest.SessionInfo] = st.builds(
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

handoff_documents: st.SearchStrategy[handoff.HandoffDocument] = st.builds(
    handoff.HandoffDocument, ids, ids, ids, texts, texts
)

# Frames as they travel: text for JSON frames, bytes for binary audio frames.
server_control_texts: st.SearchStrategy[str] = server_control_frames.map(control.encode_frame)
client_control_texts: st.SearchStrategy[str] = client_control_frames.map(control.encode_frame)
client_voice_texts: st.SearchStrategy[str] = client_voice_frames.map(voice.encode_frame)
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
frame_types: st.SearchStrategy[str] = st.sampled_from(list(KNOWN_TYPES))
field_names: st.SearchStrategy[str] = (
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
typed_objects: st.SearchStrategy[dict[str, Any]] = st.builds(
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
