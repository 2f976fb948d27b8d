"""README's benchmark figures are the committed results' tables, as bench/readme_figures.py
copies them: a rerun that is not copied over, or a hand edit, fails here."""

from __future__ import annotations

import importlib.util
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


def test_the_check_sees_a_changed_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = figures.README.read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| 50 | "))
    edited = tmp_path / "README.md"
    edited.write_text(readme.replace(row, row.replace("| 50 | ", "| 50 | 1", 1), 1))
    monkeypatch.setattr(figures, "README", edited)
    assert figures.main(["--check"]) == 1


def test_every_table_the_readme_shows_is_in_the_results() -> None:
    block = figures.figures(figures.RESULTS.read_text())
    for title in figures.TABLES:
        assert title in block
    assert block.count("| ---") >= len(figures.TABLES)
