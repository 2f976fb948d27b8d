"""The control plane connection (SM-WS): handshake, requests, pushed frames, keep-alive,
and reconnection with backoff.

One :class:`ControlConnection` per session manager. :meth:`ControlConnection.run` is
started with ``nursery.start()``: it returns once ``setup.done`` arrived, so "started" means
connected. It then owns the socket: one reader task, writes through one shielded path,
and, when the socket drops without being asked to, a reconnect loop with jittered backoff
(reset only by a connection that stayed up ``timing.BACKOFF_STABLE_AFTER`` seconds).
Pushed frames go to the ``on_frame`` callback, which must not block (the owner routes
them into bounded channels), so commands and events keep flowing whatever the app does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Final

import attrs
import trio

from ._config import SessionManagerConfig
from ._errors import WSSConnectionError
from ._replies import Replies
from ._transport import Connector, MessageSocket, SocketClosed, keep_alive
from ._websocket import open_websocket
from .protocol import Unrecognised, control, timing

__all__ = ["ConnectionState", "ControlConnection"]

logger = logging.getLogger(__name__)

_PLANE: Final = "control plane"


class ConnectionState(StrEnum):
    """Where the control connection is; every transition is logged."""

    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    RECONNECTING = "RECONNECTING"
    CLOSED = "CLOSED"


@attrs.define
class Timeouts:
    """The protocol's deadlines; tests shorten them."""

    setup: float = timing.SETUP_TIMEOUT
    request: float = timing.REQUEST_TIMEOUT
    ping_interval: float = timing.PING_INTERVAL
    ping_timeout: float = timing.PING_TIMEOUT


class ControlConnection:
    """The SM-WS of one session manager. Not for direct use: :class:`SessionManager` owns it.

    ``connect`` opens each socket (a real WebSocket by default; tests pass a
    :class:`~telcoflow_trio._transport.MemoryConnector`).
    """

    def __init__(
        self,
        config: SessionManagerConfig,
        on_frame: Callable[[control.ServerControlFrame], None],
        on_reconnected: Callable[[], Awaitable[None]] | None = None,
        *,
        timeouts: Timeouts | None = None,
        backoff: timing.Backoff | None = None,
        connect: Connector = open_websocket,
    ) -> None:
        self._config = config
        self._connect = connect
        self._on_frame = on_frame
        self._on_reconnected = on_reconnected
        self._timeouts = timeouts or Timeouts()
        self._backoff = backoff or timing.Backoff()
        self._ws: MessageSocket | None = None
        self._replies: Replies[control.Response] = Replies(_PLANE)
        self._state = ConnectionState.CONNECTING
        self._state_changed = trio.Event()
        self._closing = False
        self._scope: trio.CancelScope | None = None
        self.sm_ws_id: str | None = None
        self.reconnects: int = 0
        """Successful reconnections so far."""

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def closing(self) -> bool:
        """True once :meth:`close` was called: no more reconnecting."""
        return self._closing

    def _set_state(self, state: ConnectionState) -> None:
        if state is not self._state:
            logger.info("control connection: %s -> %s", self._state, state)
            self._state = state
            self._state_changed.set()
            self._state_changed = trio.Event()

    async def wait_state(self, state: ConnectionState) -> None:
        """Wait until the connection is in ``state``."""
        if self._state is state:
            await trio.lowlevel.checkpoint()
            return
        while True:
            await self._state_changed.wait()
            if self._state is state:
                return

    # ── lifetime ────────────────────────────────────────────────────────────────────────

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, then serve and reconnect until :meth:`close`.

        The first connection's failure propagates (``WSSAuthenticationError`` or
        ``WSSConnectionError``); later failures are logged and retried with backoff.
        """
        await trio.lowlevel.checkpoint()
        first = True
        try:
            # Not shielded here: the owner's task scope shields this task once it has
            # started (so the owner's cleanup can still tell the server), and connecting
            # stays cancellable. close() or the owner's scope ends it.
            with trio.CancelScope() as self._scope:
                while not self._closing:
                    try:
                        await self._serve_once(task_status if first else None)
                        if first:
                            first = False
                    except Exception as exc:  # WSSConnectionError, WSSAuthenticationError
                        if first:
                            raise
                        logger.warning("control connection attempt failed: %s", exc)
                    if self.closing:
                        break
                    self._set_state(ConnectionState.RECONNECTING)
                    # Only a connection that stayed up resets the delays: a server that
                    # drops every connection right after setup is retried ever more slowly.
                    self._backoff.lost(trio.current_time())
                    delay = self._backoff.next_delay()
                    logger.info(
                        "control connection: reconnecting in %.2f s (attempt %d)",
                        delay,
                        self._backoff.attempt,
                    )
                    await trio.sleep(delay)
        finally:
            self._fail_pending("control connection closed")
            self._set_state(ConnectionState.CLOSED)

    async def _serve_once(self, task_status: trio.TaskStatus[None] | None) -> None:
        headers = self._config.auth_headers()
        secrets = tuple(s for s in (self._config.api_key,) if s)
        async with self._connect(
            self._config.control_url,
            headers,
            self._config.tls_context(),
            what=_PLANE,
            secrets=secrets,
        ) as ws:
            setup_done = trio.Event()
            failure: WSSConnectionError | None = None
            connected = False
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._reader, ws, setup_done, nursery.cancel_scope)
                    failure = await self._handshake(ws, setup_done)
                    if failure is not None:
                        # Raised below, outside the nursery, so it is not wrapped in a group.
                        nursery.cancel_scope.cancel()
                        return
                    connected = True
                    self._ws = ws
                    self._backoff.connected(trio.current_time())
                    self._set_state(ConnectionState.CONNECTED)
                    logger.info("control connection established (smWsId=%s)", self.sm_ws_id)
                    if task_status is not None:
                        task_status.started()
                    else:
                        self.reconnects += 1
                        if self._on_reconnected is not None:
                            nursery.start_soon(self._restore)
                    nursery.start_soon(self._heartbeat, ws)
                if not connected:
                    # The socket closed while we waited for setup.done (the reader's end
                    # cancelled the wait): a failed attempt, not a connection that was served.
                    # Without this, a first attempt would never report started nor fail.
                    failure = WSSConnectionError("control connection closed before setup.done")
            finally:
                self._ws = None
                self._fail_pending("control connection lost")
                if failure is not None:
                    raise failure
        if not self.closing:
            logger.warning("control connection lost")

    async def _handshake(  # noqa: ASYNC910 (private; a refused write returns its error)
        self, ws: MessageSocket, setup_done: trio.Event
    ) -> WSSConnectionError | None:
        try:
            await ws.send(control.encode_frame(self._config.call_audio.setup_frame()))
        except WSSConnectionError as exc:
            return exc  # noqa: ASYNC910 (private; the refused write is the news)
        with trio.move_on_after(self._timeouts.setup):
            await setup_done.wait()
        if not setup_done.is_set():
            return WSSConnectionError(
                f"no setup.done within {self._timeouts.setup:g} s after setup"
            )
        return None

    @trio.lowlevel.enable_ki_protection  # an internal task: see _scope
    async def _restore(self) -> None:  # noqa: ASYNC910 (private task body)
        assert self._on_reconnected is not None
        try:
            await self._on_reconnected()
        except Exception:
            logger.exception("restoring sessions after reconnect failed")

    async def close(self) -> None:
        """Close the socket politely and stop reconnecting, at once."""
        self._closing = True
        ws = self._ws
        try:
            if ws is not None:
                await ws.aclose()  # shielded and bounded
            else:
                await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            if self._scope is not None:
                self._scope.cancel()

    # ── reading ─────────────────────────────────────────────────────────────────────────

    @trio.lowlevel.enable_ki_protection  # an internal task: see _scope
    async def _reader(  # noqa: ASYNC910 (private task body)
        self,
        ws: MessageSocket,
        setup_done: trio.Event,
        connection_scope: trio.CancelScope,
    ) -> None:
        try:
            while True:
                message = await ws.receive()
                frame = control.decode_server_frame(message)
                if isinstance(frame, Unrecognised):
                    logger.debug("control plane: ignored frame: %s", frame.reason)
                elif isinstance(frame, control.SetupDone):
                    if setup_done.is_set():
                        # Only the first one counts; a stray one must not change our id.
                        logger.debug("control plane: ignored a second setup.done")
                    else:
                        self.sm_ws_id = frame.sm_ws_id or None
                        setup_done.set()
                elif isinstance(frame, control.Response):
                    self._replies.resolve(frame.req_id, frame)
                else:
                    try:
                        self._on_frame(frame)
                    except Exception:
                        logger.exception("control plane: routing %s failed", frame.TYPE)
        except SocketClosed as exc:
            logger.debug("control plane: %s", exc)
        finally:
            # The reader's end is the connection's end: stop the heartbeat and the handshake.
            connection_scope.cancel()

    def _fail_pending(self, why: str) -> None:
        self._replies.fail_all(WSSConnectionError(why))

    @trio.lowlevel.enable_ki_protection  # an internal task: see _scope
    async def _heartbeat(self, ws: MessageSocket) -> None:
        # A half-dead socket is aborted at the deadline; the reader then ends the connection.
        await keep_alive(
            ws,
            interval=self._timeouts.ping_interval,
            pong_timeout=self._timeouts.ping_timeout,
            what=_PLANE,
        )

    # ── writing ─────────────────────────────────────────────────────────────────────────

    def _require_ws(self) -> MessageSocket:
        ws = self._ws
        if ws is None or self._state is not ConnectionState.CONNECTED:
            raise WSSConnectionError(f"control connection is not connected ({self._state})")
        return ws

    async def send(self, frame: control.ClientControlFrame) -> None:
        """Send a fire-and-forget frame (``session.ready``)."""
        await self._require_ws().send(control.encode_frame(frame))

    async def request(self, frame: control.ControlRequest) -> control.Response:
        """Send a request and wait for its response (at most 30 s).

        Raises ``WSSConnectionError`` when not connected, when the connection drops
        before the answer, or when no answer comes in time.
        """
        ws = self._require_ws()
        with (
            self._replies.expect(frame.req_id) as reply,
            trio.move_on_after(self._timeouts.request),
        ):
            await ws.send(control.encode_frame(frame))
            await reply.done.wait()
        if reply.error is not None:
            raise reply.error
        if reply.value is None:
            raise WSSConnectionError(
                f"no response to {frame.TYPE} within {self._timeouts.request:g} s"
            )
        return reply.value
