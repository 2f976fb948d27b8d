"""What ``run`` was asked to do (:class:`RunOptions`), and the handler it serves calls with
(:func:`load_handler`). Every bad value is a :class:`RunConfigError` with one line."""

from __future__ import annotations

import importlib
import inspect
import math
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal

import attrs

from .._call import Call
from ._errors import RunConfigError

__all__ = ["DEFAULT_DRAIN_TIMEOUT", "Handler", "RunOptions", "load_handler", "parse_workers"]

Handler = Callable[[Call], Awaitable[None]]
"""What serves one call: ``async def handler(call: tf.Call) -> None``."""

DEFAULT_DRAIN_TIMEOUT: Final = 600.0
_MAX_PORT: Final = 65535


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def parse_workers(value: str | int) -> int | Literal["auto"]:
    """``--workers``: a whole number of processes (at least 1) or ``"auto"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    elif isinstance(value, str):
        try:
            count = int(value.strip())
        except ValueError:
            raise RunConfigError(
                f"--workers must be a whole number or 'auto', got {value!r}"
            ) from None
    else:
        raise RunConfigError(f"workers must be an int or 'auto', got {type(value).__name__}")
    if count < 1:
        raise RunConfigError(f"--workers must be at least 1, got {count}")
    return count


@attrs.frozen
class RunOptions:
    """The ``run`` command's settings, checked on construction (:class:`RunConfigError`).

    ``handler`` is the ``"module:function"`` path; ``max_calls`` the live calls this process
    serves at once (None: no limit); ``max_load`` a CPU-load fraction of the CPUs this process
    may use (0 < F <= 1) above which it stops claiming; ``drain_timeout`` the seconds live
    calls get after the first SIGTERM/SIGINT before they are closed; ``workers`` the worker
    processes (``"auto"``: one per usable CPU); ``http_port`` (None: no HTTP server) serves
    ``/healthz`` and ``/metrics`` on ``http_host``.
    """

    handler: str
    max_calls: int | None = None
    max_load: float | None = None
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    workers: int | Literal["auto"] = 1
    http_host: str = "127.0.0.1"
    http_port: int | None = None

    def __attrs_post_init__(self) -> None:
        _check_handler_path(self.handler)
        if self.max_calls is not None and (not _is_int(self.max_calls) or self.max_calls < 1):
            raise RunConfigError(f"--max-calls must be at least 1, got {self.max_calls!r}")
        if self.max_load is not None:
            load = self.max_load
            if not _is_number(load) or not 0 < load <= 1:
                raise RunConfigError(
                    f"--max-load is a fraction of the usable CPUs (0 < F <= 1), got {load!r}"
                )
        timeout = self.drain_timeout
        if not _is_number(timeout) or timeout < 0 or not math.isfinite(timeout):
            raise RunConfigError(
                f"--drain-timeout must be a finite number of seconds >= 0, got {timeout!r}"
            )
        object.__setattr__(self, "workers", parse_workers(self.workers))
        if not isinstance(self.http_host, str) or not self.http_host.strip():
            raise RunConfigError(
                f"--http-host must be a host name or address, got {self.http_host!r}"
            )
        if self.http_port is not None:
            port = self.http_port
            if not _is_int(port) or not 0 <= port <= _MAX_PORT:
                raise RunConfigError(f"--http-port must be 0..{_MAX_PORT}, got {port!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def _check_handler_path(path: object) -> tuple[str, str]:
    if not isinstance(path, str):
        raise RunConfigError(f"the handler must be a 'module:function' path, got {path!r}")
    module, sep, attribute = path.partition(":")
    if not sep:
        raise RunConfigError(
            f"handler {path!r} has no ':': write it as MODULE:FUNCTION (e.g. agent:handle_call)"
        )
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise RunConfigError(f"handler {path!r}: {module!r} is not a module name")
    if not attribute or not all(part.isidentifier() for part in attribute.split(".")):
        raise RunConfigError(f"handler {path!r}: {attribute!r} is not a function name")
    return module, attribute


def _import_module(path: str, name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == name or name.startswith(missing + "."):
            # The module itself (or a package above it) does not exist.
            raise RunConfigError(
                f"handler {path!r}: no module named {missing!r} "
                f"(searched from {os.getcwd()!r} and sys.path)"
            ) from None
        raise RunConfigError(
            f"handler {path!r}: importing {name!r} failed: it imports {missing!r}, "
            "which is not installed"
        ) from None
    except Exception as exc:
        raise RunConfigError(
            f"handler {path!r}: importing {name!r} raised {type(exc).__name__}: "
            f"{_first_line(str(exc))}"
        ) from None


def _is_async_callable(obj: object) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    # An instance whose __call__ is ``async def`` (a handler object with state).
    if isinstance(obj, type) or not callable(obj):
        return False
    return inspect.iscoroutinefunction(type(obj).__call__)


def load_handler(path: str) -> Handler:
    """Import ``"package.module:function"`` and return the async handler it names.

    The current directory is importable, as under ``python -m`` (it is put first on
    ``sys.path`` if it is not there already, for the ``telcoflow-trio`` console script).
    A path that does not resolve (no colon, no such module, no such attribute) or names
    something that is not an async function raises :class:`RunConfigError` saying which.
    """
    module_name, attribute = _check_handler_path(path)
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    obj: Any = _import_module(path, module_name)
    where = module_name
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise RunConfigError(f"handler {path!r}: {where!r} has no attribute {part!r}") from None
        where = f"{where}.{part}"
    if not _is_async_callable(obj):
        if isinstance(obj, type):
            kind = "a class"
        elif inspect.isfunction(obj) or inspect.ismethod(obj):
            kind = "a plain def"
        else:
            name = type(obj).__name__
            kind = f"{'an' if name[0] in 'aeiouAEIOU' else 'a'} {name}"
        raise RunConfigError(
            f"handler {path!r} is not an async function (it is {kind}): "
            "write it as 'async def handler(call): ...'"
        )
    handler: Handler = obj
    return handler
