"""The caller's audio as a trio receive channel that opens the voice plane on first use.

``call.audio_stream()`` is synchronous so that ``async for chunk in call.audio_stream():``
reads like any other channel loop; the voice WebSocket it needs is opened by the first
``receive`` (or eagerly by ``await call.audio_stream()``, which surfaces connection errors
at that line instead of inside the loop).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final

import trio

from ..errors import WSSCallClosedError

__all__ = ["AudioStream", "check_channel_id"]

MAX_CHANNEL_ID: Final = 255


def check_channel_id(channel_id: object) -> int:
    """The channel id if it is an int in 0..255; otherwise a TypeError/ValueError naming it."""
    if isinstance(channel_id, bool) or not isinstance(channel_id, int):
        raise TypeError(f"channel_id must be an int, got {type(channel_id).__name__}")
    if not 0 <= channel_id <= MAX_CHANNEL_ID:
        raise ValueError(f"channel_id must be in 0..{MAX_CHANNEL_ID}, got {channel_id}")
    return channel_id


OpenChannel = Callable[[], Awaitable[trio.MemoryReceiveChannel[bytes]]]


class AudioStream(trio.abc.ReceiveChannel[bytes]):
    """PCM chunks of one audio channel of a call; ends (``EndOfChannel``) when the call ends.

    Each stream is its own clone of the call's channel: closing it does not affect other
    streams, and several open streams share (split) the chunks, as trio channel clones do.
    """

    def __init__(self, channel_id: int, open_channel: OpenChannel) -> None:
        self.channel_id = channel_id
        self._open_channel = open_channel
        self._channel: trio.MemoryReceiveChannel[bytes] | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._channel else "not yet opened"
        return f"<AudioStream channel {self.channel_id} {state}>"

    async def open(self) -> AudioStream:
        """Open the call's voice plane now (it otherwise opens on the first receive)."""
        if self._closed:
            raise trio.ClosedResourceError("this audio stream was closed")
        if self._channel is None:
            channel = await self._open_channel()
            # A concurrent open may have won while we waited; keep the first clone.
            if self._channel is None:
                self._channel = channel.clone()
        return self

    def __await__(self) -> Generator[Any, None, AudioStream]:
        return self.open().__await__()

    async def receive(self) -> bytes:
        """The next chunk; ``EndOfChannel`` once the call is over."""
        if self._channel is None:
            try:
                await self.open()
            except WSSCallClosedError:
                raise trio.EndOfChannel from None
        assert self._channel is not None
        return await self._channel.receive()

    def receive_nowait(self) -> bytes:
        """A chunk already received, or ``trio.WouldBlock`` (also before the stream opened)."""
        if self._closed:
            raise trio.ClosedResourceError("this audio stream was closed")
        if self._channel is None:
            raise trio.WouldBlock
        return self._channel.receive_nowait()

    def clone(self) -> AudioStream:
        """Another stream of the same channel, sharing its chunks (see the class docs)."""
        if self._closed:
            raise trio.ClosedResourceError("this audio stream was closed")
        twin = AudioStream(self.channel_id, self._open_channel)
        if self._channel is not None:
            twin._channel = self._channel.clone()
        return twin

    async def aclose(self) -> None:
        self._closed = True
        if self._channel is not None:
            await self._channel.aclose()
        else:
            await trio.lowlevel.checkpoint()
