"""The lifecycle of one call as a pure state machine: events in, actions out.

As in h11's ``_state.py``, all of a call's lifecycle lives here and nothing here does I/O.
The trio :class:`~telcoflow_trio.Call` feeds the machine what happened (the voice socket
opened or was lost, the server said ``call.terminated``, a close was answered, the owning
scope ended) and carries out the actions it returns. Whether the server has been told the
call is over is explicit state (:attr:`CallMachine.server_done`), so no path can forget it.

Phases::

    NEW ──open──▶ OPENING ──opened──▶ LIVE ──close──▶ CLOSING ──answered ok──▶ ENDED
     │               │                 │                  │
     │               └─refused─┐       └─voice lost───────┴──▶ ENDING ──told──▶ ENDED
     └──scope ended / hand-off─┴──────────────────────────────────────────────▶ ENDED

``ENDING`` means the call is over for us but the server has not been told yet: the owner
must carry out :class:`EndOnServer` (close the call's session over REST, or reopen the voice
plane once just to send the close) and report back with :meth:`CallMachine.server_ended`.

An event that makes no sense in the current phase raises :class:`CallStateError` and leaves
the machine exactly as it was.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Final

import attrs

__all__ = [
    "CLOSE_COMMAND",
    "DISCONNECT_COMMAND",
    "Action",
    "CallEndReason",
    "CallMachine",
    "CallPhase",
    "CallStateError",
    "EndOnServer",
    "OpenVoice",
    "SendClose",
    "StopVoice",
]

CLOSE_COMMAND: Final = "call.close"
DISCONNECT_COMMAND: Final = "call.disconnect"

_GONE: Final = 410
"""A voice upgrade refused with this status: the call is already over on the server."""
_CONFLICT: Final = 409
"""A voice upgrade refused with this status: another agent's voice socket holds the call."""


class CallPhase(Enum):
    NEW = "NEW"
    OPENING = "OPENING"
    LIVE = "LIVE"
    CLOSING = "CLOSING"
    ENDING = "ENDING"
    ENDED = "ENDED"


class CallEndReason(StrEnum):
    """Why a call ended, as the agent saw it (``call.end_reason``)."""

    TERMINATED = "TERMINATED"
    """The server ended it (``call.terminated``: the caller hung up, or it was disconnected)."""
    SESSION_CLOSED = "SESSION_CLOSED"
    """The server closed the call's session."""
    CLOSED = "CLOSED"
    """The agent left the call (``close``)."""
    DISCONNECTED = "DISCONNECTED"
    """The agent ended the call for everyone (``disconnect``)."""
    VOICE_LOST = "VOICE_LOST"
    """The voice connection was lost; the SDK ended the call on the server."""
    VOICE_REFUSED = "VOICE_REFUSED"
    """The voice connection could not be opened; the SDK ended the call on the server."""
    HELD_ELSEWHERE = "HELD_ELSEWHERE"
    """Another agent's voice connection holds the call; it was left alone."""
    SCOPE_EXITED = "SCOPE_EXITED"
    """The owning scope ended and the SDK ended the call."""
    HANDED_OFF = "HANDED_OFF"
    """Given to another node with ``to_json()``."""


@attrs.frozen
class OpenVoice:
    """Open the voice WebSocket."""


@attrs.frozen
class SendClose:
    """Send ``command`` (``call.close`` or ``call.disconnect``) and report the answer."""

    command: str


@attrs.frozen
class EndOnServer:
    """End the call on the server without its voice socket, then report with
    :meth:`CallMachine.server_ended`."""


@attrs.frozen
class StopVoice:
    """The call is over for us: stop the voice tasks and wake every waiter."""


Action = OpenVoice | SendClose | EndOnServer | StopVoice


class CallStateError(Exception):
    """An event the current phase does not allow; the machine did not change."""

    def __init__(self, event: str, phase: CallPhase) -> None:
        super().__init__(f"{event} is not allowed in phase {phase.value}")
        self.event = event
        self.phase = phase


_OVER: Final = frozenset({CallPhase.ENDING, CallPhase.ENDED})


@attrs.define
class CallMachine:
    """One call's lifecycle. See the module docstring."""

    phase: CallPhase = CallPhase.NEW
    answered: bool = False
    """``call.answer`` succeeded (or the call was bridged): leaving it is ``call.close``."""
    server_done: bool = False
    """The server's call is known to be over, or is not ours to end."""
    end_reason: CallEndReason | None = None
    closing_with: str | None = None
    """The command of the close in flight, while ``CLOSING``."""

    # ── readings ────────────────────────────────────────────────────────────────────────

    @property
    def over(self) -> bool:
        """The call is over for us (the server may still be being told)."""
        return self.phase in _OVER

    @property
    def settled(self) -> bool:
        """Over, and nothing more is owed to the server."""
        return self.phase is CallPhase.ENDED

    def leave_command(self) -> str:
        """How the agent leaves: ``call.close`` after an answer, else ``call.disconnect``."""
        return CLOSE_COMMAND if self.answered else DISCONNECT_COMMAND

    # ── transitions ─────────────────────────────────────────────────────────────────────

    def _end(self, reason: CallEndReason, *, server_done: bool) -> list[Action]:
        was_over = self.over
        self.closing_with = None
        self.end_reason = self.end_reason or reason
        if server_done:
            self.server_done = True
            self.phase = CallPhase.ENDED
        else:
            self.phase = CallPhase.ENDING
        actions: list[Action] = [] if was_over else [StopVoice()]
        if not server_done:
            actions.append(EndOnServer())
        return actions

    def _refuse(self, event: str) -> CallStateError:
        return CallStateError(event, self.phase)

    def open_voice(self) -> list[Action]:
        """A command or audio operation needs the voice plane."""
        if self.phase is CallPhase.NEW:
            self.phase = CallPhase.OPENING
            return [OpenVoice()]
        if self.phase in (CallPhase.OPENING, CallPhase.LIVE):
            return []
        raise self._refuse("open_voice")

    def voice_opened(self) -> list[Action]:
        if self.over:
            # It ended while the socket opened (call.terminated read before the opener
            # resumed, or the owner gave up): StopVoice has been returned already.
            return []
        if self.phase is not CallPhase.OPENING:
            raise self._refuse("voice_opened")
        self.phase = CallPhase.LIVE
        return []

    def voice_failed(self, status: int | None) -> list[Action]:
        """Opening failed; ``status`` is the HTTP status of a refused upgrade, if any."""
        if self.over:
            return []  # it ended another way meanwhile
        if self.phase is not CallPhase.OPENING:
            raise self._refuse("voice_failed")
        if status == _GONE:
            return self._end(CallEndReason.TERMINATED, server_done=True)
        if status == _CONFLICT:
            return self._end(CallEndReason.HELD_ELSEWHERE, server_done=True)
        return self._end(CallEndReason.VOICE_REFUSED, server_done=False)

    def voice_lost(self) -> list[Action]:
        """The voice socket ended without ``call.terminated``."""
        if self.phase in _OVER:
            return []  # the normal end of a call that is already over
        if self.phase not in (CallPhase.LIVE, CallPhase.CLOSING):
            raise self._refuse("voice_lost")
        return self._end(CallEndReason.VOICE_LOST, server_done=False)

    def terminated(self, reason: CallEndReason = CallEndReason.TERMINATED) -> list[Action]:
        """The server says the call is over (``call.terminated``, or its session closed)."""
        if self.phase is CallPhase.ENDED and self.server_done:
            return []
        if self.phase is CallPhase.CLOSING and reason is CallEndReason.TERMINATED:
            # The server ends a call it was asked to leave; its call.terminated may be read
            # before the close's own answer reaches the closer: the close is why it ended.
            closed = self.closing_with == CLOSE_COMMAND
            reason = CallEndReason.CLOSED if closed else CallEndReason.DISCONNECTED
        return self._end(reason, server_done=True)

    def close(self, *, disconnect: bool = False) -> list[Action]:
        """The agent leaves (``close``) or ends the call for everyone (``disconnect``)."""
        if self.phase is not CallPhase.LIVE:
            raise self._refuse("close")
        self.phase = CallPhase.CLOSING
        self.closing_with = DISCONNECT_COMMAND if disconnect else self.leave_command()
        return [SendClose(self.closing_with)]

    def close_answered(self, *, ok: bool, error_code: str | None = None) -> list[Action]:
        """The answer to a :class:`SendClose` (``ok=False`` with no code: no answer)."""
        if self.phase is not CallPhase.CLOSING:
            if self.over:
                return []  # the call ended (terminated, voice lost) while we waited
            raise self._refuse("close_answered")
        command, self.closing_with = self.closing_with, None
        if ok:
            reason = (
                CallEndReason.CLOSED if command == CLOSE_COMMAND else CallEndReason.DISCONNECTED
            )
            return self._end(reason, server_done=True)
        if error_code == "CALL_TERMINATED":
            return self._end(CallEndReason.TERMINATED, server_done=True)
        self.phase = CallPhase.LIVE  # refused or unanswered: the call is still up
        return []

    def answer_ok(self) -> list[Action]:
        if self.phase is not CallPhase.LIVE:
            raise self._refuse("answer_ok")
        self.answered = True
        return []

    def server_ended(self, *, ok: bool) -> list[Action]:
        """The outcome of :class:`EndOnServer`. Failure still ends the call for us: there
        is nothing more the SDK can do (the failure is logged by the owner)."""
        if self.phase is CallPhase.ENDED:
            return []  # the server said the call was over meanwhile
        if self.phase is not CallPhase.ENDING:
            raise self._refuse("server_ended")
        self.phase = CallPhase.ENDED
        self.server_done = ok
        return []

    def hand_off(self) -> list[Action]:
        """``to_json()``: the call now belongs to another node."""
        if self.phase is not CallPhase.NEW:
            raise self._refuse("hand_off")
        return self._end(CallEndReason.HANDED_OFF, server_done=True)

    def scope_ended(self) -> list[Action]:
        """The owning scope is ending: what must be done so the server's call is over.

        ``LIVE``: leave the call; ``NEW``: open the voice plane to leave it (the protocol
        ends a call by its own socket; if that cannot open, :meth:`voice_failed` ends it
        without); ``OPENING``, ``CLOSING``, ``ENDING``: nothing new (wait for what is in
        flight, then ask again); ``ENDED``: nothing.
        """
        if self.phase is CallPhase.LIVE:
            return self.close()
        if self.phase is CallPhase.NEW:
            return self.open_voice()
        return []

    def give_up(self) -> list[Action]:
        """The owner's deadline for ending the call passed: end it without the voice
        socket (if the server may not know yet) or stop waiting."""
        if self.phase in (CallPhase.NEW, CallPhase.OPENING, CallPhase.LIVE, CallPhase.CLOSING):
            return self._end(CallEndReason.SCOPE_EXITED, server_done=False)
        return []
