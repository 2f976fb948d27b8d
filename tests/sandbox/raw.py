"""A raw WebSocket client for the sandbox tests: plain JSON frames, no SDK in between."""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from telcoflow_trio.protocol.control import new_id
from telcoflow_trio.testing import Sandbox

JSON = dict[str, Any]


class RawClient:
    """One WebSocket; received text frames are kept so waits never lose a frame."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.texts: list[JSON] = []
        self.binary: list[bytes] = []
        self._seen = 0

    async def send(self, obj: JSON | str | bytes) -> None:
        await self.ws.send_message(obj if isinstance(obj, str | bytes) else json.dumps(obj))

    async def _pump(self) -> None:
        data = await self.ws.get_message()
        if isinstance(data, bytes):
            self.binary.append(data)
        else:
            self.texts.append(json.loads(data))

    async def next_text(self) -> JSON:
        """The next text frame not yet returned by ``next_text``/``wait_type``."""
        while self._seen >= len(self.texts):
            await self._pump()
        self._seen += 1
        return self.texts[self._seen - 1]

    async def wait_type(self, type_: str, **match: Any) -> JSON:
        """The first received frame of ``type_`` (and matching keys) not yet taken."""
        index = 0
        while True:
            while index < len(self.texts):
                frame = self.texts[index]
                if frame.get("type") == type_ and all(frame.get(k) == v for k, v in match.items()):
                    self.texts.pop(index)
                    if index < self._seen:
                        self._seen -= 1
                    return frame
                index += 1
            await self._pump()

    def of_type(self, type_: str) -> list[JSON]:
        return [f for f in self.texts if f.get("type") == type_]


class RawControl(RawClient):
    sm_ws_id = ""

    async def request(self, frame: JSON) -> JSON:
        req_id = new_id()
        await self.send({**frame, "reqId": req_id})
        return await self.wait_type("response", reqId=req_id)

    async def claim(self, session_id: str) -> JSON:
        return await self.request({"type": "session.open", "sessionId": session_id})

    async def ready(self, session_id: str) -> None:
        await self.send({"type": "session.ready", "sessionId": session_id})


@asynccontextmanager
async def control(
    sandbox: Sandbox,
    *,
    headers: dict[str, str] | None = None,
    sample_rate: int = 16000,
    audio_mode: str = "mixed",
    setup: bool = True,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[RawControl]:
    """A control connection; with ``setup`` it has its ``setup.done`` already."""
    hdrs = sandbox.auth_headers if headers is None else headers
    # trio-websocket's client leaves its socket open when the server closes first.
    async with (
        contextlib.AsyncExitStack() as stack,
        open_websocket_url(
            sandbox.control_url,
            extra_headers=[(k.encode(), v.encode()) for k, v in hdrs.items()],
            ssl_context=ssl_context,
        ) as ws,
    ):
        client = RawControl(ws)
        stack.push_async_callback(trio.aclose_forcefully, ws._stream)
        if setup:
            await client.send(
                {"type": "setup", "data": {"sampleRate": sample_rate, "audioMode": audio_mode}}
            )
            done = await client.wait_type("setup.done")
            client.sm_ws_id = done["smWsId"]
        yield client


class RawVoice(RawClient):
    async def command(self, name: str, data: JSON | None = None, timeout_ms: int = 10_000) -> JSON:
        command_id = new_id()
        body: JSON = {"command_id": command_id, "command": name, "timeout_ms": timeout_ms}
        if data is not None:
            body["data"] = data
        await self.send({"type": "command", "data": body})
        while True:
            frame = await self.wait_type("command_response")
            if frame["data"]["command_id"] == command_id:
                return dict(frame["data"])

    def audio(self, channel: int = 0) -> bytes:
        return b"".join(b[1:] for b in self.binary if b and b[0] == channel)


@asynccontextmanager
async def voice(
    call_in: JSON, *, token: str | None = None, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[RawVoice]:
    bearer = call_in["token"] if token is None else token
    async with (
        contextlib.AsyncExitStack() as stack,
        open_websocket_url(
            call_in["url"],
            extra_headers=[(b"authorization", f"Bearer {bearer}".encode())],
            ssl_context=ssl_context,
        ) as ws,
    ):
        stack.push_async_callback(trio.aclose_forcefully, ws._stream)
        yield RawVoice(ws)


async def claimed_call(ctl: RawControl, sandbox: Sandbox, **kw: Any) -> tuple[Any, JSON]:
    """Place a call, claim it, ready it; returns the sandbox's call and the call.in frame."""
    call = await sandbox.place_call(**kw)
    notify = await ctl.wait_type("session.notify", sessionId=call.session_id)
    assert (await ctl.claim(notify["sessionId"]))["ok"] is True
    await ctl.ready(notify["sessionId"])
    call_in = await ctl.wait_type("call.in", sessionId=call.session_id)
    return call, call_in


async def echo_pulls(v: RawVoice, source: trio.MemoryReceiveChannel[bytes]) -> None:
    """Answer buffer requests with bytes from ``source`` (up to what each asks for)."""
    owed = 0
    pending = b""
    async with trio.open_nursery() as nursery:

        async def feed() -> None:
            nonlocal pending
            async for chunk in source:
                pending += chunk

        nursery.start_soon(feed)
        while True:
            frame = await v.wait_type("buffer_request")
            owed += frame["data"]["requested_bytes"]
            while owed > 0 and pending:
                take = pending[:owed]
                pending = pending[len(take) :]
                owed -= len(take)
                await v.send(b"\x00" + take)
