"""A client stream with a WebSocket server (wsproto) at its far end, recording every write.

The engine under test (``_websocket.wrap_stream``) runs over it unchanged; the test sees
each ``send_all`` call, can make the next ones stall or fail, and plays the server.
"""

from __future__ import annotations

import math

import trio
import wsproto
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Request,
    TextMessage,
)


class FakeTransport(trio.abc.Stream):
    def __init__(self) -> None:
        self.server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self.writes: list[bytes] = []
        """Every ``send_all`` call's data, recorded when the call starts."""
        self.writes_after_close = 0
        self.events: list[Event] = []
        """What the server parsed from the bytes it got."""
        self.messages: list[str | bytes] = []
        self.request: Request | None = None
        self.stall = False
        """Next writes deliver half their bytes, then wait for :attr:`unstall`."""
        self.unstall = trio.Event()
        self.fail = False
        """Next writes raise ``BrokenResourceError``."""
        self.answer_pings = True
        self.answer_close = True
        self.closed = False
        self._to_client_send, self._to_client = trio.open_memory_channel[bytes](math.inf)
        self._pending = b""
        self._parts: list[str | bytes] = []

    # ── the client's side ───────────────────────────────────────────────────────────────

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            self.writes_after_close += 1
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError
        data = bytes(data)
        self.writes.append(data)
        await trio.lowlevel.checkpoint()
        if self.fail:
            raise trio.BrokenResourceError("simulated failure")
        if self.stall:
            half = len(data) // 2
            self._deliver(data[:half])
            data = data[half:]
            await self.unstall.wait()
            if self.closed:
                raise trio.ClosedResourceError
        self._deliver(data)

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not self._pending:
            try:
                self._pending = await self._to_client.receive()
            except trio.EndOfChannel:
                return b""
            except trio.ClosedResourceError:
                raise trio.ClosedResourceError from None
        else:
            await trio.lowlevel.checkpoint()
        size = len(self._pending) if max_bytes is None else max_bytes
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    async def aclose(self) -> None:
        self.closed = True
        self._to_client.close()
        self.unstall.set()
        await trio.lowlevel.checkpoint()

    # ── the server's side ───────────────────────────────────────────────────────────────

    def _deliver(self, data: bytes) -> None:
        if self.server.state is wsproto.connection.ConnectionState.CLOSED:
            return
        self.server.receive_data(data)
        for event in self.server.events():
            self.events.append(event)
            if isinstance(event, Request):
                self.request = event
                self._reply(AcceptConnection())
            elif (isinstance(event, Ping) and self.answer_pings) or (
                isinstance(event, CloseConnection) and self.answer_close
            ):
                self._reply(event.response())
            elif isinstance(event, TextMessage | BytesMessage):
                self._parts.append(event.data)
                if event.message_finished:
                    joined: str | bytes = (
                        "".join(p for p in self._parts if isinstance(p, str))
                        if isinstance(event, TextMessage)
                        else b"".join(p for p in self._parts if isinstance(p, bytes))
                    )
                    self.messages.append(joined)
                    self._parts.clear()

    def _reply(self, event: Event) -> None:
        self._to_client_send.send_nowait(self.server.send(event))

    def send_to_client(self, message: str | bytes) -> None:
        event = TextMessage(message) if isinstance(message, str) else BytesMessage(message)
        self._reply(event)

    def close_from_server(self, code: int, reason: str = "") -> None:
        self._reply(CloseConnection(code, reason))

    @property
    def close_frames(self) -> int:
        """Close frames the server parsed from the client."""
        return sum(isinstance(e, CloseConnection) for e in self.events)
