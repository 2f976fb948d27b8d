"""Bad input (guarantee 6): hypothesis makes the sandbox send arbitrary frames on both planes,
and arbitrary REST replies, in the middle of real calls. The client logs and ignores each,
its connections stay up, the call's audio is intact and the other call is untouched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import telcoflow_trio as tf
from telcoflow_trio.protocol import Unrecognised, control
from telcoflow_trio.sandbox import MALFORMED_CONTROL_FRAMES, MALFORMED_VOICE_FRAMES
from telcoflow_trio.testing import SimulatedCall, TestSignal, open_sandbox

THOROUGH = os.environ.get("HYPOTHESIS_PROFILE", "default") != "default"
EXAMPLES = 150 if THOROUGH else 25
SPEECH_SECONDS = 0.3
SPEECH_BYTES = int(16000 * SPEECH_SECONDS) * 2

# Values of every JSON type, with the numbers a parser trips on.
junk_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def typed_objects(types: list[str], keys: list[str]) -> st.SearchStrategy[str]:
    """JSON objects with a real or unknown ``type`` and known keys holding anything."""
    fields = st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), junk_values, max_size=5)
    return st.builds(
        lambda t, f: json.dumps({"type": t, **f}),
        st.sampled_from(types) | st.text(max_size=12),
        fields,
    )


CONTROL_TYPES = [
    "setup.done",
    "response",
    "session.notify",
    "call.in",
    "wa.msg.in",
    "session.closed",
]
CONTROL_KEYS = [
    "sessionId",
    "reqId",
    "ok",
    "content",
    "errorCode",
    "channel",
    "callId",
    "url",
    "token",
    "from",
    "to",
    "reason",
    "sender",
    "smWsId",
    "activity",
    "createdAt",
]
control_junk: st.SearchStrategy[str | bytes] = st.one_of(
    st.sampled_from(list(MALFORMED_CONTROL_FRAMES.values())),
    st.text(max_size=200),
    st.binary(max_size=64),
    typed_objects(CONTROL_TYPES, CONTROL_KEYS),
)


def voice_objects() -> st.SearchStrategy[str]:
    data = st.dictionaries(
        st.sampled_from(
            [
                "requested_bytes",
                "prefer_audio_frame_bytes",
                "channelId",
                "command_id",
                "success",
                "result",
                "error_code",
                "event",
            ]
        )
        | st.text(max_size=8),
        junk_values,
        max_size=5,
    )
    return st.builds(
        lambda t, d: json.dumps({"type": t, "data": d}),
        st.sampled_from(["buffer_request", "call_event", "command_response"])
        | st.text(max_size=12),
        data | junk_values,  # type: ignore[operator]
    ).filter(lambda text: "call.terminated" not in text)  # that one ends the call, rightly


def caller_audio(frame: str | bytes) -> bool:
    """Binary frames of 2 bytes or more on channel 0 are the caller's speech (the agent
    echoes it, as it should), whatever their length: not junk for this test."""
    return isinstance(frame, bytes) and len(frame) >= 2 and frame[0] == 0


voice_junk: st.SearchStrategy[str | bytes] = st.one_of(
    st.sampled_from([f for f in MALFORMED_VOICE_FRAMES.values() if not caller_audio(f)]),
    st.text(max_size=200).filter(lambda t: "call.terminated" not in t),
    st.binary(max_size=1),  # empty and truncated binary frames
    # Audio on a channel the agent does not read: bounded, dropped oldest first.
    st.builds(lambda ch, pcm: bytes([ch]) + pcm, st.integers(1, 255), st.binary(max_size=64)),
    voice_objects(),
)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("telcoflow_trio.") and ".testing." not in record.name:
            self.messages.append(record.getMessage())


async def echo(call: tf.Call, nbytes: int) -> None:
    assert await call.answer()
    echoed = 0
    async for chunk in await call.audio_stream():
        await call.send_audio(chunk, wait=True)
        echoed += len(chunk)
        if echoed >= nbytes:
            break
    await call.wait_for_playout()


def heard_intact(sim: SimulatedCall) -> bool:
    return sim.heard == bytes(sim.spoken) and len(sim.heard) == SPEECH_BYTES


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(
    control_frames=st.lists(control_junk, min_size=1, max_size=12),
    voice_frames=st.lists(voice_junk, min_size=1, max_size=12),
)
async def test_junk_on_both_planes_during_a_call(
    control_frames: list[str | bytes], voice_frames: list[str | bytes]
) -> None:
    records = Records()
    logging.getLogger("telcoflow_trio").addHandler(records)
    try:
        await _junk_during_calls(control_frames, voice_frames)
    finally:
        logging.getLogger("telcoflow_trio").removeHandler(records)
    unrecognised = sum(
        isinstance(control.decode_server_frame(f), Unrecognised) for f in control_frames
    )
    ignored = sum(m.startswith("control plane: ignored frame") for m in records.messages)
    assert ignored == unrecognised  # each one logged, none of them acted on


async def _junk_during_calls(
    control_frames: list[str | bytes], voice_frames: list[str | bytes]
) -> None:
    async with open_sandbox(time_scale=20) as sandbox:
        with trio.fail_after(20):
            async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
                first_id = sm.sm_ws_id
                sims = [
                    await sandbox.place_call(
                        caller=f"+1555000{i}", audio=TestSignal(SPEECH_SECONDS, seed=i)
                    )
                    for i in range(2)
                ]
                calls: dict[str, tf.Call] = {}

                async def serve(note: tf.SessionNotification) -> None:
                    async with sm.open_session(note.session_id) as session:
                        call = await session.incoming_call()
                        calls[call.id] = call
                        await echo(call, SPEECH_BYTES)
                        if call.id == sims[0].call_id:
                            # The attacked call still takes commands after the junk.
                            result = await call.whisper()
                            assert result.error_code == "CALL_NOT_CONNECTED"

                for _ in sims:
                    nursery.start_soon(serve, await sm.session_notifications.receive())
                attacked = sims[0]
                await attacked.wait_answered()
                await attacked.wait_voice_connected()
                for i in range(max(len(control_frames), len(voice_frames))):
                    if i < len(control_frames):
                        await sandbox.send_control_raw(control_frames[i])
                    if i < len(voice_frames) and attacked.voice_link is not None:
                        await attacked.send_raw(voice_frames[i])
                    await trio.lowlevel.checkpoint()
            for sim in sims:
                await sim.wait_terminated()
                assert heard_intact(sim), (
                    len(sim.heard),
                    len(sim.spoken),
                    sim.heard == bytes(sim.spoken)[: len(sim.heard)],
                    sim.excess_bytes,
                )
                assert sim.voice_connections == 1
                assert sim.ended_by is not None and sim.ended_by.value == "AGENT_CLOSE"
            assert sm.reconnects == 0
            assert sm.sm_ws_id == first_id  # a stray setup.done changes nothing


rest_statuses = st.integers(200, 599).filter(lambda s: s not in (204, 304))
rest_bodies = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda v: json.dumps(v).encode(), junk_values),
    st.builds(
        lambda items: json.dumps({"items": items}).encode(),
        st.lists(
            st.dictionaries(
                st.sampled_from(["id", "channel", "state", "openedAt"]), junk_values, max_size=4
            ),
            max_size=3,
        ),
    ),
    st.builds(
        lambda code, msg: json.dumps({"code": code, "message": msg}).encode(),
        junk_values,
        junk_values,
    ),
)


@settings(max_examples=EXAMPLES * 2, suppress_health_check=[HealthCheck.too_slow])
@given(replies=st.lists(st.tuples(rest_statuses, rest_bodies), min_size=2, max_size=2))
async def test_junk_rest_replies_are_errors_or_results_never_crashes(
    replies: list[tuple[int, bytes]],
) -> None:
    async with open_sandbox() as sandbox:
        with trio.fail_after(10):
            async with tf.SessionManager(sandbox.config()) as sm:
                session_cm = sm.create_session("WA", "+4470")
                session = await session_cm.__aenter__()
                sandbox.faults.rest_responses = list(replies)
                outcome: Any
                try:
                    outcome = await sm.list_sessions()
                except tf.WSSError as exc:
                    outcome = exc
                assert isinstance(outcome, list | tf.WSSError)
                if isinstance(outcome, list):
                    assert all(isinstance(s, tf.SessionInfo) for s in outcome)
                with contextlib.suppress(tf.WSSError):
                    await session.close(confirm_timeout=0.5)
                await session_cm.__aexit__(None, None, None)
                assert session.is_closed
                # The manager is unharmed: the next real request works.
                assert sandbox.faults.rest_responses == []
                assert isinstance(await sm.list_sessions(), list)
                assert sm.connection_state is tf.ConnectionState.CONNECTED
