"""The lifecycle of one claimed session as a pure state machine: events in, actions out.

The trio :class:`~telcoflow_trio.Session` feeds it what the control plane said and what the
application did, and carries out what it returns. Two facts are explicit state here:
whether our control connection holds the claim (:attr:`SessionMachine.bound`: a control
blip unbinds every session on the server), and whether the session is still ours to close
(:attr:`SessionMachine.ours`: another agent may win it while we reconnect).

Phases::

    CLAIMED ──ready──▶ READY ──call.in──▶ CALL
       │                 │                  │
       └─────────────────┴──scope ended──▶ CLOSING ──closed──▶ CLOSED
    (any phase) ──session.closed / lost to another agent──────────▶ CLOSED

After a reconnect the session is re-claimed (:class:`Reclaim`); a session that was ready is
made ready again, so a ``call.in`` still owed is delivered. A session whose call is live
stays ours to end even if another agent wins the re-claim: the call streams on its voice
socket, and ending it is the call's business.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

import attrs

from .._enums import CloseReason

__all__ = [
    "CloseOverRest",
    "EndCall",
    "Reclaim",
    "SendReady",
    "SessionAction",
    "SessionMachine",
    "SessionPhase",
    "SessionStateError",
]

_LOST_CODES: Final = frozenset({"SESSION_BUSY"})
_GONE_CODES: Final = frozenset({"SESSION_CLOSED", "SESSION_NOT_FOUND"})


class SessionPhase(Enum):
    CLAIMED = "CLAIMED"
    READY = "READY"
    CALL = "CALL"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


@attrs.frozen
class SendReady:
    """Send ``session.ready``."""


@attrs.frozen
class Reclaim:
    """Send ``session.open`` again (after a reconnect) and report the answer."""


@attrs.frozen
class CloseOverRest:
    """Close the session with the REST call and report with :meth:`SessionMachine.rest_closed`."""


@attrs.frozen
class EndCall:
    """End the session's call (the call's own machine says how), then report
    :meth:`SessionMachine.call_settled`."""


SessionAction = SendReady | Reclaim | CloseOverRest | EndCall


class SessionStateError(Exception):
    """An event the current phase does not allow; the machine did not change."""

    def __init__(self, event: str, phase: SessionPhase) -> None:
        super().__init__(f"{event} is not allowed in phase {phase.value}")
        self.event = event
        self.phase = phase


@attrs.define
class SessionMachine:
    """One session's lifecycle. See the module docstring."""

    phase: SessionPhase = SessionPhase.CLAIMED
    bound: bool = True
    """Our control connection holds the claim on the server."""
    ours: bool = True
    """The session is still ours to close (no other agent won it)."""
    close_reason: CloseReason | None = None
    has_call: bool = False

    @property
    def closed(self) -> bool:
        return self.phase is SessionPhase.CLOSED

    def _refuse(self, event: str) -> SessionStateError:
        return SessionStateError(event, self.phase)

    def _close(self, reason: CloseReason) -> list[SessionAction]:
        if self.phase is not SessionPhase.CLOSED:
            self.phase = SessionPhase.CLOSED
            self.close_reason = reason
        return []

    # ── the application ─────────────────────────────────────────────────────────────────

    def ready(self) -> list[SessionAction]:
        """``session.ready``: sent now if the claim is held, else after the re-claim."""
        if self.phase is SessionPhase.CLAIMED:
            self.phase = SessionPhase.READY
            return [SendReady()] if self.bound else []
        if self.phase in (SessionPhase.READY, SessionPhase.CALL):
            return []
        raise self._refuse("ready")

    def scope_ended(self) -> list[SessionAction]:
        """The session's scope is ending: what must the server be told?"""
        if self.phase is SessionPhase.CALL:
            self.phase = SessionPhase.CLOSING
            return [EndCall()]
        if self.phase in (SessionPhase.CLAIMED, SessionPhase.READY):
            if not self.ours:
                return self._close(CloseReason.FORCE_CLOSE)
            # Left before its call arrived: the server would keep the caller waiting on a
            # session bound to us, so it is closed over REST.
            self.phase = SessionPhase.CLOSING
            return [CloseOverRest()]
        if self.phase is SessionPhase.CLOSING:
            # An earlier close was cut short (``session.close()`` cancelled while it told the
            # server): do it again, or the session stays bound to us, unserved. Both actions
            # are safe to repeat (a settled call does nothing; a REST close of a closed
            # session is refused and logged).
            return [EndCall()] if self.has_call else [CloseOverRest()]
        return []

    def close_requested(self) -> list[SessionAction]:
        """``session.close()``: as at the scope's end, but the scope goes on."""
        return self.scope_ended()

    # ── the server ──────────────────────────────────────────────────────────────────────

    def call_in(self) -> list[SessionAction]:
        """``call.in``; a repeat (re-delivered after a re-claim) changes nothing."""
        if self.phase in (SessionPhase.CLAIMED, SessionPhase.READY):
            self.phase = SessionPhase.CALL
            self.has_call = True
            return []
        if self.phase is SessionPhase.CALL or self.phase is SessionPhase.CLOSING:
            return []
        raise self._refuse("call_in")

    def server_closed(self, reason: CloseReason) -> list[SessionAction]:
        """``session.closed`` from the server (it ended the call too, if any)."""
        return self._close(reason)

    def control_lost(self) -> list[SessionAction]:
        """Our control connection dropped: the server unbinds the session."""
        if self.phase is not SessionPhase.CLOSED:
            self.bound = False
        return []

    def control_back(self) -> list[SessionAction]:
        """Connected again: re-claim what is still ours."""
        if self.phase is SessionPhase.CLOSED or self.bound or not self.ours:
            return []
        return [Reclaim()]

    def reclaim_answered(self, *, ok: bool, error_code: str | None = None) -> list[SessionAction]:
        if self.phase is SessionPhase.CLOSED:
            return []
        if ok:
            self.bound = True
            if self.phase in (SessionPhase.READY, SessionPhase.CALL):
                return [SendReady()]
            return []
        if error_code in _LOST_CODES:
            # Another agent holds it now. A live call stays ours (it streams on its own
            # socket); a session still waiting for its call is theirs to serve.
            if self.phase is SessionPhase.CALL or self.phase is SessionPhase.CLOSING:
                return []
            self.ours = False
            return self._close(CloseReason.FORCE_CLOSE)
        if error_code in _GONE_CODES:
            self.ours = False
            return self._close(CloseReason.FORCE_CLOSE)
        return []  # refused for another reason: stays unbound, tried again next reconnect

    # ── outcomes of our actions ─────────────────────────────────────────────────────────

    def rest_closed(self) -> list[SessionAction]:
        """The session was closed over REST (by :class:`CloseOverRest`, or by its call
        ending itself on the server). A failure is the caller's to log: there is nothing
        more to try, and the session is over for us either way."""
        return self._close(CloseReason.SDK_REQUEST)

    def call_settled(self, *, server_done: bool) -> list[SessionAction]:
        """The call of :class:`EndCall` is over (its machine has told the server, by the
        voice plane or by closing this session over REST, or every way failed)."""
        return self._close(CloseReason.CALL_TERMINATED if server_done else CloseReason.SDK_REQUEST)
