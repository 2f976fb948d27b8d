"""The public API is typed for its users: ``pyright --verifytypes`` scores at least 98 %.

Runs ``pyright --verifytypes telcoflow_trio --ignoreexternal --outputjson`` (a few seconds)
and names every public symbol whose type pyright cannot know, with where to fix it. pyright
is part of the test tooling: missing, this test fails and says how to install it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

THRESHOLD = 0.98
ROOT = Path(__file__).resolve().parent.parent


def _verifytypes() -> dict[str, Any]:
    if importlib.util.find_spec("pyright") is None:
        pytest.fail("pyright is not installed: `pip install pyright` (part of the test tooling)")
    argv = [sys.executable, "-m", "pyright", "--pythonpath", sys.executable]
    argv += ["--verifytypes", "telcoflow_trio", "--ignoreexternal", "--outputjson"]
    # Exit status 1 only means "below 100 %"; the JSON says how far below.
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pyright gave no JSON report (exit {done.returncode}): {done.stderr[-2000:]}")
    return report


def _where(symbol: dict[str, Any]) -> str:
    for diagnostic in symbol.get("diagnostics", []):
        if diagnostic.get("severity") == "error" and "file" in diagnostic:
            line = diagnostic.get("range", {}).get("start", {}).get("line", -1) + 1
            path = Path(diagnostic["file"])
            if path.is_relative_to(ROOT):
                path = path.relative_to(ROOT)
            return f"{path}:{line}: {diagnostic['message'].splitlines()[0]}"
    return "(through a type it refers to)"


def test_verifytypes_scores_at_least_98_percent() -> None:
    report = _verifytypes()
    completeness = report["typeCompleteness"]
    score = completeness["completenessScore"]
    unknown = [
        f"{s['name']}  {_where(s)}"
        for s in completeness["symbols"]
        if s["isExported"] and not s["isTypeKnown"]
    ]
    assert score >= THRESHOLD, (
        f"verifytypes: {score:.1%} < {THRESHOLD:.0%}; public symbols without a known type:\n"
        + "\n".join(unknown)
    )
