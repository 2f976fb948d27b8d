"""16-bit mono PCM as the voice plane carries it: sizes, sample arrays, resampling."""

from __future__ import annotations

import sys
from array import array
from typing import Final

__all__ = ["SAMPLE_WIDTH", "frame_bytes", "from_samples", "resample", "to_samples"]

SAMPLE_WIDTH: Final = 2
"""Bytes per sample: 16-bit signed little-endian."""


def frame_bytes(sample_rate: int, seconds: float) -> int:
    """Bytes of whole samples in ``seconds`` of audio at ``sample_rate``."""
    return round(sample_rate * seconds) * SAMPLE_WIDTH


def to_samples(pcm: bytes) -> array[int]:
    """PCM bytes as native 16-bit ints (an odd trailing byte is dropped)."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def from_samples(samples: array[int]) -> bytes:
    """Native 16-bit ints as little-endian PCM bytes."""
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
    src = to_samples(pcm)
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
    return from_samples(out)
