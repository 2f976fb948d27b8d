"""CPU per pull answered on the outgoing path, as an echo call drives it (issue 15).

One trio task plays both the application and the server, in the echo call's proportions:
it queues five 20 ms chunks of 24 kHz PCM (``send_audio``, 960 bytes each), then sends one
``buffer_request`` for 100 ms (4800 bytes, ``prefer_audio_frame_bytes`` 960); the
:class:`PullServicer` cuts the frame and hands it to a sink that, like a socket write,
is a schedule point and nothing more. The figure is ``time.process_time()`` per pull
answered (five writes, one request, one frame) over ``--pulls`` pulls: what the SDK's
outgoing path costs, without the socket.

Trees ("NAME=DIR", directories holding a ``telcoflow_trio`` package) are measured each in
its own process, in runs that alternate between them; each repetition's ratio is second
over first, and the summary is the median of those ratios.

    python bench/bench_pull_path.py --tree before=/tmp/old --tree after=. --reps 7
    python bench/bench_pull_path.py --tree after=. --quick
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CHUNK = 960
PULL = 4800


def measure(tree: str, pulls: int) -> float:
    """µs of CPU per pull answered, with the SDK imported from ``tree``."""
    sys.path.insert(0, str(Path(tree).resolve()))
    import trio

    from telcoflow_trio.audio import PullServicer, SendAudioBuffer
    from telcoflow_trio.protocol.voice import BufferRequest

    result = 0.0

    async def main() -> None:
        nonlocal result
        sent = 0

        async def sink(frame: bytes) -> None:
            nonlocal sent
            sent += len(frame) - 1
            await trio.lowlevel.cancel_shielded_checkpoint()

        buffer = SendAudioBuffer(48_000)
        servicer = PullServicer(buffer, send_frame=sink)
        chunk = bytes(CHUNK)
        request = BufferRequest(PULL, CHUNK)
        async with trio.open_nursery() as nursery:
            await nursery.start(servicer.run)
            for phase in ("warm-up", "measured"):
                count = pulls // 10 if phase == "warm-up" else pulls
                target = sent + count * PULL
                started = time.process_time()
                for _ in range(count):
                    for _ in range(PULL // CHUNK):
                        await buffer.send_audio(chunk)
                    servicer.on_buffer_request(request)
                    # The servicer runs once this task yields, as it would after a read.
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    await trio.lowlevel.cancel_shielded_checkpoint()
                while sent < target:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                result = 1e6 * (time.process_time() - started) / count
            servicer.close()

    trio.run(main)
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "measure":
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]))))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", required=True, help="NAME=DIR, once or twice")
    p.add_argument("--pulls", type=int, default=20_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="smoke mode: 500 pulls, one run")
    p.add_argument("--json", default=None, help="write every figure and the ratios here")
    args = p.parse_args()
    if not 1 <= len(args.tree) <= 2:
        p.error("give --tree once or twice")
    if not 100 <= args.pulls <= 1_000_000 or not 1 <= args.reps <= 50:
        p.error("--pulls 100..1000000, --reps 1..50")
    pulls, reps = (500, 1) if args.quick else (args.pulls, args.reps)
    trees = [(name, path) for name, _, path in (t.partition("=") for t in args.tree)]
    figures: dict[str, list[float]] = {name: [] for name, _ in trees}
    for rep in range(reps):
        for name, path in trees if rep % 2 == 0 else trees[::-1]:
            out = subprocess.run(
                [sys.executable, __file__, "measure", path, str(pulls)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            figures[name].append(float(json.loads(out)))
        print(" ".join(f"{n} {figures[n][-1]:.2f} µs" for n, _ in trees), flush=True)
    for name, values in figures.items():
        print(f"{name}: median {sorted(values)[len(values) // 2]:.2f} µs per pull answered")
    ratios: list[float] = []
    if len(trees) == 2:
        first, second = (n for n, _ in trees)
        ratios = sorted(b / a for a, b in zip(figures[first], figures[second], strict=True))
        print(f"{second}/{first}: median ratio {ratios[len(ratios) // 2]:.3f} (of {ratios})")
    if args.json:
        doc = {"pulls": pulls, "reps": reps, "usPerPull": figures, "ratios": ratios}
        Path(args.json).write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
