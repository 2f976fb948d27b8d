"""SIGTERM and SIGINT while ``run`` serves: the first drains, the second closes the live
calls at once.

The signals are received through :func:`trio.open_signal_receiver` for the whole life of
:func:`watch_signals`, so a Ctrl+C there is a drain request, never a ``KeyboardInterrupt``.
A signal that arrives before the calls are served (the control connection is still being
set up) stops the start-up instead: there is nothing to drain yet.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Sequence
from typing import Protocol

import trio

__all__ = ["SHUTDOWN_SIGNALS", "Drainable", "ShutdownSignals"]

logger = logging.getLogger(__name__)

SHUTDOWN_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


class Drainable(Protocol):
    """What the signals act on: :class:`telcoflow_trio.CallServer`'s drain controls."""

    @property
    def calls(self) -> Sequence[object]: ...

    def drain(self, timeout: float | None = ...) -> None: ...

    def close_calls(self) -> None: ...


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class ShutdownSignals:
    """The runner's signal policy, one per process.

    Before :meth:`serving`: a signal calls ``on_startup_signal`` (the runner cancels its
    start-up). While serving: the first signal calls ``server.drain(drain_timeout)``, every
    later one ``server.close_calls()``. After :meth:`stopping`: signals are logged and
    ignored (the runner is already closing, within its own deadlines).
    """

    def __init__(self, drain_timeout: float, on_startup_signal: Callable[[], None]) -> None:
        self.drain_timeout = drain_timeout
        self.received: int = 0
        """How many shutdown signals arrived."""
        self._on_startup_signal = on_startup_signal
        self._server: Drainable | None = None
        self._stopping = False
        self._drained = False

    def serving(self, server: Drainable) -> None:
        """From now on a signal drains ``server``."""
        self._server = server

    def stopping(self) -> None:
        """Serving is over; later signals are ignored."""
        self._stopping = True

    def handle(self, signum: int) -> None:
        """Act on one signal (what :meth:`watch` does for each one received)."""
        self.received += 1
        self._shut_down(_name(signum))

    def supervisor_gone(self) -> None:
        """This worker's supervisor died (its lifeline closed): act as on a first signal."""
        self._shut_down("supervisor gone")

    def _shut_down(self, name: str) -> None:
        server = self._server
        if self._stopping:
            logger.info("%s: already stopping", name)
        elif server is None:
            logger.info("%s before serving: stopping", name)
            self._on_startup_signal()
        elif not self._drained:
            self._drained = True
            logger.info(
                "%s: draining: %d live calls, up to %g s (send it again to close them now)",
                name,
                len(server.calls),
                self.drain_timeout,
            )
            server.drain(self.drain_timeout)
        else:
            logger.warning("%s again: closing %d live calls now", name, len(server.calls))
            server.close_calls()

    async def watch(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Receive SIGTERM and SIGINT until cancelled (started: the receiver is open)."""
        with trio.open_signal_receiver(*SHUTDOWN_SIGNALS) as signals:
            task_status.started()
            async for signum in signals:
                self.handle(signum)
