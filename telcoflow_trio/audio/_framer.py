"""Cutting channel-0 frames out of the outgoing buffer's chunks, for the pull servicer.

A :class:`Framer` is the receive side of one *epoch* of a
:class:`~telcoflow_trio.audio.SendAudioBuffer`: it takes chunks off the buffer's channel
and stages them until the servicer cuts a frame (``b"\\x00"`` then the PCM, with a single
copy). A clear starts a new epoch and the servicer a new framer, so a partly assembled
frame never outlives the epoch it belongs to.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import trio

from ._buffer import SendAudioBuffer

__all__ = ["Framer"]

_CHANNEL_0: Final = b"\x00"


class Framer:
    """The receive side of one epoch: chunks taken off the channel, not yet framed.

    It lives inside the interruption scope's loop; a clear replaces it, so a partly
    assembled frame can never outlive the epoch it belongs to.
    """

    __slots__ = ("chunks", "ended", "epoch", "offset", "recv", "staged")

    def __init__(self, buffer: SendAudioBuffer) -> None:
        self.epoch = buffer.epoch
        self.recv = buffer.receive_channel
        self.chunks: deque[bytes] = deque()
        self.offset = 0  # bytes of chunks[0] already framed
        self.staged = 0
        self.ended = False

    def pull_nowait(self, want: int) -> None:
        """Stage chunks already in the channel until ``want`` bytes are staged."""
        recv, chunks, staged = self.recv, self.chunks, self.staged
        while staged < want:
            try:
                chunk = recv.receive_nowait()
            except trio.WouldBlock:
                break
            except trio.EndOfChannel:
                self.ended = True
                break
            if chunk:  # an empty chunk is only a wake-up (see SendAudioBuffer.poke)
                chunks.append(chunk)
                staged += len(chunk)
        self.staged = staged

    async def pull_one(self) -> None:
        try:
            chunk = await self.recv.receive()
        except trio.EndOfChannel:
            self.ended = True
            # receive() raises this after a cancel check but no schedule point; rare.
            await trio.lowlevel.checkpoint()
            return
        if chunk:
            self.chunks.append(chunk)
            self.staged += len(chunk)

    def take(self, n: int) -> bytes:
        """The next ``n`` staged bytes as a channel-0 frame, with a single copy."""
        chunks = self.chunks
        offset = self.offset
        if offset == 0 and len(chunks[0]) == n:
            self.staged -= n
            return _CHANNEL_0 + chunks.popleft()
        pieces: list[bytes | memoryview] = [_CHANNEL_0]
        left = n
        while left:
            chunk = chunks[0]
            avail = len(chunk) - offset
            if avail <= left:
                pieces.append(memoryview(chunk)[offset:] if offset else chunk)
                chunks.popleft()
                offset = 0
                left -= avail
            else:
                pieces.append(memoryview(chunk)[offset : offset + left])
                offset += left
                left = 0
        self.offset = offset
        self.staged -= n
        return b"".join(pieces)
