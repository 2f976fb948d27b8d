"""A nursery for a library object's own tasks: shielded from outer cancellation until its
owner ends them, and never wrapping the user's exceptions.

Two things a plain nursery gets wrong for a library scope such as ``SessionManager``:

- With trio's strict exception groups, ``raise ValueError`` inside ``async with nursery``
  comes out as ``ExceptionGroup([ValueError])``. An exception from the user's block must
  propagate as itself; the internal tasks are cancelled and awaited first.
- When the user's block is cancelled (a timeout, Ctrl+C), the socket tasks must outlive the
  cancellation until the scope's cleanup has told the server (call closed, session closed):
  the cleanup needs the socket readers for the answers. So each task runs in a cancel scope
  that is shielded once the task has started, and the owner cancels every one of them in
  :meth:`TaskScope.close`, which it calls on every exit path. Before it has started (inside
  :meth:`TaskScope.start`), a task is *not* shielded: cancelling the caller of ``start``
  cancels it, so connecting can always be cancelled. Such tasks are also protected from
  ``KeyboardInterrupt``, as trio's own are.

:func:`cleanup_within` is the owner's side of the same rule: the cleanup that tells the
server, run on the way out of a block, shielded from the cancellation that may have ended
the block and bounded by a deadline of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["TaskScope", "cleanup_within"]

logger = logging.getLogger(__name__)


class _StartedHook:
    """Passes ``started()`` on, shielding the task's scope at that moment."""

    def __init__(self, scope: trio.CancelScope, status: trio.TaskStatus[Any]) -> None:
        self._scope = scope
        self._status = status

    def started(self, value: Any = None) -> None:
        # Shielded before the move, so that a task moved into a scope being cancelled is
        # not cut (its owner's cleanup still needs it)...
        self._scope.shield = True
        task = trio.lowlevel.current_task()
        before = task.parent_nursery
        self._status.started(value)
        if task.parent_nursery is before:
            # ...but when the caller of start() was cancelled, trio does not move the task
            # and start() waits for it to end: unshielded, the cancellation ends it.
            self._scope.shield = False


@trio.lowlevel.enable_ki_protection
async def _protected(
    fn: Callable[..., Awaitable[object]], args: tuple[object, ...], **kw: Any
) -> None:
    """Runs an internal task protected from ``KeyboardInterrupt``, as trio's own tasks are:
    trio raises Ctrl+C in whichever task runs unprotected code, and in a socket reader it
    would look like a lost connection. The interrupt then reaches the main task (or the
    user's code) instead, and the scopes' cleanup runs with every socket intact."""
    await fn(*args, **kw)


class TaskScope:
    """Owns a nursery of internal tasks; see the module docstring."""

    def __init__(self, owner: str, *, shield: bool = True) -> None:
        self._owner = owner
        self._shield = shield
        self._cm = trio.open_nursery()
        self._nursery: trio.Nursery | None = None
        self._task_scopes: set[trio.CancelScope] = set()
        self._closing = False

    async def open(self) -> TaskScope:
        self._nursery = await self._cm.__aenter__()
        return self

    def _require(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError(f"{self._owner}: task scope is not open")
        return self._nursery

    def start_soon(
        self, fn: Callable[..., Awaitable[object]], *args: object, name: object = None
    ) -> None:
        """Run ``fn(*args)`` as an internal task, shielded from outer cancellation."""
        self._require().start_soon(self._run, fn, args, name=name or fn)

    async def start(
        self, fn: Callable[..., Awaitable[object]], *args: object, name: object = None
    ) -> Any:
        """As ``nursery.start``: cancellable until ``fn`` calls ``task_status.started()``,
        shielded from outer cancellation afterwards."""
        return await self._require().start(self._run_started, fn, args, name=name or fn)

    async def _run(self, fn: Callable[..., Awaitable[object]], args: tuple[object, ...]) -> None:
        with trio.CancelScope(shield=self._shield) as scope:
            if self._closing:
                scope.cancel()
            self._task_scopes.add(scope)
            try:
                await (_protected(fn, args) if self._shield else fn(*args))
            finally:
                self._task_scopes.discard(scope)

    async def _run_started(
        self,
        fn: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
        *,
        task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with trio.CancelScope() as scope:
            if self._closing:
                scope.cancel()
            self._task_scopes.add(scope)
            try:
                if self._shield:
                    await _protected(fn, args, task_status=_StartedHook(scope, task_status))
                else:
                    await fn(*args, task_status=task_status)
            finally:
                self._task_scopes.discard(scope)

    def cancel(self) -> None:
        """Cancel every internal task (shielded or not)."""
        self._closing = True
        for scope in list(self._task_scopes):
            scope.cancel()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def close(self, exc: BaseException | None = None) -> None:  # noqa: ASYNC910 (private scope; exiting the nursery waits for its tasks)
        """Cancel the internal tasks and wait for them.

        Without ``exc`` (the block ended normally) an internal failure propagates. With
        ``exc`` (the block raised it, and it will propagate), internal failures are logged.
        Either way a ``KeyboardInterrupt`` or ``SystemExit`` raised in an internal task
        (trio raises Ctrl+C in whichever task is running user code, a call handler's
        included) propagates as itself: a program must stop when asked to.
        """
        self.cancel()
        try:
            await self._cm.__aexit__(None, None, None)
        except BaseException as internal:
            stop = _first_stop(internal)
            if stop is not None and stop is not exc:
                raise stop from None
            if exc is None:
                raise
            if _only_cancelled(internal):
                # An outer cancellation reaching our tasks: the block's exception carries on.
                return  # noqa: ASYNC910 (private scope; exiting the nursery waits for its tasks)
            if isinstance(exc, trio.Cancelled):
                # The block was most likely cancelled by our nursery because a task failed.
                # Its Cancelled must not go on: the nursery's scope it belongs to has just
                # been exited, so nothing would catch it and it would escape trio.run.
                raise internal
            logger.error(
                "%s: internal task failed while the block raised %s",
                self._owner,
                type(exc).__name__,
                exc_info=internal,
            )


def _first_stop(exc: BaseException) -> BaseException | None:
    """The first KeyboardInterrupt or SystemExit in ``exc`` (a group or not)."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_stop(inner)
            if found is not None:
                return found
        return None
    return exc if isinstance(exc, KeyboardInterrupt | SystemExit) else None


def _only_cancelled(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_cancelled(e) for e in exc.exceptions)
    return isinstance(exc, trio.Cancelled)


async def cleanup_within(
    seconds: float, fn: Callable[..., Awaitable[object]], *args: object
) -> bool:
    """Run ``fn(*args)`` shielded from outer cancellation, for ``seconds`` at most; True if
    it finished in time.

    For cleanup that tells the server something on the way out of a block: the cancellation
    that ended the block must not cut it, and its own deadline keeps it from hanging.
    """
    with trio.CancelScope(shield=True, deadline=trio.current_time() + seconds) as scope:
        await fn(*args)
    return not scope.cancelled_caught
