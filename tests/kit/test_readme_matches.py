"""The docs' example test of an agent (docs/guide/testing.rst, "Property-testing your agent")
is tests/kit/test_readme_example.py, verbatim. (It was the README's; the README is now a front
page and this section lives in the docs.)"""

from __future__ import annotations

import pathlib
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "kit" / "test_readme_example.py"
PAGE = ROOT / "docs" / "guide" / "testing.rst"
HEADING = "Property-testing your agent"
INTRO = "This complete test file is run by our own test suite"


def code_block_after(text: str, marker: str) -> str:
    """The body of the first ``.. code-block::`` after ``marker``, dedented."""
    rest = text.split(marker, 1)[1]
    rest = rest.split(".. code-block:: python\n\n", 1)[1]
    body = []
    for line in rest.splitlines():
        if line and not line.startswith("   "):
            break  # the first unindented line ends the block
        body.append(line)
    return textwrap.dedent("\n".join(body)).strip("\n") + "\n"


def test_the_docs_show_the_example_that_runs() -> None:
    page = PAGE.read_text(encoding="utf-8")
    assert HEADING in page, f"{PAGE.name} lost its {HEADING!r} section"
    section = page.split(HEADING, 1)[1]
    assert INTRO in section, f"{PAGE.name} lost the example's introduction"
    assert code_block_after(section, INTRO) == EXAMPLE.read_text(encoding="utf-8")


def test_the_block_reader_stops_at_the_end_of_the_block() -> None:
    text = "x\n.. code-block:: python\n\n   a\n\n       b\n\nnext paragraph\n"
    assert code_block_after(text, "x") == "a\n\n    b\n"
