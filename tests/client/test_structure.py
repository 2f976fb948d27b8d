"""Structure, load and slow consumers: every scope cleans up, every call is handled once."""

from __future__ import annotations

import contextlib
import logging

import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio.sandbox import EndedBy
from telcoflow_trio.testing import Sandbox, SimulatedCall, TestSignal, open_sandbox

from .conftest import claimed_call


def sdk_tasks() -> list[str]:
    """Names of the running tasks that belong to the SDK (not the sandbox, not the test)."""
    names: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        if task.name.startswith("telcoflow_trio.") and ".testing." not in task.name:
            names.append(task.name)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return names


def ended_by(sim: SimulatedCall) -> EndedBy | None:
    # A function call, so the type checker does not narrow the attribute across awaits.
    return sim.ended_by


def voice_connections(sandbox: Sandbox) -> set[str]:
    return {r.connection for r in sandbox.frames if r.plane == "voice"}


@pytest.mark.parametrize("ending", ["return", "raise", "cancel"])
async def test_every_scope_exit_closes_everything(sandbox: Sandbox, ending: str) -> None:
    assert sdk_tasks() == []
    # A user exception comes out as itself, not wrapped in an ExceptionGroup.
    raises = (
        pytest.raises(KeyError, match="user code failed")
        if ending == "raise"
        else contextlib.nullcontext()
    )
    with trio.fail_after(30):
        with trio.CancelScope() as outer, raises:
            async with tf.SessionManager(sandbox.config()) as sm:
                sim = await sandbox.place_call(audio=TestSignal(seconds=5))
                async with claimed_call(sm) as (session, call):
                    assert await call.answer()
                    await call.send_audio(b"\x01\x00" * 8000)
                    assert sdk_tasks() != []
                    if ending == "raise":
                        raise KeyError("user code failed")
                    if ending == "cancel":
                        outer.cancel()
                        await trio.sleep_forever()
        await sim.wait_terminated()
        await sandbox.wait_for(lambda: not sandbox.control_connections)
    assert sim.ended_by is EndedBy.AGENT_CLOSE
    assert sandbox.sessions[session.id].state == "CLOSED"
    assert session.is_closed and call.state is tf.CallState.TERMINATED
    assert sdk_tasks() == []


async def test_three_managers_share_thirty_calls_exactly_once(sandbox: Sandbox) -> None:
    handled: list[tuple[int, str]] = []

    def handler_for(index: int):  # type: ignore[no-untyped-def]
        async def handle(call: tf.Call) -> None:
            handled.append((index, call.id))
            assert await call.answer()

        return handle

    with trio.fail_after(60):
        async with (
            tf.SessionManager(sandbox.config()) as a,
            tf.SessionManager(sandbox.config()) as b,
            tf.SessionManager(sandbox.config()) as c,
            trio.open_nursery() as nursery,
        ):
            for i, sm in enumerate((a, b, c)):
                nursery.start_soon(sm.serve_calls, handler_for(i))
            sims = [await sandbox.place_call(caller=f"+1{i:03d}") for i in range(30)]
            for sim in sims:
                await sim.wait_terminated()
            nursery.cancel_scope.cancel()
    ids = [call_id for _, call_id in handled]
    assert sorted(ids) == sorted(sim.call_id for sim in sims)  # each exactly once, none lost
    assert all(sim.ended_by is EndedBy.AGENT_CLOSE for sim in sims)


async def test_voice_plane_opens_once_under_concurrent_first_use(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            await sandbox.place_call()
            async with claimed_call(sm) as (_session, call):
                streams: list[tf.AudioStream] = []

                async def open_stream() -> None:
                    streams.append(await call.audio_stream())

                async with trio.open_nursery() as nursery:
                    for _ in range(3):
                        nursery.start_soon(open_stream)
                    nursery.start_soon(call.answer)
                    nursery.start_soon(call.send_audio, b"\x00\x00" * 10)
                assert call.state is tf.CallState.LIVE
                assert len(streams) == 3
    assert len(voice_connections(sandbox)) == 1


async def test_slow_audio_consumer_drops_oldest_and_commands_still_flow() -> None:
    async with open_sandbox(time_scale=20) as sandbox:
        with trio.fail_after(30):
            async with tf.SessionManager(sandbox.config()) as sm:
                sim = await sandbox.place_call(audio=TestSignal(seconds=30))
                async with claimed_call(sm) as (_session, call):
                    assert await call.answer()
                    stream = await call.audio_stream()  # never read while the caller talks
                    await sim.wait_spoken()
                    assert not await call.whisper()  # a command still gets its answer
                    dropped = call.incoming_audio_dropped_bytes
                    assert dropped > 0
                    kept = 0
                    while True:
                        try:
                            kept += len(stream.receive_nowait())
                        except trio.WouldBlock:
                            break
                    assert kept + dropped == len(sim.spoken)
                    assert kept <= 500 * sim.bytes_per_second() // 50  # the channel's bound


async def test_command_without_response_times_out_as_a_falsy_result(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            await sandbox.place_call()
            async with claimed_call(sm) as (_session, call):
                assert await call.answer()
                sandbox.faults.withhold_command_responses.add("call.connect")
                with trio.fail_after(1 + 5 + 3):  # timeout_ms (ring time) + 5 s grace
                    result = await call.connect(ring_time_seconds=1)
                assert not result
                assert result.error_code == "TIMEOUT"
                with pytest.raises(ValueError, match="ring_time_seconds"):
                    await call.connect(ring_time_seconds=121)


async def test_hand_off_a_new_call_to_another_node(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            sim = await sandbox.place_call(audio=TestSignal(seconds=1))
            async with claimed_call(sm) as (_session, call):
                document = call.to_json()
                with pytest.raises(tf.WSSCallStateError):
                    call.to_json()
                with pytest.raises(tf.WSSCallStateError):
                    await call.answer()
            # The front node's session scope is gone; the call is the worker's now.
            assert ended_by(sim) is None
            async with tf.Call.from_json(document, tf.CallAudioConfig()) as worker_call:
                assert worker_call.id == call.id
                assert await worker_call.answer()
                echoed = 0
                async for chunk in worker_call.audio_stream():
                    await worker_call.send_audio(chunk)
                    echoed += len(chunk)
                    if echoed >= 16000 * 2:  # the caller's one second
                        break
                await worker_call.wait_for_playout()
                await sim.wait_heard(len(sim.spoken))
            assert sim.heard == sim.spoken
            await sim.wait_terminated()
            assert ended_by(sim) is EndedBy.AGENT_CLOSE
    with pytest.raises(ValueError, match="hand-off"):
        tf.Call.from_json('{"id": "x"}')


async def test_create_session_quota_exceeded() -> None:
    async with open_sandbox(max_open_sessions=1) as sandbox:
        with trio.fail_after(10):
            async with tf.SessionManager(sandbox.config()) as sm, sm.create_session("WA", "+1"):
                with pytest.raises(tf.WSSQuotaExceeded):
                    async with sm.create_session("WA", "+2"):
                        pass


async def test_a_close_cancelled_in_flight_is_not_sent_again_by_the_scope(
    sandbox: Sandbox,
) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            sim = await sandbox.place_call()
            async with claimed_call(sm) as (_session, call):
                assert await call.answer()
                async with trio.open_nursery() as nursery:

                    async def close_then_be_cancelled() -> None:
                        await call.close()

                    nursery.start_soon(close_then_be_cancelled)
                    # Cancel as soon as the server has the close, before its answer is read.
                    await sandbox.wait_for(lambda: len(sim.commands) == 2)
                    nursery.cancel_scope.cancel()
            # Leaving the scope waited for the call's end instead of closing a second time.
            await sim.wait_terminated()
    assert [c.command for c in sim.commands] == ["call.answer", "call.close"]
    assert sim.ended_by is EndedBy.AGENT_CLOSE


async def test_a_session_left_before_its_call_arrived_is_closed_on_the_server(
    sandbox: Sandbox,
) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            sim = await sandbox.place_call()
            note = await sm.session_notifications.receive()
            async with sm.open_session(note.session_id) as session:
                pass  # claimed, then left without waiting for the call
            # Not just closed locally: the caller is not left waiting on a session bound to us.
            assert session.close_reason is tf.CloseReason.SDK_REQUEST
            await sim.wait_terminated()
    assert sim.commands == []
    assert sim.ended_by is EndedBy.SESSION_CLOSED


async def test_ctrl_c_in_a_handler_task_comes_out_as_itself_and_closes_the_calls(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """trio raises Ctrl+C in whichever task runs user code: here a handler's. It must end
    serve_calls and the manager as a bare KeyboardInterrupt, every call closed on the server."""
    interrupting: list[tf.Call] = []

    async def handler(call: tf.Call) -> None:
        assert await call.answer()
        interrupting.append(call)
        if len(interrupting) == 2:
            raise KeyboardInterrupt
        await trio.sleep_forever()

    outcome: BaseException | None = None
    with trio.fail_after(30):
        first = await sandbox.place_call(audio=TestSignal(seconds=5))
        second = await sandbox.place_call(audio=TestSignal(seconds=5))
        try:
            async with tf.SessionManager(sandbox.config()) as sm:
                await sm.serve_calls(handler)
        except BaseException as exc:  # what comes out is what is tested
            outcome = exc
    assert type(outcome) is KeyboardInterrupt, repr(outcome)
    assert first.ended_by is EndedBy.AGENT_CLOSE
    assert second.ended_by is EndedBy.AGENT_CLOSE
    # Not swallowed on the way as an internal task's failure.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
