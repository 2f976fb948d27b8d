"""Every example runs against the sandbox, bounded in time."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_echo_agent_against_the_sandbox() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "echo_agent.py"), "--sandbox", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "identical" in proc.stdout
    assert "heard back 32000 bytes" in proc.stdout
