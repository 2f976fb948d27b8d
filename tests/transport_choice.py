"""Which WebSocket engine the suite runs over: ``TELCOFLOW_TEST_TRANSPORT``.

``trio-websocket`` (the default) or ``websockets``. ``tests/conftest.py`` makes every config
the tests build use it (``SessionManagerConfig.create``, and so ``sandbox.config()``, with
no ``transport=`` of their own); the engine-level tests in ``tests/transport`` take the
engine's ``open_websocket`` and ``wrap_stream`` from here. The ``websockets`` engine's
``open_websocket`` here runs a read hub of its own for each socket, as a session manager
does for all of its sockets, so those tests read through the hub.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import trio

from telcoflow_trio import _sansio_websocket, _websocket
from telcoflow_trio._config import TRANSPORTS, Transport
from telcoflow_trio._connect import WrapStream
from telcoflow_trio._readhub import ReadHub
from telcoflow_trio._transport import Connector, MessageSocket

__all__ = ["TRANSPORT", "WrapStream", "open_websocket", "wrap_stream"]


def _chosen() -> Transport:
    name = os.environ.get("TELCOFLOW_TEST_TRANSPORT") or "trio-websocket"
    if name not in TRANSPORTS:
        raise ValueError(
            f"TELCOFLOW_TEST_TRANSPORT must be one of {list(TRANSPORTS)}, got {name!r}"
        )
    return name


TRANSPORT: Transport = _chosen()


@asynccontextmanager
async def _open_with_hub(
    url: str,
    headers: Mapping[str, str],
    tls: ssl.SSLContext | None,
    *,
    what: str,
    secrets: tuple[str, ...] = (),
    message_queue_size: int = 1,
) -> AsyncIterator[MessageSocket]:
    """The ``websockets`` engine's ``open_websocket`` read by a hub of its own."""
    hub = ReadHub()
    # Entered by hand, as wrap_stream's nursery: an exception of the block comes out as
    # itself, not in a group (the tests expect the engine's own errors).
    manager = trio.open_nursery()
    nursery = await manager.__aenter__()
    try:
        await nursery.start(hub.run)
        async with _sansio_websocket.open_websocket(
            url,
            headers,
            tls,
            what=what,
            secrets=secrets,
            message_queue_size=message_queue_size,
            hub=hub,
        ) as sock:
            yield sock
    finally:
        nursery.cancel_scope.cancel()
        await manager.__aexit__(None, None, None)


def _engine() -> tuple[Connector, WrapStream]:
    if TRANSPORT == "websockets":
        return _open_with_hub, _sansio_websocket.wrap_stream
    return _websocket.open_websocket, _websocket.wrap_stream


open_websocket, wrap_stream = _engine()
