"""Audio for simulated callers: PCM sources, WAV files and generated test signals.

All PCM is 16-bit signed little-endian mono, as on the voice plane. A source is rendered
for a call's sample rate only when the call's rate is known (when ``call.in`` goes out).
"""

from __future__ import annotations

import math
import os
from array import array
from typing import Protocol, runtime_checkable

import attrs

from ._pcm import SAMPLE_WIDTH, frame_bytes, from_samples, resample
from ._wav import read_wav

__all__ = ["AudioSource", "Pcm", "Silence", "TestSignal", "Tone", "WavFile", "as_source"]


@runtime_checkable
class AudioSource(Protocol):
    """Anything that can render PCM for a sample rate."""

    def render(self, sample_rate: int) -> bytes:
        """The PCM bytes at ``sample_rate``."""
        ...


@attrs.frozen
class Pcm:
    """Raw PCM bytes. With ``sample_rate`` set they are resampled to the call's rate;
    without it they are sent exactly as given, whatever the call's rate."""

    data: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    sample_rate: int | None = None

    def render(self, sample_rate: int) -> bytes:
        if self.sample_rate is None:
            return bytes(self.data)
        return resample(bytes(self.data), self.sample_rate, sample_rate)


def _path_str(path: str | os.PathLike[str]) -> str:
    return os.fspath(path)


@attrs.frozen
class WavFile:
    """A WAV file (any layout :func:`read_wav` reads), as mono at the call's rate."""

    path: str = attrs.field(converter=_path_str)

    def render(self, sample_rate: int) -> bytes:
        return read_wav(self.path, sample_rate)[0]


@attrs.frozen
class Silence:
    """``seconds`` of digital silence."""

    seconds: float

    def render(self, sample_rate: int) -> bytes:
        return bytes(frame_bytes(sample_rate, self.seconds))


@attrs.frozen
class Tone:
    """A sine tone: ``frequency`` Hz for ``seconds`` at ``amplitude`` (0..1 of full scale)."""

    frequency: float = 440.0
    seconds: float = 1.0
    amplitude: float = 0.3

    def render(self, sample_rate: int) -> bytes:
        count = frame_bytes(sample_rate, self.seconds) // SAMPLE_WIDTH
        peak = 32767 * max(0.0, min(1.0, self.amplitude))
        w = 2 * math.pi * self.frequency / sample_rate
        return from_samples(array("h", (round(peak * math.sin(w * i)) for i in range(count))))


@attrs.frozen
class TestSignal:
    """A deterministic signal in which no two nearby frames are alike, for byte-exact checks.

    Sample ``i`` is a sine sweep plus a counter, so a lost, duplicated or reordered frame
    shows up as a mismatch at a findable offset. ``seed`` shifts the pattern.
    """

    __test__ = False  # not a pytest test class, despite the name

    seconds: float = 1.0
    seed: int = 0

    def render(self, sample_rate: int) -> bytes:
        count = frame_bytes(sample_rate, self.seconds) // SAMPLE_WIDTH
        out = array("h", bytes(count * SAMPLE_WIDTH))
        for i in range(count):
            n = i + self.seed * 7919
            sweep = 8000 * math.sin(2 * math.pi * (200 + (n % 4000) / 10) * n / sample_rate)
            out[i] = (round(sweep) + (n % 997) * 16) % 65536 - 32768
        return from_samples(out)


def as_source(audio: AudioSource | bytes | str | os.PathLike[str] | None) -> AudioSource | None:
    """Accept what users pass: a source, raw PCM bytes, or a WAV path."""
    if audio is None or isinstance(audio, AudioSource):
        return audio
    if isinstance(audio, bytes | bytearray | memoryview):
        return Pcm(bytes(audio))
    if isinstance(audio, str | os.PathLike):
        return WavFile(audio)
    raise TypeError(
        f"audio must be an AudioSource, bytes or a WAV path, got {type(audio).__name__}"
    )
