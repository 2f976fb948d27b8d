"""telcoflow_trio: a trio-native, structured-concurrency SDK for Telcoflow voice agents.

The library configures no logging handlers; its loggers live under ``telcoflow_trio``.
"""

import logging

from ._version import __version__
from .audio import AudioCounters, AudioStream, ClearResult
from .call import Call, CallEndReason, CallError, CallTerminated
from .config import (
    DEFAULT_BUFFER_SIZE,
    PRODUCTION_BASE_URL,
    CallAudioConfig,
    CallFlowBuilder,
    CallFlowConfig,
    SessionManagerConfig,
)
from .control_connection import ConnectionState
from .enums import (
    CALL_ERROR,
    CALL_TERMINATED,
    AudioMode,
    CallErrorCode,
    CallEvent,
    CallState,
    ChannelType,
    CloseReason,
    InboundCallMode,
    MessageErrorCode,
    SessionActivityType,
)
from .errors import (
    BufferClosedError,
    BufferFullError,
    WrongChannelError,
    WSSAuthenticationError,
    WSSCallClosedError,
    WSSCallCommandError,
    WSSCallCommandTimeoutError,
    WSSCallError,
    WSSCallStateError,
    WSSChannelNotConfigured,
    WSSConnectionError,
    WSSError,
    WSSForbidden,
    WSSInvalidRequest,
    WSSOutboundOverflow,
    WSSQuotaExceeded,
    WSSSessionAlreadyExists,
    WSSSessionBusy,
    WSSSessionClosed,
    WSSSessionError,
    WSSSessionNotFound,
    WSSSessionNotOpen,
)
from .messages import IncomingMessage, SendWAMessage, SessionNotification
from .protocol.rest import CloseResult, SessionInfo
from .results import CommandResult, SendMessageResult
from .session import Session
from .session_manager import SessionManager

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "CALL_ERROR",
    "CALL_TERMINATED",
    "DEFAULT_BUFFER_SIZE",
    "PRODUCTION_BASE_URL",
    "AudioCounters",
    "AudioMode",
    "AudioStream",
    "BufferClosedError",
    "BufferFullError",
    "Call",
    "CallAudioConfig",
    "CallEndReason",
    "CallError",
    "CallErrorCode",
    "CallEvent",
    "CallFlowBuilder",
    "CallFlowConfig",
    "CallState",
    "CallTerminated",
    "ChannelType",
    "ClearResult",
    "CloseReason",
    "CloseResult",
    "CommandResult",
    "ConnectionState",
    "InboundCallMode",
    "IncomingMessage",
    "MessageErrorCode",
    "SendMessageResult",
    "SendWAMessage",
    "Session",
    "SessionActivityType",
    "SessionInfo",
    "SessionManager",
    "SessionManagerConfig",
    "SessionNotification",
    "WSSAuthenticationError",
    "WSSCallClosedError",
    "WSSCallCommandError",
    "WSSCallCommandTimeoutError",
    "WSSCallError",
    "WSSCallStateError",
    "WSSChannelNotConfigured",
    "WSSConnectionError",
    "WSSError",
    "WSSForbidden",
    "WSSInvalidRequest",
    "WSSOutboundOverflow",
    "WSSQuotaExceeded",
    "WSSSessionAlreadyExists",
    "WSSSessionBusy",
    "WSSSessionClosed",
    "WSSSessionError",
    "WSSSessionNotFound",
    "WSSSessionNotOpen",
    "WrongChannelError",
    "__version__",
]
