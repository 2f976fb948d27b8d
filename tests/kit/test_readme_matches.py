"""The README's example test of an agent is tests/kit/test_readme_example.py, verbatim."""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "kit" / "test_readme_example.py"
HEADING = "Property-testing your agent"


def test_the_readme_shows_the_example_that_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert HEADING in readme, f"README.md lost its {HEADING!r} section"
    section = readme.split(HEADING, 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert block == EXAMPLE.read_text(encoding="utf-8")
