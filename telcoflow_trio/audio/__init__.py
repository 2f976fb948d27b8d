"""The audio paths: outgoing, a byte-bounded buffer and the pull servicer that drains it;
incoming, a byte budget per call and the receive channels that read it.

:class:`SendAudioBuffer` queues the agent's PCM; :class:`PullServicer` answers the
server's ``buffer_request``s from it, one per voice connection, and implements
interruption (:meth:`PullServicer.clear`), playout waits, the heard position and drain on
close. See :mod:`telcoflow_trio.audio._servicer` for the seam the voice connection plugs into.
:class:`IncomingAudio` holds what the voice plane receives, per channel, within one byte
budget per call; ``call.audio_stream()`` reads it through an :class:`AudioStream`.

Modules: ``_buffer`` and ``_servicer`` (cutting frames in ``_framer``) for the outgoing
path, ``_incoming`` and ``_stream`` for the incoming one, ``_counters`` for what both report.
"""

from ._buffer import SendAudioBuffer
from ._counters import AudioCounters, BufferCounters, ClearResult, IncomingCounters
from ._incoming import IncomingAudio, IncomingReceiver
from ._seam import FrameWriter, SendFrame, SendInterrupt
from ._servicer import MAX_REQUEST_RUNS, PullServicer
from ._stream import AudioStream

__all__ = [
    "MAX_REQUEST_RUNS",
    "AudioCounters",
    "AudioStream",
    "BufferCounters",
    "ClearResult",
    "FrameWriter",
    "IncomingAudio",
    "IncomingCounters",
    "IncomingReceiver",
    "PullServicer",
    "SendAudioBuffer",
    "SendFrame",
    "SendInterrupt",
]
