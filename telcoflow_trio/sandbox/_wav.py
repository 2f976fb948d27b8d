"""Reading WAV files of any common layout as call audio (16-bit mono PCM at a chosen rate).

Integer PCM of 8, 16, 24 or 32 bits and IEEE float of 32 or 64 bits are read, in plain or
``WAVE_FORMAT_EXTENSIBLE`` headers, with any number of channels (averaged to mono), and
resampled by linear interpolation. Anything else (ADPCM, mu-law, MP3 in a RIFF, RF64...)
is refused with a :class:`WavFormatError` that names the file and what is wrong.

The chunks are parsed here rather than with :mod:`wave` because on Python 3.11 ``wave``
refuses extensible headers, which is what most tools write for 24-bit or multi-channel audio.
"""

from __future__ import annotations

import os
import struct
import sys
import wave
from array import array
from typing import Final

import attrs

from ._pcm import SAMPLE_WIDTH, resample

__all__ = ["WavFormatError", "WavInfo", "inspect_wav", "read_wav", "to_pcm16_mono", "write_wav"]

PCM: Final = 0x0001
FLOAT: Final = 0x0003
EXTENSIBLE: Final = 0xFFFE
_KNOWN_FORMATS: Final = {
    0x0002: "Microsoft ADPCM",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MP3",
}
MAX_CHANNELS: Final = 64
_FLIP_SIGN: Final = bytes(i ^ 0x80 for i in range(256))


class WavFormatError(ValueError):
    """A file that is not a WAV this module can read; the message says which and why."""


@attrs.frozen
class WavInfo:
    """What a WAV file's header says."""

    path: str
    encoding: str
    """``"int"`` or ``"float"``."""
    sample_rate: int
    channels: int
    bits: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def _fail(path: str, problem: str) -> WavFormatError:
    return WavFormatError(f"{path}: {problem}")


def _parse(path: str, blob: bytes) -> tuple[WavInfo, bytes]:
    if len(blob) < 12 or blob[8:12] != b"WAVE":
        raise _fail(path, "not a WAV file (no RIFF/WAVE header)")
    if blob[:4] != b"RIFF":
        kind = {b"RIFX": "big-endian RIFX", b"RF64": "RF64"}.get(blob[:4], "unknown")
        raise _fail(path, f"{kind} WAV files are not supported; save it as a plain RIFF WAV")
    fmt: bytes | None = None
    data: bytes | None = None
    pos = 12
    while pos + 8 <= len(blob):
        chunk_id = blob[pos : pos + 4]
        (size,) = struct.unpack_from("<I", blob, pos + 4)
        body = blob[pos + 8 : pos + 8 + size]  # a truncated last chunk keeps what is there
        if chunk_id == b"fmt " and fmt is None:
            fmt = body
        elif chunk_id == b"data" and data is None:
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None:
        raise _fail(path, "no 'fmt ' chunk: the file is damaged or not a WAV")
    if len(fmt) < 16:
        raise _fail(path, "the 'fmt ' chunk is too short")
    if data is None:
        raise _fail(path, "no 'data' chunk: the file holds no audio")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == EXTENSIBLE:
        if len(fmt) < 40:
            raise _fail(path, "extensible 'fmt ' chunk is too short")
        (tag,) = struct.unpack_from("<H", fmt, 24)  # first two bytes of the sub-format GUID
    if tag not in (PCM, FLOAT):
        name = _KNOWN_FORMATS.get(tag, f"format tag 0x{tag:04X}")
        raise _fail(
            path,
            f"compressed or unsupported encoding ({name}); convert it to PCM first, "
            "e.g. `sox in.wav -b 16 out.wav`",
        )
    encoding = "float" if tag == FLOAT else "int"
    allowed = (32, 64) if encoding == "float" else (8, 16, 24, 32)
    if bits not in allowed:
        raise _fail(path, f"{bits}-bit {encoding} samples are not supported (use {allowed})")
    if not 1 <= channels <= MAX_CHANNELS:
        raise _fail(path, f"{channels} channels is not a valid channel count")
    if not 1 <= rate <= 1_000_000:
        raise _fail(path, f"{rate} Hz is not a valid sample rate")
    width = bits // 8
    if block_align != width * channels:
        raise _fail(path, f"block size {block_align} does not match {channels} x {bits}-bit")
    frames = len(data) // block_align
    info = WavInfo(path, encoding, rate, channels, bits, frames)
    return info, data[: frames * block_align]


def _read(path: str | os.PathLike[str]) -> tuple[WavInfo, bytes]:
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            blob = f.read()
    except OSError as exc:
        raise _fail(name, f"cannot read it ({exc.strerror or type(exc).__name__})") from None
    return _parse(name, blob)


def inspect_wav(path: str | os.PathLike[str]) -> WavInfo:
    """The header of a WAV file; raises :class:`WavFormatError` for what cannot be read."""
    return _read(path)[0]


def _int16(samples: bytes, encoding: str, bits: int) -> array[int]:
    """Interleaved samples as native 16-bit ints (truncating deeper ones)."""
    if encoding == "int":
        out = bytearray(len(samples) * 16 // bits)
        # Byte slicing keeps the top two bytes of each little-endian sample, in C speed.
        if bits == 8:
            out[1::2] = samples.translate(_FLIP_SIGN)  # unsigned 8-bit -> signed high byte
        elif bits == 16:
            out[:] = samples
        else:
            step = bits // 8
            out[0::2] = samples[step - 2 :: step]
            out[1::2] = samples[step - 1 :: step]
        result = array("h")
        result.frombytes(bytes(out))
        if sys.byteorder == "big":
            result.byteswap()
        return result
    floats = array("f" if bits == 32 else "d")
    floats.frombytes(samples)
    if sys.byteorder == "big":
        floats.byteswap()
    return array("h", (max(-32768, min(32767, round(x * 32767))) for x in floats))


def _mono(samples: array[int], channels: int) -> array[int]:
    if channels == 1:
        return samples
    legs = [samples[c::channels] for c in range(channels)]
    return array("h", (sum(frame) // channels for frame in zip(*legs, strict=True)))


def to_pcm16_mono(info: WavInfo, samples: bytes) -> bytes:
    """Decoded sample bytes (as laid out in the file) as 16-bit little-endian mono PCM."""
    mono = _mono(_int16(samples, info.encoding, info.bits), info.channels)
    if sys.byteorder == "big":
        mono.byteswap()
    return mono.tobytes()


def read_wav(path: str | os.PathLike[str], sample_rate: int | None = None) -> tuple[bytes, int]:
    """Read a WAV file as 16-bit mono PCM: ``(pcm, rate)``.

    With ``sample_rate`` the audio is resampled to it (and ``rate == sample_rate``);
    without it the file's own rate is kept. Raises :class:`WavFormatError` naming the file
    and the problem for anything that is not integer or float PCM.
    """
    info, samples = _read(path)
    if info.frames == 0:
        raise _fail(info.path, "the file holds no audio (0 frames)")
    pcm = to_pcm16_mono(info, samples)
    if sample_rate is None or sample_rate == info.sample_rate:
        return pcm, info.sample_rate
    return resample(pcm, info.sample_rate, sample_rate), sample_rate


def write_wav(path: str | os.PathLike[str], pcm: bytes, sample_rate: int) -> None:
    """Write 16-bit mono PCM to a WAV file (an odd trailing byte is dropped)."""
    with wave.open(os.fspath(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH])
