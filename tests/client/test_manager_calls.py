"""``SessionManager.calls``: the live calls of the manager's sessions, in order, read-only."""

from __future__ import annotations

import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio.sandbox import SimulatedCall
from telcoflow_trio.testing import Sandbox

from .conftest import claimed_call


def live(sm: tf.SessionManager) -> tuple[tf.Call, ...]:
    # A function call, so the type checker does not narrow the property across awaits.
    return sm.calls


async def test_calls_follow_serve_calls_in_claim_order(sandbox: Sandbox) -> None:
    answered_send, answered = trio.open_memory_channel[tf.Call](10)
    ended_send, ended = trio.open_memory_channel[str](10)

    async def handler(call: tf.Call) -> None:
        assert await call.answer()
        await answered_send.send(call)
        await call.wait_terminated()
        await ended_send.send(call.id)

    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
            assert live(sm) == ()
            nursery.start_soon(sm.serve_calls, handler)
            sims: list[SimulatedCall] = []
            for n in range(3):
                # One at a time, so that claim order is placing order.
                sims.append(await sandbox.place_call(caller=f"+1555000{n}"))
                call = await answered.receive()
                assert call.id == sims[-1].call_id
            assert [c.id for c in live(sm)] == [s.call_id for s in sims]
            assert all(c.state is tf.CallState.LIVE for c in live(sm))

            await sims[1].hang_up()
            assert await ended.receive() == sims[1].call_id
            assert [c.id for c in live(sm)] == [sims[0].call_id, sims[2].call_id]

            for sim in (sims[0], sims[2]):
                await sim.hang_up()
                assert await ended.receive() == sim.call_id
            assert live(sm) == ()
            nursery.cancel_scope.cancel()


async def test_calls_list_a_delivered_call_until_it_ends(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            sim = await sandbox.place_call()
            async with claimed_call(sm) as (session, call):
                # Delivered but not answered yet: already the manager's call.
                assert live(sm) == (call,)
                assert await call.answer()
                assert live(sm) == (call,)
                assert await call.close()
                assert live(sm) == ()
            await sim.wait_terminated()
            assert session.is_closed
            assert live(sm) == ()


async def test_calls_is_read_only_and_a_fresh_tuple(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            await sandbox.place_call()
            async with claimed_call(sm) as (_session, call):
                first = live(sm)
                assert isinstance(first, tuple)
                assert first == (call,)
                with pytest.raises(AttributeError):
                    sm.calls = ()  # type: ignore[misc]
                assert await call.close()
                assert live(sm) == ()
                assert first == (call,)  # a snapshot, not a view
