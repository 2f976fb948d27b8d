"""Cancellation (guarantee 1): cancelling a public coroutine at any checkpoint leaves the SDK
consistent. Hypothesis picks the coroutine and k; an Instrument cancels the caller's scope
just before the caller's k-th step (each step follows a checkpoint or schedule point). Then
the call or session must still close, the manager must exit, and nothing may leak.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import attrs
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import telcoflow_trio as tf
from telcoflow_trio.testing import Sandbox, SimulatedCall, TestSignal, open_sandbox

from ._leaks import no_leaks, sdk_tasks

THOROUGH = os.environ.get("HYPOTHESIS_PROFILE", "default") != "default"
EXAMPLES = 400 if THOROUGH else 80
MAX_STEPS = 20  # the longest coroutine here takes 18 steps of its caller


class CancelAtStep(trio.abc.Instrument):
    """Cancels ``scope`` just before ``task`` takes its ``steps``-th step."""

    def __init__(self, task: trio.lowlevel.Task, steps: int, scope: trio.CancelScope) -> None:
        self.task = task
        self.steps = steps
        self.scope = scope
        self.seen = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.seen += 1
            if self.seen == self.steps:
                self.scope.cancel()


@attrs.define
class World:
    sandbox: Sandbox
    sm: tf.SessionManager
    stack: AsyncExitStack
    sim: SimulatedCall | None = None
    call: tf.Call | None = None
    session_id: str | None = None
    wa: tf.Session | None = None


PCM = bytes(range(256)) * 32  # 8 KiB: twice the buffer, so a waiting send has to wait


async def answer(w: World) -> None:
    assert w.call is not None
    await w.call.answer()


async def send_audio_wait(w: World) -> None:
    assert w.call is not None
    await w.call.send_audio(PCM, wait=True)


async def clear(w: World) -> None:
    assert w.call is not None
    await w.call.send_audio(PCM[:2048])
    await w.call.clear_send_audio_buffer()


async def playout(w: World) -> None:
    assert w.call is not None
    await w.call.send_audio(PCM[:3200])
    await w.call.wait_for_playout()


async def connect_whisper(w: World) -> None:
    assert w.call is not None
    if await w.call.connect(ring_time_seconds=1):
        await w.call.whisper()


async def close(w: World) -> None:
    assert w.call is not None
    await w.call.close()


async def open_session(w: World) -> None:
    assert w.session_id is not None
    async with w.sm.open_session(w.session_id) as session:
        await session.ready()
        call = await session.incoming_call()
        await call.answer()


async def create_session(w: World) -> None:
    async with w.sm.create_session("WA", "+4479") as session:
        await session.ready()


async def send_message(w: World) -> None:
    assert w.wa is not None
    await w.wa.send_message(tf.SendWAMessage("v1", {"text": "hi"}))


async def list_sessions(w: World) -> None:
    await w.sm.list_sessions()


# name -> (coroutine, what it needs: "new call", "live call", "session id", "wa", "")
OPERATIONS: dict[str, tuple[Callable[[World], Awaitable[None]], str]] = {
    "answer": (answer, "new call"),
    "send_audio(wait=True)": (send_audio_wait, "live call"),
    "clear_send_audio_buffer": (clear, "live call"),
    "wait_for_playout": (playout, "live call"),
    "connect+whisper": (connect_whisper, "live call"),
    "close": (close, "live call"),
    "open_session+ready+incoming_call": (open_session, "session id"),
    "create_session": (create_session, ""),
    "send_message": (send_message, "wa"),
    "list_sessions": (list_sessions, ""),
}


@asynccontextmanager
async def world(needs: str) -> AsyncIterator[World]:
    audio = tf.CallAudioConfig(buffer_size=4096)
    async with open_sandbox(time_scale=10) as sandbox, AsyncExitStack() as stack:
        sm = await stack.enter_async_context(tf.SessionManager(sandbox.config(call_audio=audio)))
        w = World(sandbox, sm, stack)
        if needs in ("new call", "live call", "session id"):
            w.sim = await sandbox.place_call(audio=TestSignal(seconds=1))
            note = await sm.session_notifications.receive()
            w.session_id = note.session_id
            if needs != "session id":
                session = await stack.enter_async_context(sm.open_session(note.session_id))
                w.call = await session.incoming_call()
                if needs == "live call":
                    assert await w.call.answer()
        elif needs == "wa":
            w.wa = await stack.enter_async_context(sm.create_session("WA", "+4478"))
            await w.wa.ready()
        yield w


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(OPERATIONS)), steps=st.integers(1, MAX_STEPS))
async def test_cancelling_at_any_checkpoint_leaves_the_sdk_consistent(
    name: str, steps: int
) -> None:
    operation, needs = OPERATIONS[name]
    async with no_leaks():
        with trio.fail_after(30):
            async with world(needs) as w:
                instrument = CancelAtStep(trio.lowlevel.current_task(), steps, trio.CancelScope())
                with instrument.scope:
                    trio.lowlevel.add_instrument(instrument)
                    try:
                        await operation(w)
                    finally:
                        trio.lowlevel.remove_instrument(instrument)
                hit = instrument.scope.cancelled_caught
                event(f"{name}: {'cancelled mid-way' if hit else 'finished first'}")
                # Whatever state the cancellation left, everything can still be closed.
                with trio.fail_after(15):
                    if w.call is not None:
                        result = await w.call.close()
                        assert isinstance(result, tf.CommandResult)
                    if needs == "session id":
                        await _claim_and_close_again(w)
                    if w.wa is not None:
                        await w.wa.close(confirm_timeout=2)
                        assert w.wa.is_closed
            if w.sim is not None:
                with trio.fail_after(5):
                    await w.sim.wait_terminated()
        assert sdk_tasks() == []


async def _claim_and_close_again(w: World) -> None:
    """After a cancelled claim, claiming again works, or the session is already over: a
    claim's scope that ends before its call arrived closes the session (over REST), so the
    caller is never left waiting on a session bound to us."""
    assert w.session_id is not None and w.sim is not None
    refused: tf.WSSError | None = None
    try:
        async with w.sm.open_session(w.session_id) as session:
            call = await session.incoming_call(timeout=1)
            await call.close()
    except (tf.WSSSessionError, tf.WSSSessionClosed) as exc:
        refused = exc
    if refused is None:
        return
    # Closed by the cancelled block's own exit, or still open in this manager.
    assert w.sim.terminated.is_set() or "already open" in str(refused), refused
