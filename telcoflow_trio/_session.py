"""A claimed session: its call (TELCO) or its messages (WA), and its closing.

A :class:`Session` lives inside the ``async with`` of ``SessionManager.open_session`` /
``create_session``; that block is its scope. Its lifecycle is a
:class:`~telcoflow_trio.protocol.session_state.SessionMachine`: leaving the scope ends what
is ours on the server (the call, through the call's own machine; a session left before its
call arrived, or a WA session, over REST) and leaves alone what another agent won while
our control plane reconnected. After a reconnect the session is re-claimed.

The manager drives a session through its :class:`SessionFeed` (frames routed to it, the
reconnect, the scope's end), made together with the session by :func:`open_session_object`;
neither reaches into the other's private state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import trio

from . import _trace
from ._call import Call, CallOwner, call_for_session
from ._channels import DroppingSender, open_dropping_channel
from ._enums import ChannelType, CloseReason
from ._errors import (
    WrongChannelError,
    WSSConnectionError,
    WSSError,
    WSSSessionBusy,
    WSSSessionClosed,
    WSSSessionError,
    error_from_code,
)
from ._messages import IncomingMessage, SendWAMessage
from ._results import SendMessageResult
from ._scope import TaskScope
from ._validate import check_timeout, check_type
from .protocol import control, timing
from .protocol.session_state import (
    CloseOverRest,
    EndCall,
    Reclaim,
    SendReady,
    SessionAction,
    SessionMachine,
    SessionPhase,
    SessionStateError,
)

if TYPE_CHECKING:
    from ._config import SessionManagerConfig
    from ._control_connection import ControlConnection
    from ._rest_client import RestClient
    from ._voice_connection import VoicePlane

__all__ = ["Session", "SessionFeed", "open_session_object"]

logger = logging.getLogger(__name__)

MESSAGE_BUFFER: Final = 64
CALL_WAIT: Final = 10.0
"""How long ``incoming_call`` waits for ``call.in`` after ``session.ready``."""
RECLAIM_GRACE: Final = 30.0
"""How much longer ``incoming_call`` may wait when control-plane reconnects re-send ready."""


class Session:
    """One claimed session. Made by the session manager; use it inside its ``async with``.

    Its lifecycle is a :class:`~telcoflow_trio.protocol.session_state.SessionMachine`: this
    class feeds it the control plane's frames and the application's calls, and carries out
    what it decides (``session.ready``, re-claiming after a reconnect, closing over REST,
    ending the call).
    """

    def __init__(
        self,
        info: control.OpenedSession,
        *,
        control_connection: ControlConnection,
        rest: RestClient,
        config: SessionManagerConfig,
        nursery: TaskScope,
        voice_plane: VoicePlane,
    ) -> None:
        self._control = control_connection
        self._voice_plane = voice_plane
        self._rest = rest
        self._config = config
        self._nursery = nursery
        self.id: str = info.id
        self.channel: ChannelType = info.channel
        self.remote_address: str = info.remote_address
        self.local_address: str = info.local_address
        self.opened_at: int = info.opened_at
        self._machine = SessionMachine()
        self._changed = trio.Event()
        self._closed = trio.Event()
        self._server_closed = trio.Event()
        self._call: Call | None = None
        self._call_owner: CallOwner | None = None
        self._ready_at: float | None = None
        self._messages_in: DroppingSender[IncomingMessage]
        self.messages: trio.MemoryReceiveChannel[IncomingMessage]
        self._messages_in, self.messages = open_dropping_channel(
            MESSAGE_BUFFER, logger, f"session {self.id}: messages"
        )

    def __repr__(self) -> str:
        state = f"closed:{self.close_reason}" if self.is_closed else "open"
        return f"<Session {self.id} {self.channel} {state}>"

    @property
    def messages_dropped(self) -> int:
        """Inbound messages dropped because ``messages`` was full."""
        return self._messages_in.dropped

    @property
    def is_closed(self) -> bool:
        return self._machine.closed

    @property
    def close_reason(self) -> CloseReason | None:
        """Why the session closed, once it has."""
        return self._machine.close_reason

    def _require(self, channel: ChannelType, what: str) -> None:
        if self.channel is not channel:
            raise WrongChannelError(
                f"{what} needs a {channel} session; {self.id} is {self.channel}"
            )

    def _changed_now(self) -> None:
        if self._machine.closed and not self._closed.is_set():
            self._closed.set()
            self._messages_in.close()
            logger.info("session %s closed (%s)", self.id, self._machine.close_reason)
        self._changed.set()
        self._changed = trio.Event()

    async def _carry_out(self, actions: list[SessionAction]) -> None:  # noqa: ASYNC910 (private; each action awaits I/O)
        for action in actions:
            if isinstance(action, SendReady):
                try:
                    await self._control.send(control.SessionReady(self.id))
                    self._ready_at = trio.current_time()
                except WSSConnectionError:
                    # The control plane is down: the re-claim after the reconnect sends it.
                    self._machine.control_lost()
            elif isinstance(action, Reclaim):
                await self._reclaim()
            elif isinstance(action, CloseOverRest):
                await self._close_over_rest()
            elif isinstance(action, EndCall):
                owner = self._call_owner
                assert owner is not None
                await owner.settle()
                self._machine.call_settled(server_done=owner.server_done)
            else:  # pragma: no cover
                raise AssertionError(f"unexpected action {action!r}")
            self._changed_now()
        self._changed_now()

    async def _reclaim(self) -> None:
        try:
            response = await self._control.request(control.SessionOpen(self.id))
        except WSSConnectionError as exc:
            logger.info(
                "session %s: re-claim failed (%s); retried after the next reconnect", self.id, exc
            )
            return  # noqa: ASYNC910 (private; the request is its checkpoint)
        actions = self._machine.reclaim_answered(ok=response.ok, error_code=response.error_code)
        if response.ok:
            logger.info("session %s re-claimed after reconnect", self.id)
        elif self._machine.closed:
            logger.info("session %s lost on reconnect (%s)", self.id, response.error_code)
        else:
            logger.info("session %s kept without its claim (%s)", self.id, response.error_code)
        await self._carry_out(actions)

    async def _close_over_rest(self) -> bool:
        """Close the session with the REST call (also how its call is ended on the server
        when its voice socket is gone); True once the server has closed it."""
        try:
            await self._rest.close_session(self.id)
            ok = True
        except WSSError as exc:
            logger.warning("session %s: closing it over REST failed: %s", self.id, exc)
            ok = False
        self._machine.rest_closed()
        self._changed_now()
        return ok  # noqa: ASYNC910 (private; the REST call is its checkpoint)

    # ── readiness ───────────────────────────────────────────────────────────────────────

    async def ready(self) -> None:
        """Tell the server we are ready for this session's events. Idempotent; a no-op
        once the session is closed. The server delivers ``call.in``/``wa.msg.in`` only after.
        While the control plane reconnects, it is sent once the session is re-claimed."""
        await trio.lowlevel.checkpoint()
        if self._machine.phase is not SessionPhase.CLAIMED:
            return
        await self._carry_out(self._machine.ready())

    async def _watch_ready(self) -> None:
        await trio.sleep(timing.READY_WARNING_DELAY)
        if self._machine.phase is SessionPhase.CLAIMED:
            logger.warning(
                "session %s was opened %.0f s ago and ready() was never called: "
                "the server holds its events until then",
                self.id,
                timing.READY_WARNING_DELAY,
            )

    # ── TELCO ───────────────────────────────────────────────────────────────────────────

    async def incoming_call(self, *, timeout: float = CALL_WAIT) -> Call:  # noqa: ASYNC109 (guarantee 5: a default deadline)
        """The session's call: sends ``ready()`` if needed, then waits for ``call.in``.

        Raises ``WrongChannelError`` on a WA session, ``WSSSessionClosed`` if the session
        closes first, ``WSSSessionBusy`` if another agent won it during a control-plane
        reconnect, ``WSSSessionError`` if no call arrives within ``timeout`` seconds.
        """
        self._require(ChannelType.TELCO, "incoming_call()")
        wait = check_timeout("timeout", timeout)
        await self.ready()
        start = trio.current_time()
        while self._call is None and not self.is_closed:
            # A control blip re-sends ready after the re-claim: the wait starts again from
            # there, so a blip mid-claim does not hang the caller up (bounded all the same).
            deadline = start + wait
            if self._ready_at is not None:
                deadline = min(max(deadline, self._ready_at + wait), start + wait + RECLAIM_GRACE)
            if trio.current_time() >= deadline:
                break
            with trio.move_on_at(deadline):
                await self._changed.wait()
        if self._call is not None:
            observer = _trace.OBSERVER.get()
            if observer is not None:
                observer.call_seen(self._call, self)
            return self._call
        if self.is_closed:
            if not self._machine.ours:
                raise WSSSessionBusy(None)
            raise WSSSessionClosed(
                f"session {self.id} closed ({self.close_reason}) before its call"
            )
        raise WSSSessionError(f"no call.in for session {self.id} within {wait:g} s")

    def _deliver_call(self, frame: control.CallIn) -> None:
        try:
            self._machine.call_in()
        except SessionStateError:
            logger.debug("session %s: call.in after it closed ignored", self.id)
            return
        if self._call is not None:
            if frame.call_id != self._call.id:
                logger.warning("session %s: ignored call.in for another call", self.id)
            return  # re-delivered after a re-claim: the same call
        self._call, self._call_owner = call_for_session(
            frame, self._config, self._nursery, self._close_over_rest, self._voice_plane
        )
        self._changed_now()

    # ── WA ──────────────────────────────────────────────────────────────────────────────

    def _deliver_message(self, frame: control.WaMsgIn) -> None:
        self._messages_in.offer(IncomingMessage(frame.sender, frame.content), "an inbound message")

    async def send_message(self, message: SendWAMessage) -> SendMessageResult:
        """Send a WhatsApp message; a refusal comes back as a falsy result, not an exception."""
        self._require(ChannelType.WA, "send_message()")
        check_type("message", message, SendWAMessage, "a SendWAMessage")
        if self.is_closed:
            raise WSSSessionClosed(f"session {self.id} is closed")
        response = await self._control.request(
            control.WaMsgOut(self.id, message.api_version, message.data)
        )
        if response.ok:
            return SendMessageResult(True, response.content)
        return SendMessageResult(False, None, response.error_code, response.error_content)

    # ── closing ─────────────────────────────────────────────────────────────────────────

    def _on_server_closed(self, reason: CloseReason) -> None:
        self._server_closed.set()
        self._machine.server_closed(reason)
        if self._call_owner is not None:
            self._call_owner.server_closed(reason)
        self._changed_now()

    def _abandon(self) -> None:
        """The scope is over: whatever the server said, stop the call's tasks now."""
        if self._call_owner is not None:
            self._call_owner.abandon()
        self._machine.server_closed(CloseReason.SDK_REQUEST)
        self._changed_now()

    async def wait_closed(self) -> CloseReason:
        """Wait until the session is closed; returns the reason."""
        await self._closed.wait()
        reason = self._machine.close_reason
        assert reason is not None
        return reason

    async def close(self, *, confirm_timeout: float = timing.SESSION_CLOSE_WAIT) -> None:
        """Close the session (its call, for TELCO; over REST otherwise) and wait for the
        server's ``session.closed``, at most ``confirm_timeout`` seconds. Idempotent."""
        wait = check_timeout("confirm_timeout", confirm_timeout)
        await trio.lowlevel.checkpoint()
        if self.is_closed:
            return
        await self._carry_out(self._machine.close_requested())
        if not self._server_closed.is_set():
            with trio.move_on_after(wait):
                await self._server_closed.wait()


class SessionFeed:
    """The session manager's side of one session: what the control plane routes to it, and
    the end of its scope. Not for applications."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def call(self) -> Call | None:
        """The session's call once ``call.in`` delivered it (None before, and on WA)."""
        return self.session._call

    def call_in(self, frame: control.CallIn) -> None:
        self.session._deliver_call(frame)

    def message_in(self, frame: control.WaMsgIn) -> None:
        self.session._deliver_message(frame)

    def closed(self, reason: CloseReason) -> None:
        """``session.closed`` from the server."""
        self.session._on_server_closed(reason)

    def control_lost(self) -> None:
        self.session._machine.control_lost()

    def start_restore(self) -> None:
        """The control plane is back: re-claim the session if it is still ours (a task
        of the session's scope, so it ends with the session)."""
        self.session._nursery.start_soon(self._restore, name=f"restore {self.session.id}")

    async def _restore(self) -> None:
        session = self.session
        await session._carry_out(session._machine.control_back())

    async def watch_ready(self) -> None:
        """Warn if the application never calls ``ready()`` (run in the session's nursery)."""
        await self.session._watch_ready()

    async def close_on_exit(self) -> None:
        """The scope is ending: close on the server what is ours to close."""
        session = self.session
        await session._carry_out(session._machine.scope_ended())

    async def open_call_voice(self) -> None:
        """Open the voice plane of the session's call (a resumed call, before its handler)."""
        owner = self.session._call_owner
        if owner is None:
            raise WSSSessionError(f"session {self.session.id} has no call")
        await owner.open_voice()

    def abandon(self) -> None:
        """The scope is over: whatever the server said, stop the call's tasks now."""
        self.session._abandon()


def open_session_object(
    info: control.OpenedSession,
    *,
    control_connection: ControlConnection,
    rest: RestClient,
    config: SessionManagerConfig,
    nursery: TaskScope,
    voice_plane: VoicePlane,
) -> tuple[Session, SessionFeed]:
    """A new session and the feed its manager drives it through."""
    session = Session(
        info,
        control_connection=control_connection,
        rest=rest,
        config=config,
        nursery=nursery,
        voice_plane=voice_plane,
    )
    return session, SessionFeed(session)


def session_error(response: control.Response, what: str) -> Exception:
    """The exception for a refused session request."""
    return error_from_code(response.error_code, f"{what} refused", content=response.error_content)
