"""Running agents in production: capacity, drain on signals, health and metrics, worker
processes, and a call hand-off over Redis.

``python -m telcoflow_trio run MODULE:FUNCTION`` is the command line over this package; a
program that runs its own ``trio.run`` calls :func:`serve` (one process) or builds on
:class:`telcoflow_trio.CallServer` directly.

The metrics and HTTP names need the ``run`` extra (``prometheus_client``, ``hypercorn``), the
hand-off names the ``redis`` extra (``coredis``); they are imported on first use, so this
package imports without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Layout: _options (RunOptions, load_handler), _signals (first signal drains, later ones
# close), _app (serve: one process; supervise_workers), _supervisor (worker processes,
# restarts, signal forwarding), _cgroup (CPUs and CPU load from the cgroup), _metrics
# (Prometheus metrics, multiprocess mode), _http (/healthz and /metrics on hypercorn),
# _handoff and _handoff_worker (calls handed to media workers over a Redis stream).
from ._app import serve
from ._cgroup import cpu_count, cpu_load
from ._errors import RunConfigError
from ._options import RunOptions, load_handler
from ._signals import ShutdownSignals
from ._supervisor import Supervisor

if TYPE_CHECKING:
    from ._handoff import HandoffError, HandoffFront, hand_off, redis_client, serve_handoffs
    from ._http import serve_http
    from ._metrics import Metrics, healthy, render_directory

__all__ = [
    "HandoffError",
    "HandoffFront",
    "Metrics",
    "RunConfigError",
    "RunOptions",
    "ShutdownSignals",
    "Supervisor",
    "cpu_count",
    "cpu_load",
    "hand_off",
    "healthy",
    "load_handler",
    "redis_client",
    "render_directory",
    "serve",
    "serve_handoffs",
    "serve_http",
]

# Names whose modules need an optional dependency, by module.
_LAZY: dict[str, str] = {
    "HandoffError": "._handoff",
    "HandoffFront": "._handoff",
    "hand_off": "._handoff",
    "redis_client": "._handoff",
    "serve_handoffs": "._handoff",
    "serve_http": "._http",
    "Metrics": "._metrics",
    "healthy": "._metrics",
    "render_directory": "._metrics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once imported, found without this hook
    return value
