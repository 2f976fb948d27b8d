"""Writing WAV files of any layout for the tests, independently of the code under test."""

from __future__ import annotations

import pathlib
import struct

PCM_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def make_wav(
    path: pathlib.Path,
    data: bytes,
    *,
    rate: int = 16000,
    channels: int = 1,
    bits: int = 16,
    tag: int = 1,
    extensible: bool = False,
    extra_chunks: bytes = b"",
) -> pathlib.Path:
    """A RIFF/WAVE file with ``data`` as its sample bytes, exactly as given."""
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack(
            "<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 0
        )
        fmt += struct.pack("<H", tag) + PCM_GUID_TAIL
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunks
    chunks += b"data" + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) & 1 else b"")
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    return path


def int16(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)
