"""A nursery for a library object's own tasks, that does not wrap the user's exceptions.

With trio's strict exception groups, ``raise ValueError`` inside ``async with nursery``
comes out as ``ExceptionGroup([ValueError])``. A library whose scopes host only its own
tasks should not do that to the code in the user's ``async with`` block: an exception from
the block propagates as itself, and the internal tasks are cancelled and awaited first.
"""

from __future__ import annotations

import logging

import trio

__all__ = ["TaskScope"]

logger = logging.getLogger(__name__)


class TaskScope:
    """Owns a nursery of internal tasks; see the module docstring."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._cm = trio.open_nursery()
        self.nursery: trio.Nursery

    async def open(self) -> trio.Nursery:
        self.nursery = await self._cm.__aenter__()
        return self.nursery

    async def close(
        self,
        exc: BaseException | None = None,
    ) -> None:
        """Cancel the internal tasks and wait for them.

        Without ``exc`` (the block ended normally) an internal failure propagates. With
        ``exc`` (the block raised it, and it will propagate), internal failures are logged.
        """
        self.nursery.cancel_scope.cancel()
        try:
            await self._cm.__aexit__(None, None, None)
        except BaseException as internal:
            if exc is None:
                raise
            if _only_cancelled(internal):
                # An outer cancellation reaching our tasks: the block's exception carries on.
                return
            logger.error(
                "%s: internal task failed while the block raised %s",
                self._owner,
                type(exc).__name__,
                exc_info=internal,
            )


def _only_cancelled(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_cancelled(e) for e in exc.exceptions)
    return isinstance(exc, trio.Cancelled)
