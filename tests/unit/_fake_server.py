"""A tiny scripted Telcoflow server over the in-memory transport, for unit tests.

It plays the control plane (``setup.done``, answers to ``session.open`` from a table the
test sets, pushed frames), the voice plane of each call (answers to commands, or none) and
the REST plane (``httpx.MockTransport``), and writes everything the client sent into one
readable log, e.g. ``["control#1 setup", "control#1 session.open s-1", "voice c-1
call.answer", "rest close s-1"]``, so a test can assert the exact frames on the wire.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

import telcoflow_trio as tf
from telcoflow_trio._transport import Accepted, MemoryConnector, MemorySocket, SocketClosed
from telcoflow_trio.protocol import Backoff, Unrecognised, control, rest, voice

__all__ = ["CONFIG", "HOLD", "FakeServer", "fake_server", "session_with_call"]

CONFIG = tf.SessionManagerConfig.create(
    api_key="sk-unit-fake", connector_uuid="connector-1", base_url="ws://unit.test:9"
)
HOLD = "hold"
"""A reply that is withheld: ``session.open`` waits for :meth:`FakeServer.release`; a
command is never answered."""


class FakeServer:
    """The server's side of every connection one test's managers make."""

    def __init__(self) -> None:
        self.connector = MemoryConnector()
        self.log: list[str] = []
        """What the client sent, in order, one short line each (see the module docstring)."""
        self.open_replies: defaultdict[str, deque[str]] = defaultdict(deque)
        """Per session, the next answers to ``session.open``: "ok" (the default when empty),
        :data:`HOLD`, or an error code such as "SESSION_BUSY"."""
        self.calls_on_ready: dict[str, str] = {}
        """Per session, a call id whose ``call.in`` is sent as soon as ``session.ready`` comes."""
        self.command_replies: dict[str, str] = {}
        """Per command name: "ok" (the default), :data:`HOLD`, or an error code."""
        self.controls: list[MemorySocket] = []
        """The server end of each control connection, in order."""
        self.voices: dict[str, MemorySocket] = {}
        """The server end of each call's (latest) voice connection."""
        self.voice_headers: dict[str, dict[str, str]] = {}
        self._held: dict[str, tuple[MemorySocket, str]] = {}
        self._changed = trio.Event()
        self.rest = httpx.MockTransport(self._rest)

    def manager(self, **kwargs: Any) -> tf.SessionManager:
        """A manager wired to this server: memory transport, no jitter, mock REST."""
        kwargs.setdefault("backoff", Backoff(first=0.5, jitter=0.0))
        return tf.SessionManager(CONFIG, connect=self.connector, rest_transport=self.rest, **kwargs)

    # ── what the test does ──────────────────────────────────────────────────────────────

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; re-checked after each thing the client sends."""
        while not predicate():
            await self._changed.wait()

    async def wait_logged(self, line: str, count: int = 1) -> None:
        await self.wait_for(lambda: self.log.count(line) >= count)

    async def push(self, frame: control.ServerControlFrame) -> None:
        """Send a frame on the latest control connection."""
        await self.controls[-1].send(control.encode_frame(frame))

    async def notify(self, session_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("channel", tf.ChannelType.TELCO)
        await self.push(control.SessionNotify(session_id, **kwargs))

    async def call_in(self, session_id: str, call_id: str) -> None:
        await self.push(_call_in(session_id, call_id))

    async def release(self, session_id: str, answer: str = "ok") -> None:
        """Answer a ``session.open`` that was held."""
        sock, req_id = self._held.pop(session_id)
        await sock.send(control.encode_frame(_open_response(session_id, req_id, answer)))

    def held(self, session_id: str) -> bool:
        return session_id in self._held

    async def voice_event(self, call_id: str, event: str, **payload: Any) -> None:
        frame = voice.CallEventFrame(event, payload)
        await self.voices[call_id].send(voice.encode_frame(frame))

    async def cut_control(self) -> None:
        """Drop the latest control connection (no close frame)."""
        await self.controls[-1].abort()

    async def cut_voice(self, call_id: str) -> None:
        await self.voices[call_id].abort()

    def refuse_next(self, status: int) -> None:
        """Refuse the next connection attempt (of either plane) with HTTP ``status``."""
        self.connector.refuse_next(status)

    # ── serving ─────────────────────────────────────────────────────────────────────────

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                accepted = await self.connector.accept()
                if accepted.what == "control plane":
                    self.controls.append(accepted.socket)
                    nursery.start_soon(self._control, accepted.socket, len(self.controls))
                else:
                    nursery.start_soon(self._voice, accepted)

    def _record(self, line: str) -> None:
        self.log.append(line)
        self._changed.set()
        self._changed = trio.Event()

    async def _control(self, sock: MemorySocket, number: int) -> None:
        with contextlib.suppress(SocketClosed, tf.WSSConnectionError):
            while True:
                frame = control.decode_client_frame(await sock.receive())
                assert not isinstance(frame, Unrecognised), frame
                session_id = getattr(frame, "session_id", None)
                self._record(f"control#{number} {frame.TYPE} {session_id or ''}".rstrip())
                if isinstance(frame, control.Setup):
                    await sock.send(control.encode_frame(control.SetupDone(f"sm-{number}")))
                elif isinstance(frame, control.SessionOpen):
                    queue = self.open_replies[frame.session_id]
                    answer = queue.popleft() if queue else "ok"
                    if answer == HOLD:
                        self._held[frame.session_id] = (sock, frame.req_id)
                        self._record(f"held {frame.session_id}")
                    else:
                        reply = _open_response(frame.session_id, frame.req_id, answer)
                        await sock.send(control.encode_frame(reply))
                elif (
                    isinstance(frame, control.SessionReady)
                    and frame.session_id in self.calls_on_ready
                ):
                    call_in = _call_in(frame.session_id, self.calls_on_ready[frame.session_id])
                    await sock.send(control.encode_frame(call_in))

    async def _voice(self, accepted: Accepted) -> None:
        call_id = accepted.url.rsplit("/", 1)[-1]
        sock = accepted.socket
        self.voices[call_id] = sock
        self.voice_headers[call_id] = dict(accepted.headers)
        self._record(f"voice {call_id} open")
        with contextlib.suppress(SocketClosed, tf.WSSConnectionError):
            while True:
                frame = voice.decode_client_frame(await sock.receive())
                if not isinstance(frame, voice.Command):
                    continue  # audio
                self._record(f"voice {call_id} {frame.command}")
                answer = self.command_replies.get(frame.command, "ok")
                if answer == HOLD:
                    continue
                ok = answer == "ok"
                response = voice.CommandResponse(frame.command_id, ok, None, None if ok else answer)
                await sock.send(voice.encode_frame(response))
                if ok and frame.command in ("call.close", "call.disconnect"):
                    # No session.closed: a test of P10 shows the client does not wait for it.
                    await sock.send(voice.encode_frame(voice.CallEventFrame("call.terminated")))
                    await sock.aclose()

    def _rest(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.split("/")
        if request.method == "POST" and parts[-1] == "close":
            self._record(f"rest close {parts[-2]}")
            body = rest.encode_close_result(rest.CloseResult(0, "SDK_REQUEST"))
            return httpx.Response(200, text=body)
        self._record(f"rest {request.method} {request.url.path}")
        return httpx.Response(200, text=json.dumps({"items": []}))


def _call_in(session_id: str, call_id: str) -> control.CallIn:
    return control.CallIn(session_id, call_id, f"ws://voice/{call_id}", f"tok-{call_id}")


def _open_response(session_id: str, req_id: str, answer: str) -> control.Response:
    if answer == "ok":
        info = control.OpenedSession(session_id, tf.ChannelType.TELCO)
        return control.Response(req_id, True, info.to_content())
    return control.Response(req_id, False, error_code=answer, error_content={"boundSmWsId": "x"})


@asynccontextmanager
async def fake_server() -> AsyncIterator[FakeServer]:
    """A :class:`FakeServer` serving for the block's duration."""
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        yield server
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def session_with_call(
    server: FakeServer, sm: tf.SessionManager, session_id: str = "s-1", call_id: str = "c-1"
) -> AsyncIterator[tuple[tf.Session, tf.Call]]:
    """Claim a session, make it ready, deliver its call: the block is the session's scope."""
    async with sm.open_session(session_id) as session:
        await session.ready()
        await server.call_in(session_id, call_id)
        yield session, await session.incoming_call()
