"""The outgoing audio path: a byte-bounded buffer and the pull servicer that drains it.

:class:`SendAudioBuffer` queues the agent's PCM; :class:`PullServicer` answers the
server's ``buffer_request``s from it, one per voice connection, and implements
interruption (:meth:`PullServicer.clear`), playout waits, the heard position and drain on
close. See :mod:`telcoflow_trio.audio.servicer` for the seam the voice connection plugs into.
"""

from .buffer import BufferCounters, SendAudioBuffer
from .incoming import AudioStream
from .servicer import (
    MAX_REQUEST_RUNS,
    AudioCounters,
    ClearResult,
    PullServicer,
    SendFrame,
    SendInterrupt,
)

__all__ = [
    "MAX_REQUEST_RUNS",
    "AudioCounters",
    "AudioStream",
    "BufferCounters",
    "ClearResult",
    "PullServicer",
    "SendAudioBuffer",
    "SendFrame",
    "SendInterrupt",
]
