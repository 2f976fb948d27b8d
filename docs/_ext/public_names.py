"""Where each public name is documented: once, in one module's section of the reference.

A class or function exported by several modules is documented under the first module of
PUBLIC_MODULES that exports it (``telcoflow_trio.AudioStream``, not
``telcoflow_trio.audio.AudioStream``). A value (a constant, a type alias, a strategy) is
documented under the public module whose own code assigns it, where its ``#:`` comment is
(``telcoflow_trio.protocol.timing.SETUP_TIMEOUT``, not ``telcoflow_trio.protocol``'s
re-export), or else under the first module that exports it. Every other module exporting
the name links to that entry.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect

PUBLIC_MODULES = (
    "telcoflow_trio",
    "telcoflow_trio.audio",
    "telcoflow_trio.protocol",
    "telcoflow_trio.protocol.timing",
    "telcoflow_trio.protocol.call_state",
    "telcoflow_trio.protocol.session_state",
    "telcoflow_trio.protocol.pull",
    "telcoflow_trio.protocol.control",
    "telcoflow_trio.protocol.voice",
    "telcoflow_trio.protocol.rest",
    "telcoflow_trio.protocol.handoff",
    "telcoflow_trio.sandbox",
    "telcoflow_trio.testing",
    "telcoflow_trio.testing.strategies",
    "telcoflow_trio.testing.stateful",
    "telcoflow_trio.testing.pytest_plugin",
    "telcoflow_trio.runner",
)


def is_value(obj: object) -> bool:
    """Whether ``obj`` is a value (not a class or function): homed by where it is assigned."""
    return not (isinstance(obj, type) or inspect.isroutine(obj))


@functools.cache
def _assigned(module_name: str) -> frozenset[str]:
    """The names a module's own top-level statements assign (not the ones it imports)."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        names.update(target.id for target in targets if isinstance(target, ast.Name))
    return frozenset(names)


def _exports() -> list[tuple[str, str, object]]:
    found = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            found.append((module_name, name, getattr(module, name)))
    return found


@functools.cache
def public_names() -> dict[int, str]:
    """id(class or function) -> the dotted name it is documented under."""
    names: dict[int, str] = {}
    for module_name, name, obj in _exports():
        if is_value(obj):
            continue
        known = names.get(id(obj))
        # An alias (voice's ClientVoiceFrame = Command) yields to the object's own name.
        if known is None or (
            known.rpartition(".")[0] == module_name and name == getattr(obj, "__name__", None)
        ):
            names[id(obj)] = f"{module_name}.{name}"
    return names


@functools.cache
def _value_homes() -> dict[tuple[str, int], str]:
    homes: dict[tuple[str, int], str] = {}
    exports = [(m, n, o) for m, n, o in _exports() if is_value(o)]
    for module_name, name, obj in exports:  # first, where it is assigned
        if name in _assigned(module_name):
            homes.setdefault((name, id(obj)), f"{module_name}.{name}")
    for module_name, name, obj in exports:  # then, the first module exporting it
        homes.setdefault((name, id(obj)), f"{module_name}.{name}")
    return homes


def home(module_name: str, name: str) -> str:
    """The dotted name under which ``module_name.name`` is documented."""
    obj = getattr(importlib.import_module(module_name), name)
    if is_value(obj):
        return _value_homes()[(name, id(obj))]
    return public_names()[id(obj)]


def shown_bases(bases: list[type]) -> list[type]:
    """A class's bases as the reference shows them: an undocumented base of ours is replaced
    by its own bases (``class Speak(_StepBase)``, ``class Call(CallLifecycle)``: the base is
    an implementation detail), and ``object`` alone is not worth a line."""
    shown = list(bases)
    i = 0
    while i < len(shown):
        base = shown[i]
        if base.__module__.startswith("telcoflow_trio") and id(base) not in public_names():
            shown[i : i + 1] = [b for b in base.__bases__ if b is not object]
            continue
        i += 1
    return [] if shown == [object] else shown


def resolve(target: str) -> str | None:
    """The documented name for a dotted path to one of our objects or its members.

    ``telcoflow_trio._call.Call.answer`` -> ``telcoflow_trio.Call.answer``;
    ``telcoflow_trio.protocol.SETUP_TIMEOUT`` -> ``telcoflow_trio.protocol.timing.SETUP_TIMEOUT``.
    None when the path does not lead to a documented object.
    """
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        head = parts[cut]
        if not hasattr(module, head):
            return None
        obj = getattr(module, head)
        if is_value(obj):
            documented = _value_homes().get((head, id(obj)))
        else:
            documented = public_names().get(id(obj))
        if documented is None:
            return None
        return ".".join([documented, *parts[cut + 1 :]])
    return None
