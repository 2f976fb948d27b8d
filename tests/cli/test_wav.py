"""WAV files of every common layout become 16-bit mono PCM; others are refused by name."""

from __future__ import annotations

import pathlib
import struct

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import telcoflow_trio as tf
from telcoflow_trio.sandbox import WavFormatError, inspect_wav, open_sandbox, read_wav

from .wavs import int16, make_wav


def test_16_bit_mono_is_read_as_is(tmp_path: pathlib.Path) -> None:
    path = make_wav(tmp_path / "a.wav", int16(0, 1, -1, 32767, -32768))
    assert read_wav(path) == (int16(0, 1, -1, 32767, -32768), 16000)
    info = inspect_wav(path)
    assert (info.encoding, info.bits, info.channels, info.frames) == ("int", 16, 1, 5)


def test_8_bit_unsigned(tmp_path: pathlib.Path) -> None:
    path = make_wav(tmp_path / "a.wav", bytes([0, 128, 255]), bits=8, rate=8000)
    assert read_wav(path) == (int16(-32768, 0, 32512), 8000)


def test_24_and_32_bit_keep_the_top_16_bits(tmp_path: pathlib.Path) -> None:
    def pack24(v: int) -> bytes:
        return (v & 0xFFFFFF).to_bytes(3, "little")

    path = make_wav(tmp_path / "a.wav", pack24(0x123456) + pack24(-0x800000) + pack24(-1), bits=24)
    assert read_wav(path)[0] == int16(0x1234, -32768, -1)
    path = make_wav(tmp_path / "b.wav", struct.pack("<2i", 0x12345678, -(2**31)), bits=32)
    assert read_wav(path)[0] == int16(0x1234, -32768)


def test_float_samples_are_scaled_and_clipped(tmp_path: pathlib.Path) -> None:
    path = make_wav(tmp_path / "f.wav", struct.pack("<4f", 0.5, -1.0, 2.0, 0.0), bits=32, tag=3)
    assert read_wav(path)[0] == int16(16384, -32767, 32767, 0)
    path = make_wav(tmp_path / "d.wav", struct.pack("<2d", -0.5, 1.0), bits=64, tag=3)
    assert read_wav(path)[0] == int16(-16384, 32767)


def test_channels_are_averaged(tmp_path: pathlib.Path) -> None:
    path = make_wav(tmp_path / "s.wav", int16(100, 300, -100, -301), channels=2)
    assert read_wav(path)[0] == int16(200, -201)


def test_extensible_header_with_three_channels_of_24_bit(tmp_path: pathlib.Path) -> None:
    frame = b"".join((v << 8).to_bytes(3, "little", signed=True) for v in (30, 60, 90))
    path = make_wav(tmp_path / "x.wav", frame * 4, bits=24, channels=3, extensible=True)
    assert read_wav(path)[0] == int16(60, 60, 60, 60)


def test_odd_sized_chunks_before_the_data_are_skipped(tmp_path: pathlib.Path) -> None:
    junk = b"LIST" + struct.pack("<I", 3) + b"abc\x00"
    path = make_wav(tmp_path / "j.wav", int16(7, 8), extra_chunks=junk)
    assert read_wav(path)[0] == int16(7, 8)


def test_resampling_to_the_call_rate(tmp_path: pathlib.Path) -> None:
    path = make_wav(tmp_path / "r.wav", int16(*range(0, 8000, 10)), rate=8000)
    pcm, rate = read_wav(path, sample_rate=16000)
    assert rate == 16000 and len(pcm) == 2 * 1600
    assert pcm[:8] == int16(0, 5, 10, 15)  # linear interpolation
    pcm, rate = read_wav(make_wav(tmp_path / "h.wav", bytes(2 * 44100), rate=44100), 24000)
    assert (len(pcm), rate) == (2 * 24000, 24000)


@pytest.mark.parametrize(
    ("tag", "name"), [(0x11, "IMA ADPCM"), (0x55, "MP3"), (0x7, "mu-law"), (0x1234, "0x1234")]
)
def test_compressed_files_are_refused_by_name(tmp_path: pathlib.Path, tag: int, name: str) -> None:
    path = make_wav(tmp_path / "c.wav", bytes(64), bits=16, tag=tag)
    with pytest.raises(WavFormatError) as exc_info:
        read_wav(path)
    message = str(exc_info.value)
    assert str(path) in message and name in message and "sox" in message


@pytest.mark.parametrize(
    ("blob", "problem"),
    [
        (b"", "not a WAV file"),
        (b"RIFF\x04\x00\x00\x00AVI ", "not a WAV file"),
        (b"RIFX\x04\x00\x00\x00WAVE", "RIFX"),
        (b"RF64\x04\x00\x00\x00WAVE", "RF64"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no 'fmt ' chunk"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt \x04\x00\x00\x00\x01\x00\x01\x00", "too short"),
    ],
)
def test_broken_files_are_refused_by_name(
    tmp_path: pathlib.Path, blob: bytes, problem: str
) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(blob)
    with pytest.raises(WavFormatError, match=problem) as exc_info:
        read_wav(path)
    assert str(path) in str(exc_info.value)


def test_unsupported_layouts_are_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(WavFormatError, match="12-bit int"):
        read_wav(make_wav(tmp_path / "a.wav", bytes(6), bits=12))
    with pytest.raises(WavFormatError, match="16-bit float"):
        read_wav(make_wav(tmp_path / "b.wav", bytes(6), bits=16, tag=3))
    with pytest.raises(WavFormatError, match="0 frames"):
        read_wav(make_wav(tmp_path / "c.wav", b""))
    with pytest.raises(WavFormatError, match="cannot read it"):
        read_wav(tmp_path / "missing.wav")
    no_data = tmp_path / "d.wav"
    no_data.write_bytes(make_wav(tmp_path / "e.wav", int16(1)).read_bytes()[:36])
    with pytest.raises(WavFormatError, match="no 'data' chunk"):
        read_wav(no_data)


@settings(max_examples=40)
@given(samples=st.lists(st.integers(-32768, 32767), min_size=1, max_size=200), low=st.binary())
def test_any_deeper_encoding_of_16_bit_audio_reads_back_the_same(
    tmp_path_factory: pytest.TempPathFactory, samples: list[int], low: bytes
) -> None:
    folder = tmp_path_factory.mktemp("prop")
    # 24-bit samples whose top 16 bits are the 16-bit ones (any low byte), in two equal
    # channels, in an extensible header: all of it must vanish in the conversion.
    frames = b"".join(
        (low[i % len(low)] if low else 0).to_bytes(1, "little")
        + s.to_bytes(2, "little", signed=True)
        for i, s in enumerate(samples)
        for _ in range(2)
    )
    path = make_wav(folder / "p.wav", frames, bits=24, channels=2, extensible=True)
    assert read_wav(path)[0] == int16(*samples)


async def test_the_sandbox_plays_any_wav_the_phone_reads(tmp_path: pathlib.Path) -> None:
    # One reader for both: a stereo 24-bit file at 44.1 kHz, given to place_call as a path.
    frames = [(i * 40) % 30000 - 15000 for i in range(4410)]
    data = b"".join(
        struct.pack("<i", left << 8)[:3] + struct.pack("<i", (left // 2) << 8)[:3]
        for left in frames
    )
    path = make_wav(tmp_path / "stereo.wav", data, rate=44100, channels=2, bits=24)
    expected, _ = read_wav(path, sample_rate=16000)
    assert len(expected) == 2 * 1600 and any(expected)  # 0.1 s, averaged to mono, resampled
    async with open_sandbox(time_scale=10) as sandbox:
        config = sandbox.config()
        async with tf.SessionManager(config) as sm, trio.open_nursery() as nursery:

            async def answer(call: tf.Call) -> None:
                await call.answer()
                await call.wait_terminated()

            nursery.start_soon(sm.serve_calls, answer)
            sim = await sandbox.place_call(audio=str(path))
            with trio.fail_after(30):
                await sim.wait_spoken()
            await sim.hang_up()
            nursery.cancel_scope.cancel()
    assert bytes(sim.spoken) == expected
