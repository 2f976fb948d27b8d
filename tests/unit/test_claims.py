"""Claims, commands and restoring sessions after a control reconnect (P3, P7, P8, P10),
over the in-memory transport."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import telcoflow_trio as tf
from telcoflow_trio.protocol import timing

from ._fake_server import HOLD, fake_server, session_with_call


async def test_claim_answer_close_puts_exactly_these_frames_on_the_wire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_server() as fs, fs.manager() as sm:
        async with session_with_call(fs, sm) as (session, call):
            assert call.id == "c-1"
            assert await call.answer()
            assert call.state is tf.CallState.LIVE
            assert await call.close()
            assert call.end_reason is not None  # which one: see test_voice
            left_at = trio.current_time()
        # P10: call.terminated came and session.closed never does: the scope did not wait.
        assert trio.current_time() - left_at < timing.SESSION_CLOSE_WAIT
        assert session.is_closed
        assert fs.voice_headers["c-1"]["Authorization"] == "Bearer tok-c-1"
        assert fs.log == [
            "control#1 setup",
            "control#1 session.open s-1",
            "control#1 session.ready s-1",
            "voice c-1 open",
            "voice c-1 call.answer",
            "voice c-1 call.close",
        ]


async def test_a_refused_command_is_a_falsy_result_and_the_call_stays_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_server() as fs, fs.manager() as sm, session_with_call(fs, sm) as (_, call):
        fs.command_replies["call.connect"] = "CALL_UNANSWERED"
        assert await call.answer()
        result = await call.connect(ring_time_seconds=5)
        assert not result
        assert result.error_code == "CALL_UNANSWERED"
        assert call.state is tf.CallState.LIVE
        assert await call.close()


async def test_a_claim_cancelled_in_flight_and_then_won_is_closed_over_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_server() as fs, fs.manager() as sm:
        fs.open_replies["s-1"].append(HOLD)
        with trio.move_on_after(1) as waited:
            async with sm.open_session("s-1"):
                pytest.fail("the claim was not answered")  # pragma: no cover
        assert waited.cancelled_caught
        assert fs.held("s-1")
        assert "rest close s-1" not in fs.log
        await fs.release("s-1", "ok")
        await fs.wait_logged("rest close s-1")


async def test_a_claim_cancelled_in_flight_and_then_lost_is_left_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_server() as fs, fs.manager() as sm:
        fs.open_replies["s-1"].append(HOLD)
        with trio.move_on_after(1):
            async with sm.open_session("s-1"):
                pytest.fail("the claim was not answered")  # pragma: no cover
        await fs.release("s-1", "SESSION_BUSY")
        await trio.testing.wait_all_tasks_blocked()
        assert not any(line.startswith("rest") for line in fs.log)


async def test_a_session_with_a_live_call_is_reclaimed_after_a_control_cut(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_server() as fs, fs.manager() as sm, session_with_call(fs, sm) as (_, call):
        assert await call.answer()
        audio = call.audio_stream()
        await fs.cut_control()
        await fs.wait_logged("control#2 session.ready s-1")
        assert [line for line in fs.log if line.startswith("control#2")] == [
            "control#2 setup",
            "control#2 session.open s-1",
            "control#2 session.ready s-1",
        ]
        assert sm.reconnects == 1
        # The call carried on on its own voice socket the whole time.
        assert call.state is tf.CallState.LIVE
        await fs.voices["c-1"].send(b"\x00" + b"\x01\x02" * 80)
        assert await audio.receive() == b"\x01\x02" * 80
        assert await call.clear_send_audio_buffer() == 0
        assert await call.close()
        assert fs.log[-2:] == ["voice c-1 agent.interrupt", "voice c-1 call.close"]
        assert fs.log.count("voice c-1 open") == 1


async def test_a_control_cut_between_claim_and_call_in_reclaims_and_delivers_the_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_server() as fs, fs.manager() as sm, sm.open_session("s-1") as session:
        await session.ready()
        await fs.wait_logged("control#1 session.ready s-1")
        await fs.cut_control()
        async with trio.open_nursery() as nursery:
            calls: list[tf.Call] = []

            async def wait_for_the_call() -> None:
                calls.append(await session.incoming_call())

            nursery.start_soon(wait_for_the_call)
            # P8: ready is sent again once the session is re-claimed; a call.in sent then
            # is delivered.
            await fs.wait_logged("control#2 session.ready s-1")
            assert fs.log[-2:] == ["control#2 session.open s-1", "control#2 session.ready s-1"]
            await fs.call_in("s-1", "c-1")
        (call,) = calls
        assert call.id == "c-1"
        assert await call.answer()
        assert await call.close()


async def test_a_session_won_by_another_agent_during_a_control_cut_is_left_to_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with fake_server() as fs, fs.manager() as sm:
        fs.open_replies["s-1"].extend(["ok", "SESSION_BUSY"])
        async with sm.open_session("s-1") as session:
            await session.ready()
            await fs.wait_logged("control#1 session.ready s-1")
            await fs.cut_control()
            with pytest.raises(tf.WSSSessionBusy):
                await session.incoming_call()
            assert session.is_closed
        await trio.testing.wait_all_tasks_blocked()
        assert "control#2 session.open s-1" in fs.log
        assert "control#2 session.ready s-1" not in fs.log
        assert not any(line.startswith("rest") for line in fs.log)


async def test_a_scope_whose_close_gets_no_answer_ends_the_call_over_rest_in_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The server never answers call.close: leaving the scope must not spend its whole
    cleanup deadline waiting, but end the call without its socket (REST) well within it."""
    async with fake_server() as fs, fs.manager() as sm:
        fs.command_replies["call.close"] = HOLD
        async with session_with_call(fs, sm) as (_session, call):
            assert await call.answer()
            left_at = trio.current_time()
        took = trio.current_time() - left_at
        assert fs.log[-2:] == ["voice c-1 call.close", "rest close s-1"]
        assert took < 10  # the session's cleanup deadline is 15 s
        assert call.end_reason is tf.CallEndReason.SCOPE_EXITED
