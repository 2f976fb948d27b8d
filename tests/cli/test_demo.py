"""``python -m telcoflow_trio demo``: the echo call end to end, its progress and summary."""

from __future__ import annotations

import io
import json
import pathlib
import subprocess
import sys

import attrs
import pytest

from telcoflow_trio._cli._demo import DemoResult, Utterance, run_demo
from telcoflow_trio._cli._phone import PhoneResult
from telcoflow_trio._cli._progress import Progress, bar
from telcoflow_trio.sandbox import read_wav

ROOT = pathlib.Path(__file__).resolve().parents[2]


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "telcoflow_trio", "demo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_demo_command_prints_a_summary_and_writes_what_the_caller_heard(
    tmp_path: pathlib.Path,
) -> None:
    out = tmp_path / "heard.wav"
    proc = demo("--seconds", "1", "--time-scale", "4", "--out", str(out), "--progress", "lines")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for expected in (
        "caller spoke 1.00 s, agent sent back 1.00 s (identical, byte for byte)",
        "round trip",
        "underruns",
        "drops       0 bytes incoming, 0 bytes outgoing",
        f"recording   {out}",
        "spoken",  # at least one progress line
    ):
        assert expected in proc.stdout
    assert "\r" not in proc.stdout  # plain lines when not on a terminal
    pcm, rate = read_wav(out)
    assert rate == 16000
    assert pcm == Utterance(1.0).render(16000)


def test_demo_json_summary(tmp_path: pathlib.Path) -> None:
    proc = demo("--seconds", "0.5", "--time-scale", "4", "--out", "", "--json")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.strip().splitlines()
    result = json.loads(line)
    assert result["identical"] is True
    assert result["spoken_seconds"] == result["heard_seconds"] == 0.5
    assert result["out_path"] is None
    assert result["latency_median"] is not None and result["latency_median"] >= 0
    assert list(result) == [f.name for f in attrs.fields(DemoResult)]


def test_demo_and_phone_spell_their_shared_json_keys_alike() -> None:
    demo_keys = {f.name for f in attrs.fields(DemoResult)}
    phone_keys = {f.name for f in attrs.fields(PhoneResult)}
    # The same things under the same names (the --out file is out_path in both).
    assert phone_keys - demo_keys == {"ended_by"}
    assert {"call_id", "sample_rate", "spoken_seconds", "heard_seconds", "out_path"} <= demo_keys


def test_demo_refuses_a_bad_length() -> None:
    proc = demo("--seconds", "0")
    assert proc.returncode == 2
    assert "seconds must be in" in proc.stderr


async def test_run_demo_refuses_bad_values_before_starting() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        await run_demo(time_scale=0, out_path=None)
    with pytest.raises(ValueError, match="seconds"):
        await run_demo(seconds=601, out_path=None)


async def test_live_progress_rewrites_one_line(tmp_path: pathlib.Path) -> None:
    stream = io.StringIO()
    result = await run_demo(
        seconds=0.6,
        sample_rate=8000,
        time_scale=3,
        out_path=str(tmp_path / "h.wav"),
        progress=Progress(stream, "live"),
    )
    assert result.identical and result.sample_rate == 8000
    assert result.dropped_incoming_bytes == result.dropped_outgoing_bytes == 0
    assert result.latency_max is not None and result.latency_max >= 0
    text = stream.getvalue()
    assert "\r[" in text and "heard back" in text
    assert "\r" + " " * 10 in text  # the status line is wiped before the next line


def test_utterance_is_deterministic_speech_like_audio() -> None:
    pcm = Utterance(1.0).render(16000)
    assert pcm == Utterance(1.0).render(16000)
    assert len(pcm) == 32000
    samples = memoryview(pcm).cast("h")
    assert max(samples) <= 16384 and min(samples) >= -16384
    assert any(s == 0 for s in samples)  # pauses between syllables
    assert max(abs(s) for s in samples) > 8000  # and loud voiced parts


def test_progress_modes() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert Progress(Tty(), "auto").live
    assert not Progress(io.StringIO(), "auto").live
    plain = io.StringIO()
    lines = Progress(plain, "lines", interval=3600)
    lines.update("a")
    lines.update("b")  # throttled
    lines.update("c", force=True)
    lines.line("done")
    assert plain.getvalue() == "a\nc\ndone\n"
    quiet = io.StringIO()
    none = Progress(quiet, "none")
    none.update("x", force=True)
    none.line("y")
    assert quiet.getvalue() == ""
    with pytest.raises(ValueError, match="mode"):
        Progress(io.StringIO(), "fancy")  # type: ignore[arg-type]
    assert bar(0.5, 4) == "[##..]" and bar(2.0, 2) == "[##]" and bar(-1, 2) == "[..]"
