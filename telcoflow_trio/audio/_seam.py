"""The pull servicer's seam with the voice connection: how it writes frames and interrupts.

The seam for the voice connection (one servicer per voice WebSocket)::

    buffer = SendAudioBuffer.from_config(call_audio)        # lives with the Call
    servicer = PullServicer(buffer, send_frame=..., send_interrupt=...)
    await nursery.start(servicer.run)                       # the connection's nursery
    servicer.on_buffer_request(req)                         # from the reader; never blocks
    servicer.close()                                        # call over / socket lost

``send_frame(data)`` writes *one* binary message (``data`` already starts with the channel
byte) through the connection's single writer path and returns once it is handed to the
socket. When the connection is gone it should raise :class:`WSSCallClosedError`: the
servicer then closes quietly (any other exception closes it and propagates). Neither
``clear`` nor ``close`` ever cancels it; cancelling the servicer's own task (connection
teardown) does, so shield inside ``send_frame`` if writes must stay whole even then.

``send_interrupt(written)`` sends ``agent.interrupt``, calls ``written()`` as soon as the
command has been handed to the socket, then awaits and returns the :class:`CommandResult`.
Fresh frames wait until ``written()`` is called or ``send_interrupt`` returns, so the server
always sees the interrupt before the new audio (a hook that cannot tell when the command was
written may ignore ``written``: new audio then waits for the round trip).

Answered at once: given a :class:`FrameWriter` (``writer=``), a pull request that finds the
servicer waiting for requests, enough audio queued, no clear under way and the socket free
is answered by :meth:`PullServicer.on_buffer_request` itself, in the reader's task, by the
same steps the servicer task takes (the same framer, ledger and counters); anything else
wakes the task as before. The interruption scheme is unchanged: a clear changes the
buffer's epoch and holds the gates, and either stops the fast path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeAlias

from .._results import CommandResult

__all__ = ["FrameWriter", "SendFrame", "SendInterrupt"]

SendFrame: TypeAlias = Callable[[bytes], Awaitable[None]]
"""Write one binary WebSocket message."""

SendInterrupt: TypeAlias = Callable[[Callable[[], None]], Awaitable[CommandResult]]
"""Send ``agent.interrupt``, call the argument once it is written, return the answer."""


class FrameWriter(Protocol):
    """A way to write a frame without waiting, for the pull requests that can be answered
    at once, in the task that delivers them (see :meth:`PullServicer.on_buffer_request`)."""

    def ready(self) -> bool:
        """Whether :meth:`write_now` would take a frame now (no write in progress)."""
        ...

    def write_now(self, frame: bytes) -> None:
        """Hand one binary message to the socket now, whole; raises
        :class:`WSSCallClosedError` when the connection is gone."""
