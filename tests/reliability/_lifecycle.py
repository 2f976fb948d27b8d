"""Helpers for the lifecycle policy tests of issue 13 (P1-P10 in the integrator's notes).

- What the sandbox is left holding that a correct agent would not leave behind: calls an
  agent touched that are still up, sessions bound to a connection that is gone.
- :class:`EchoAgent`: one agent process in miniature (a manager running ``serve_calls``
  with an echo handler) that records which calls its handler ran for and what it raised.
- :func:`run_isolated`: one ``trio.run`` in a daemon thread, so a hang that cannot even be
  cancelled is counted as a hang instead of blocking the suite.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs
import trio

import telcoflow_trio as tf
from telcoflow_trio.protocol import Backoff
from telcoflow_trio.sandbox import CallerState
from telcoflow_trio.testing import Sandbox, SimulatedCall

__all__ = [
    "DOCUMENTED_ERRORS",
    "EchoAgent",
    "HandlerRun",
    "Isolated",
    "echo",
    "fast_backoff",
    "leftovers",
    "live_calls",
    "poll",
    "run_isolated",
    "settle",
    "stranded_sessions",
    "within",
]


def fast_backoff() -> Backoff:
    """Reconnect within tens of milliseconds (each manager needs its own: it has state)."""
    return Backoff(first=0.02, maximum=0.1)


TOUCHED: Final = frozenset({CallerState.DELIVERED, CallerState.LIVE})
"""Caller states that mean an agent got the call's ``call.in``."""
DOCUMENTED_ERRORS: Final = (tf.WSSError, tf.BufferClosedError, tf.BufferFullError)


# ── what the server is left with ────────────────────────────────────────────────────────


def live_calls(sandbox: Sandbox) -> list[SimulatedCall]:
    """Calls some agent received (``call.in``) that are still up on the server."""
    return [c for c in sandbox.calls.values() if c.state in TOUCHED and not c.terminated.is_set()]


def stranded_sessions(sandbox: Sandbox, abandoned: frozenset[str] = frozenset()) -> list[str]:
    """Open sessions bound to a control connection that is gone, or to one of the
    ``abandoned`` ``sm_ws_id``s (agents whose scope for that session is over)."""
    up = {c.sm_ws_id for c in sandbox.control_connections}
    out = []
    for record in sandbox.sessions.values():
        bound = record.bound_sm_ws_id
        if record.is_open and bound is not None and (bound not in up or bound in abandoned):
            out.append(f"session {record.id} open and bound to {bound} that nobody serves")
    return out


def leftovers(sandbox: Sandbox, *, agents_stopped: bool = True) -> list[str]:
    """Anything an agent left live or bound on the server, once every scope that held a
    session is over: calls an agent received still up, sessions still bound, and, once
    every agent has stopped (``agents_stopped``), control connections still up."""
    found = [
        f"call {c.call_id} left {c.state.value} (voice connections: {c.voice_connections})"
        for c in live_calls(sandbox)
    ]
    found += [
        f"session {r.id} open and bound to {r.bound_sm_ws_id}, its scope over"
        for r in sandbox.sessions.values()
        if r.is_open and r.bound is not None
    ]
    if agents_stopped:
        found += [f"control connection {c.sm_ws_id} still up" for c in sandbox.control_connections]
    return found


async def poll(predicate: Callable[[], bool], seconds: float) -> bool:
    """Whether ``predicate()`` became true within ``seconds`` (state that changes on the
    sandbox without one event to wait on)."""
    with trio.move_on_after(seconds):
        while not predicate():  # noqa: ASYNC110 (bounded just above)
            await trio.sleep(0.005)
        return True
    return predicate()


async def within(seconds: float, wait: Callable[[], Awaitable[object]], failure: str) -> None:
    """``await wait()`` for at most ``seconds``; past that, an AssertionError that says
    ``failure`` (a policy not met reads better than a TooSlowError)."""
    with trio.move_on_after(seconds) as scope:
        await wait()
    assert not scope.cancelled_caught, f"{failure} (waited {seconds:g} s)"


async def settle(
    sandbox: Sandbox, seconds: float = 2.0, *, agents_stopped: bool = True
) -> list[str]:
    """:func:`leftovers`, after giving the server up to ``seconds`` to see things end."""
    await poll(lambda: not leftovers(sandbox, agents_stopped=agents_stopped), seconds)
    return leftovers(sandbox, agents_stopped=agents_stopped)


# ── an agent ────────────────────────────────────────────────────────────────────────────


async def echo(call: tf.Call) -> None:
    """The README's echo agent: answer, then send the caller's audio straight back."""
    if not await call.answer():
        return
    try:
        async for chunk in call.audio_stream():
            await call.send_audio(chunk, wait=True)
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass


@attrs.define
class HandlerRun:
    """One run of an agent's handler: for which call, and how it ended."""

    agent: str
    call_id: str
    error: BaseException | None = None
    ended: bool = False


class EchoAgent:
    """A manager serving calls with :func:`echo`, run by :meth:`run` until :meth:`stop`.

    Start it with ``await nursery.start(agent.run)``: it returns once connected.
    """

    def __init__(
        self,
        name: str,
        config: tf.SessionManagerConfig,
        *,
        backoff: Backoff | None = None,
        handler: Callable[[tf.Call], Awaitable[None]] = echo,
    ) -> None:
        self.name = name
        self.config = config
        self.backoff = fast_backoff() if backoff is None else backoff
        self.handler = handler
        self.runs: list[HandlerRun] = []
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.error: BaseException | None = None
        self._sm: tf.SessionManager | None = None

    def __repr__(self) -> str:
        return f"<EchoAgent {self.name} {self.sm_ws_id}>"

    @property
    def sm(self) -> tf.SessionManager:
        assert self._sm is not None, f"agent {self.name} never connected"
        return self._sm

    @property
    def sm_ws_id(self) -> str | None:
        return None if self._sm is None else self._sm.sm_ws_id

    def ran_for(self, call_id: str) -> list[HandlerRun]:
        return [r for r in self.runs if r.call_id == call_id]

    async def _serve(self, call: tf.Call) -> None:
        run = HandlerRun(self.name, call.id)
        self.runs.append(run)
        try:
            await self.handler(call)
        except BaseException as exc:
            run.error = exc
            raise
        finally:
            run.ended = True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self.scope:
                async with tf.SessionManager(self.config, backoff=self.backoff) as sm:
                    self._sm = sm
                    task_status.started()
                    await sm.serve_calls(self._serve)
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()

    async def stop(self) -> None:
        """Cancel the agent and wait until its manager's scope is left."""
        self.scope.cancel()
        await self.done.wait()


# ── a trio run that a hang cannot block ─────────────────────────────────────────────────


@attrs.define
class Isolated:
    """What :func:`run_isolated` saw: whether the run finished, and how."""

    finished: bool
    value: Any = None
    error: BaseException | None = None


def run_isolated(
    async_fn: Callable[..., Awaitable[Any]],
    *args: Any,
    timeout: float,
    clock: trio.abc.Clock | None = None,
) -> Isolated:
    """``trio.run(async_fn, *args)`` in a daemon thread, waited for at most ``timeout``
    seconds. A run still going then is abandoned (its thread stays blocked until the
    process exits) and reported as not finished: an uncancellable hang is a count, not a
    suite that never ends."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = trio.run(async_fn, *args, clock=clock)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"isolated {async_fn.__name__}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return Isolated(False)
    return Isolated(True, box.get("value"), box.get("error"))
