"""Running agents in production: capacity, drain on signals, health and metrics, worker
processes, and a call hand-off over Redis.

``python -m telcoflow_trio run MODULE:FUNCTION`` is the command line over this package.
"""

from __future__ import annotations

__all__: list[str] = []
