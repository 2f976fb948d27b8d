"""What the audio paths report: frozen values, counted since the call began.

:class:`BufferCounters` (the outgoing buffer's write side) and the pull servicer's
:class:`AudioCounters` (the whole outgoing path, ``call.audio_counters``);
:class:`ClearResult` (what one clear dropped, and the heard position at it,
``call.last_clear``); :class:`IncomingCounters` (a call's incoming audio).
"""

from __future__ import annotations

import attrs

from .._results import CommandResult

__all__ = ["AudioCounters", "BufferCounters", "ClearResult", "IncomingCounters"]


@attrs.frozen
class BufferCounters:
    """What the write side has seen; all counts since the buffer was made."""

    written_bytes: int
    """Bytes accepted by ``send_audio`` (the write position)."""
    discarded_bytes: int
    """Queued bytes dropped by clears."""
    abandoned_bytes: int
    """Bytes of back-pressured writes still waiting for room when a clear came; never queued."""
    dropped_bytes: int
    """Queued bytes still unsent when the buffer was finally dropped at close."""
    rejected_writes: int
    """``send_audio`` calls refused with :class:`BufferFullError`."""


@attrs.frozen
class ClearResult:
    """What a clear did, and how much the caller had been sent when it took effect."""

    discarded_bytes: int
    """Queued bytes dropped (what the official client's clear returns)."""
    abandoned_bytes: int
    """Bytes of back-pressured writes that were still waiting for room; never queued."""
    heard_position: int
    """Stream position (see :attr:`SendAudioBuffer.written_bytes`) up to which audio had
    been handed to the socket when the clear took effect."""
    interrupt: CommandResult | None = None
    """The server's answer to ``agent.interrupt``; None without an interrupt hook."""

    def heard_since(self, mark: int) -> int:
        """Bytes of an utterance the caller was sent, given ``written_bytes`` at its start."""
        return max(0, self.heard_position - mark)


@attrs.frozen
class AudioCounters:
    """Counts of the outgoing audio path since the call began."""

    written_bytes: int
    """Bytes accepted by ``send_audio``."""
    sent_bytes: int
    """Bytes handed to the socket (the heard position counts the same bytes)."""
    frames_sent: int
    discarded_bytes: int
    """Queued bytes dropped by clears."""
    abandoned_bytes: int
    """Bytes of waiting writes dropped by clears before they were queued."""
    dropped_bytes: int
    """Bytes never sent because the call ended (left queued, or lost in a failed write)."""
    rejected_writes: int
    """``send_audio`` calls refused with ``BufferFullError``."""
    underruns: int
    """Pull requests that found the buffer empty."""
    clears: int
    skipped_requests: int
    """Requests for channels other than 0."""
    ignored_requests: int
    """Requests with ``requested_bytes <= 0``."""
    coalesced_requests: int
    """Requests merged because too many distinct ones were pending."""


@attrs.frozen
class IncomingCounters:
    """Bytes of one call's incoming audio; ``received == read + queued + dropped + unread``."""

    received_bytes: int
    """PCM handed to :meth:`IncomingAudio.deliver`."""
    read_bytes: int
    """Taken by readers."""
    queued_bytes: int
    """Held now, waiting for a reader."""
    queued_chunks: int
    dropped_bytes: int
    """Dropped for want of room: the readers fell behind, or a chunk outgrew the budget."""
    unread_bytes: int
    """Dropped because nobody read the channel, or the call was over."""
