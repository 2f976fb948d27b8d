"""Make the intersphinx inventories kept in docs/_inv/ (the docs build never downloads one).

    python docs/_inv/make_inventories.py [python] [trio] [hypothesis]

Each inventory is the real thing or an honest subset of it, made from a source these
machines can reach (Debian's and PyPI's package archives), never typed in from memory:

``python.inv``
    The ``objects.inv`` that Debian's ``python3.11-doc`` package ships (the CPython
    documentation built by Debian), taken out of the package with ``apt-get download`` and
    ``dpkg-deb -x``. Links go to docs.python.org/3; a name added after 3.11 is missing
    and would fail the build, which is the point.
``trio.inv``
    Built from the documentation sources in trio's sdist (``pip download trio==<installed>
    --no-binary :all:``): the sources are built with Sphinx, their own intersphinx mapping
    to Python pointed at ``python.inv`` above (the other projects they link are simply not
    reached), and the resulting ``objects.inv`` is kept. Building needs trio's docs
    requirements in this interpreter: sphinx, sphinx_rtd_theme, sphinxcontrib-jquery,
    sphinxcontrib-trio, sphinx-codeautolink, towncrier.
``hypothesis.inv``
    Hypothesis's sdist does not ship its documentation, so this one is written here, for
    exactly the names our docs reference, with the page each is documented on in
    Hypothesis's own docs sources (``hypothesis-python/docs/reference/api.rst`` and
    ``strategies.rst``, which document them with ``autoclass``, hence the anchors).
    Add a line to HYPOTHESIS_OBJECTS when our docs reference another Hypothesis name.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

PYTHON_DOC_PACKAGE = "python3.11-doc"
PYTHON_DOC_INVENTORY = "usr/share/doc/python3.11/html/objects.inv"

# (name, domain:role, page#anchor under https://hypothesis.readthedocs.io/en/latest/)
HYPOTHESIS_OBJECTS = [
    (
        "hypothesis.strategies.SearchStrategy",
        "py:class",
        "reference/strategies.html#hypothesis.strategies.SearchStrategy",
    ),
    (
        "hypothesis.stateful.Bundle",
        "py:class",
        "reference/api.html#hypothesis.stateful.Bundle",
    ),
    (
        "hypothesis.stateful.RuleBasedStateMachine",
        "py:class",
        "reference/api.html#hypothesis.stateful.RuleBasedStateMachine",
    ),
]


def write_inventory(
    path: Path, project: str, version: str, objects: list[tuple[str, str, str]]
) -> None:
    """Write a Sphinx inventory, version 2: a plain header, then zlib-compressed lines of
    ``name domain:role priority uri dispname`` (``-``: the display name is the name)."""
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    body = "".join(f"{name} {role} 1 {uri} -\n" for name, role, uri in sorted(objects))
    path.write_bytes(header.encode() + zlib.compress(body.encode()))


def make_python(work: Path) -> None:
    subprocess.run(["apt-get", "download", PYTHON_DOC_PACKAGE], cwd=work, check=True)
    (deb,) = work.glob(f"{PYTHON_DOC_PACKAGE}_*.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "deb")], check=True)
    shutil.copyfile(work / "deb" / PYTHON_DOC_INVENTORY, HERE / "python.inv")
    print(f"python.inv from {deb.name}")


def make_trio(work: Path) -> None:
    version = importlib.metadata.version("trio")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            f"trio=={version}",
            "--no-binary",
            ":all:",
            "--no-deps",
            "--dest",
            str(work),
        ],
        check=True,
    )
    with tarfile.open(work / f"trio-{version}.tar.gz") as sdist:
        sdist.extractall(work, filter="data")
    source = work / f"trio-{version}" / "docs" / "source"
    conf = source / "conf.py"
    text = conf.read_text()
    mapping = '"python": ("https://docs.python.org/3", None)'
    if mapping not in text:
        raise SystemExit(f"trio {version}'s conf.py no longer maps Python as expected: {mapping}")
    local = f'"python": ("https://docs.python.org/3", {str(HERE / "python.inv")!r})'
    conf.write_text(text.replace(mapping, local))
    # Without -W: trio's other intersphinx targets cannot be reached from here, and the
    # references they would resolve do not change trio's own objects.
    subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "html", str(source), str(work / "trio-html")],
        check=True,
    )
    shutil.copyfile(work / "trio-html" / "objects.inv", HERE / "trio.inv")
    print(f"trio.inv from trio {version}'s sdist")


def make_hypothesis() -> None:
    try:
        version = importlib.metadata.version("hypothesis")
    except importlib.metadata.PackageNotFoundError:
        version = "latest"
    write_inventory(HERE / "hypothesis.inv", "Hypothesis", version, HYPOTHESIS_OBJECTS)
    print(f"hypothesis.inv: {len(HYPOTHESIS_OBJECTS)} names")


def main(argv: list[str]) -> None:
    wanted = argv or ["python", "trio", "hypothesis"]
    unknown = [name for name in wanted if not re.fullmatch("python|trio|hypothesis", name)]
    if unknown:
        raise SystemExit(f"unknown inventory: {', '.join(unknown)} (python, trio, hypothesis)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "python" in wanted:
            make_python(work)
        if "trio" in wanted:
            make_trio(work)
        if "hypothesis" in wanted:
            make_hypothesis()


if __name__ == "__main__":
    main(sys.argv[1:])
