"""A claimed session: its call (TELCO) or its messages (WA), and its closing.

A :class:`Session` lives inside the ``async with`` of ``SessionManager.open_session`` /
``create_session``; that block is its scope. Leaving it closes the session on the server
as the protocol says (``call.close`` for TELCO, REST for WA, and REST for a TELCO session
left before its call arrived) and waits for
``session.closed``, at most ``SESSION_CLOSE_WAIT`` seconds, before closing it locally.

The manager drives a session through its :class:`SessionFeed` (frames routed to it, the
scope's end), made together with the session by :func:`open_session_object`; neither
reaches into the other's private state.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

import trio

from .call import Call, CallOwner, call_for_session
from .enums import CallState, ChannelType, CloseReason
from .errors import WrongChannelError, WSSSessionClosed, WSSSessionError, error_from_code
from .messages import IncomingMessage, SendWAMessage
from .protocol import control, timing
from .results import SendMessageResult

if TYPE_CHECKING:
    from .config import SessionManagerConfig
    from .control_connection import ControlConnection
    from .rest_client import RestClient

__all__ = ["Session", "SessionFeed", "open_session_object"]

logger = logging.getLogger(__name__)

MESSAGE_BUFFER: Final = 64
CALL_WAIT: Final = 10.0
"""How long ``incoming_call`` waits for ``call.in`` after ``session.ready``."""


class Session:
    """One claimed session. Made by the session manager; use it inside its ``async with``."""

    def __init__(
        self,
        info: control.OpenedSession,
        *,
        control_connection: ControlConnection,
        rest: RestClient,
        config: SessionManagerConfig,
        nursery: trio.Nursery,
    ) -> None:
        self._control = control_connection
        self._rest = rest
        self._config = config
        self._nursery = nursery
        self.id = info.id
        self.channel = info.channel
        self.remote_address = info.remote_address
        self.local_address = info.local_address
        self.opened_at = info.opened_at
        self._ready = False
        self._closed = trio.Event()
        self._close_reason: CloseReason | None = None
        self._call: Call | None = None
        self._call_owner: CallOwner | None = None
        self._call_arrived = trio.Event()
        self._messages_in, self.messages = trio.open_memory_channel[IncomingMessage](MESSAGE_BUFFER)
        self.messages_dropped = 0
        """Inbound messages dropped because ``messages`` was full."""

    def __repr__(self) -> str:
        state = f"closed:{self._close_reason}" if self.is_closed else "open"
        return f"<Session {self.id} {self.channel} {state}>"

    @property
    def is_closed(self) -> bool:
        return self._closed.is_set()

    @property
    def close_reason(self) -> CloseReason | None:
        """Why the session closed, once it has."""
        return self._close_reason

    def _require(self, channel: ChannelType, what: str) -> None:
        if self.channel is not channel:
            raise WrongChannelError(
                f"{what} needs a {channel} session; {self.id} is {self.channel}"
            )

    # ── readiness ───────────────────────────────────────────────────────────────────────

    async def ready(self) -> None:
        """Tell the server we are ready for this session's events. Idempotent; a no-op
        once the session is closed. The server delivers ``call.in``/``wa.msg.in`` only after."""
        if self._ready or self.is_closed:
            return
        self._ready = True
        await self._control.send(control.SessionReady(self.id))

    async def _watch_ready(self) -> None:
        await trio.sleep(timing.READY_WARNING_DELAY)
        if not self._ready and not self.is_closed:
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
        closes first, ``WSSSessionError`` if no call arrives within ``timeout`` seconds.
        """
        self._require(ChannelType.TELCO, "incoming_call()")
        await self.ready()
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:

                async def _closed() -> None:
                    await self._closed.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(_closed)
                await self._call_arrived.wait()
                nursery.cancel_scope.cancel()
        if self._call is not None:
            return self._call
        if self.is_closed:
            raise WSSSessionClosed(
                f"session {self.id} closed ({self._close_reason}) before its call"
            )
        raise WSSSessionError(f"no call.in for session {self.id} within {timeout:g} s")

    def _deliver_call(self, frame: control.CallIn) -> None:
        if self._call is not None:
            logger.debug("session %s: ignored a second call.in (call %s)", self.id, frame.call_id)
            return
        self._call, self._call_owner = call_for_session(frame, self._config, self._nursery, self)
        self._call_arrived.set()

    # ── WA ──────────────────────────────────────────────────────────────────────────────

    def _deliver_message(self, frame: control.WaMsgIn) -> None:
        try:
            self._messages_in.send_nowait(IncomingMessage(frame.sender, frame.content))
        except trio.WouldBlock:
            self.messages_dropped += 1
            logger.warning(
                "session %s: messages channel full, dropped an inbound message (%d so far)",
                self.id,
                self.messages_dropped,
            )
        except trio.ClosedResourceError:
            pass

    async def send_message(self, message: SendWAMessage) -> SendMessageResult:
        """Send a WhatsApp message; a refusal comes back as a falsy result, not an exception."""
        self._require(ChannelType.WA, "send_message()")
        if not isinstance(message, SendWAMessage):
            raise TypeError(f"message must be a SendWAMessage, got {type(message).__name__}")
        if self.is_closed:
            raise WSSSessionClosed(f"session {self.id} is closed")
        response = await self._control.request(
            control.WaMsgOut(self.id, message.api_version, message.data)
        )
        if response.ok:
            return SendMessageResult(True, response.content)
        return SendMessageResult(False, None, response.error_code, response.error_content)

    # ── closing ─────────────────────────────────────────────────────────────────────────

    def _mark_closed(self, reason: CloseReason) -> None:
        if self.is_closed:
            return
        self._close_reason = reason
        self._closed.set()
        self._messages_in.close()
        # A closed session does not end its call: after a control-plane reconnect the
        # server closes TELCO sessions while their calls keep streaming on the voice plane.
        logger.info("session %s closed (%s)", self.id, reason)

    def _abandon(self) -> None:
        """The scope is over: whatever the server said, stop the call's tasks now."""
        if self._call_owner is not None:
            self._call_owner.terminate("its session scope ended")
        self._mark_closed(CloseReason.SDK_REQUEST)

    async def wait_closed(self) -> CloseReason:
        """Wait until the session is closed; returns the reason."""
        await self._closed.wait()
        assert self._close_reason is not None
        return self._close_reason

    async def _close_on_exit(self) -> None:
        call = self._call
        if self.is_closed:
            # Closed under a live call (a control-plane reconnect force-closes TELCO
            # sessions while their calls stream on): the call is still ours to end.
            if call is not None and not call.handed_off and call.state is not CallState.TERMINATED:
                await call.close()
            return
        if call is not None and call.handed_off:
            # Another node has the call: nothing of ours to close on the server.
            self._mark_closed(CloseReason.SDK_REQUEST)
            return
        await self.close()

    async def close(self, *, confirm_timeout: float = timing.SESSION_CLOSE_WAIT) -> None:
        """Close the session and wait for the server's ``session.closed`` (at most
        ``confirm_timeout`` seconds; then it is closed locally). Idempotent."""
        if self.is_closed:
            return
        call = self._call
        if self.channel is ChannelType.TELCO and call is not None:
            if call.state is not CallState.TERMINATED:
                await call.close()
        else:
            # WA sessions close over REST; so does a TELCO session whose call never reached
            # us (its scope ended first), or the server would keep the caller waiting on a
            # session bound to us.
            result = await self._rest.close_session(self.id)
            if result is None:
                self._mark_closed(CloseReason.SDK_REQUEST)
        with trio.move_on_after(confirm_timeout):
            await self._closed.wait()
        if not self.is_closed:
            logger.warning(
                "session %s: no session.closed within %g s, closing locally",
                self.id,
                confirm_timeout,
            )
            self._mark_closed(CloseReason.SDK_REQUEST)


class SessionFeed:
    """The session manager's side of one session: what the control plane routes to it, and
    the end of its scope. Not for applications."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def call_in(self, frame: control.CallIn) -> None:
        self.session._deliver_call(frame)

    def message_in(self, frame: control.WaMsgIn) -> None:
        self.session._deliver_message(frame)

    def closed(self, reason: CloseReason) -> None:
        self.session._mark_closed(reason)

    async def watch_ready(self) -> None:
        """Warn if the application never calls ``ready()`` (run in the session's nursery)."""
        await self.session._watch_ready()

    async def close_on_exit(self) -> None:
        """The scope is ending: close on the server what is ours to close."""
        await self.session._close_on_exit()

    def abandon(self) -> None:
        """The scope is over: whatever the server said, stop the call's tasks now."""
        self.session._abandon()


def open_session_object(
    info: control.OpenedSession,
    *,
    control_connection: ControlConnection,
    rest: RestClient,
    config: SessionManagerConfig,
    nursery: trio.Nursery,
) -> tuple[Session, SessionFeed]:
    """A new session and the feed its manager drives it through."""
    session = Session(
        info, control_connection=control_connection, rest=rest, config=config, nursery=nursery
    )
    return session, SessionFeed(session)


def session_error(response: control.Response, what: str) -> Exception:
    """The exception for a refused session request."""
    return error_from_code(response.error_code, f"{what} refused", content=response.error_content)
