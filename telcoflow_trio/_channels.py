"""Bounded channels that a socket reader feeds without ever waiting on the application.

The control and voice readers hand notifications, messages and call events to the
application through bounded trio memory channels (guarantee 3: a slow consumer never
stalls the socket). :func:`open_dropping_channel` makes such a channel: when it is full,
:meth:`DroppingSender.offer` drops the item, counts it and logs a warning; once the
application has closed its end, items are dropped silently.
"""

from __future__ import annotations

import logging
from typing import Generic, TypeVar

import trio

__all__ = ["DroppingSender", "open_dropping_channel"]

T = TypeVar("T")


class DroppingSender(Generic[T]):
    """The sending side of a bounded channel that never waits (see the module docs).

    ``name`` starts each warning, which goes to ``logger`` (the owner's, so that the line
    carries the owner's logger name).
    """

    __slots__ = ("_logger", "_name", "_send", "dropped")

    def __init__(self, send: trio.MemorySendChannel[T], logger: logging.Logger, name: str) -> None:
        self._send = send
        self._logger = logger
        self._name = name
        self.dropped = 0
        """Items dropped because the channel was full."""

    def offer(self, item: T, what: str, *args: object) -> bool:
        """Queue ``item`` if there is room; else drop it, count it and log that ``what``
        (a %-format of ``args``) was dropped. True if queued."""
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            self.dropped += 1
            self._logger.warning(
                "%s channel is full: dropped " + what + " (%d so far)",
                self._name,
                *args,
                self.dropped,
            )
        except trio.ClosedResourceError:
            pass  # the application is done reading
        else:
            return True
        return False

    def close(self) -> None:
        """No more items: the reader's ``async for`` ends once it has taken what is queued."""
        self._send.close()


def open_dropping_channel(
    size: int, logger: logging.Logger, name: str
) -> tuple[DroppingSender[T], trio.MemoryReceiveChannel[T]]:
    """A channel of ``size`` items: the never-waiting sender, and the application's end."""
    send, receive = trio.open_memory_channel[T](size)
    return DroppingSender(send, logger, name), receive
