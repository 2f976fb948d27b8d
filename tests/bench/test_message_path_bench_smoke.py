"""Smoke runs of bench/task_switches.py and bench/bench_pull_path.py (issue 15's per-message
path), so the scripts cannot rot: they run to the end on this tree and write well-formed
results. Never timings.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--tree", f"now={ROOT}", "--quick", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_task_switches_quick_mode_counts_steps_per_message(tmp_path: Path) -> None:
    out = tmp_path / "switches.json"
    _run("task_switches.py", "--steps", "--engines", "websockets", "--json", str(out))
    doc = json.loads(out.read_text())
    (run,) = doc["runs"]
    assert run["engine"] == "websockets" and run["n"] == 2
    assert run["messages"] > 0 and run["steps"] > 0
    assert math.isfinite(run["stepsPerMessage"]) and run["stepsPerMessage"] > 0
    assert math.isfinite(run["cpuMsPerCallSecond"]) and run["cpuMsPerCallSecond"] > 0
    assert run["integrity"] is True


def test_bench_pull_path_quick_mode(tmp_path: Path) -> None:
    out = tmp_path / "pull.json"
    stdout = _run("bench_pull_path.py", "--json", str(out))
    assert "per pull answered" in stdout
    doc = json.loads(out.read_text())
    (figures,) = doc["usPerPull"].values()
    assert len(figures) == doc["reps"] == 1
    assert all(math.isfinite(f) and f > 0 for f in figures)
