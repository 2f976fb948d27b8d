"""telcoflow_trio: a trio-native, structured-concurrency SDK for Telcoflow voice agents.

The library configures no logging handlers; its loggers live under ``telcoflow_trio``.
"""

# The layout, from the bottom up (each layer imports only the ones below it):
#   protocol/       sans-IO: frames, codecs, and the call, session and pull state machines
#   _transport      the message-socket seam (_inbox: messages handed over in the reader)
#   _websocket, _sansio_websocket   its engines (trio-websocket; websockets' sans-I/O),
#                   opened through _connect; _connectors picks one by config
#   audio/          the outgoing byte buffer and pull servicer, incoming audio budgets
#   _control_connection, _voice_connection   one loop per WebSocket, feeding the machines
#   _call, _call_lifecycle, _call_events, _session, _session_manager (with _claims and
#   _capacity: how serve_calls claims), _serving (CallServer: serve_calls with drain),
#   _rest_client
#                   what users hold
#   _config, _errors, _enums, _messages, _results   the vocabulary the layers share
#   _validate, _channels, _scope, _replies, _ratelimit, _trace   helpers the layers share
# Beside the SDK, importing it and never imported by it: sandbox/ (a local server),
# testing/ (the kit: scripts, invariants, strategies, the pytest plugin) and _cli/
# (``python -m telcoflow_trio``). The public names are the ones re-exported here.

import logging

from ._call import Call, CallEndReason
from ._call_events import CallError, CallTerminated
from ._capacity import ClaimStats
from ._config import (
    DEFAULT_BUFFER_SIZE,
    PRODUCTION_BASE_URL,
    AudioModeName,
    CallAudioConfig,
    CallFlowBuilder,
    CallFlowConfig,
    SampleRate,
    SessionManagerConfig,
)
from ._control_connection import ConnectionState
from ._entry import run_main
from ._enums import (
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
from ._errors import (
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
from ._messages import IncomingMessage, SendWAMessage, SessionNotification
from ._results import CommandResult, SendMessageResult
from ._serving import CallOutcome, CallServer
from ._session import Session
from ._session_manager import SessionManager
from ._version import __version__
from .audio import AudioCounters, AudioStream, ClearResult
from .protocol.rest import CloseResult, SessionInfo

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "CALL_ERROR",
    "CALL_TERMINATED",
    "DEFAULT_BUFFER_SIZE",
    "PRODUCTION_BASE_URL",
    "AudioCounters",
    "AudioMode",
    "AudioModeName",
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
    "CallOutcome",
    "CallServer",
    "CallState",
    "CallTerminated",
    "ChannelType",
    "ClaimStats",
    "ClearResult",
    "CloseReason",
    "CloseResult",
    "CommandResult",
    "ConnectionState",
    "InboundCallMode",
    "IncomingMessage",
    "MessageErrorCode",
    "SampleRate",
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
    "run_main",
]
