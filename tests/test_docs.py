"""The documentation site builds offline with no warning, and documents every public name.

One ``sphinx-build -W --keep-going -n`` of docs/ (about 10 s) into a temporary directory,
shared by the tests below. Without the docs requirements (``pip install -r
docs/requirements.txt``, or the ``test`` extra, which includes them) the tests fail: every
test run builds the docs.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DOC_TOOLS = ("sphinx", "sphinx_rtd_theme", "sphinxcontrib_trio")

sys.path.insert(0, str(DOCS / "_ext"))
# Where each public object is documented: the same table docs/conf.py resolves names with.
names_table = importlib.import_module("public_names")


def _require_doc_tools() -> None:
    missing = [name for name in DOC_TOOLS if importlib.util.find_spec(name) is None]
    if not missing:
        return
    message = (
        f"docs requirements not installed ({', '.join(missing)}): "
        "pip install -r docs/requirements.txt"
    )
    pytest.fail(message)  # the test extra brings them: a missing one is a broken install


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML output directory of one warning-free build."""
    _require_doc_tools()
    out = tmp_path_factory.mktemp("docs")
    command = [
        sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
        "-d", str(out / "doctrees"), str(DOCS), str(out / "html"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    report = f"{' '.join(command)}\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
    assert result.returncode == 0, report
    assert "WARNING" not in result.stderr, report
    return out / "html"


def _inventory_names(path: Path) -> set[str]:
    """The object names in a Sphinx inventory, version 2 (four header lines, then zlib)."""
    data = path.read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    assert data.startswith(b"# Sphinx inventory version 2\n")
    lines = zlib.decompress(data[header_end:]).decode().splitlines()
    return {line.split(" ", 1)[0] for line in lines if line.strip()}


def test_docs_build_without_a_warning(built: Path) -> None:
    for page in ("index", "guarantees", "protocol", "deployment", "reference/client"):
        assert (built / f"{page}.html").is_file(), page


def test_every_public_name_is_in_the_reference(built: Path) -> None:
    documented = _inventory_names(built / "objects.inv")
    missing = []
    for module_name in names_table.PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if isinstance(obj, type(module)):
                continue  # a submodule: checked as a module of its own
            home = names_table.home(module_name, name)
            if home not in documented:
                missing.append(f"{module_name}.{name} (documented as {home})")
    assert not missing, missing


def test_the_build_is_offline_and_nitpicky() -> None:
    """Every intersphinx inventory is a file kept in docs/_inv/, and nothing is excused."""
    conf = (DOCS / "conf.py").read_text()
    assert re.search(r"^nitpicky = True$", conf, re.MULTILINE)
    assert not re.search(r"^(nitpick_ignore|nitpick_ignore_regex|suppress_warnings)\b", conf, re.M)
    mapping = re.search(r"^intersphinx_mapping = \{(.*?)^\}", conf, re.MULTILINE | re.DOTALL)
    assert mapping is not None
    inventories = re.findall(r'HERE / "_inv" / "([\w.]+)"', mapping.group(1))
    entries = re.findall(r'^    "[\w-]+": \(', mapping.group(1), re.MULTILINE)
    assert inventories and len(inventories) == len(entries), mapping.group(1)
    for name in inventories:
        assert (DOCS / "_inv" / name).is_file(), name
        assert _inventory_names(DOCS / "_inv" / name), name
