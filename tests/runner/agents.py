"""Handlers the ``run`` command's tests load by path (``tests.runner.agents:NAME``) in a
child process; one of each kind of bad handler too."""

from __future__ import annotations

import logging

import telcoflow_trio as tf

logger = logging.getLogger(__name__)


async def answer_and_wait(call: tf.Call) -> None:
    """Answer, then hold the call until it ends (the caller hangs up, or it is closed)."""
    if not await call.answer():
        logger.info("agent: call %s not answered", call.id)
        return
    logger.info("agent: call %s answered", call.id)
    await call.wait_terminated()
    logger.info("agent: call %s ended", call.id)


class Counter:
    """A handler object with state: its ``__call__`` is async, so it is a valid handler."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, call: tf.Call) -> None:
        self.calls += 1
        await answer_and_wait(call)


counter = Counter()


def sync_handler(call: tf.Call) -> None:
    """Not a valid handler: a plain ``def``."""


not_a_function = 42
