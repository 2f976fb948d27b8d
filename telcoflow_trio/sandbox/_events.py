"""The switchboard's vocabulary: the events the I/O layer reports to it and the actions
it returns, plus :data:`PeerId`, the opaque name of an agent connection. Pure data."""

from __future__ import annotations

from typing import Any, Final, NewType

import attrs

from .._enums import CloseReason
from ..protocol import control

__all__ = [
    "VOICE_PREFIX",
    "Action",
    "AgentConnected",
    "AgentDisconnected",
    "CallCreated",
    "CallDelivered",
    "CallEnded",
    "CallTicket",
    "CloseSession",
    "EndCall",
    "Event",
    "PeerId",
    "PlaceCall",
    "Received",
    "Reply",
    "Send",
    "SessionEnded",
    "WaAccepted",
    "WaMessageIn",
]

PeerId = NewType("PeerId", str)
"""An agent connection, as the I/O layer names it; the switchboard only compares them."""

VOICE_PREFIX: Final = "/v1/voice/"
"""A call's voice WebSocket is at this path followed by its call id."""


# ── events: what happened ───────────────────────────────────────────────────────────────


@attrs.frozen
class AgentConnected:
    """A control connection finished its handshake: from now on it hears broadcasts.
    ``sample_rate`` and ``isolated`` are its ``setup``: the audio of calls delivered to it."""

    peer: PeerId
    sm_ws_id: str
    sample_rate: int = 16000
    isolated: bool = False


@attrs.frozen
class AgentDisconnected:
    """A control connection is gone (a peer that never finished its handshake too)."""

    peer: PeerId


@attrs.frozen
class Received:
    """A request or ``session.ready`` from a connected agent."""

    peer: PeerId
    frame: control.ControlRequest | control.SessionReady


@attrs.frozen
class PlaceCall:
    """A caller dials in: a new TELCO session, offered to every agent."""

    caller: str
    callee: str | None = None


@attrs.frozen
class CallEnded:
    """A call ended without the switchboard asking (hang-up, the agent's disconnect or
    close); ``close_session`` false leaves its session open (a server slow to close it)."""

    call_id: str
    close_session: bool = True


@attrs.frozen
class WaMessageIn:
    """A WhatsApp user writes to the connector."""

    remote_address: str
    content: dict[str, Any]
    sender: str | None = None


@attrs.frozen
class CloseSession:
    """The server closes a session (REST close, admin, or a test)."""

    session_id: str
    reason: CloseReason = CloseReason.FORCE_CLOSE


Event = (
    AgentConnected
    | AgentDisconnected
    | Received
    | PlaceCall
    | CallEnded
    | WaMessageIn
    | CloseSession
)


# ── actions: what the I/O layer must do ─────────────────────────────────────────────────


@attrs.frozen
class CallTicket:
    """What identifies a call: the I/O layer builds its simulated caller from this."""

    call_id: str
    session_id: str
    caller: str
    callee: str
    direction: str
    token: str = attrs.field(repr=False)  # the voice plane's bearer credential


@attrs.frozen
class Send:
    """Send ``frame`` on ``peer``'s control connection."""

    peer: PeerId
    frame: control.SessionNotify | control.CallIn | control.WaMsgIn | control.SessionClosed


@attrs.frozen
class Reply:
    """Answer ``peer``'s request (of type ``request_type``) with ``frame``."""

    peer: PeerId
    request_type: str
    frame: control.Response


@attrs.frozen
class CallCreated:
    """A new call exists: give it a simulated caller."""

    ticket: CallTicket


@attrs.frozen
class CallDelivered:
    """``call.in`` goes out next, so the call's audio format is now fixed."""

    call_id: str
    sample_rate: int
    isolated: bool


@attrs.frozen
class EndCall:
    """The call's session closed under it: end the call (``call.terminated`` on voice)."""

    call_id: str


@attrs.frozen
class SessionEnded:
    """The session is closed: wake whoever waits for that."""

    session_id: str


@attrs.frozen
class WaAccepted:
    """A ``wa.msg.out`` the sandbox accepted, for its outbox."""

    session_id: str
    remote_address: str
    frame: control.WaMsgOut
    sm_ws_id: str


Action = Send | Reply | CallCreated | CallDelivered | EndCall | SessionEnded | WaAccepted
