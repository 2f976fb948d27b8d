"""One task that waits for many plain-TCP sockets at once: a :class:`ReadHub`.

With one reader task per socket, every incoming message costs a trio task step and an
``epoll_ctl`` (trio re-arms each descriptor after each wake-up). The ``websockets`` engine
can instead hand its plain-TCP sockets to a hub: the hub keeps them all in an epoll set of
its own (registered once, level-triggered), waits for that set with one ``wait_readable``,
and, for each socket that has data, calls its reader's :meth:`HubReader.readable`
synchronously, which reads without blocking and feeds the protocol. Many sockets' messages
then cost one task step, as they do in asyncio's selector loop. Whatever must wait (a write,
a full queue, the end of the socket) is left to the socket's own task, which the reader wakes.

A hub serves only while its :meth:`ReadHub.run` task runs (in the session manager's task
scope): :meth:`ReadHub.watch` returns False before and after, and when ``run`` ends
(cancelled, or anything else) every reader still watched is told (:meth:`HubReader.hub_ended`)
and goes back to reading its socket itself. So a socket never depends on the hub's lifetime,
only on its own. Linux only (``select.epoll``); elsewhere ``run`` returns at once and every
socket reads itself.
"""

from __future__ import annotations

import contextlib
import logging
import select
from typing import Protocol

import trio

__all__ = ["READ_SIZE", "HubReader", "ReadHub"]

logger = logging.getLogger(__name__)

READ_SIZE = 65536
"""The hub's read buffer: the most one socket's read takes at a time."""


class HubReader(Protocol):
    """What a :class:`ReadHub` calls for a socket it watches."""

    def readable(self, buffer: bytearray) -> None:
        """The socket has data, an end or an error: read it now without blocking.

        ``buffer`` is the hub's, for this call only: read into it (``os.readv``) and copy
        out what was read. Must not raise (the hub logs it and hands the socket back)."""

    def hub_ended(self) -> None:
        """The hub stopped watching this socket for good: read it yourself from now on."""


class ReadHub:
    """Waits for many sockets in one task; see the module docstring."""

    __slots__ = ("_epoll", "_readers")

    def __init__(self) -> None:
        self._epoll: select.epoll | None = None
        self._readers: dict[int, HubReader] = {}

    def __repr__(self) -> str:
        state = "running" if self._epoll is not None else "idle"
        return f"<ReadHub {state}, {len(self._readers)} sockets>"

    @property
    def watching(self) -> int:
        """How many sockets the hub reads now."""
        return len(self._readers)

    @property
    def running(self) -> bool:
        """Whether :meth:`watch` can take sockets now."""
        return self._epoll is not None

    def watch(self, fd: int, reader: HubReader) -> bool:
        """Call ``reader.readable(buffer)`` whenever ``fd`` is readable, until :meth:`forget`.

        False (and nothing watched) if the hub is not running or refuses the descriptor:
        the caller reads the socket itself then.
        """
        epoll = self._epoll
        if epoll is None or fd < 0:
            return False
        try:
            epoll.register(fd, select.EPOLLIN)
        except OSError as exc:
            logger.debug("read hub: cannot watch descriptor %d: %s", fd, exc)
            return False
        self._readers[fd] = reader
        return True

    def forget(self, fd: int) -> None:
        """Stop watching ``fd`` (call before closing it). Idempotent."""
        if self._readers.pop(fd, None) is None:
            return
        epoll = self._epoll
        if epoll is not None:
            # Already closed (which removed it from the set) is fine.
            with contextlib.suppress(OSError):
                epoll.unregister(fd)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve watched sockets until cancelled; then hand every one back to its reader."""
        if self._epoll is not None:
            await trio.lowlevel.checkpoint()
            raise RuntimeError("this ReadHub is already running")
        try:
            epoll = select.epoll()
        except (AttributeError, OSError):  # pragma: no cover (not Linux)
            task_status.started()
            await trio.lowlevel.checkpoint()
            return
        self._epoll = epoll
        readers = self._readers
        # One read buffer for every socket: a fresh 64 KiB object per read, shrunk to the
        # few hundred bytes that came, leaves the heap fragmented (measured: ~90 KiB more
        # RSS per call at 50 calls).
        buffer = bytearray(READ_SIZE)
        try:
            task_status.started()
            while True:
                await trio.lowlevel.wait_readable(epoll)
                for fd, _ in epoll.poll(0):
                    reader = readers.get(fd)
                    if reader is None:
                        continue  # forgotten by an earlier reader's call in this batch
                    try:
                        reader.readable(buffer)
                    except Exception:
                        logger.warning("read hub: a socket's reader failed", exc_info=True)
                        self.forget(fd)
                        reader.hub_ended()
        finally:
            self._epoll = None
            left = list(readers.values())
            readers.clear()
            trio.lowlevel.notify_closing(epoll)
            epoll.close()
            for reader in left:
                reader.hub_ended()
