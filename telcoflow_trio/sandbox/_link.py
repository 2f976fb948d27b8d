"""One accepted WebSocket with a single writer path, a frame log and an abort switch."""

from __future__ import annotations

import logging

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from .._scope import cleanup_within
from ._clock import SandboxClock
from ._framelog import FrameLog, Plane

logger = logging.getLogger(__name__)

_CLOSE = object()
# Seconds of paced audio plus every event fit easily; a client that falls this far behind
# is treated as dead rather than letting the sandbox's memory grow without bound.
OUTGOING_QUEUE = 4096


class Link:
    """A server-side WebSocket: ``send`` never blocks, and one writer task sends in order.

    The owner runs :meth:`run_writer` and a loop over :meth:`receive` side by side, and
    cancels both once either ends. ``close`` flushes then closes cleanly; ``abort`` drops
    the TCP connection without a closing handshake (a network failure, to the client).
    """

    def __init__(
        self,
        ws: WebSocketConnection,
        transport: trio.abc.Stream,
        *,
        plane: Plane,
        name: str,
        log: FrameLog,
        clock: SandboxClock,
    ) -> None:
        self.ws = ws
        self.plane: Plane = plane
        self.name = name
        self._transport = transport
        self._log = log
        self._clock = clock
        self._send, self._queue = trio.open_memory_channel[object](OUTGOING_QUEUE)
        self._writer_scope = trio.CancelScope()
        self.closed: trio.Event = trio.Event()
        # Set by the owner once the whole connection has been served.
        self.finished: trio.Event = trio.Event()

    @property
    def is_open(self) -> bool:
        return not self.closed.is_set()

    def send(self, data: str | bytes) -> None:
        """Queue a message; silently dropped once the link is closing."""
        if self.closed.is_set():
            return
        try:
            self._send.send_nowait(data)
        except trio.WouldBlock:
            logger.warning("%s: the client is not reading; dropping the connection", self.name)
            self.closed.set()
            self._writer_scope.cancel()
        except trio.ClosedResourceError:
            pass

    def close(self) -> None:
        """Send everything queued so far, then close the WebSocket with code 1000."""
        if self.closed.is_set():
            return
        try:
            self._send.send_nowait(_CLOSE)
        except trio.WouldBlock:
            self._writer_scope.cancel()
        except trio.ClosedResourceError:
            pass
        self._send.close()

    async def abort(self) -> None:
        """Cut the TCP connection at once: no close frame, nothing more sent."""
        self.closed.set()
        self._writer_scope.cancel()
        await trio.aclose_forcefully(self._transport)

    async def run_writer(self) -> None:
        """Send queued messages in order until closed; then close the socket."""
        clean = False
        try:
            with self._writer_scope:
                async with self._queue:
                    async for item in self._queue:
                        if item is _CLOSE:
                            clean = True
                            break
                        assert isinstance(item, str | bytes)
                        self._log.append(self._clock.now(), self.plane, self.name, "out", item)
                        try:
                            await self.ws.send_message(item)
                        except ConnectionClosed:
                            break
        finally:
            self.closed.set()
            if clean:
                clean = not await cleanup_within(2, self.ws.aclose)
            if clean or self.ws.closed is None:
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(self._transport)

    async def receive(self) -> str | bytes | None:
        """The next message from the client, or ``None`` once the connection is gone."""
        try:
            data = await self.ws.get_message()
        except ConnectionClosed:
            self.closed.set()
            # get_message() raises at once on a connection already closed.
            await trio.lowlevel.checkpoint()
            return None
        self._log.append(self._clock.now(), self.plane, self.name, "in", data)
        return data
