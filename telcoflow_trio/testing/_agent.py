"""The agent under test: run it as a task the runner can stop, and count what it leaves
behind (tasks and sockets) once it has stopped."""

from __future__ import annotations

import gc
import os
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from .._call import Call
from .._config import SessionManagerConfig
from .._session_manager import SessionManager
from ._invariants import Violation
from ._record import Recorder, without_cancelled

__all__ = [
    "POLL",
    "AgentRunner",
    "Handler",
    "Program",
    "all_tasks",
    "leaks",
    "open_sockets",
    "until",
]

Handler = Callable[[Call], Awaitable[None]]
Program = Callable[[SessionManagerConfig], Awaitable[None]]

POLL: Final = 0.05
"""How often :func:`until` looks again."""


# ── the agent under test ───────────────────────────────────────────────────────────────


class AgentRunner:
    """Runs one agent (a handler under its own SessionManager, or a program) as a task
    that :meth:`stop` cancels; what it raised ends up in ``error``."""

    def __init__(
        self,
        config: SessionManagerConfig,
        handler: Handler | None,
        program: Program | None,
        recorder: Recorder,
    ) -> None:
        self.config = config
        self.handler = handler
        self.program = program
        self.recorder = recorder
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.connected = trio.Event()
        """Set once the handler's SessionManager is connected (handler mode only)."""
        self.error: BaseException | None = None

    async def run(self) -> None:
        try:
            with self.recorder.active(), self.scope:
                if self.handler is not None:
                    handler = self.recorder.wrap_handler(self.handler)
                    async with SessionManager(self.config) as sm:
                        self.connected.set()
                        await sm.serve_calls(handler)
                else:
                    assert self.program is not None
                    await self.program(self.config)
        except Exception as exc:
            self.error = exc
        except BaseException as exc:
            self.error = without_cancelled(exc)
            if self.error is None or not isinstance(self.error, Exception | BaseExceptionGroup):
                raise
        finally:
            self.done.set()
        # An agent that fails at once reaches no checkpoint above.
        await trio.lowlevel.checkpoint()

    def stop(self) -> None:
        self.scope.cancel()


# ── bookkeeping for leaks ───────────────────────────────────────────────────────────────


def all_tasks() -> set[trio.lowlevel.Task]:
    found: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None or task in found:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


def open_sockets() -> int | None:
    """Sockets this process holds (Linux only; None elsewhere)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    count = 0
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


async def until(predicate: Callable[[], bool], seconds: float) -> bool:
    """Poll ``predicate`` for up to ``seconds``; whether it became true."""
    await trio.lowlevel.checkpoint()  # also when it is true already
    with trio.move_on_after(seconds):
        # Polling, because the conditions span objects with no common event to wait on.
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(POLL)
        return True
    return predicate()


async def leaks(
    tasks_before: set[trio.lowlevel.Task], sockets_before: int | None, deadline: float, cut: int
) -> list[Violation]:
    """Tasks and sockets still there ``deadline`` seconds after the agent stopped, beyond
    those before it started (and ``cut`` sockets its peer cut, see below)."""
    found: list[Violation] = []

    def extra_tasks() -> set[trio.lowlevel.Task]:
        return all_tasks() - tasks_before - {trio.lowlevel.current_task()}

    if not await until(lambda: not extra_tasks(), deadline):
        names = sorted(t.name for t in extra_tasks())
        found.append(Violation("leaks", f"tasks left running after the agent stopped: {names}"))
    if sockets_before is not None:

        def extra_sockets() -> int:
            now = open_sockets()
            return 0 if now is None else now - sockets_before

        if not await until(lambda: extra_sockets() <= 0, deadline):
            # trio-websocket 0.12 never closes the socket of a connection its peer cut: it
            # waits for the garbage collector, and anything still referring to the
            # connection (a captured log record) keeps it open. Those are not the agent's.
            gc.collect()
            if extra_sockets() > cut:
                found.append(Violation("leaks", f"{extra_sockets()} socket(s) left open"))
    return found
