"""Faults (guarantees 4 and 5): the control socket cut at every point of its life, the voice
socket cut mid-command and mid-stream, servers that never answer. Each ends in the documented
error, result or reconnect within its deadline, and leaves no task or file descriptor behind.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio import _connect
from telcoflow_trio._control_connection import Timeouts
from telcoflow_trio.protocol import Backoff
from telcoflow_trio.testing import Sandbox, TestSignal, open_sandbox

from ._leaks import no_leaks, sdk_tasks

FAST_BACKOFF = Backoff(first=0.02, maximum=0.1)


@asynccontextmanager
async def claimed(sm: tf.SessionManager) -> AsyncIterator[tuple[tf.Session, tf.Call]]:
    note = await sm.session_notifications.receive()
    async with sm.open_session(note.session_id) as session:
        yield session, await session.incoming_call()


async def connect_failure(config: tf.SessionManagerConfig) -> str:
    """Enter a manager that must fail to connect; returns the error's text."""
    try:
        async with tf.SessionManager(config):
            pass
    except tf.WSSConnectionError as exc:
        return str(exc)
    raise AssertionError("the manager connected")


async def poll(predicate: Callable[[], bool]) -> None:
    """Until ``predicate()`` holds, for state the sandbox changes without an event."""
    while not predicate():  # noqa: ASYNC110 (bounded by the caller's fail_after)
        await trio.sleep(0.005)


@asynccontextmanager
async def black_hole() -> AsyncIterator[int]:
    """A TCP server that accepts, reads everything and never answers. Yields its port."""

    async def swallow(stream: trio.SocketStream) -> None:
        async with stream:
            while await stream.receive_some():
                pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, swallow, 0, host="127.0.0.1"))
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


# ── the control socket, at every point of its life ─────────────────────────────────────


async def test_cut_during_the_first_upgrade_is_a_connection_error() -> None:
    # The connect deadline is 10 s: the cut must end the handshake at once.
    async with no_leaks(), open_sandbox() as sandbox:
        sandbox.faults.abort_control_upgrades = 1
        with trio.fail_after(5):
            assert "closed during the handshake" in await connect_failure(sandbox.config())
        assert sandbox.faults.abort_control_upgrades == 0


async def test_cut_before_setup_done_is_a_connection_error_not_a_hang() -> None:
    # The setup deadline is 10 s; the cut must end the wait at once, not at the deadline,
    # and certainly not leave __aenter__ waiting for a reconnect that never reports back.
    async with no_leaks(), open_sandbox() as sandbox:
        sandbox.faults.abort_before_setup_done = 1
        with trio.fail_after(5), pytest.raises(tf.WSSConnectionError, match=r"setup\.done"):
            async with tf.SessionManager(sandbox.config(), backoff=FAST_BACKOFF):
                pass  # pragma: no cover
        assert sandbox.faults.abort_before_setup_done == 0
        assert sdk_tasks() == []


async def test_cuts_before_setup_done_during_reconnect_end_in_a_reconnect() -> None:
    async with no_leaks(), open_sandbox() as sandbox:
        with trio.fail_after(20):
            async with tf.SessionManager(sandbox.config(), backoff=FAST_BACKOFF) as sm:
                sandbox.faults.abort_before_setup_done = 3
                await sandbox.drop_control_connections()
                await sm.wait_connection_state(tf.ConnectionState.RECONNECTING)
                await sm.wait_connected()
                assert sm.reconnects == 1
                assert sandbox.faults.abort_before_setup_done == 0
                # Notifications flow on the new connection.
                await sandbox.place_call()
                note = await sm.session_notifications.receive()
                assert note.channel is tf.ChannelType.TELCO


async def test_cut_with_a_request_in_flight_fails_it_at_once_then_it_can_be_retried() -> None:
    async with no_leaks(), open_sandbox(time_scale=10) as sandbox:
        with trio.fail_after(20):
            async with tf.SessionManager(sandbox.config(), backoff=FAST_BACKOFF) as sm:
                sandbox.faults.withhold_responses.add("session.open")
                sim = await sandbox.place_call(audio=TestSignal(seconds=0.2))
                note = await sm.session_notifications.receive()
                record = sandbox.sessions[note.session_id]
                failure: list[BaseException] = []

                async def open_it() -> None:
                    try:
                        async with sm.open_session(note.session_id):
                            pass  # pragma: no cover
                    except tf.WSSConnectionError as exc:
                        failure.append(exc)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(open_it)
                    await sandbox.wait_for(lambda: record.bound is not None)  # in flight
                    # The request deadline is 30 s: the failure must come from the cut.
                    with trio.fail_after(5):
                        await sandbox.drop_control_connections()
                assert len(failure) == 1
                assert "control connection" in str(failure[0])
                sandbox.faults.withhold_responses.clear()
                await sm.wait_connected()
                # The server re-notifies the unclaimed call; claiming it now works.
                async with claimed(sm) as (_session, call):
                    assert call.id == sim.call_id
                    assert await call.answer()
                await sim.wait_terminated()


async def test_during_reconnect_backoff_requests_fail_fast_and_closing_is_prompt() -> None:
    async with no_leaks(), open_sandbox() as sandbox:
        with trio.fail_after(10):
            async with tf.SessionManager(
                sandbox.config(), backoff=Backoff(first=60, maximum=60)
            ) as sm:
                await sandbox.drop_control_connections()
                await sm.wait_connection_state(tf.ConnectionState.RECONNECTING)
                with (
                    trio.fail_after(1),
                    pytest.raises(tf.WSSConnectionError, match="not connected"),
                ):
                    async with sm.create_session("WA", "+4400"):
                        pass  # pragma: no cover
                with (
                    trio.fail_after(1),
                    pytest.raises(tf.WSSConnectionError, match="not connected"),
                ):
                    await sm.setup_call_flow(tf.CallFlowBuilder().build())
                # The REST plane does not depend on the control socket.
                assert await sm.list_sessions() == []
            # Leaving the block in the middle of a 60 s backoff is prompt (fail_after above).
            assert sm.connection_state is tf.ConnectionState.CLOSED


async def test_withheld_pongs_are_a_lost_connection_and_it_reconnects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="telcoflow_trio")
    timeouts = Timeouts(setup=5, request=5, ping_interval=0.05, ping_timeout=0.2)
    async with no_leaks(), open_sandbox() as sandbox:
        with trio.fail_after(20):
            async with tf.SessionManager(
                sandbox.config(), timeouts=timeouts, backoff=FAST_BACKOFF
            ) as sm:
                # With pongs coming back, pings every 50 ms keep the connection up.
                await trio.sleep(0.3)
                assert sm.reconnects == 0
                sandbox.faults.withhold_pongs = True
                first_id = sm.sm_ws_id
                await sm.wait_connection_state(tf.ConnectionState.RECONNECTING)
                sandbox.faults.withhold_pongs = False
                await sm.wait_connected()
                assert sm.reconnects >= 1
                assert sm.sm_ws_id != first_id
                await sandbox.place_call()
                await sm.session_notifications.receive()
    assert "no pong within 0.2 s" in caplog.text


# ── the voice socket ────────────────────────────────────────────────────────────────────


async def test_voice_cut_mid_command_raises_call_closed_and_the_call_can_be_closed() -> None:
    async with no_leaks(), open_sandbox(time_scale=10) as sandbox:
        with trio.fail_after(20):
            async with tf.SessionManager(sandbox.config()) as sm:
                sim = await sandbox.place_call()
                async with claimed(sm) as (session, call):
                    sandbox.faults.withhold_command_responses.add("call.answer")
                    outcome: list[BaseException | tf.CommandResult] = []

                    async def answer() -> None:
                        try:
                            outcome.append(await call.answer())
                        except tf.WSSCallClosedError as exc:
                            outcome.append(exc)

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(answer)
                        await poll(lambda: len(sim.commands) == 1)
                        # The command deadline is 10 + 5 s: the cut must end it now.
                        with trio.fail_after(3):
                            await sim.drop_voice()
                    assert isinstance(outcome[0], tf.WSSCallClosedError)
                    await call.wait_terminated()
                    assert await call.close()  # idempotent on a call that is over
                    # The server still holds the call: the caller hangs up, the session ends.
                    await sim.hang_up()
                    assert await session.wait_closed() is tf.CloseReason.CALL_TERMINATED


async def test_voice_cut_mid_stream_ends_the_stream_and_every_audio_call() -> None:
    async with no_leaks(), open_sandbox(time_scale=10) as sandbox:
        with trio.fail_after(20):
            async with tf.SessionManager(sandbox.config()) as sm:
                sim = await sandbox.place_call(audio=TestSignal(seconds=30))
                async with claimed(sm) as (_session, call):
                    assert await call.answer()
                    echoed = 0
                    errors: list[BaseException] = []

                    async def echo() -> None:
                        nonlocal echoed
                        try:
                            async for chunk in await call.audio_stream():
                                await call.send_audio(chunk, wait=True)
                                echoed += len(chunk)
                        except (tf.BufferClosedError, tf.WSSCallClosedError) as exc:
                            errors.append(exc)

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(echo)
                        await sim.wait_heard(3200)
                        await sim.drop_voice()
                    # The echo loop ended by itself: the stream ended or sending refused.
                    assert echoed >= 3200
                    await call.wait_terminated()
                    with pytest.raises((tf.BufferClosedError, tf.WSSCallClosedError)):
                        await call.send_audio(b"\x00\x00")
                    # Whatever was queued can never play out now: it must not wait for it.
                    with trio.fail_after(1), contextlib.suppress(tf.WSSCallClosedError):
                        await call.wait_for_playout()
                    assert await call.close()
                    await sim.hang_up()


# ── servers that never answer ───────────────────────────────────────────────────────────


async def test_control_server_that_never_answers_the_upgrade(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_connect, "CONNECT_TIMEOUT", 0.5)
    # Before the fix, trio-websocket's open_websocket_url waited here for ever, uncancellable
    # (the control connection's task is shielded), and never closed the socket.
    async with no_leaks(), black_hole() as port:
        config = tf.SessionManagerConfig.create(
            api_key="sk-black-hole-key", connector_uuid="c", base_url=f"ws://127.0.0.1:{port}"
        )
        with trio.fail_after(5):
            assert "no handshake reply within 0.5 s" in await connect_failure(config)


async def test_voice_server_that_never_answers_the_upgrade(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_connect, "CONNECT_TIMEOUT", 0.5)
    async with no_leaks(), open_sandbox() as sandbox, black_hole() as port:
        with trio.fail_after(10):
            async with tf.SessionManager(sandbox.config()) as sm:
                sandbox.switchboard.voice_base_url = f"ws://127.0.0.1:{port}"
                sim = await sandbox.place_call()
                async with claimed(sm) as (session, call):
                    with pytest.raises(tf.WSSConnectionError, match="voice plane: could not"):
                        await call.answer()
                    assert call.state is tf.CallState.TERMINATED
                    with pytest.raises(tf.WSSCallClosedError):
                        await call.answer()
                    assert await call.close()
                    await sim.hang_up()
                    await session.wait_closed()


async def test_requests_nobody_answers_end_at_their_deadline(sandbox: Sandbox) -> None:
    timeouts = Timeouts(setup=2, request=0.3, ping_interval=30, ping_timeout=10)
    async with no_leaks():
        with trio.fail_after(10):
            async with (
                tf.SessionManager(sandbox.config(), timeouts=timeouts) as sm,
                sm.create_session("WA", "+4401") as session,
            ):
                sandbox.faults.withhold_responses.add("*")
                with pytest.raises(tf.WSSConnectionError, match=r"no response to wa\.msg\.out"):
                    await session.send_message(tf.SendWAMessage("v1", {"text": "hi"}))
                with pytest.raises(tf.WSSConnectionError, match=r"call_flow\.setup"):
                    await sm.setup_call_flow(tf.CallFlowBuilder().build())
                sandbox.faults.withhold_responses.clear()
                # The connection is still good.
                assert await session.send_message(tf.SendWAMessage("v1", {"text": "hi"}))
