"""Smoke runs of the call benchmarks, so the scripts cannot rot.

Nothing here looks at timings: only that every script runs to the end and that its results
are well formed (every client measured, echo integrity, no stale audio for us).
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load_bench_calls() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # the script imports its sibling _benchlib
    try:
        spec = importlib.util.spec_from_file_location("bench_calls", BENCH / "bench_calls.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_calls"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def test_bench_calls_quick_mode(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_calls.py"), "--quick", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((tmp_path / "calls-quick.json").read_text())
    assert doc["failures"] == []

    bench = _load_bench_calls()
    clients = set(bench.DEFAULT_CLIENTS)
    echo = doc["echo"]["points"]
    assert {p["client"] for p in echo} == clients
    for p in echo:
        assert p["integrity"] is True, p
        assert p["agentCalls"] == p["n"], p
        assert p["pullsCounted"] > 0, p
        assert p["excessBytes"] == 0, p
        for key in ("cpuMsPerCallSecond", "peakRss", "rssPerCall", "pullP50Ms", "pullP99Ms"):
            assert _finite(p[key]), (key, p)
    summary = doc["echo"]["summary"]
    assert set(summary["2"]) == clients
    ratios = doc["echo"]["ratios"]["2"]
    for pair in ("ours-websockets/official", "ours/floor", "ours-eqbuf/official-eqbuf"):
        assert _finite(ratios[pair]["cpuMsPerCallSecond"]), pair
        assert ratios[pair]["reps"] == 1, pair

    same = doc["sameTime"]
    assert same["n"] == 2
    assert {(p["group"], p["client"]) for p in same["points"]} == {
        ("ours-websockets+official", "ours-websockets"),
        ("ours-websockets+official", "official"),
        ("ours+floor", "ours"),
        ("ours+floor", "floor"),
    }
    assert all(p["integrity"] is True for p in same["points"])
    for pair in ("ours-websockets/official", "ours/floor"):
        assert _finite(same["ratios"]["2"][pair]["cpuMsPerCallSecond"]), pair

    interrupts = doc["interrupt"]["points"]
    assert {p["client"] for p in interrupts} == {"ours", "ours-websockets", "official"}
    for p in interrupts:
        assert p["interrupts"] == p["turns"], p
        assert _finite(p["clearToInterruptP50Ms"]), p
        if p["client"] != "official":
            assert p["staleBytes"] == 0, p

    ceiling = doc["ceiling"]
    assert [t["n"] for t in ceiling["tries"]] == [2, 4]
    assert all(t["served"] and t["live"] == t["n"] == t["echoing"] for t in ceiling["tries"])
    assert (ceiling["served"], ceiling["refused"], ceiling["stoppedBy"]) == (4, None, "max N")
    life = ceiling["lifetime"]
    assert [r["placedSoFar"] for r in life["rounds"]] == [2, 4]
    assert (life["served"], life["stoppedBy"]) == (4, "batches")

    targets = {t["target"]: t for t in doc["targets"]}
    for ours in ("ours", "ours-websockets"):
        assert targets[f"stale bytes after interrupt ({ours}, worst run)"]["met"] is True
    for name in (
        "CPU per call-second, ours-websockets / official",
        "CPU per call-second, ours / floor",
        "RSS per call, ours / official (defaults)",
        "RSS per call, ours / official (equal buffers)",
    ):
        assert _finite(targets[name]["value"]), name
    table = (tmp_path / "calls-quick.md").read_text()
    assert "| N | ours | ours-websockets | official | floor |" in table
    assert "**RSS at equal buffer sizes**" in table
    assert "**The official client's ceiling**" in table
    assert "**Calls over one official-client process's life**" in table
    assert "**Targets**" in table
    assert "**Same-time pairs** at N=2:" in table
    assert targets["CPU per call-second, ours / floor"]["reading"] == "same time"


def test_stale_byte_count_sees_audio_of_a_cleared_turn() -> None:
    bench = _load_bench_calls()
    heard = bytes([1]) * 10 + bytes([2]) * 6 + bytes([1]) * 3 + bytes([2]) * 4 + bytes([3]) * 5
    # Interrupt 1 (turn 1) came after 10 bytes: 3 bytes of turn 1 still arrived after it.
    # Interrupt 2 (turn 2) came after 23 bytes: nothing of turns 1-2 after it.
    assert bench._stale_bytes(heard, [(0.0, 10), (1.0, 23)]) == 3
    assert bench._stale_bytes(heard, [(0.0, 19), (1.0, 23)]) == 0
    assert bench._stale_bytes(bytes([1]) * 4, []) == 0


def test_cancel_anywhere_runs_and_counts_nothing_wrong() -> None:
    """A short run of bench/cancel_anywhere.py (its default is 2,000 tries): every kind of
    flow and cut, and every count 0, as the script's exit status says."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "cancel_anywhere.py"), "--tries", "40", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["tries"] == 40, report
