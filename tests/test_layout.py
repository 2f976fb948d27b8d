"""The package's layout, checked: no import cycle (``TYPE_CHECKING`` and function-level imports
included), each room imports only downward, the public modules are exactly these, and no file
grows past what one reader holds in their head without a stated reason."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import telcoflow_trio

PACKAGE = Path(telcoflow_trio.__file__).parent
ROOT = PACKAGE.name

# Beside the SDK, each room may import the rooms listed and the SDK; the SDK imports none.
ROOMS: dict[str, set[str]] = {
    "sandbox": set(),
    "testing": {"sandbox"},
    "runner": set(),
    "_cli": {"sandbox", "testing", "runner"},
}

# Modules a user may import; every other module's name (or a package above it) is private.
PUBLIC_MODULES = {
    "telcoflow_trio",
    "telcoflow_trio.audio",
    "telcoflow_trio.protocol",
    "telcoflow_trio.protocol.call_state",
    "telcoflow_trio.protocol.control",
    "telcoflow_trio.protocol.handoff",
    "telcoflow_trio.protocol.pull",
    "telcoflow_trio.protocol.rest",
    "telcoflow_trio.protocol.session_state",
    "telcoflow_trio.protocol.timing",
    "telcoflow_trio.protocol.voice",
    "telcoflow_trio.runner",
    "telcoflow_trio.sandbox",
    "telcoflow_trio.testing",
    "telcoflow_trio.testing.pytest_plugin",
    "telcoflow_trio.testing.stateful",
    "telcoflow_trio.testing.strategies",
}

MAX_LINES = 450
# Files allowed past MAX_LINES, and why splitting them would not help a reader.
LONG_FILES: dict[str, str] = {
    "_sansio_websocket.py": (
        "one socket class around websockets' protocol object: its reader (by its own task "
        "or by the read hub), its single writer path (a write at once included: its unsent "
        "tail goes before anything else), ping and the close handshake share that object, "
        "the write lock and the closed state; split, each guarantee (a write never cut, "
        "nothing written after a failed write) would be half in one file and half in another"
    ),
}


def module_name(path: Path) -> str:
    parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> Iterator[str]:
    """Every module of the package that ``name`` imports, wherever the import statement is."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # ``from pkg import sub`` imports the submodule; ``from pkg import name`` the package.
            subs = [f"{module}.{alias.name}" for alias in node.names]
            targets = [sub if sub in MODULES else module for sub in subs]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


GRAPH = {name: sorted(set(imports_of(name))) for name in MODULES}


def room_of(name: str) -> str:
    parts = name.split(".")
    if name == f"{ROOT}.__main__":
        return "_cli"  # ``python -m telcoflow_trio`` is the command line
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else "sdk"


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_is_read_whole() -> None:
    # Guards the checks below against a parser that silently sees nothing.
    assert "telcoflow_trio._call" in GRAPH["telcoflow_trio._session"]
    assert "telcoflow_trio._call" in GRAPH["telcoflow_trio.testing._record"]
    assert "telcoflow_trio.sandbox" in GRAPH["telcoflow_trio.testing._runner"]


def test_there_is_no_import_cycle() -> None:
    assert cycles() == []


def test_the_cycle_check_finds_a_cycle() -> None:
    GRAPH["telcoflow_trio._trace"].append("telcoflow_trio._call")
    try:
        assert ["telcoflow_trio._call", "telcoflow_trio._trace"] in cycles()
    finally:
        GRAPH["telcoflow_trio._trace"].remove("telcoflow_trio._call")


@pytest.mark.parametrize("room", ["sdk", *ROOMS])
def test_each_room_imports_only_downward(room: str) -> None:
    allowed = {"sdk"} | ROOMS.get(room, set())
    upward = {
        (name, target)
        for name in GRAPH
        if room_of(name) == room
        for target in GRAPH[name]
        if room_of(target) not in allowed and room_of(target) != room
    }
    assert upward == set()


def test_the_public_modules_are_exactly_these() -> None:
    public = {name for name in MODULES if not any(part.startswith("_") for part in name.split("."))}
    assert public == PUBLIC_MODULES


def test_no_file_is_longer_than_a_reader_holds_without_a_reason() -> None:
    long = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines())
        for path in MODULES.values()
        if len(path.read_text().splitlines()) > MAX_LINES
    }
    assert set(long) <= set(LONG_FILES), long
    stale = set(LONG_FILES) - set(long)
    assert stale == set(), "no longer long: drop the stated reason"


def test_every_logger_the_docs_name_is_a_module_that_logs_under_its_name() -> None:
    page = (PACKAGE.parent / "docs" / "guide" / "logging.rst").read_text()
    section = page[page.index(".. list-table::") :]  # the logger table, to the page's end
    named = set(re.findall(r"``(telcoflow_trio(?:\.\w+)+)``", section))
    assert len(named) >= 10  # the table is there and was read
    for name in sorted(named):
        assert name in MODULES, f"docs/guide/logging.rst names a logger {name} that is no module"
        source = MODULES[name].read_text()
        is_package = MODULES[name].name == "__init__.py"
        assert is_package or "logging.getLogger(__name__)" in source, f"{name} does not log"
