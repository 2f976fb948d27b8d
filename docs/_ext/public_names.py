"""Where each public object is documented, for resolving references to private paths.

The reference documents each object once, under the first module of PUBLIC_MODULES that
exports it in ``__all__`` (so ``telcoflow_trio.AudioStream``, not
``telcoflow_trio.audio.AudioStream``); the reference pages exclude the later re-exports.
"""

from __future__ import annotations

import functools
import importlib
import inspect

PUBLIC_MODULES = (
    "telcoflow_trio",
    "telcoflow_trio.audio",
    "telcoflow_trio.protocol",
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
    """Whether ``obj`` is documented under every name that exports it.

    Classes and functions are documented once, where they live; anything else (numbers,
    strings, type aliases, strategies) is shared by identity by accident or is a value
    worth reading beside each module that offers it.
    """
    return not (isinstance(obj, type) or inspect.isroutine(obj))


@functools.cache
def public_names() -> dict[int, str]:
    """id(object) -> the dotted name it is documented under."""
    names: dict[int, str] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if is_value(obj):
                continue
            known = names.get(id(obj))
            # An alias (voice's ClientVoiceFrame = Command) yields to the object's own name.
            if known is None or (
                known.rpartition(".")[0] == module_name and name == obj.__name__  # type: ignore[attr-defined]
            ):
                names[id(obj)] = f"{module_name}.{name}"
    return names


def reexports(module_name: str) -> list[str]:
    """The names in ``module_name.__all__`` documented under an earlier module."""
    module = importlib.import_module(module_name)
    own = f"{module_name}."
    return [
        name
        for name in getattr(module, "__all__", ())
        if not is_value(getattr(module, name))
        and not public_names()[id(getattr(module, name))].startswith(own)
    ]


def resolve(target: str) -> str | None:
    """The public name for a dotted path through a private module, or None."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        head = parts[cut]
        try:
            obj = getattr(obj, head)
        except AttributeError:
            return None
        public = public_names().get(id(obj))
        if public is None:
            return None
        return ".".join([public, *parts[cut + 1 :]])
    return None
