"""The entry point: one control connection, its sessions, and ``serve_calls`` (which runs
a :class:`~telcoflow_trio._serving.CallServer`).

``async with SessionManager(config) as sm:`` opens a nursery that owns every task of the
manager; on entry the control connection is up (setup done), on exit every session, call,
socket and task it opened is closed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Final

import httpx
import sniffio
import trio

from ._call import Call
from ._capacity import MAX_HELD, MAX_HELD_AGE, ClaimStats
from ._channels import DroppingSender, open_dropping_channel
from ._claims import CLEANUP_DEADLINE, Claimer
from ._config import CallFlowConfig, SessionManagerConfig
from ._connectors import connector_for
from ._control_connection import ConnectionState, ControlConnection, Timeouts
from ._enums import CallState, ChannelType
from ._errors import (
    WSSSessionAlreadyExists,
    WSSSessionError,
)
from ._messages import SessionNotification
from ._readhub import ReadHub
from ._rest_client import RestClient
from ._scope import TaskScope, cleanup_within
from ._serving import CallServer, register_manager
from ._session import Session, SessionFeed, open_session_object, session_error
from ._transport import Connector
from ._validate import (
    check_int,
    check_member,
    check_non_empty_str,
    check_type,
)
from ._voice_connection import VoicePlane, VoiceTimeouts
from .protocol import Unrecognised, control, rest, timing

__all__ = ["SessionManager"]

logger = logging.getLogger(__name__)

NOTIFICATION_BUFFER: Final = 256


def _require_trio() -> None:
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        library = "none"
    if library != "trio":
        raise RuntimeError(
            f"telcoflow_trio runs on trio (trio.run, or anyio with backend='trio'); "
            f"this code is running under {library!r}. Use the official telcoflow client on asyncio."
        )


class SessionManager:
    """Connects to Telcoflow and hands out sessions. Use as ``async with``.

    ``timeouts``, ``backoff``, ``connect`` (the transport: by default the engine named by
    ``config.transport``, WebSockets over TCP/TLS; tests may pass an in-memory
    ``MemoryConnector``), ``voice_timeouts`` and
    ``rest_transport`` (an ``httpx`` transport for the REST plane) are for tests and
    tuning; the defaults are the protocol's.
    """

    def __init__(
        self,
        config: SessionManagerConfig,
        *,
        notification_buffer: int = NOTIFICATION_BUFFER,
        timeouts: Timeouts | None = None,
        backoff: timing.Backoff | None = None,
        connect: Connector | None = None,
        voice_timeouts: VoiceTimeouts | None = None,
        rest_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config: SessionManagerConfig = check_type(
            "config", config, SessionManagerConfig, "a SessionManagerConfig"
        )
        size = check_int("notification_buffer", notification_buffer, low=1)
        # One task reads all the websockets engine's plain-TCP sockets (see _readhub).
        self._hub: ReadHub | None = None
        if connect is None:
            if self.config.transport == "websockets":
                self._hub = ReadHub()
            connect = connector_for(self.config.transport, self._hub)
        self._control = ControlConnection(
            config,
            self._route,
            self._restore_sessions,
            timeouts=timeouts,
            backoff=backoff,
            connect=connect,
        )
        self._voice_plane = VoicePlane(connect, voice_timeouts or VoiceTimeouts())
        self._sessions: dict[str, SessionFeed] = {}
        register_manager(self, _Port(self._sessions))
        self._notify_in: DroppingSender[SessionNotification]
        self.session_notifications: trio.MemoryReceiveChannel[SessionNotification]
        self._notify_in, self.session_notifications = open_dropping_channel(
            size, logger, "session_notifications"
        )
        self._scope: TaskScope | None = None
        self._rest_transport = rest_transport
        self._rest: RestClient
        self._claimer: Claimer
        self._claim_stats = ClaimStats()

    def __repr__(self) -> str:
        return f"<SessionManager {self.config.base_url} {self._control.state}>"

    # ── scope ───────────────────────────────────────────────────────────────────────────

    async def __aenter__(self) -> SessionManager:
        _require_trio()
        if self._scope is not None:
            raise RuntimeError("a SessionManager can be entered only once")
        self._rest = RestClient(self.config, self._rest_transport)
        self._scope = TaskScope("SessionManager")
        self._claimer = Claimer(self._control, self._rest, self._scope)
        await self._scope.open()
        try:
            if self._hub is not None:
                await self._scope.start(self._hub.run)
            # Cancellable until connected (the task is shielded only once it has started).
            await self._scope.start(self._control.run)
        except BaseException as exc:
            try:
                await self._scope.close(exc)
            finally:
                await self._release()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._scope is not None
        try:
            # Close the socket politely first, so nothing races to reconnect; then cancel
            # and await our tasks.
            await cleanup_within(CLEANUP_DEADLINE, self._control.close)
            await self._scope.close(exc)
            return None
        finally:
            await self._release()

    async def _release(self) -> None:
        self._notify_in.close()
        await cleanup_within(CLEANUP_DEADLINE, self._rest.aclose)

    @property
    def notifications_dropped(self) -> int:
        """Notifications dropped because ``session_notifications`` was full."""
        return self._notify_in.dropped

    @property
    def claim_stats(self) -> ClaimStats:
        """What ``serve_calls`` claimed, lost, and left unclaimed at capacity."""
        return self._claim_stats

    @property
    def calls(self) -> tuple[Call, ...]:
        """The live calls of this manager's open sessions, in the order their sessions were
        opened (claim order under ``serve_calls``): delivered by ``call.in``, neither
        terminated nor handed off with ``to_json``. A fresh tuple on every read; a call
        adopted with ``Call.from_json`` belongs to no session here and is not listed."""
        delivered = (feed.call for feed in self._sessions.values())
        return tuple(
            call
            for call in delivered
            if call is not None and call.state is not CallState.TERMINATED and not call.handed_off
        )

    @property
    def connection_state(self) -> ConnectionState:
        """CONNECTING, CONNECTED, RECONNECTING or CLOSED."""
        return self._control.state

    @property
    def sm_ws_id(self) -> str | None:
        """The server's id for our control connection (changes on reconnect)."""
        return self._control.sm_ws_id

    @property
    def reconnects(self) -> int:
        """How many times the control connection was re-established."""
        return self._control.reconnects

    async def wait_connection_state(self, state: ConnectionState) -> None:
        """Wait until the control connection is in ``state``."""
        await trio.lowlevel.checkpoint()
        await self._control.wait_state(state)

    async def wait_connected(self) -> None:
        """Wait until the control connection is up (e.g. after a reconnect)."""
        await self.wait_connection_state(ConnectionState.CONNECTED)

    # ── routing (called by the control connection's reader: never blocks) ─────────────

    def _route(self, frame: control.ServerControlFrame) -> None:
        if isinstance(frame, control.SessionNotify):
            notification = SessionNotification.from_frame(frame)
            self._notify_in.offer(notification, "notification for session %s", frame.session_id)
            return
        feed = self._sessions.get(frame.session_id)  # type: ignore[union-attr]
        if feed is None:
            logger.debug("%s for unknown session %s ignored", frame.TYPE, frame.session_id)  # type: ignore[union-attr]
            return
        if isinstance(frame, control.CallIn):
            feed.call_in(frame)
        elif isinstance(frame, control.WaMsgIn):
            feed.message_in(frame)
        elif isinstance(frame, control.SessionClosed):
            feed.closed(frame.reason)

    async def _restore_sessions(self) -> None:  # noqa: ASYNC910 (private reconnect callback; starts tasks)
        """After a reconnect: the server unbound every session of the old connection and
        re-notified (RESUME) those still needing an agent. Each session that is still ours
        is re-claimed in its own scope; a live call streams on meanwhile either way."""
        for feed in list(self._sessions.values()):
            feed.control_lost()
            feed.start_restore()

    # ── sessions ────────────────────────────────────────────────────────────────────────

    def open_session(self, session_id: str) -> AbstractAsyncContextManager[Session]:
        """Claim a notified session: ``async with sm.open_session(noti.session_id) as s:``.

        Raises ``WSSSessionBusy`` when another agent claimed it first, ``WSSSessionClosed``
        or ``WSSSessionNotFound`` when it is gone. The block is the session's scope.
        """
        return self._session_scope(check_non_empty_str("session_id", session_id))

    def create_session(
        self, channel: ChannelType | str, remote_address: str
    ) -> AbstractAsyncContextManager[Session]:
        """Create a session for a remote address and claim it (``async with``).

        Raises ``WSSSessionAlreadyExists`` when one already exists for that address.
        """
        kind = check_member("channel", channel, ChannelType, "TELCO or WA")
        address = check_non_empty_str("remote_address", remote_address)
        return self._created_scope(kind, address)

    @asynccontextmanager
    async def _created_scope(
        self, channel: ChannelType, remote_address: str
    ) -> AsyncIterator[Session]:
        response = await self._control.request(control.SessionCreate(channel, remote_address))
        if not response.ok:
            raise session_error(response, "session.create")
        created = control.decode_created_session(response.content)
        if isinstance(created, Unrecognised):
            raise WSSSessionError(f"unexpected session.create response: {created.reason}")
        if not created.created:
            raise WSSSessionAlreadyExists(created.session_id)
        async with self._session_scope(created.session_id) as session:
            yield session

    @asynccontextmanager
    async def _session_scope(self, session_id: str) -> AsyncIterator[Session]:
        if session_id in self._sessions:
            raise WSSSessionError(f"session {session_id} is already open in this manager")
        response = await self._claimer.claim(session_id)
        if not response.ok:
            raise session_error(response, "session.open")
        info = control.decode_opened_session(response.content)
        if isinstance(info, Unrecognised):
            # Ours on the server, but unusable: do not leave it bound to us.
            await cleanup_within(CLEANUP_DEADLINE, self._claimer.close_unserved, session_id)
            raise WSSSessionError(f"unexpected session.open response: {info.reason}")
        scope = TaskScope(f"session {session_id}")
        await scope.open()
        session, feed = open_session_object(
            info,
            control_connection=self._control,
            rest=self._rest,
            config=self.config,
            nursery=scope,
            voice_plane=self._voice_plane,
        )
        self._sessions[session_id] = feed
        body_exc: BaseException | None = None
        try:
            scope.start_soon(feed.watch_ready)
            yield session
        except BaseException as exc:
            body_exc = exc
            raise
        finally:
            if not await cleanup_within(CLEANUP_DEADLINE, _close_on_exit, feed):
                logger.warning(
                    "session %s: not closed on the server within %g s", session_id, CLEANUP_DEADLINE
                )
            feed.abandon()
            self._sessions.pop(session_id, None)
            # Not shielded: a nursery must be exited at the nesting level it was opened at,
            # and close() cancels the tasks before it waits for them.
            await scope.close(body_exc)

    # ── REST and call flow ──────────────────────────────────────────────────────────────

    async def list_sessions(
        self,
        channel: ChannelType | str | None = None,
        remote_address: str | None = None,
        state: str | None = "OPEN",
    ) -> list[rest.SessionInfo]:
        """The connector's sessions (REST), filtered by channel, remote address and state."""
        return await self._rest.list_sessions(channel, remote_address, state)

    async def setup_call_flow(self, flow: CallFlowConfig) -> None:
        """Send the connector's call flow (``call_flow.setup``). Not re-sent on reconnect."""
        check_type("flow", flow, CallFlowConfig, "a CallFlowConfig")
        response = await self._control.request(flow.to_frame())
        if not response.ok:
            raise session_error(response, "call_flow.setup")

    # ── serving calls ───────────────────────────────────────────────────────────────────

    async def serve_calls(
        self,
        handler: Callable[[Call], Awaitable[None]],
        *,
        max_calls: int | None = None,
        max_held: int = MAX_HELD,
        max_held_age: float = MAX_HELD_AGE,
    ) -> None:
        """Claim every TELCO notification and run ``handler(call)`` for each, one child
        task per call. A claim lost to another agent (``SESSION_BUSY``) is skipped; the call
        is closed when the handler returns or raises; a handler's exception is logged with
        the call id and does not touch the other calls. Runs until cancelled; a
        cancellation or ``KeyboardInterrupt`` comes out as itself, after every live call
        has been closed on the server.

        ``max_calls``: at most this many claims and calls at once (a slot is reserved before
        each claim). At capacity nothing is claimed: up to ``max_held`` notifications are
        held, for at most ``max_held_age`` seconds, and claimed in arrival order as calls
        end; what is dropped is counted (``claim_stats``) and logged.

        A ``RESUME`` notification (the server re-offers a live call after a control-plane
        blip) is skipped for a session this manager still holds; for another agent's call it
        is claimed, and served only if its voice plane opens (the other agent is gone).

        This is ``await CallServer(sm, handler, ...).run()``; a :class:`CallServer` can
        also be drained (stop claiming, let live calls end) and report each call's outcome.
        """
        server = CallServer(
            self, handler, max_calls=max_calls, max_held=max_held, max_held_age=max_held_age
        )
        await server.run()


class _Port:
    """What a ``CallServer`` on this manager uses beyond its public API. It holds the
    manager's sessions, not the manager (see ``register_manager``)."""

    __slots__ = ("_sessions",)

    def __init__(self, sessions: dict[str, SessionFeed]) -> None:
        self._sessions = sessions

    def holds(self, session_id: str) -> bool:
        return session_id in self._sessions

    async def open_call_voice(self, session_id: str) -> None:
        await self._sessions[session_id].open_call_voice()


async def _close_on_exit(feed: SessionFeed) -> None:  # noqa: ASYNC910 (private; closing awaits I/O)
    """The session scope's cleanup: a failure is logged, not raised over the block's own."""
    try:
        await feed.close_on_exit()
    except Exception as exc:
        logger.warning("session %s: closing failed: %s", feed.session.id, exc)
