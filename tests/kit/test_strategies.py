"""The strategies: valid frames round-trip, malformed ones never break a decoder nor the
client, audio has the length and rate asked for, scripts stay within their bounds."""

from __future__ import annotations

import subprocess
import sys

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import telcoflow_trio as tf
from telcoflow_trio.protocol import Unrecognised, control, voice
from telcoflow_trio.testing import CallScript, HangUp, Shutdown, open_sandbox
from telcoflow_trio.testing._wire_strategies import KNOWN_TYPES
from telcoflow_trio.testing.strategies import (
    STEP_KINDS,
    audio_sources,
    call_scripts,
    malformed_control_texts,
    malformed_voice_messages,
    pcm,
    sample_rates,
    server_control_texts,
    server_voice_messages,
    steps,
)


@given(server_control_texts)
def test_valid_control_texts_decode_to_frames(text: str) -> None:
    assert not isinstance(control.decode_server_frame(text), Unrecognised)


@given(server_voice_messages)
def test_valid_voice_messages_decode_to_frames(message: str | bytes) -> None:
    assert not isinstance(voice.decode_server_frame(message), Unrecognised)


@given(malformed_control_texts())
def test_malformed_control_texts_never_break_the_decoder(text: str | bytes) -> None:
    frame = control.decode_server_frame(text)
    if isinstance(text, str) and text.startswith("{") and '"type": ' in text:
        kind = text.split('"type": ', 1)[1].split(",", 1)[0].strip('"} ')
        if kind not in KNOWN_TYPES:
            assert isinstance(frame, Unrecognised)


@given(malformed_voice_messages())
def test_malformed_voice_messages_never_break_the_decoder(message: str | bytes) -> None:
    frame = voice.decode_server_frame(message)
    if isinstance(message, bytes) and len(message) < 2:
        assert isinstance(frame, Unrecognised)


def test_the_malformed_strategies_cover_every_kind_of_damage() -> None:
    seen: set[str] = set()

    @settings(max_examples=300, database=None)
    @given(malformed_control_texts())
    def collect(text: str | bytes) -> None:
        if isinstance(text, bytes):
            seen.add("binary")
        elif isinstance(control.decode_server_frame(text), Unrecognised):
            seen.add("rejected")
        else:
            seen.add("accepted")

    collect()
    assert {"rejected", "accepted", "binary"} <= seen


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(malformed_voice_messages(), min_size=1, max_size=10))
async def test_the_client_survives_malformed_voice_messages(messages: list[str | bytes]) -> None:
    with trio.fail_after(30):
        async with (
            open_sandbox(time_scale=10) as sandbox,
            tf.SessionManager(sandbox.config()) as sm,
        ):
            sim = await sandbox.place_call()
            note = await sm.session_notifications.receive()
            async with sm.open_session(note.session_id) as session:
                call = await session.incoming_call()
                assert await call.answer()
                for message in messages:
                    await sim.send_raw(message)
                # Still a working call: a command round-trips after all that.
                assert await call.clear_send_audio_buffer() == 0
                assert call.state is tf.CallState.LIVE


@given(pcm(sample_rate=sample_rates, min_seconds=0.1, max_seconds=0.5))
def test_pcm_is_whole_samples(data: bytes) -> None:
    assert len(data) % 2 == 0
    assert 0.1 * 8000 * 2 <= len(data) <= 0.5 * 24000 * 2


@given(audio_sources(min_seconds=0.2, max_seconds=0.2), sample_rates)
def test_audio_sources_last_as_long_as_asked(source: object, rate: int) -> None:
    assert hasattr(source, "render")
    assert len(source.render(rate)) == round(0.2 * rate) * 2  # type: ignore[attr-defined]


@given(call_scripts(max_steps=5, max_seconds=3.0))
def test_scripts_stay_within_their_bounds(script: CallScript) -> None:
    assert script.duration <= 3.0
    assert len(script) <= 6
    assert all(not isinstance(s, HangUp | Shutdown) for s in script.steps[:-1])
    assert eval(repr(script), vars(sys.modules["telcoflow_trio.testing"])) == script


@given(steps({"pause"}))
def test_steps_of_one_kind(step: object) -> None:
    assert type(step).__name__ == "Pause"


def test_step_kinds_are_all_known() -> None:
    assert {"speak", "pause", "call_error", "drop_voice", "drop_control"} <= STEP_KINDS


def test_importing_the_testing_package_does_not_need_hypothesis() -> None:
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import telcoflow_trio.testing, telcoflow_trio.sandbox\n"
        "try:\n"
        "    import telcoflow_trio.testing.strategies\n"
        "except ImportError:\n"
        "    print('strategies need hypothesis')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "strategies need hypothesis"
