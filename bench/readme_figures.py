"""Copy the benchmark's headline tables from ``bench/results/calls.md`` into README.md.

The README shows figures only from the committed results: between its markers
``<!-- bench-figures:begin -->`` and ``<!-- bench-figures:end -->`` stand the run's first
paragraph and the tables named in :data:`TABLES`, exactly as ``bench_calls.py`` wrote them.
``python bench/readme_figures.py`` rewrites that block; ``--check`` only says whether it is
up to date (a test runs that).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = ROOT / "bench" / "results" / "calls.md"
README: Final = ROOT / "README.md"
BEGIN: Final = "<!-- bench-figures:begin -->"
END: Final = "<!-- bench-figures:end -->"
TABLES: Final = (
    "**Agent CPU, ms per call-second**",
    "**RSS per call above idle, KiB**",
    "**Pull fill time p50, ms**",
    "**RSS at equal buffer sizes**",
    "**Interruption**",
    "**Targets**",
)


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


def figures(results: str) -> str:
    """The README's block: the run's description, then the chosen tables in order."""
    first = results.strip().split("\n\n", 1)[0]
    available = sections(results)
    missing = [title for title in TABLES if title not in available]
    if missing:
        raise SystemExit(f"{RESULTS.name} has no table {missing[0]}: rerun bench_calls.py")
    parts = [first, *(available[title] for title in TABLES)]
    return "\n\n".join(parts)


def spliced(readme: str, block: str) -> str:
    start = readme.index(BEGIN) + len(BEGIN)
    end = readme.index(END)
    return readme[:start] + "\n\n" + block + "\n\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only say whether it is current")
    args = parser.parse_args(argv)
    readme = README.read_text()
    updated = spliced(readme, figures(RESULTS.read_text()))
    if args.check:
        if updated != readme:
            print("README.md's benchmark figures differ from bench/results/calls.md")
            return 1
        return 0
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
