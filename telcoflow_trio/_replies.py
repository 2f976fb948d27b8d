"""Replies awaited by id: control ``response``s by ``reqId``, command responses by ``command_id``.

The socket reader calls :meth:`Replies.resolve` (never blocks); a requester waits inside
:meth:`Replies.expect`; when the socket dies, :meth:`Replies.fail_all` wakes every waiter.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import attrs
import trio

__all__ = ["Replies", "Reply"]

logger = logging.getLogger(__name__)

R = TypeVar("R")


@attrs.define
class Reply(Generic[R]):
    """One awaited reply: set once, by the reader or by :meth:`Replies.fail_all`."""

    done: trio.Event = attrs.field(factory=trio.Event)
    value: R | None = None
    error: Exception | None = None


class Replies(Generic[R]):
    """The replies one connection is waiting for, keyed by request id."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._waiting: dict[str, Reply[R]] = {}

    @contextmanager
    def expect(self, key: str) -> Iterator[Reply[R]]:
        """Register interest in the reply to ``key`` for the duration of the block."""
        reply: Reply[R] = Reply()
        self._waiting[key] = reply
        try:
            yield reply
        finally:
            del self._waiting[key]

    def resolve(self, key: str, value: R) -> None:
        reply = self._waiting.get(key)
        if reply is None:
            logger.debug("%s: reply for a request nobody waits for", self._what)
            return
        reply.value = value
        reply.done.set()

    def fail_all(self, error: Exception | None = None) -> None:
        """Wake every waiter without a reply (with ``error``, if given)."""
        for reply in self._waiting.values():
            if not reply.done.is_set():
                reply.error = error
                reply.done.set()
