"""Serving calls: claim what fits, run a handler per call, drain on request.

:class:`CallServer` is what ``SessionManager.serve_calls`` runs, with two more signals for
production: :meth:`CallServer.drain` (stop claiming; let live calls end; after a deadline
close them with their queued audio drained) and :meth:`CallServer.close_calls` (end every
live call now). How many calls are claimed at once is :mod:`._capacity`'s business; an
``admit`` predicate (a load threshold, say) can hold every claim for a while.

Each served call runs in its own task of the server's (unshielded) nursery, inside two
cancel scopes: the outer one ends everything for that call at once (``close_calls``), the
inner one stops only its handler, so that the call can then be closed with its queued
audio drained (the drain deadline). Either way the session's scope closes the call on the
server before the task ends.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Final, Literal, Protocol

import trio

from ._call import Call, CallEndReason
from ._capacity import MAX_HELD, MAX_HELD_AGE, ClaimStats, Slot, Slots
from ._control_connection import ConnectionState
from ._enums import ChannelType, SessionActivityType
from ._errors import (
    WSSCallClosedError,
    WSSConnectionError,
    WSSError,
    WSSSessionBusy,
    WSSSessionClosed,
    WSSSessionNotFound,
)
from ._messages import SessionNotification
from ._ratelimit import RateLimit
from ._scope import TaskScope
from ._session import Session
from ._validate import check_callable, check_finite, check_timeout

__all__ = [
    "CLOSE_DRAIN_TIMEOUT",
    "DRAIN_TIMEOUT",
    "CallOutcome",
    "CallServer",
    "ServingPort",
    "register_manager",
]

logger = logging.getLogger(__name__)

CallOutcome = Literal["completed", "failed", "hung_up", "closed"]
"""How a served call ended (see :class:`CallServer`'s ``on_call_end``)."""

DRAIN_TIMEOUT: Final = 600.0
"""How long :meth:`CallServer.drain` lets live calls go on, by default."""
CLOSE_DRAIN_TIMEOUT: Final = 3.0
"""When the drain deadline closes a call: how long its queued audio may still be pulled
first (a few seconds: the last words are heard, and the shutdown stays bounded)."""
ADMIT_RECHECK: Final = 1.0
"""While ``admit`` says no and notifications are held: how often it is asked again."""
FAILURE_LOG_INTERVAL: Final = 60.0

# Ended by the far side or under the handler, not by the agent: the call "hung up".
_ENDED_UNDER_HANDLER: Final = frozenset(CallEndReason) - {
    CallEndReason.CLOSED,
    CallEndReason.DISCONNECTED,
    CallEndReason.SCOPE_EXITED,
    CallEndReason.HANDED_OFF,
}


class Manager(Protocol):
    """The public face of a ``SessionManager`` that a :class:`CallServer` uses (typed
    structurally: ``_session_manager`` imports this module, not the other way round)."""

    session_notifications: trio.MemoryReceiveChannel[SessionNotification]

    @property
    def claim_stats(self) -> ClaimStats: ...

    @property
    def connection_state(self) -> ConnectionState: ...

    def open_session(self, session_id: str) -> AbstractAsyncContextManager[Session]: ...


class ServingPort(Protocol):
    """What a :class:`CallServer` needs of its manager beyond the public API: whether a
    session is open in it, and opening the voice plane of a resumed call."""

    def holds(self, session_id: str) -> bool: ...

    async def open_call_voice(self, session_id: str) -> None: ...


_PORTS: weakref.WeakKeyDictionary[object, ServingPort] = weakref.WeakKeyDictionary()


def register_manager(manager: Manager, port: ServingPort) -> None:
    """Called by each ``SessionManager`` as it is made, handing over its port (which must
    not refer back to the manager, or the manager would never be freed)."""
    _PORTS[manager] = port


class _Served:
    """One claim and, once won and its call has come, the call its handler serves."""

    __slots__ = ("call", "handler_scope", "scope", "slot")

    def __init__(self, slot: Slot) -> None:
        self.slot = slot
        self.call: Call | None = None
        self.scope = trio.CancelScope()
        """Ends the claim, the handler and the close at once (``close_calls``)."""
        self.handler_scope = trio.CancelScope()
        """Stops only the handler: the call is then closed with its audio drained."""


class CallServer:
    """Claims TELCO notifications on ``manager`` and runs ``handler(call)`` for each, one
    child task per call, until drained or cancelled. ``await server.run()``.

    ``max_calls``, ``max_held``, ``max_held_age``: as ``SessionManager.serve_calls``.

    ``on_call_end(call, outcome)`` is called once per served call (one whose handler
    started), after the call is closed on the server; it must not block, and an exception
    from it is logged, never raised. ``outcome`` is ``"completed"`` (the handler returned
    with the call live, or ended it itself), ``"hung_up"`` (the call ended under the
    handler: the caller hung up, the server ended it, its voice socket was lost),
    ``"failed"`` (the handler raised) or ``"closed"`` (this server closed it: the drain
    deadline, :meth:`close_calls` or a cancellation).

    ``close_drain_timeout``: when the drain deadline closes a call, how long its queued
    audio may be pulled first (``call.close(drain_timeout=...)``).

    ``admit()``: asked before each claim (it must be quick: compare a load figure sampled
    elsewhere, say). While it returns False nothing is claimed, as at capacity: new
    notifications are held and claimed in order once it says yes again (it is asked
    again every second while some are held, and whenever a call ends). An exception from
    it is logged and counts as yes.

    :meth:`drain` and :meth:`close_calls` are plain functions, so a signal handler can call
    them; both are idempotent and may be called before :meth:`run` starts (it then serves
    nothing) or after it ended (nothing happens).
    """

    def __init__(
        self,
        manager: Manager,
        handler: Callable[[Call], Awaitable[None]],
        *,
        max_calls: int | None = None,
        max_held: int = MAX_HELD,
        max_held_age: float = MAX_HELD_AGE,
        on_call_end: Callable[[Call, CallOutcome], None] | None = None,
        close_drain_timeout: float = CLOSE_DRAIN_TIMEOUT,
        admit: Callable[[], bool] | None = None,
    ) -> None:
        try:
            port = _PORTS.get(manager)
        except TypeError:  # not even weakly referable: certainly not a manager
            port = None
        if port is None:
            raise TypeError(f"manager must be a SessionManager, got {type(manager).__name__}")
        self._manager = manager
        self._port = port
        self._handler = check_callable("handler", handler, "an async function taking a Call")
        if on_call_end is not None:
            check_callable("on_call_end", on_call_end, "a function taking a Call and an outcome")
        self._on_call_end = on_call_end
        if admit is not None:
            check_callable("admit", admit, "a function returning a bool")
        self._admit = admit
        self._close_drain = check_finite("close_drain_timeout", close_drain_timeout, positive=False)
        self._slots = Slots(manager.claim_stats, max_calls, max_held, max_held_age)
        self._served: dict[Slot, _Served] = {}  # in claim order
        self._state: Literal["new", "running", "ended"] = "new"
        self._draining = False
        self._closing_all = False
        self._deadline = math.inf
        self._deadline_passed = False
        self._claiming = trio.CancelScope()
        self._wake = trio.Event()
        self._failures = 0
        self._failures_logged = RateLimit(FAILURE_LOG_INTERVAL)
        self._admit_errors = RateLimit(FAILURE_LOG_INTERVAL)

    def __repr__(self) -> str:
        state = "draining" if self._draining and self._state != "ended" else self._state
        return f"<CallServer {state} calls={len(self.calls)}>"

    # ── what it reports ─────────────────────────────────────────────────────────────────

    @property
    def draining(self) -> bool:
        """True once :meth:`drain` or :meth:`close_calls` was called."""
        return self._draining

    @property
    def calls(self) -> tuple[Call, ...]:
        """The live calls, in claim order: handed to the handler and not yet closed on the
        server."""
        return tuple(s.call for s in self._served.values() if s.call is not None)

    @property
    def claim_stats(self) -> ClaimStats:
        """The manager's claim counters (``SessionManager.claim_stats``)."""
        return self._manager.claim_stats

    # ── the two signals ─────────────────────────────────────────────────────────────────

    def drain(self, timeout: float | None = DRAIN_TIMEOUT) -> None:
        """Stop claiming now (held notifications are let go unclaimed, and logged); live
        calls go on to their natural end. ``timeout`` seconds from now (None: no limit)
        the handlers still running are stopped and their calls closed with their queued
        audio drained; :meth:`run` returns once no call is left. A later call may bring
        the deadline closer, never further."""
        wait = math.inf if timeout is None else check_timeout("timeout", timeout)
        if not self._draining:
            self._draining = True
            self._claiming.cancel()
            if let_go := self._slots.close():
                logger.info("drain: %d held notifications let go unclaimed", let_go)
            logger.info("draining: no more claims; %d live calls", len(self._served))
        if self._state == "ended" or math.isinf(wait):
            return
        deadline = trio.current_time() + wait
        if deadline < self._deadline:
            self._deadline = deadline
            self._wake.set()

    def close_calls(self) -> None:
        """End every live call at once (no audio drained), and any claim in flight;
        implies :meth:`drain`. :meth:`run` returns once they are closed on the server."""
        self.drain(None)
        if self._closing_all or self._state == "ended":
            return
        self._closing_all = True
        logger.info("closing %d live calls", len(self._served))
        for served in self._served.values():
            served.scope.cancel()
        self._wake.set()

    # ── running ─────────────────────────────────────────────────────────────────────────

    async def run(self) -> None:
        """Claim and serve until drained (then return once every call is over) or
        cancelled (the cancellation comes out as itself, after every live call has been
        closed on the server). Runs once."""
        if self._state != "new":
            raise RuntimeError("a CallServer runs only once")
        self._state = "running"
        scope = TaskScope("CallServer", shield=False)
        body_exc: BaseException | None = None
        try:
            await trio.lowlevel.checkpoint()
            await scope.open()
        except BaseException:
            self._state = "ended"
            raise
        try:
            if await self._claim_until_drained(scope):
                scope.start_soon(self._discard_notifications)
                await self._wait_calls_over()
        except BaseException as exc:
            body_exc = exc
            raise
        finally:
            self._slots.close()
            try:
                # Whatever is still running (on cancellation: every call) is cancelled here,
                # and each call's session scope closes it on the server before its task ends.
                await scope.close(body_exc)
            finally:
                self._state = "ended"

    async def _claim_until_drained(self, scope: TaskScope) -> bool:
        """The claim loop; False if the manager's notifications ended (it is closing)."""
        slots = self._slots
        notifications = self._manager.session_notifications
        with self._claiming:
            while True:
                note: SessionNotification | None = None
                wake_at = slots.next_expiry()  # held ones expire meanwhile
                if self._admit is not None and slots.held:
                    wake_at = min(wake_at, trio.current_time() + ADMIT_RECHECK)
                with trio.move_on_at(wake_at):
                    try:
                        note = await notifications.receive()
                    except trio.EndOfChannel:
                        return False  # noqa: ASYNC910 (receive was the checkpoint)
                if note is None:
                    self._claim(scope, self._gated(slots.tick, trio.current_time()))
                elif note.channel is not ChannelType.TELCO:
                    logger.debug("serving: skipping %s session %s", note.channel, note.session_id)
                elif self._port.holds(note.session_id):
                    logger.debug("serving: session %s is already ours", note.session_id)
                else:
                    self._claim(scope, self._gated(slots.notified, note, trio.current_time()))
        return True

    async def _discard_notifications(self) -> None:  # noqa: ASYNC910 (private task body)
        """While draining: read notifications and drop them, so that they neither pile up
        in the manager's channel nor are claimed."""
        async for note in self._manager.session_notifications:
            logger.debug("draining: session %s not claimed", note.session_id)

    async def _wait_calls_over(self) -> None:  # noqa: ASYNC910 (private; waits on its callers' behalf)
        while self._served:
            self._wake = trio.Event()
            with trio.move_on_at(math.inf if self._deadline_passed else self._deadline):
                await self._wake.wait()
            if not self._deadline_passed and trio.current_time() >= self._deadline:
                self._deadline_passed = True
                self._close_at_deadline()

    def _close_at_deadline(self) -> None:
        logger.info("drain deadline: closing %d live calls", len(self.calls))
        for served in self._served.values():
            # A claim still in flight is dropped; a call's handler is stopped, and the
            # call is closed with its queued audio drained.
            (served.handler_scope if served.call is not None else served.scope).cancel()

    def _gated(
        self, event: Callable[..., list[Slot]], *args: object, freeing: int = 0
    ) -> list[Slot]:
        """``event(*args)`` on the slots (which frees ``freeing`` of them), with no slot
        free while ``admit`` says no."""
        if self._admit is None or self._admitted():
            return event(*args)
        slots = self._slots
        limit = slots.limit
        slots.limit = len(slots.reserved) - freeing  # full for this decision: nothing claimed
        try:
            return event(*args)
        finally:
            slots.limit = limit

    def _admitted(self) -> bool:
        assert self._admit is not None
        try:
            return bool(self._admit())
        except Exception as exc:
            if pending := self._admit_errors.add():
                logger.warning("admit() raised %r (%d times); claiming anyway", exc, pending)
            return True

    def _claim(self, scope: TaskScope, ready: list[Slot]) -> None:
        for slot in ready:
            served = _Served(slot)
            self._served[slot] = served
            scope.start_soon(self._serve_one, scope, served, name=slot.note.session_id)

    # ── one call ────────────────────────────────────────────────────────────────────────

    async def _serve_one(self, scope: TaskScope, served: _Served) -> None:  # noqa: ASYNC910 (private task body)
        slot, slots = served.slot, self._slots
        session_id = slot.note.session_id
        outcome: CallOutcome | None = None
        try:
            with served.scope:
                async with self._manager.open_session(session_id) as session:
                    slots.won(slot)
                    call = await session.incoming_call()
                    if slot.note.activity == SessionActivityType.RESUME:
                        # Another agent may still hold this call on its voice socket: then
                        # the voice upgrade is refused (WSSSessionBusy) and it is left alone.
                        await self._port.open_call_voice(session_id)
                    served.call = call
                    outcome = await self._serve_call(served, call)
        except WSSSessionBusy:
            slots.lost(slot)
            logger.debug("session %s is held by another agent", session_id)
        except (WSSSessionClosed, WSSSessionNotFound, WSSCallClosedError) as exc:
            slots.lost(slot)
            logger.info("session %s ended before it could be served: %s", session_id, exc)
        except Exception as exc:
            self._serve_failed(session_id, exc)
        finally:
            del self._served[slot]
            self._wake.set()
            # Freed once the session is closed on the server: the next held one goes now.
            self._claim(scope, self._gated(slots.release, slot, trio.current_time(), freeing=1))
            if served.call is not None:
                self._call_ended(served.call, outcome or "closed")

    async def _serve_call(self, served: _Served, call: Call) -> CallOutcome:  # noqa: ASYNC910 (private; the handler is awaited)
        with served.handler_scope:
            return await self._run_handler(call)

        # The drain deadline stopped the handler.
        if call.end_reason in _ENDED_UNDER_HANDLER:
            return "hung_up"
        try:
            result = await call.close(drain_timeout=self._close_drain)
        except WSSError as exc:
            logger.info("call %s: close at the drain deadline failed: %s", call.id, exc)
        else:
            if not result:
                logger.info("call %s: close at the drain deadline refused: %s", call.id, result)
        return "closed"

    async def _run_handler(self, call: Call) -> CallOutcome:
        outcome: CallOutcome
        try:
            await self._handler(call)
        except (WSSSessionBusy, WSSCallClosedError) as exc:
            if call.end_reason is None:
                logger.exception("call %s: handler raised; closing the call", call.id)
                outcome = "failed"
            else:  # the call ended under the handler: not the handler's fault
                logger.info("call %s ended under its handler: %s", call.id, exc)
                outcome = "hung_up"
        except Exception:
            logger.exception("call %s: handler raised; closing the call", call.id)
            outcome = "failed"
        else:
            outcome = "hung_up" if call.end_reason in _ENDED_UNDER_HANDLER else "completed"
        return outcome  # noqa: ASYNC910 (the handler was awaited)

    def _serve_failed(self, session_id: str, exc: Exception) -> None:
        if isinstance(exc, WSSConnectionError) and (
            self._manager.connection_state is not ConnectionState.CONNECTED
        ):
            # The claim was cut by a control blip: the server offers the session again
            # (RESUME) once we are back, and it is claimed then.
            logger.info("session %s: claim cut by a control reconnect: %s", session_id, exc)
            return
        self._failures += 1
        if self._failures_logged.add():
            logger.warning(
                "session %s: could not serve its call: %s (%d such failures so far)",
                session_id,
                exc,
                self._failures,
            )

    def _call_ended(self, call: Call, outcome: CallOutcome) -> None:
        if self._on_call_end is None:
            return
        try:
            self._on_call_end(call, outcome)
        except Exception:
            logger.exception("call %s: on_call_end raised (outcome %s); ignored", call.id, outcome)
