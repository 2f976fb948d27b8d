"""The benchmark figures in README.md (the headline tables) and docs/guide/benchmarks.rst
(every table) are the committed results' tables, as bench/readme_figures.py copies them: a
rerun that is not copied over, or a hand edit in either place, fails here."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "readme_figures.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_figures", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_figures"] = module
    spec.loader.exec_module(module)
    return module


figures = _load()


def test_the_readme_shows_the_committed_results() -> None:
    assert figures.main(["--check"]) == 0


def test_the_check_sees_a_changed_figure_in_the_readme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = figures.README.read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| RSS per call, ours / "))
    edited = tmp_path / "README.md"
    edited.write_text(readme.replace(row, row.replace("| 50 | ", "| 50 | 1", 1), 1))
    monkeypatch.setattr(figures, "README", edited)
    assert figures.main(["--check"]) == 1


def test_the_check_sees_a_changed_figure_in_the_docs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = figures.DOCS_PAGE.read_text()
    row = "   * - 50\n     - "
    assert row in page
    edited = tmp_path / "benchmarks.rst"
    edited.write_text(page.replace(row, row + "1", 1))
    monkeypatch.setattr(figures, "DOCS_PAGE", edited)
    assert figures.main(["--check"]) == 1


def test_every_table_is_in_the_results_and_shown() -> None:
    results = figures.RESULTS.read_text()
    block = figures.figures(results)
    for title in figures.TABLES:
        assert title in block
    assert block.count("| ---") >= len(figures.TABLES)
    assert set(figures.README_TABLES) <= set(figures.TABLES)
    readme = figures.README.read_text()
    for title in figures.README_TABLES:
        assert title in readme
    page = figures.DOCS_PAGE.read_text()
    for title in figures.TABLES:
        assert title in page
    assert page.count(".. list-table::") >= len(figures.TABLES)


def test_the_docs_block_has_no_markdown_left() -> None:
    rst = figures.to_rst(figures.figures(figures.RESULTS.read_text()))
    assert "| ---" not in rst
    # Single backticks would be cross-references in reST (the docs build is nitpicky).
    assert re.search(r"(?<!`)`(?!`)", rst) is None
