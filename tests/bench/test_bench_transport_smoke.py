"""Smoke run of bench/bench_transport.py (its ``--quick`` mode), so the script cannot rot.

Only that it runs to the end and writes well-formed results; never timings.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_bench_transport_quick_mode(tmp_path: Path) -> None:
    out = tmp_path / "transport.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_transport.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "median of per-repetition ratios" in done.stdout
    results = json.loads(out.read_text())
    assert set(results["runs"]) == {"trio-websocket", "websockets"}
    for runs in results["runs"].values():
        assert len(runs) == results["args"]["reps"] == 1
        for run in runs:
            assert run["us_per_message"] > 0
            assert run["rate"] > 0
    assert all(math.isfinite(r) and r > 0 for r in results["ratios"])
