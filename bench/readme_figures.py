"""Copy the benchmark's tables from ``bench/results/calls.md`` into README.md and the docs.

Figures are shown only from the committed results, exactly as ``bench_calls.py`` wrote them:

- README.md, between ``<!-- bench-figures:begin -->`` and ``<!-- bench-figures:end -->``:
  the run's first paragraph and the tables named in :data:`README_TABLES` (the targets and
  the CPU curve);
- docs/guide/benchmarks.rst, between the comments ``.. bench-figures:begin`` and
  ``.. bench-figures:end``: the same paragraph and every table named in :data:`TABLES`,
  converted to reStructuredText (list tables; inline code as literals).

``python bench/readme_figures.py`` rewrites both blocks; ``--check`` only says whether they
are up to date (a test runs that).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = ROOT / "bench" / "results" / "calls.md"
README: Final = ROOT / "README.md"
DOCS_PAGE: Final = ROOT / "docs" / "guide" / "benchmarks.rst"
BEGIN: Final = "<!-- bench-figures:begin -->"
END: Final = "<!-- bench-figures:end -->"
RST_BEGIN: Final = ".. bench-figures:begin"
RST_END: Final = ".. bench-figures:end"
TABLES: Final = (
    "**Agent CPU, ms per call-second**",
    "**RSS per call above idle, KiB**",
    "**Pull fill time p50, ms**",
    "**RSS at equal buffer sizes**",
    "**Interruption**",
    "**Same-time pairs**",
    "**Targets**",
)
README_TABLES: Final = ("**Targets**", "**Same-time pairs**", "**Agent CPU, ms per call-second**")
"""The headline targets, the same-time pairs the CPU targets are read from, and the curve
of CPU per call-second from 1 to 200 calls."""


def sections(markdown: str) -> dict[str, str]:
    """Each bold-titled block of ``markdown`` (title line to the next blank line after its
    table), keyed by its title's first bold span."""
    found: dict[str, str] = {}
    blocks = markdown.strip().split("\n\n")
    for i, block in enumerate(blocks):
        if not block.startswith("**"):
            continue
        title = block[: block.index("**", 2) + 2]
        text = block
        if i + 1 < len(blocks) and blocks[i + 1].startswith("|"):
            text += "\n\n" + blocks[i + 1]
        found[title] = text
    return found


def figures(results: str, tables: tuple[str, ...] = TABLES) -> str:
    """A Markdown block: the run's description, then the chosen tables in order."""
    first = results.strip().split("\n\n", 1)[0]
    available = sections(results)
    missing = [title for title in tables if title not in available]
    if missing:
        raise SystemExit(f"{RESULTS.name} has no table {missing[0]}: rerun bench_calls.py")
    parts = [first, *(available[title] for title in tables)]
    return "\n\n".join(parts)


def _rst_inline(text: str) -> str:
    """Markdown inline code as reST literals (never the default role, which would be a
    cross-reference); an escaped space where a literal touches a letter or digit."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for i, part in enumerate(parts):
        if len(part) > 1 and part.startswith("`") and part.endswith("`"):
            literal = f"``{part[1:-1]}``"
            if i > 0 and parts[i - 1][-1:].isalnum():
                literal = "\\ " + literal
            if i + 1 < len(parts) and parts[i + 1][:1].isalnum():
                literal += "\\ "
            out.append(literal)
        else:
            out.append(part)
    return "".join(out)


def _rst_cell(text: str) -> str:
    text = _rst_inline(text.strip())
    # A lone "-" (no value) would start a bullet list inside the cell.
    return "\\-" if text == "-" else text


def _rst_table(lines: list[str]) -> str:
    rows = [line.strip().strip("|").split("|") for line in lines]
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in [rows[0], *rows[2:]]:  # rows[1] is the alignment line
        for j, cell in enumerate(row):
            out.append(f"   {'* -' if j == 0 else '  -'} {_rst_cell(cell)}".rstrip())
    return "\n".join(out)


def to_rst(markdown: str) -> str:
    """The block in reST: paragraphs keep their bold and become literal-safe; each pipe
    table becomes a list table."""
    blocks = []
    for block in markdown.strip().split("\n\n"):
        lines = block.splitlines()
        if lines[0].startswith("|"):
            blocks.append(_rst_table(lines))
        else:
            blocks.append("\n".join(_rst_inline(line) for line in lines))
    return "\n\n".join(blocks)


def spliced(text: str, block: str, begin: str = BEGIN, end: str = END) -> str:
    start = text.index(begin) + len(begin)
    stop = text.index(end)
    return text[:start] + "\n\n" + block + "\n\n" + text[stop:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only say whether they are current")
    args = parser.parse_args(argv)
    results = RESULTS.read_text()
    targets = [
        (README, spliced(README.read_text(), figures(results, README_TABLES))),
        (DOCS_PAGE, spliced(DOCS_PAGE.read_text(), to_rst(figures(results)), RST_BEGIN, RST_END)),
    ]
    stale = [path for path, updated in targets if updated != path.read_text()]
    if args.check:
        for path in stale:
            print(f"{path.name}'s benchmark figures differ from bench/results/calls.md")
        return 1 if stale else 0
    for path, updated in targets:
        path.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
