"""The WebSocket engine a config names: ``SessionManagerConfig.transport`` to a
:class:`~telcoflow_trio._transport.Connector`."""

from __future__ import annotations

from functools import partial

from . import _websocket
from ._readhub import ReadHub
from ._transport import Connector

__all__ = ["connector_for"]


def connector_for(transport: str, hub: ReadHub | None = None) -> Connector:
    """The :class:`Connector` of a ``SessionManagerConfig.transport`` name; ``hub`` reads the
    plain-TCP sockets of the ``websockets`` engine while it runs (trio-websocket's own
    reader tasks do not use one).

    Raises ``ImportError`` saying what to install if the engine's package is missing.
    """
    if transport == "trio-websocket":
        return _websocket.open_websocket
    if transport == "websockets":
        try:
            # Imported on demand: websockets is an optional dependency (the extra of that name).
            from . import _sansio_websocket
        except ImportError as exc:
            raise ImportError(
                f"transport 'websockets' needs the websockets package (>= 15): {exc}"
            ) from exc
        if hub is not None:
            return partial(_sansio_websocket.open_websocket, hub=hub)
        return _sansio_websocket.open_websocket
    raise ValueError(f"transport must be 'trio-websocket' or 'websockets', got {transport!r}")
