"""What ``call.audio_stream()`` returns: a receive channel of the caller's audio that opens
the call's voice plane on first use.

An :class:`AudioStream` owns one :class:`~telcoflow_trio.audio.IncomingReceiver` of the
call's incoming audio (:mod:`._incoming`), which it gets from ``open_channel`` once the
voice plane is up; it knows nothing of the budget behind it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any

import trio

from .._errors import WSSCallClosedError
from ._incoming import IncomingReceiver

__all__ = ["AudioStream", "OpenChannel"]


OpenChannel = Callable[[], Awaitable[IncomingReceiver]]
"""Opens the voice plane if needed and returns a new receiver, which the stream owns."""


class AudioStream(trio.abc.ReceiveChannel[bytes]):
    """PCM chunks of one audio channel of a call; ends (``EndOfChannel``) when the call ends.

    ``call.audio_stream()`` is synchronous so that ``async for chunk in call.audio_stream():``
    reads like any other channel loop; the voice WebSocket it needs is opened by the first
    ``receive`` (or eagerly by ``await call.audio_stream()``, which surfaces connection
    errors at that line instead of inside the loop).

    Each stream is its own receiver of the call's channel: closing it does not affect other
    streams, and several open streams share (split) the chunks, as trio channel clones do.
    """

    def __init__(self, channel_id: int, open_channel: OpenChannel) -> None:
        self.channel_id = channel_id
        self._open_channel = open_channel
        self._channel: IncomingReceiver | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._channel else "not yet opened"
        return f"<AudioStream channel {self.channel_id} {state}>"

    async def open(self) -> AudioStream:
        """Open the call's voice plane now (it otherwise opens on the first receive)."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("this audio stream was closed")
        if self._channel is not None:
            await trio.lowlevel.checkpoint()
            return self
        self._adopt(await self._open_channel())
        return self

    def _adopt(self, receiver: IncomingReceiver) -> None:
        # Closed while the voice plane opened, or a concurrent open won: not needed.
        if self._closed:
            receiver.close()
            raise trio.ClosedResourceError("this audio stream was closed")
        if self._channel is None:
            self._channel = receiver
        else:
            receiver.close()

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

    async def __anext__(self) -> bytes:
        # ``async for`` straight to the receiver once open: one coroutine fewer per chunk.
        channel = self._channel
        try:
            if channel is None:
                return await self.receive()
            return await channel.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

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
            self._channel.close()
        await trio.lowlevel.checkpoint()
