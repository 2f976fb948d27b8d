"""Hypothesis strategies for every frame of the protocol layer and for arbitrary input."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from telcoflow_trio.enums import (
    AudioMode,
    ChannelType,
    CloseReason,
    InboundCallMode,
    SessionActivityType,
)
from telcoflow_trio.protocol import control, handoff, rest, voice

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

client_control_frames = st.one_of(
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

server_control_frames = st.one_of(
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

server_voice_frames = st.one_of(
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

# Inputs a hostile or broken peer might send.
frame_types = st.sampled_from(
    [
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
    ]
)
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
