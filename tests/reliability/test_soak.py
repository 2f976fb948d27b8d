"""The soak benchmark's short version (``bench/soak.py``): sandbox in another process, calls
arriving and ending continuously, both ways streaming. Checks outcomes, never timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
SHORT = ("--calls", "24", "--concurrency", "6", "--seconds", "0.5", "--time-scale", "5", "--json")


def test_short_soak_completes_every_call_and_returns_every_fd() -> None:
    done = subprocess.run(
        [sys.executable, str(SOAK), *SHORT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr
    result = json.loads(done.stdout)
    assert (result["completed"], result["failed"]) == (24, 0), result["failures"]
    assert result["peak_concurrent"] == 6
    assert result["reconnects"] == 0
    assert result["fds_after"] == result["fds_before"]
    # A loose bound: the full soak reports the real figure (README); this catches a leak of
    # anything per call (24 calls of 16 KiB each way would not show, a buffer per call would).
    assert result["rss_drift_mb"] < 8
    assert done.returncode == 0
