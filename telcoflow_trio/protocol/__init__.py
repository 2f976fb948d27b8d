"""The sans-IO protocol layer: frames as frozen attrs classes and pure codec functions, and
the protocol's state: the call and session lifecycles (:mod:`.call_state`,
:mod:`.session_state`) and the pull ledger (:mod:`.pull`).

Nothing here does I/O or imports trio; the client and the sandbox server share it.
Decoders never raise: what cannot be decoded comes back as :class:`Unrecognised`,
carrying a reason that is safe to log.
"""

from . import call_state, control, handoff, pull, rest, session_state, voice
from ._fields import Unrecognised
from .pull import PullLedger, PullOutcome
from .timing import (
    BACKOFF_FACTOR,
    BACKOFF_FIRST_DELAY,
    BACKOFF_JITTER,
    BACKOFF_MAX_DELAY,
    PING_INTERVAL,
    PING_TIMEOUT,
    READY_WARNING_DELAY,
    REQUEST_TIMEOUT,
    SESSION_CLOSE_WAIT,
    SETUP_TIMEOUT,
    Backoff,
)

__all__ = [
    "BACKOFF_FACTOR",
    "BACKOFF_FIRST_DELAY",
    "BACKOFF_JITTER",
    "BACKOFF_MAX_DELAY",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "READY_WARNING_DELAY",
    "REQUEST_TIMEOUT",
    "SESSION_CLOSE_WAIT",
    "SETUP_TIMEOUT",
    "Backoff",
    "PullLedger",
    "PullOutcome",
    "Unrecognised",
    "call_state",
    "control",
    "handoff",
    "pull",
    "rest",
    "session_state",
    "voice",
]
