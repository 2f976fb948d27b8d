"""``CallAudioConfig``'s types refuse what the protocol refuses, under mypy and pyright alike.

A snippet is type-checked in a subprocess; the lines marked ``# error`` must be exactly the
lines the checker reports, so a type widened back to ``int`` or ``object`` fails the test, and
so does a valid spelling that the checker starts refusing. The runtime check stays, for
untyped callers, with an error naming the field.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import telcoflow_trio as tf

SNIPPET = """\
import telcoflow_trio as tf
from telcoflow_trio.protocol.control import SampleRate

tf.CallAudioConfig(sample_rate=12345, audio_mode=123)  # error
tf.CallAudioConfig(sample_rate=12345)  # error
tf.CallAudioConfig(audio_mode=123)  # error
tf.CallAudioConfig(audio_mode="stereo")  # error
tf.CallAudioConfig(sample_rate=44100, buffer_size=1024)  # error
tf.CallAudioConfig(sample_rate=24000, audio_mode="isolated")
tf.CallAudioConfig(8000, tf.AudioMode.MIXED)
tf.CallAudioConfig(16000, "mixed", 4096)
rate: SampleRate = 24000
tf.CallAudioConfig(sample_rate=rate)
def from_user(n: int) -> tf.CallAudioConfig:
    return tf.CallAudioConfig(sample_rate=n)  # error
"""


def _expected_lines() -> set[int]:
    return {n for n, line in enumerate(SNIPPET.splitlines(), 1) if line.endswith("# error")}


def _run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    return done.stdout + done.stderr


def _reported_lines(output: str, name: str) -> set[int]:
    return {int(n) for n in re.findall(rf"{name}:(\d+)(?::\d+)?(?::| -) error", output)}


@pytest.fixture
def snippet(tmp_path: Path) -> Path:
    path = tmp_path / "snippet.py"
    path.write_text(SNIPPET)
    return path


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is not installed: `pip install {module}` (part of the test tooling)")


def test_mypy_refuses_bad_sample_rates_and_audio_modes(snippet: Path) -> None:
    _require("mypy")
    argv = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir=/dev/null"]
    output = _run([*argv, "--no-error-summary", snippet.name], snippet.parent)
    assert _reported_lines(output, re.escape(snippet.name)) == _expected_lines(), output
    assert "Literal[8000, 16000, 24000]" in output, output


def test_pyright_refuses_bad_sample_rates_and_audio_modes(snippet: Path) -> None:
    _require("pyright")
    output = _run(
        [sys.executable, "-m", "pyright", "--pythonpath", sys.executable, snippet.name],
        snippet.parent,
    )
    assert _reported_lines(output, re.escape(str(snippet))) == _expected_lines(), output


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"sample_rate": 12345}, ValueError, "sample_rate"),
        ({"sample_rate": "16000"}, TypeError, "sample_rate"),
        ({"audio_mode": 123}, TypeError, "audio_mode"),
        ({"audio_mode": "stereo"}, ValueError, "audio_mode"),
    ],
)
def test_the_runtime_check_stays_and_names_the_field(
    kwargs: dict[str, object], error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=field):
        tf.CallAudioConfig(**kwargs)  # type: ignore[arg-type]


def test_valid_spellings_build() -> None:
    assert tf.CallAudioConfig(24000, "isolated").audio_mode is tf.AudioMode.ISOLATED
    assert tf.CallAudioConfig(8000, tf.AudioMode.MIXED).bytes_per_second == 16000
