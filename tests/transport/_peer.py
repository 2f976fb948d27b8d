"""The server's end of a WebSocket connection for transport tests: ``websockets``' own
sans-I/O ``ServerProtocol`` over a real trio socket on 127.0.0.1 port 0, so a test writes
exactly the bytes it wants and sees every frame the client wrote."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import trio
import trio.testing
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import Event
from websockets.server import ServerProtocol

from telcoflow_trio import _sansio_websocket

SECRET = "tok-sansio-secret"
HEADERS = {"Authorization": f"Bearer {SECRET}"}


def url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/v1/voice/call-1?token={SECRET}"


class Peer:
    """The server's end of one connection: ``ServerProtocol`` over a trio stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        quiet = _sansio_websocket._NoWireLog(logging.getLogger("tests.peer"), {})
        self.protocol = ServerProtocol(max_size=None, logger=quiet)
        self.request: Request | None = None
        self.frames: list[Frame] = []
        self.eof = False
        self.auto_reply = True
        """Write the protocol's own replies (pongs, close replies, then a TCP close) at once."""

    async def handshake(self, status: int = 101, body: str = "") -> None:
        while self.request is None:
            await self.read()
        if status == 101:
            response = self.protocol.accept(self.request)
        else:
            response = self.protocol.reject(status, body)
        self.protocol.send_response(response)
        await self.flush()

    async def flush(self) -> None:
        chunks = self.protocol.data_to_send()
        try:
            if any(chunks):
                await self.stream.send_all(b"".join(chunks))
            if b"" in chunks:  # the protocol's signal to close TCP
                await self.stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.eof = True
        await trio.lowlevel.checkpoint()

    async def read(self) -> list[Event]:
        """One read from the client; what the server parsed from it (empty at the end)."""
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self.eof = True
            self.protocol.receive_eof()
            return []
        self.protocol.receive_data(data)
        events = self.protocol.events_received()
        for event in events:
            if isinstance(event, Request):
                self.request = event
            elif isinstance(event, Frame):
                self.frames.append(event)
        if self.auto_reply and self.request is not None:
            await self.flush()
        return events

    async def next_frame(self) -> Frame:
        seen = len(self.frames)
        while len(self.frames) == seen:
            if self.eof:
                raise AssertionError(f"no frame before the end; got {self.frames}")
            await self.read()
        return self.frames[seen]

    async def frames_until(self, count: int) -> list[Frame]:
        """Read until ``count`` frames have come in all; every frame so far."""
        while len(self.frames) < count:
            if self.eof:
                raise AssertionError(f"the end after {len(self.frames)} of {count} frames")
            await self.read()
        return self.frames

    async def read_to_end(self) -> None:
        while not self.eof:
            await self.read()

    async def send_raw(self, data: bytes, *, pieces: int = 1) -> None:
        """Write ``data`` as ``pieces`` separate writes, letting the client read in between."""
        size = max(1, math.ceil(len(data) / pieces))
        for start in range(0, len(data), size):
            await self.stream.send_all(data[start : start + size])
            await trio.testing.wait_all_tasks_blocked()

    @property
    def close_frames(self) -> list[Close]:
        return [Close.parse(f.data) for f in self.frames if f.opcode is Opcode.CLOSE]


def frame(opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
    """A server frame's bytes (unmasked), built as a server's protocol would."""
    return Frame(opcode, data, fin).serialize(mask=False)


@asynccontextmanager
async def serve_one(handler: Callable[[Peer], Awaitable[None]]) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 port 0 running ``handler`` for each connection."""

    async def connection(stream: trio.SocketStream) -> None:
        async with stream:
            await handler(Peer(stream))

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, connection, 0, host="127.0.0.1"))
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()
