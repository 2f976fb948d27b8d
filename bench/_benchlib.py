"""Shared helpers of the call benchmarks: agent options, process readings from /proc, stats.

Kept free of trio and of both SDKs, so every agent process (ours, the official client's,
the floor) imports the same small module and nothing more.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

SAMPLE_RATE: Final = 24_000
BYTES_PER_SECOND = SAMPLE_RATE * 2
CHUNK_BYTES = BYTES_PER_SECOND // 10
"""What the interruption agent's model hands over at a time: 100 ms of audio."""


# ── agents ──────────────────────────────────────────────────────────────────────────────


def agent_parser(description: str) -> argparse.ArgumentParser:
    """The command line every bench agent takes (the driver starts them)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--url", required=True, help="the sandbox's base_url")
    p.add_argument("--api-key", required=True)
    p.add_argument("--connector-uuid", required=True)
    p.add_argument("--mode", choices=("echo", "interrupt"), default="echo")
    p.add_argument(
        "--command-every", type=float, default=0.0, help="seconds between whispers (0: none)"
    )
    p.add_argument("--turns", type=int, default=10, help="interrupt mode: turns per call")
    p.add_argument("--turn-seconds", type=float, default=3.0, help="interrupt mode: turn length")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="where to write the agent's JSON at exit")
    return p


def turn_audio(turn: int, seconds: float) -> bytes:
    """A turn's audio: every byte is the turn number, so the sandbox can tell turns apart
    (each 16-bit sample is ``turn * 257``, a quiet constant tone)."""
    if not 1 <= turn <= 255:
        raise ValueError(f"turn must be in 1..255, got {turn}")
    return bytes([turn]) * (int(seconds * BYTES_PER_SECOND) & ~1)


class AgentStats:
    """What an agent measures itself: command round trips and when it cleared."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.answer_rtts: list[float] = []
        self.command_rtts: list[float] = []
        self.clears: list[tuple[str, int, float, float]] = []
        """(call id, turn, monotonic time clear was called, monotonic time it returned)"""
        self.calls = 0
        self.errors = 0

    def write(self, path: str) -> None:
        doc = {
            "client": self.client,
            "calls": self.calls,
            "errors": self.errors,
            "answerRtts": self.answer_rtts,
            "commandRtts": self.command_rtts,
            "clears": self.clears,
        }
        tmp = Path(path + ".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)


# ── process readings (Linux /proc; no psutil) ───────────────────────────────────────────


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of every thread of ``pid`` so far, in seconds.

    Reads the scheduler's nanosecond counters (``/proc/PID/task/*/schedstat``), far finer
    than the 10 ms ticks of ``/proc/PID/stat``; falls back to the ticks where schedstat is
    missing or switched off (it then reads zero).
    """
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except FileNotFoundError:
                continue  # the thread ended between the listing and the read
    except (FileNotFoundError, PermissionError, IndexError, ValueError):
        total = 0
    if total > 0:
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of ``pid`` in bytes."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    return rss, hwm


def self_cpu_seconds() -> float:
    return time.process_time()


# ── statistics ──────────────────────────────────────────────────────────────────────────


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median of the finite values; NaN when there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def ratio(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return math.nan
    return a / b


def fmt(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return format(value, spec)
    return str(value)


def clean(obj: Any) -> Any:
    """``obj`` with NaN turned into None, so the JSON is standard."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    return obj


def run_profiled(name: str, main: Callable[[], object]) -> None:
    """Run ``main()``; with ``BENCH_PROFILE=DIR`` in the environment, under pyinstrument,
    writing its report to ``DIR/NAME-PID.txt`` (how the per-message costs were found)."""
    target = os.environ.get("BENCH_PROFILE")
    if not target:
        main()
        return
    profiler = importlib.import_module("pyinstrument").Profiler(interval=0.0005)
    profiler.start()
    try:
        main()
    finally:
        profiler.stop()
        report = profiler.output_text(unicode=True, show_all=False)
        Path(target, f"{name}-{os.getpid()}.txt").write_text(report)
