"""Audio for simulated callers: PCM sources, WAV files and generated test signals.

All PCM is 16-bit signed little-endian mono, as on the voice plane. A source is rendered
for a call's sample rate only when the call's rate is known (when ``call.in`` goes out).
"""

from __future__ import annotations

import math
import os
import sys
import wave
from array import array
from typing import Protocol, runtime_checkable

import attrs

__all__ = [
    "AudioSource",
    "Pcm",
    "Silence",
    "TestSignal",
    "Tone",
    "WavFile",
    "as_source",
    "frame_bytes",
    "read_wav",
    "resample",
    "write_wav",
]

SAMPLE_WIDTH = 2


def frame_bytes(sample_rate: int, seconds: float) -> int:
    """Bytes of whole samples in ``seconds`` of audio at ``sample_rate``."""
    return round(sample_rate * seconds) * SAMPLE_WIDTH


def _samples(pcm: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _pcm(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Linear-interpolation resampling; good enough for test audio, not for music."""
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError("sample rates must be positive")
    if from_rate == to_rate or not pcm:
        return pcm
    src = _samples(pcm)
    count = len(src) * to_rate // from_rate
    out = array("h", bytes(count * SAMPLE_WIDTH))
    step = from_rate / to_rate
    last = len(src) - 1
    for i in range(count):
        pos = i * step
        j = int(pos)
        frac = pos - j
        a = src[min(j, last)]
        b = src[min(j + 1, last)]
        out[i] = round(a + (b - a) * frac)
    return _pcm(out)


def read_wav(path: str | os.PathLike[str]) -> tuple[bytes, int]:
    """Read a 16-bit mono PCM WAV file: ``(pcm, sample_rate)``."""
    with wave.open(os.fspath(path), "rb") as wav:
        if wav.getsampwidth() != SAMPLE_WIDTH:
            raise ValueError(
                f"{os.fspath(path)}: need 16-bit samples, got {8 * wav.getsampwidth()}"
            )
        if wav.getnchannels() != 1:
            raise ValueError(
                f"{os.fspath(path)}: need mono audio, got {wav.getnchannels()} channels"
            )
        return wav.readframes(wav.getnframes()), wav.getframerate()


def write_wav(path: str | os.PathLike[str], pcm: bytes, sample_rate: int) -> None:
    """Write 16-bit mono PCM to a WAV file (an odd trailing byte is dropped)."""
    with wave.open(os.fspath(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH])


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
    """A 16-bit mono WAV file, resampled to the call's rate if it differs."""

    path: str = attrs.field(converter=_path_str)

    def render(self, sample_rate: int) -> bytes:
        pcm, rate = read_wav(self.path)
        return resample(pcm, rate, sample_rate)


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
        return _pcm(array("h", (round(peak * math.sin(w * i)) for i in range(count))))


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
        return _pcm(out)


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
