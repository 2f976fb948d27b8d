"""The package's metadata says what is true: the license it ships, the Pythons CI runs, an
sdist that carries what its own tests read, and a ``testing`` extra with what the testing
pages use. (`.ci/run` also builds the sdist and the wheel and runs ``twine check``.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def test_the_license_file_is_the_mit_license_the_metadata_names() -> None:
    assert PROJECT["license"] == "MIT"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13"])
def test_each_python_ci_runs_is_a_classifier(version: str) -> None:
    assert f"Programming Language :: Python :: {version}" in PROJECT["classifiers"]
    ci = (ROOT / ".ci" / "run").read_text() if (ROOT / ".ci").is_dir() else version
    assert version in ci


def test_a_development_status_and_project_urls_are_given() -> None:
    assert any(c.startswith("Development Status :: ") for c in PROJECT["classifiers"])
    assert {"Homepage", "Documentation", "Source", "Issues", "Changelog"} <= set(PROJECT["urls"])


def test_the_testing_extra_brings_what_the_testing_pages_use() -> None:
    names = {
        re.split(r"[<>=\[ ]", req, maxsplit=1)[0]
        for req in PROJECT["optional-dependencies"]["testing"]
    }
    assert {"pytest", "pytest-trio", "hypothesis"} <= names


def test_the_sdist_carries_every_folder_the_tests_read() -> None:
    included = PYPROJECT["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    tops = {entry.split("/")[0] for entry in included}
    # Folders the tests open by path (tests/test_examples.py, tests/bench, tests/test_docs.py).
    needed = {"telcoflow_trio", "tests", "examples", "bench", "docs", "README.md", "LICENSE"}
    assert needed <= tops
    for name in needed:
        assert (ROOT / name).exists(), name


def test_every_news_fragment_is_named_issue_dot_type() -> None:
    types = {t["directory"] for t in PYPROJECT["tool"]["towncrier"]["type"]}
    fragments = [p for p in (ROOT / "newsfragments").iterdir() if p.name != "README.md"]
    assert fragments, "no news fragments"
    for path in fragments:
        issue, kind, ext = path.name.split(".")
        assert issue.isdigit() and kind in types and ext == "md", path.name
