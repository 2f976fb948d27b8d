"""``python -m telcoflow_trio phone``: a call into a running sandbox from a WAV file."""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys
from collections.abc import AsyncIterator

import attrs
import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio._cli import main as cli_main
from telcoflow_trio._cli._demo import echo
from telcoflow_trio._cli._phone import PhoneError, PhoneResult, rest_base, run_phone
from telcoflow_trio.sandbox import Silence, TestSignal, read_wav
from telcoflow_trio.testing import Sandbox, open_sandbox

from .wavs import int16, make_wav


@pytest.fixture
async def echo_sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox with an echo agent connected to it, as a developer would have running."""
    async with (
        open_sandbox(time_scale=4) as sandbox,
        tf.SessionManager(sandbox.config()) as sm,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(sm.serve_calls, echo)
        yield sandbox
        nursery.cancel_scope.cancel()


def stereo_24_bit(path: pathlib.Path, seconds: float, rate: int = 44100) -> pathlib.Path:
    frames = bytearray()
    for i in range(int(rate * seconds)):
        left = round(3_000_000 * math.sin(2 * math.pi * 330 * i / rate))
        right = round(2_000_000 * math.sin(2 * math.pi * 550 * i / rate))
        frames += left.to_bytes(3, "little", signed=True) + right.to_bytes(3, "little", signed=True)
    return make_wav(path, bytes(frames), rate=rate, channels=2, bits=24, extensible=True)


async def test_phone_command_calls_the_agent_and_records_its_answer(
    echo_sandbox: Sandbox, tmp_path: pathlib.Path
) -> None:
    said = stereo_24_bit(tmp_path / "said.wav", 0.8)
    out = tmp_path / "agent.wav"
    env = dict(
        os.environ,
        TELCOFLOW_SANDBOX_URL=echo_sandbox.url,
        TELCOFLOW_API_KEY=echo_sandbox.api_key,
        TELCOFLOW_CONNECTOR_UUID=echo_sandbox.connector_uuid,
    )
    args = [sys.executable, "-m", "telcoflow_trio", "phone", str(said), "--out", str(out)]
    with trio.fail_after(40):
        proc = await trio.run_process(
            [*args, "--listen-after", "1", "--progress", "lines"],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    stdout = proc.stdout.decode()
    assert proc.returncode == 0, stdout + proc.stderr.decode()
    assert "you said 0.80 s, the agent said " in stdout
    assert "ended by CALLER_HANGUP" in stdout
    heard, rate = read_wav(out)
    assert rate == 16000
    # The line's silence around the file, echoed too; the file converted once, echoed exactly.
    said_pcm = read_wav(said, sample_rate=16000)[0]
    before, after = split_around(heard, said_pcm)
    assert not any(before) and not any(after)
    (sim,) = echo_sandbox.calls.values()
    assert bytes(sim.spoken).startswith(heard)


async def test_phone_json_is_one_line_of_the_result_fields(
    echo_sandbox: Sandbox, tmp_path: pathlib.Path
) -> None:
    said = make_wav(tmp_path / "s.wav", int16(*range(-8000, 8000, 4)))
    args = [sys.executable, "-m", "telcoflow_trio", "phone", str(said), "--out", "", "--json"]
    args += ["--url", echo_sandbox.url, "--api-key", echo_sandbox.api_key]
    args += ["--connector-uuid", echo_sandbox.connector_uuid, "--listen-after", "0.5"]
    with trio.fail_after(40):
        proc = await trio.run_process(args, capture_stdout=True, capture_stderr=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    (line,) = proc.stdout.decode().splitlines()
    result = json.loads(line)
    assert list(result) == [f.name for f in attrs.fields(PhoneResult)]
    assert (result["spoken_seconds"], result["out_path"]) == (0.26, None)
    assert result["ended_by"] == "CALLER_HANGUP"


def split_around(pcm: bytes, part: bytes) -> tuple[bytes, bytes]:
    """What comes before and after ``part``, which starts at a whole 20 ms frame (16 kHz)."""
    at = pcm.find(part)
    assert at >= 0 and at % 640 == 0, at
    return pcm[:at], pcm[at + len(part) :]


END_OF_TURN = 0.5  # seconds of silence after which the agent below takes its turn
REPLY = TestSignal(seconds=0.5)


async def test_the_line_carries_silence_after_the_file_until_the_call_ends(
    tmp_path: pathlib.Path,
) -> None:
    """A turn-taking agent hears the end of the caller's turn (silence after the file),
    replies, and goes on receiving the line's silence until the caller hangs up."""
    said = stereo_24_bit(tmp_path / "said.wav", 0.4)
    said_pcm = read_wav(said, sample_rate=16000)[0]
    received = bytearray()
    replied_at: list[int] = []  # bytes received when the agent replied
    stream_ended = trio.Event()

    async def turn_taker(call: tf.Call) -> None:
        if not await call.answer():
            return
        spoke, quiet = False, 0
        async for chunk in call.audio_stream():
            received.extend(chunk)
            if any(chunk):
                spoke, quiet = True, 0
            elif spoke:
                quiet += len(chunk)
            if spoke and not replied_at and quiet >= 32000 * END_OF_TURN:
                replied_at.append(len(received))
                await call.send_audio(REPLY.render(16000), wait=True)
        stream_ended.set()

    async with (
        open_sandbox(time_scale=10) as sandbox,
        tf.SessionManager(sandbox.config()) as sm,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(sm.serve_calls, turn_taker)
        with trio.fail_after(30):
            result = await run_phone(
                str(said),
                url=sandbox.url,
                api_key=sandbox.api_key,
                connector_uuid=sandbox.connector_uuid,
                out_path=None,
                listen_after=1.0,
            )
            await stream_ended.wait()  # the agent's audio ends with the call, not before
        nursery.cancel_scope.cancel()
    (sim,) = sandbox.calls.values()
    assert result.ended_by == "CALLER_HANGUP"
    assert result.spoken_seconds == 0.4  # the file only, not the line's silence
    assert replied_at, "the agent never heard the caller's turn end"
    assert sim.heard == REPLY.render(16000)
    assert result.heard_seconds == 0.5
    # Every byte the caller sent reached the agent, up to the hang-up: silence, the file,
    # then silence again, well past the agent's reply.
    assert bytes(received) == bytes(sim.spoken)
    before, after = split_around(bytes(received), said_pcm)
    assert not any(before) and not any(after)
    assert len(received) > replied_at[0]
    assert sim.status()["spokenBytes"] == len(received)


async def test_phone_in_process_at_another_call_rate(tmp_path: pathlib.Path) -> None:
    said = make_wav(tmp_path / "s.wav", int16(*range(-8000, 8000, 4)), rate=16000)
    async with (
        open_sandbox(time_scale=4) as sandbox,
        tf.SessionManager(sandbox.config(sample_rate=8000)) as sm,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(sm.serve_calls, echo)
        with trio.fail_after(30):
            result = await run_phone(
                str(said),
                url=sandbox.rest_url,
                api_key=sandbox.api_key,
                connector_uuid=sandbox.connector_uuid,
                out_path=None,
                listen_after=1.0,
            )
        nursery.cancel_scope.cancel()
    assert result.sample_rate == 8000
    assert result.spoken_seconds == 0.26  # padded to whole 20 ms frames
    assert result.heard_seconds > 0.26  # the echo of the file and of the line's silence
    assert result.ended_by == "CALLER_HANGUP"


async def test_no_agent_is_a_clear_error_and_the_call_is_hung_up(tmp_path: pathlib.Path) -> None:
    said = make_wav(tmp_path / "s.wav", int16(1, 2, 3))
    async with open_sandbox() as sandbox:
        with pytest.raises(PhoneError, match=r"no agent answered within 0\.3 s"):
            await run_phone(
                str(said),
                url=sandbox.url,
                api_key=sandbox.api_key,
                connector_uuid=sandbox.connector_uuid,
                answer_timeout=0.3,
            )
        (sim,) = sandbox.calls.values()
        assert sim.ended_by is not None  # not left ringing


async def test_wrong_credentials_and_no_sandbox(tmp_path: pathlib.Path) -> None:
    said = make_wav(tmp_path / "s.wav", int16(1, 2, 3))
    async with open_sandbox() as sandbox:
        with pytest.raises(PhoneError, match="refused the credentials") as exc_info:
            await run_phone(str(said), url=sandbox.url, api_key="sk-wrong", connector_uuid="nope")
        assert "sk-wrong" not in str(exc_info.value)
        assert not sandbox.calls
        port = sandbox.port
    with pytest.raises(PhoneError, match="cannot reach a sandbox"):
        await run_phone(str(said), url=f"ws://127.0.0.1:{port}", api_key="k", connector_uuid="u")


def test_a_compressed_wav_is_refused_before_calling(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = make_wav(tmp_path / "voice.wav", bytes(64), tag=0x11)
    # No sandbox listens on this URL: the file is refused before any connection is made.
    code = cli_main(
        [
            "phone",
            str(bad),
            "--url",
            "http://127.0.0.1:9",
            "--api-key",
            "k",
            "--connector-uuid",
            "u",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "IMA ADPCM" in err


def test_missing_settings_are_named(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("TELCOFLOW_SANDBOX_URL", "TELCOFLOW_BASE_URL", "TELCOFLOW_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TELCOFLOW_CONNECTOR_UUID", "u")
    assert cli_main(["phone", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err
    assert "--url" in err and "--api-key" in err and "--connector-uuid" not in err


def test_rest_base_accepts_every_url_the_sandbox_prints() -> None:
    assert rest_base("ws://127.0.0.1:5/") == "http://127.0.0.1:5"
    assert rest_base("wss://h:5") == "https://h:5"
    assert rest_base("http://h:5") == "http://h:5"
    with pytest.raises(PhoneError, match="must start with"):
        rest_base("127.0.0.1:5")


def test_help_lists_the_new_commands() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "telcoflow_trio", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0
    for command in ("demo", "phone", "sandbox"):
        assert command in proc.stdout


async def test_an_open_line_fills_every_pause_with_whole_frames_until_the_call_ends() -> None:
    """The sandbox side of the phone's line: ``Silence(math.inf)`` as the caller's audio."""
    signal = TestSignal(seconds=0.2).render(16000)
    async with (
        open_sandbox(time_scale=10) as sandbox,
        tf.SessionManager(sandbox.config()) as sm,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(sm.serve_calls, echo)
        sim = await sandbox.place_call(audio=Silence(math.inf))
        assert sim.line_silence
        with trio.fail_after(30):
            await sim.wait_heard(6400)  # the line's silence, echoed, before anything is said
            sim.say(signal)
            # ... and after it, at least as much silence again.
            while (at := sim.heard.find(signal)) < 0 or len(sim.heard) < at + len(signal) + 6400:
                await sim.wait_heard(len(sim.heard) + 1)
            await sim.hang_up()
        nursery.cancel_scope.cancel()
    before, after = split_around(bytes(sim.spoken), signal)
    assert len(before) >= 6400 and len(after) >= 6400
    assert not any(before) and not any(after)
    offsets = [offset for _, offset in sim.spoken_marks]
    assert offsets == list(range(0, len(sim.spoken), 640))  # whole 20 ms frames, no gap
    assert sim.take_speech(640) == b""  # the line closed with the call
