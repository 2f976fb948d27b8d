"""Which WebSocket engine the suite runs over: ``TELCOFLOW_TEST_TRANSPORT``.

``trio-websocket`` (the default) or ``websockets``. ``tests/conftest.py`` makes every config
the tests build use it (``SessionManagerConfig.create``, and so ``sandbox.config()``, with
no ``transport=`` of their own); the engine-level tests in ``tests/transport`` take the
engine's ``open_websocket`` and ``wrap_stream`` from here.
"""

from __future__ import annotations

import os

from telcoflow_trio import _sansio_websocket, _websocket
from telcoflow_trio._config import TRANSPORTS, Transport
from telcoflow_trio._connect import WrapStream
from telcoflow_trio._transport import Connector

__all__ = ["TRANSPORT", "WrapStream", "open_websocket", "wrap_stream"]


def _chosen() -> Transport:
    name = os.environ.get("TELCOFLOW_TEST_TRANSPORT") or "trio-websocket"
    if name not in TRANSPORTS:
        raise ValueError(
            f"TELCOFLOW_TEST_TRANSPORT must be one of {list(TRANSPORTS)}, got {name!r}"
        )
    return name


TRANSPORT: Transport = _chosen()


def _engine() -> tuple[Connector, WrapStream]:
    if TRANSPORT == "websockets":
        return _sansio_websocket.open_websocket, _sansio_websocket.wrap_stream
    return _websocket.open_websocket, _websocket.wrap_stream


open_websocket, wrap_stream = _engine()
