"""The buffer benchmark's smoke mode runs to the end, so the script cannot rot.

Nothing here looks at timings; the benchmark itself checks that every byte was framed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_buffer.py"


def test_bench_buffer_quick_mode_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("outgoing audio buffer throughput")
    rows = [line for line in lines if line.startswith(("16kHz", "24kHz"))]
    assert len(rows) == 3
    for row in rows:
        ours, official, ratio = row.split()[-3:]
        assert float(ours) > 0
        if ratio != "-":  # the official client is installed
            assert float(official) > 0
            assert ratio.endswith("x")
