"""The voice plane connection of one call: audio in, pulled audio out, commands, events.

:meth:`VoiceConnection.run` is started with ``nursery.start()`` and returns once the
socket is open. Each message is handled synchronously, as the socket's reader parses it
(``MessageSocket.receive_each``), and never waits on the application: incoming audio goes
into the call's :class:`IncomingAudio` (one byte budget for all channels: the oldest audio
is dropped, counted and logged when it is full), pull requests go to the
:class:`PullServicer`, command responses to their waiters, call events to ``on_event``.
The connection's reader task only waits for the socket's end, then shuts the connection.
Every write goes through :meth:`MessageSocket.send`, so no frame is ever cut in half. A
keep-alive pings the server as the reference client does (every 20 s, 20 s to answer): a
half-dead socket ends at that deadline, and its end looks like any lost socket to the call.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import attrs
import trio

from ._errors import WSSCallClosedError, WSSConnectionError
from ._replies import Replies
from ._results import CommandResult
from ._transport import Connector, MessageSocket, SocketClosed, keep_alive
from ._version import USER_AGENT, WIRE_SDK_VERSION
from ._websocket import open_websocket
from .audio import PullServicer, SendAudioBuffer
from .audio._incoming import DEFAULT_CAPACITY, IncomingAudio
from .protocol import Unrecognised, voice

__all__ = ["VoiceConnection", "VoicePlane", "VoiceTimeouts"]

logger = logging.getLogger(__name__)

RTT_SAMPLES: Final = 256
MESSAGE_QUEUE: Final = 32
"""Messages the engine may queue before our handler is installed (the first moments of the
connection, or an engine that cannot hand messages over): room for a burst, so that the
socket's reader need not stop after each message."""
PING_INTERVAL: Final = 20.0
PING_TIMEOUT: Final = 20.0
_PLANE: Final = "voice plane"


@attrs.frozen
class VoiceTimeouts:
    """The voice plane's keep-alive (the reference client's, websockets' defaults); tests
    shorten them."""

    ping_interval: float = PING_INTERVAL
    ping_timeout: float = PING_TIMEOUT


class VoiceConnection:
    """One call's voice WebSocket. Made and owned by :class:`Call`.

    ``timeouts`` is the keep-alive; ``connect`` opens the socket (a real WebSocket by
    default; tests pass a :class:`~telcoflow_trio._transport.MemoryConnector`).
    """

    def __init__(
        self,
        url: str,
        token: str,
        tls: ssl.SSLContext | None,
        buffer: SendAudioBuffer,
        on_event: Callable[[voice.CallEventFrame], None],
        *,
        incoming: IncomingAudio | None = None,
        timeouts: VoiceTimeouts | None = None,
        connect: Connector = open_websocket,
    ) -> None:
        self._url = url
        self._timeouts = timeouts or VoiceTimeouts()
        self._connect = connect
        self._token = token
        self._tls = tls
        self._on_event = on_event
        self._ws: MessageSocket | None = None
        self._closed = False
        self._replies: Replies[voice.CommandResponse] = Replies(_PLANE)
        self._incoming = IncomingAudio(DEFAULT_CAPACITY) if incoming is None else incoming
        self.servicer: PullServicer = PullServicer(
            buffer,
            send_frame=self._write,
            send_interrupt=self._send_interrupt,
            writer=_WriteNow(self),
        )
        self.command_rtts: deque[float] = deque(maxlen=RTT_SAMPLES)
        """Round-trip times (s) of the latest commands."""

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the socket, serve it until it closes, then release everything."""
        headers = {
            "Authorization": f"Bearer {self._token}",
            "x-sdk-version": WIRE_SDK_VERSION,
            "user-agent": USER_AGENT,
        }
        try:
            async with self._connect(
                self._url,
                headers,
                self._tls,
                what=_PLANE,
                secrets=(self._token,),
                message_queue_size=MESSAGE_QUEUE,
            ) as ws:
                self._ws = ws
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.servicer.run)
                    nursery.start_soon(self._reader, ws, nursery.cancel_scope)
                    nursery.start_soon(self._heartbeat, ws)
                    task_status.started()
        finally:
            self._shut()

    def _shut(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ws = None
        self.servicer.close()
        self._replies.fail_all()
        self._incoming.close()

    async def aclose(self) -> None:
        """Close the socket politely (close frame, bounded wait)."""
        ws = self._ws
        try:
            if ws is not None:
                await ws.aclose()  # shielded and bounded
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            self._shut()

    # ── reading ─────────────────────────────────────────────────────────────────────────

    @trio.lowlevel.enable_ki_protection  # an internal task: see _scope
    async def _heartbeat(self, ws: MessageSocket) -> None:
        await keep_alive(
            ws,
            interval=self._timeouts.ping_interval,
            pong_timeout=self._timeouts.ping_timeout,
            what=_PLANE,
        )

    @trio.lowlevel.enable_ki_protection  # an internal task: see _scope
    async def _reader(self, ws: MessageSocket, scope: trio.CancelScope) -> None:  # noqa: ASYNC910 (private task body)
        # Waits for the socket's end; the messages themselves are handled in the engine's
        # reader task (receive_each), one task switch fewer per message.
        try:
            await ws.receive_each(self._on_message)
        except SocketClosed as exc:
            logger.debug("voice plane: %s", exc)
        finally:
            self._shut()
            scope.cancel()

    def _on_message(self, data: str | bytes) -> None:
        """One message from the server. Synchronous, and never waits on the application:
        audio goes into the byte budget, pull requests to the servicer's queue."""
        if type(data) is bytes and len(data) > 1:
            # Audio is most of the traffic: decoded inline, without a frame object.
            # Anything shorter goes to the decoder, which says why it is ignored.
            self._incoming.deliver(data[0], data[1:])
            return
        frame = voice.decode_server_frame(data)
        if isinstance(frame, voice.BufferRequest):
            self.servicer.on_buffer_request(frame)
        elif isinstance(frame, voice.CommandResponse):
            self._replies.resolve(frame.command_id, frame)
        elif isinstance(frame, voice.CallEventFrame):
            try:
                self._on_event(frame)
            except Exception:
                logger.exception("voice plane: handling %s failed", frame.event)
        elif isinstance(frame, Unrecognised):
            logger.debug("voice plane: ignored frame: %s", frame.reason)

    # ── writing ─────────────────────────────────────────────────────────────────────────

    async def _write(self, message: str | bytes) -> None:
        ws = self._ws
        if ws is None or self._closed:
            raise WSSCallClosedError()
        try:
            await ws.send(message)
        except WSSConnectionError:
            raise WSSCallClosedError("the call's voice connection is closed") from None

    async def _send_interrupt(self, written: Callable[[], None]) -> CommandResult:
        return await self.command(
            voice.CommandName.INTERRUPT,
            voice.CommandName.INTERRUPT.default_timeout_ms,
            written=written,
        )

    async def command(
        self,
        name: str,
        timeout_ms: int,
        data: dict[str, Any] | None = None,
        *,
        written: Callable[[], None] | None = None,
    ) -> CommandResult:
        """Send a command and wait ``timeout_ms`` + 5 s for its response.

        A refusal or a timeout is a falsy :class:`CommandResult`; a closed connection
        raises :class:`WSSCallClosedError`.
        """
        frame = voice.Command(name, timeout_ms, data)
        started = time.monotonic()
        deadline = timeout_ms / 1000 + voice.COMMAND_GRACE_SECONDS
        with self._replies.expect(frame.command_id) as reply, trio.move_on_after(deadline):
            await self._write(voice.encode_frame(frame))
            if written is not None:
                written()
            await reply.done.wait()
        response = reply.value
        if response is None:
            if self._closed:
                raise WSSCallClosedError(f"the call ended before {name} was answered")
            return CommandResult(False, "TIMEOUT", f"no response to {name}")
        self.command_rtts.append(time.monotonic() - started)
        if response.success:
            return CommandResult(True, payload=response.result)
        return CommandResult(False, response.error_code, response.error_message, response.result)


class _WriteNow:
    """The servicer's :class:`~telcoflow_trio.audio.FrameWriter`: the socket's synchronous
    write, where the engine has one (``MessageSocket.send_now``)."""

    __slots__ = ("_connection",)

    def __init__(self, connection: VoiceConnection) -> None:
        self._connection = connection

    def ready(self) -> bool:
        ws = self._connection._ws
        return ws is not None and ws.can_send_now()

    def write_now(self, frame: bytes) -> None:
        ws = self._connection._ws
        if ws is None:
            raise WSSCallClosedError()
        try:
            ws.send_now(frame)
        except WSSConnectionError:
            raise WSSCallClosedError("the call's voice connection is closed") from None


@attrs.frozen
class VoicePlane:
    """How a call opens its voice connection: the transport and the keep-alive deadlines
    (injected by tests: an in-memory transport, short timeouts)."""

    connect: Connector = open_websocket
    timeouts: VoiceTimeouts = attrs.field(factory=VoiceTimeouts)

    def connection(
        self,
        url: str,
        token: str,
        tls: ssl.SSLContext | None,
        buffer: SendAudioBuffer,
        on_event: Callable[[voice.CallEventFrame], None],
        incoming: IncomingAudio | None = None,
    ) -> VoiceConnection:
        return VoiceConnection(
            url,
            token,
            tls,
            buffer,
            on_event,
            incoming=incoming,
            timeouts=self.timeouts,
            connect=self.connect,
        )
