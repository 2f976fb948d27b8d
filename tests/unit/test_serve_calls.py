"""serve_calls and RESUME notifications (P3), over the in-memory transport."""

from __future__ import annotations

import trio
import trio.testing

import telcoflow_trio as tf

from ._fake_server import FakeServer, fake_server

RESUME = tf.SessionActivityType.RESUME


class Handler:
    """Answers each call and holds it until :attr:`hang_up` is set."""

    def __init__(self) -> None:
        self.served: list[str] = []
        self.hang_up = trio.Event()

    async def __call__(self, call: tf.Call) -> None:
        self.served.append(call.id)
        assert await call.answer()
        await self.hang_up.wait()


async def offer(fs: FakeServer, session_id: str, call_id: str, connection: int = 1) -> None:
    """What the server does for a notified session: wait for the claim, then send call.in."""
    await fs.wait_logged(f"control#{connection} session.ready {session_id}")
    await fs.call_in(session_id, call_id)


async def test_a_resume_for_a_session_this_manager_holds_is_ignored(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    async with fake_server() as fs, fs.manager() as sm, trio.open_nursery() as nursery:
        nursery.start_soon(sm.serve_calls, handler)
        await fs.notify("s-1")
        await offer(fs, "s-1", "c-1")
        await fs.wait_logged("voice c-1 call.answer")
        # A control blip: the manager re-claims its session itself, and the server
        # re-notifies the call to every agent.
        await fs.cut_control()
        await fs.wait_logged("control#2 session.ready s-1")
        await fs.notify("s-1", activity=RESUME)
        await trio.testing.wait_all_tasks_blocked()
        assert fs.log.count("control#2 session.open s-1") == 1
        assert handler.served == ["c-1"]
        handler.hang_up.set()
        await fs.wait_logged("voice c-1 call.close")
        nursery.cancel_scope.cancel()
    assert not any(line.startswith("rest") for line in fs.log)


async def test_a_resume_for_a_call_held_on_another_agents_voice_socket_is_dropped_quietly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    async with fake_server() as fs, fs.manager() as sm, trio.open_nursery() as nursery:
        nursery.start_soon(sm.serve_calls, handler)
        await fs.notify("s-2", activity=RESUME)
        fs.refuse_next(409)  # the next connection attempt is the call's voice plane
        await offer(fs, "s-2", "c-2")
        await trio.testing.wait_all_tasks_blocked()
        assert fs.connector.attempts == 2
        assert handler.served == []
        # Nothing told the server anything after the claim: the call is the other agent's.
        assert fs.log[-1] == "control#1 session.ready s-2"
        assert not any(line.startswith(("rest", "voice")) for line in fs.log)
        nursery.cancel_scope.cancel()


async def test_a_resume_for_a_call_whose_agent_is_gone_is_served(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handler = Handler()
    async with fake_server() as fs, fs.manager() as sm, trio.open_nursery() as nursery:
        nursery.start_soon(sm.serve_calls, handler)
        await fs.notify("s-3", activity=RESUME)
        await offer(fs, "s-3", "c-3")
        await fs.wait_logged("voice c-3 call.answer")
        assert handler.served == ["c-3"]
        handler.hang_up.set()
        await fs.wait_logged("voice c-3 call.close")
        nursery.cancel_scope.cancel()
