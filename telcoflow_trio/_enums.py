"""The vocabulary of the Telcoflow protocol, as string enums.

Every member's value is its spelling on the wire, so a member compares equal to the
plain string the server sends.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CALL_ERROR",
    "CALL_TERMINATED",
    "AudioMode",
    "CallErrorCode",
    "CallEvent",
    "CallState",
    "ChannelType",
    "CloseReason",
    "InboundCallMode",
    "MessageErrorCode",
    "SessionActivityType",
]


class AudioMode(StrEnum):
    """How the call legs reach the agent: one mixed leg, or each leg on its own channel."""

    MIXED = "mixed"
    ISOLATED = "isolated"


class ChannelType(StrEnum):
    """The channel a session belongs to: a phone call or a WhatsApp conversation."""

    TELCO = "TELCO"
    WA = "WA"


class SessionActivityType(StrEnum):
    """Why a ``session.notify`` was broadcast.

    The server may add values; decoded notifications keep unknown ones as plain strings,
    so compare against these members rather than matching them exhaustively.
    """

    NEW_INCOMING_CALL = "NEW_INCOMING_CALL"
    NEW_INCOMING_MESSAGE = "NEW_INCOMING_MESSAGE"
    RESUME = "RESUME"


class InboundCallMode(StrEnum):
    """Which inbound calls a connector's call flow delivers."""

    ALL = "ALL"
    MISSED_ONLY = "MISSED_ONLY"
    NO = "NO"


class CallState(StrEnum):
    """Lifecycle of a call: NEW (voice socket not opened) → OPENING → LIVE → TERMINATED."""

    NEW = "NEW"
    OPENING = "OPENING"
    LIVE = "LIVE"
    TERMINATED = "TERMINATED"


class CloseReason(StrEnum):
    """Why a session closed. Unknown reasons from the server read as ``FORCE_CLOSE``."""

    SDK_REQUEST = "SDK_REQUEST"
    FORCE_CLOSE = "FORCE_CLOSE"
    CALL_TERMINATED = "CALL_TERMINATED"


class MessageErrorCode(StrEnum):
    """Error codes of a refused outbound WhatsApp message (``wa.msg.out``)."""

    INVALID_PAYLOAD = "INVALID_PAYLOAD"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    SESSION_NOT_OPEN = "SESSION_NOT_OPEN"
    INVALID_CHANNEL = "INVALID_CHANNEL"
    OVERFLOW = "OVERFLOW"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    REMOTE_ERROR = "REMOTE_ERROR"


class CallEvent(StrEnum):
    """The ``event`` of a voice-plane ``call_event`` frame."""

    CALL_TERMINATED = "call.terminated"
    CALL_ERROR = "call.error"


class CallErrorCode(StrEnum):
    """Known ``error_code`` values of a ``call.error`` event."""

    TTS_SESSION_ERROR = "TTS_SESSION_ERROR"


CALL_TERMINATED: str = CallEvent.CALL_TERMINATED.value
CALL_ERROR: str = CallEvent.CALL_ERROR.value
