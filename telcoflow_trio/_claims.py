"""Claiming a notified session (``session.open``) so that no claim is left won and unserved.

The request runs in a task of the manager's scope, not of its caller: when the caller is
cancelled while the answer is on its way and the late answer says we won, the session is
closed over REST instead of staying bound to us with nobody serving it.
"""

from __future__ import annotations

import logging
from typing import Final

import trio

from ._control_connection import ControlConnection
from ._errors import WSSError
from ._rest_client import RestClient
from ._scope import TaskScope
from .protocol import control

__all__ = ["CLEANUP_DEADLINE", "Claimer"]

logger = logging.getLogger(__name__)

CLEANUP_DEADLINE: Final = 15.0
"""How long leaving a scope may spend telling the server (close call, close session)."""


class Claimer:
    """Sends the manager's claims and closes those it won but cannot serve."""

    def __init__(
        self, control_connection: ControlConnection, rest: RestClient, scope: TaskScope
    ) -> None:
        self._control = control_connection
        self._rest = rest
        self._scope = scope

    async def claim(self, session_id: str) -> control.Response:
        """``session.open``'s answer; a claim won after its caller left is closed."""
        box: list[control.Response | Exception] = []
        answered = trio.Event()
        caller_left = trio.Event()
        taken = False

        async def claim() -> None:  # noqa: ASYNC910 (private task body)
            try:
                box.append(await self._control.request(control.SessionOpen(session_id)))
            except WSSError as exc:
                box.append(exc)
            finally:
                answered.set()
            # Decide only once the caller has taken the answer or left: a cancellation that
            # lands in the same scheduling batch as the answer wakes the caller after this
            # task has run, so a flag set by the caller's handler would be read too early.
            await caller_left.wait()
            result = box[0]
            if not taken and isinstance(result, control.Response) and result.ok:
                logger.info("session %s: claim won after its caller left; closing it", session_id)
                with trio.move_on_after(CLEANUP_DEADLINE):
                    await self.close_unserved(session_id)

        self._scope.start_soon(claim, name=f"claim {session_id}")
        try:
            await answered.wait()
            taken = True
        finally:
            caller_left.set()
        result = box[0]
        if isinstance(result, Exception):
            raise result
        return result

    async def close_unserved(self, session_id: str) -> None:  # noqa: ASYNC910 (the REST call is its checkpoint)
        """Close over REST a session won but not served; a failure is logged."""
        try:
            await self._rest.close_session(session_id)
        except WSSError as exc:
            logger.warning("session %s: closing it failed: %s", session_id, exc)
