"""``.. autopublic:: MODULE``: document every name in ``MODULE.__all__``, once.

``automodule :members:`` skips what it cannot see as documented in the module itself:
re-exported constants, type aliases, strategies built at import time, names a module
imports lazily (``telcoflow_trio.runner``'s ``__getattr__``). This directive expands into
the module's docstring followed by one ``autoclass``/``autoexception``/``autofunction``/
``autodata`` per public name, in ``__all__`` order, and a line linking the names that an
earlier module documents already (see :mod:`public_names`). A submodule listed in
``__all__`` is documented by its own ``autopublic``.
"""

from __future__ import annotations

import importlib
import inspect
import types
from typing import ClassVar

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from public_names import home, shown_bases
from sphinx.application import Sphinx
from sphinx.util.nodes import nested_parse_with_titles

# Values whose repr is short and worth reading; others are shown by name and docstring only.
_SHOWN_VALUES = (int, float, str, bytes)


def _directive_for(obj: object) -> tuple[str, list[str]]:
    if isinstance(obj, type):
        kind = "autoexception" if issubclass(obj, BaseException) else "autoclass"
        options = [":members:", ":undoc-members:"]
        if shown_bases(list(obj.__bases__)):
            options.append(":show-inheritance:")
        return kind, options
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "autofunction", []
    options = [] if isinstance(obj, _SHOWN_VALUES) else [":no-value:"]
    return "autodata", options


def expand(module_name: str) -> list[str]:
    """The reST that documents ``module_name``'s public names."""
    module = importlib.import_module(module_name)
    lines = [f".. automodule:: {module_name}", "   :no-members:", ""]
    elsewhere: list[str] = []
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        if isinstance(obj, types.ModuleType):
            continue
        documented = home(module_name, name)
        if documented.rpartition(".")[0] == module_name and documented != f"{module_name}.{name}":
            # a second name for a class of this module (ClientVoiceFrame = Command)
            lines += [
                f".. py:data:: {name}",
                f"   :module: {module_name}",
                "",
                f"   Another name for :obj:`{documented}`.",
                "",
            ]
            continue
        if documented != f"{module_name}.{name}":
            elsewhere.append(documented)
            continue
        kind, options = _directive_for(obj)
        lines.append(f".. {kind}:: {module_name}.{name}")
        lines.extend(f"   {option}" for option in options)
        lines.append("")
    if elsewhere:
        refs = ", ".join(f":obj:`~{documented}`" for documented in elsewhere)
        lines += [f"Also exported here, and documented where they live: {refs}.", ""]
    return lines


class AutoPublic(Directive):
    required_arguments = 1
    has_content = False
    option_spec: ClassVar[dict[str, object]] = {}

    def run(self) -> list[nodes.Node]:
        content = StringList(expand(self.arguments[0]), source=f"<autopublic {self.arguments[0]}>")
        container = nodes.container()
        nested_parse_with_titles(self.state, content, container)
        return list(container.children)


def _drop_type_docstring(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """autodoc-process-docstring: a value has no docstring of its own; autodoc falls back to
    its type's (``dict()`` -> new empty dictionary...), which says nothing about the value."""
    if what == "data" and lines and not isinstance(obj, type):
        own = inspect.getdoc(type(obj))
        if own and "\n".join(lines).strip() == own.strip():
            lines.clear()


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("autopublic", AutoPublic)
    app.connect("autodoc-process-docstring", _drop_type_docstring)
    return {"parallel_read_safe": True}
