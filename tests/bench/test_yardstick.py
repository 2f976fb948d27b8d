"""bench/yardstick.py reads a run's CPU per call-second against the load generator's own:
checked on a small made-up run whose ratios are known, not on timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "yardstick.py"


def _point(client: str, rep: int, cpu: float, generator: float) -> dict[str, object]:
    return {
        "client": client,
        "n": 50,
        "rep": rep,
        "cpuMsPerCallSecond": cpu,
        "serverCpuMsPerCallSecond": generator,
    }


def test_ratios_raw_and_against_the_generator(tmp_path: Path) -> None:
    # Repetition 1 ran on a machine twice as slow: the generator's CPU doubled with the
    # agent's, so read against it the ratio is the same as in repetition 0.
    points = [
        _point("ours-websockets", 0, 2.0, 1.0),
        _point("official", 0, 2.5, 1.0),
        _point("ours-websockets", 1, 4.0, 2.0),
        _point("official", 1, 2.5, 1.0),
        _point("floor", 0, 3.0, 1.0),  # no pair with ours: that line is left out
    ]
    results = tmp_path / "calls.json"
    results.write_text(json.dumps({"echo": {"points": points}}))
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--results", str(results)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "N = 50, 2 repetition(s)" in out
    assert (
        "ours-websockets/official: raw 1.20 (0.80-1.60), against the generator 0.80 (0.80-0.80)"
        in out
    )
    assert "ours/floor" not in out
