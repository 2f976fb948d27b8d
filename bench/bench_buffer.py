"""Outgoing-audio throughput: write → pull → frames, ours against the official client's.

Both sides are driven the same way. A producer writes ``total`` bytes of PCM in chunks,
waiting for room when the buffer is full (ours: ``send_audio(wait=True)``; theirs:
``ConcurrentByteBuffer.write``). A fake server keeps ``outstanding`` pull requests of
``request`` bytes (frame preference ``pref``) open, asking for more as frames arrive. The
frames go through the official client's framing rule (ours: :class:`PullServicer`; theirs:
the loop of ``VoiceSession._send_poll_based_request``, re-stated here around their buffer)
into a sink that counts bytes and yields once, as a socket write would. The clock stops
when the last byte has been framed. Ours runs under trio, theirs under asyncio, each in its
own event loop, in the same process.

    python bench/bench_buffer.py            # median of 7 runs per scenario
    python bench/bench_buffer.py --quick    # smoke mode: tiny, one run each
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import trio

from telcoflow_trio.audio import PullServicer, SendAudioBuffer
from telcoflow_trio.protocol.voice import DEFAULT_FRAME_BYTES, BufferRequest

try:
    from telcoflow.concurrent_byte_buffer import ConcurrentByteBuffer
except ImportError:  # the official client is optional here
    ConcurrentByteBuffer = None

MB = 1_000_000


@dataclass(frozen=True)
class Scenario:
    name: str
    chunk: int
    request: int
    pref: int
    capacity: int
    total: int
    outstanding: int = 4


SCENARIOS = (
    Scenario("16kHz 60ms chunks, 4800B pulls", 1920, 4800, 960, 1 << 20, 48 * MB),
    Scenario("16kHz 10ms chunks, 960B pulls", 320, 960, 960, 1 << 16, 8 * MB),
    Scenario("24kHz 1s chunks, 48000B pulls", 48000, 48000, 960, 1 << 20, 192 * MB),
)


def _scaled(s: Scenario, quick: bool) -> Scenario:
    if not quick:
        return s
    return Scenario(
        s.name, s.chunk, s.request, s.pref, s.capacity, max(s.chunk * 8, s.total // 256)
    )


class _Server:
    """Counts framed bytes and keeps ``outstanding`` requests open."""

    def __init__(self, s: Scenario, issue: Callable[[int], None]) -> None:
        self.s = s
        self.issue = issue
        self.sent = 0
        self.frames = 0
        self.requested = 0

    def top_up(self) -> None:
        s = self.s
        while self.requested < s.total and self.requested - self.sent < s.outstanding * s.request:
            n = min(s.request, s.total - self.requested)
            self.requested += n
            self.issue(n)

    def framed(self, frame: bytes) -> None:
        if frame[0] != 0:
            raise AssertionError("frame without channel byte 0")
        self.sent += len(frame) - 1
        self.frames += 1
        self.top_up()


# ── ours ────────────────────────────────────────────────────────────────────────────────


async def _ours(s: Scenario) -> float:
    buf = SendAudioBuffer(s.capacity)
    pcm = bytes(range(256)) * (s.chunk // 256) + bytes(s.chunk % 256)
    server: _Server

    async def send_frame(frame: bytes) -> None:
        server.framed(frame)
        await trio.lowlevel.checkpoint()

    servicer = PullServicer(buf, send_frame=send_frame)
    full = BufferRequest(s.request, s.pref, 0)  # frozen: one object serves every pull

    def issue(n: int) -> None:
        servicer.on_buffer_request(full if n == s.request else BufferRequest(n, s.pref, 0))

    server = _Server(s, issue)
    async with trio.open_nursery() as nursery:
        await nursery.start(servicer.run)
        start = time.perf_counter()
        server.top_up()
        left = s.total
        while left > 0:
            piece = pcm if left >= s.chunk else pcm[:left]
            await buf.send_audio(piece, wait=True)
            left -= len(piece)
        await servicer.wait_for_playout()
        elapsed = time.perf_counter() - start
        servicer.close()
    if server.sent != s.total:
        raise AssertionError(f"ours framed {server.sent} of {s.total} bytes")
    return elapsed


# ── theirs ──────────────────────────────────────────────────────────────────────────────


async def _theirs(s: Scenario) -> float:
    assert ConcurrentByteBuffer is not None
    buf = ConcurrentByteBuffer(s.capacity)
    pcm = bytes(range(256)) * (s.chunk // 256) + bytes(s.chunk % 256)
    requests: asyncio.Queue[tuple[int, int, int] | None] = asyncio.Queue()
    done = asyncio.Event()
    server = _Server(s, lambda n: requests.put_nowait((0, n, s.pref)))

    async def sink(frame: bytes) -> None:
        server.framed(frame)
        if server.sent >= s.total:
            done.set()
        await asyncio.sleep(0)

    async def serve() -> None:
        # The official VoiceSession._send_poll_based_request loop, around their buffer.
        while True:
            item = await requests.get()
            if item is None:
                return
            channel, requested, prefer = item
            size = prefer if prefer > 0 else DEFAULT_FRAME_BYTES
            prefix = bytes([channel])
            sent = 0
            while sent < requested:
                most = requested - sent
                chunk = await buf.read_bytes(min(size, most), most)
                if not chunk:
                    break
                await sink(prefix + chunk)
                sent += len(chunk)

    task = asyncio.create_task(serve())
    start = time.perf_counter()
    server.top_up()
    left = s.total
    while left > 0:
        piece = pcm if left >= s.chunk else pcm[:left]
        await buf.write(piece)
        left -= len(piece)
    await buf.close()  # their way to flush the tail
    await done.wait()
    elapsed = time.perf_counter() - start
    requests.put_nowait(None)
    await task
    return elapsed


def _run_theirs(s: Scenario) -> float:
    return asyncio.run(_theirs(s))


def _median_mbps(fn: Callable[[], float], total: int, runs: int) -> float:
    times = [fn() for _ in range(runs)]
    return total / statistics.median(times) / MB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: tiny sizes, one run")
    parser.add_argument("--runs", type=int, default=None, help="runs per side (default 7)")
    args = parser.parse_args(argv)
    runs = args.runs if args.runs is not None else (1 if args.quick else 7)
    if runs < 1:
        parser.error("--runs must be at least 1")
    have_theirs = ConcurrentByteBuffer is not None
    print(f"outgoing audio buffer throughput, median of {runs} run(s), MB/s (1 MB = 10^6 B)")
    if not have_theirs:
        print("(telcoflow==1.0.0 is not installed: showing ours only)")
    header = f"{'scenario':34} {'MB':>6} {'ours':>9} {'official':>9} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for base in SCENARIOS:
        s = _scaled(base, args.quick)
        ours = _median_mbps(partial(trio.run, _ours, s), s.total, runs)
        if have_theirs:
            theirs = _median_mbps(partial(_run_theirs, s), s.total, runs)
            row = f"{theirs:9.1f} {ours / theirs:6.2f}x"
        else:
            row = f"{'-':>9} {'-':>7}"
        print(f"{s.name:34} {s.total / MB:6.1f} {ours:9.1f} {row}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
