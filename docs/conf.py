"""Sphinx configuration for the telcoflow_trio documentation.

Build (warnings are errors, every cross-reference must resolve)::

    sphinx-build -W --keep-going -n -b html docs docs/_build/html

or ``nox -s docs``. The build never touches the network: the intersphinx inventories of
Python, trio and Hypothesis are kept in ``docs/_inv/`` (``docs/_inv/make_inventories.py``
says where each comes from and makes them again), and the links they produce still point at
docs.python.org, trio.readthedocs.io and hypothesis.readthedocs.io.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any, TypeVar

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.ext.intersphinx import missing_reference as intersphinx_missing_reference

import telcoflow_trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))  # public_names, below

project = "telcoflow_trio"
author = "telcoflow_trio developers"
copyright = "2026, telcoflow_trio developers"
version = release = telcoflow_trio.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinxcontrib_trio",
    "autopublic",  # _ext/autopublic.py
]

# Every reference must resolve: a dangling one is a warning, and warnings are errors (-W).
# There is deliberately no nitpick_ignore.
nitpicky = True
default_role = "py:obj"
exclude_patterns = ["_build", "_inv", "_ext", "README.rst"]
language = "en"
# "default" is Python that falls back to plain text without a warning: the protocol
# layer's state diagrams are literal blocks drawn with box characters.
highlight_language = "default"
pygments_style = "default"

# The inventories are local files (the mapping's second element), so the build is offline;
# the first element is still where the links go.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", str(HERE / "_inv" / "python.inv")),
    "trio": ("https://trio.readthedocs.io/en/stable", str(HERE / "_inv" / "trio.inv")),
    "hypothesis": (
        "https://hypothesis.readthedocs.io/en/latest",
        str(HERE / "_inv" / "hypothesis.inv"),
    ),
}

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_default_options = {"members": True}
autodoc_preserve_defaults = False

html_theme = "sphinx_rtd_theme"
html_theme_options = {"navigation_depth": 3, "prev_next_buttons_location": "both"}
html_title = f"telcoflow_trio {release}"
html_static_path: list[str] = []


def _public_name(target: str) -> str | None:
    """The name the reference documents ``target`` under, if it is one of ours."""
    from public_names import resolve  # found through sys.path, above

    return resolve(target)


def _resolve(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    """missing-reference: retries for names as our modules spell them, each of which must
    land on a documented object (ours, or another project's through its inventory).

    1. A path to one of our objects that is not where the reference documents it is
       retried under the documented name: a private module's (annotations name a class
       where it is defined, ``telcoflow_trio._call.Call`` -> ``telcoflow_trio.Call``) or
       a re-export's (``telcoflow_trio.protocol.SETUP_TIMEOUT`` ->
       ``telcoflow_trio.protocol.timing.SETUP_TIMEOUT``); see ``_ext/public_names.py``.
    2. A bare name in a docstring (``:class:`BufferFullError``` in ``telcoflow_trio.audio``)
       is retried as Sphinx's ``.BufferFullError`` search: it resolves only when exactly one
       documented object has that name; when several do, the warning stands.
    3. A name as the documented module's own namespace has it (annotations kept as
       written: ``st.SearchStrategy`` where ``from hypothesis import strategies as st``,
       ``Bundle`` imported from ``hypothesis.stateful``) is retried under the full name of
       what that namespace binds it to.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if _is_typevar(target):
        # A TypeVar in a signature (``-> T``) has no page of its own: link the concept.
        return _retry(app, env, node, contnode, "typing.TypeVar")
    if target.startswith("telcoflow_trio."):
        public = _public_name(target)
        return None if public is None else _retry(app, env, node, contnode, public)
    if node.get("refspecific"):
        return None  # already a .name search
    found = None
    if "." not in target or _documented_prefix(env, target.split(".", 1)[0]):
        found = _search_ours(app, env, node, contnode)
    if found is None:
        spelled = _namespace_target(node.get("py:module"), target)
        if spelled is not None and spelled.startswith("telcoflow_trio."):
            spelled = _public_name(spelled)
        if spelled is not None and spelled != target:
            found = _retry(app, env, node, contnode, spelled)
    return found


def _retarget(node: pending_xref, target: str) -> pending_xref:
    copy = node.deepcopy()
    copy["reftarget"] = target
    return copy


def _retry(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement, target: str
) -> nodes.reference | None:
    """Resolve ``node`` as if it named ``target``: among ours, else through intersphinx."""
    domain: Any = env.get_domain("py")
    retargeted = _retarget(node, target)
    found = domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], target, retargeted, contnode
    )
    if found is None:
        found = intersphinx_missing_reference(app, env, retargeted, contnode)
    return found


def _search_ours(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    domain: Any = env.get_domain("py")
    target = node["reftarget"]
    matches = domain.find_obj(
        env, node.get("py:module"), node.get("py:class"), target, node["reftype"], 1
    )
    # autodoc also records each object under its defining path (an alias of the same entry)
    if len([entry for _, entry in matches if not entry.aliased]) != 1:
        return None
    specific = _retarget(node, target)
    specific["refspecific"] = True
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], target, specific, contnode
    )


def _namespace_target(module_name: str | None, target: str) -> str | None:
    """The full name of what ``target``'s first part is bound to in ``module_name``."""
    if not module_name or not module_name.startswith("telcoflow_trio"):
        return None
    head, dot, rest = target.partition(".")
    try:
        bound = getattr(importlib.import_module(module_name), head)
    except (ImportError, AttributeError):
        return None
    if inspect.ismodule(bound):
        full = bound.__name__
    elif isinstance(bound, type) or inspect.isroutine(bound):
        full = f"{bound.__module__}.{bound.__qualname__}"
    else:
        return None
    return full + dot + rest


def _is_typevar(target: str) -> bool:
    module_name, _, attr = target.rpartition(".")
    if not module_name.startswith("telcoflow_trio"):
        return False
    try:
        return isinstance(getattr(importlib.import_module(module_name), attr), TypeVar)
    except (ImportError, AttributeError):
        return False


def _documented_prefix(env: BuildEnvironment, first: str) -> bool:
    """Whether ``first`` is the last part of one of our documented names (``PullLedger``)."""
    objects = env.get_domain("py").objects  # type: ignore[attr-defined]
    return any(name.rsplit(".", 1)[-1] == first for name in objects)


def _public_bases(app: Sphinx, name: str, obj: object, options: object, bases: list[type]) -> None:
    """autodoc-process-bases: show the bases a reader can look up (see ``shown_bases``)."""
    from public_names import shown_bases  # found through sys.path, above

    bases[:] = shown_bases(bases)


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", _resolve)
    app.connect("autodoc-process-bases", _public_bases)
