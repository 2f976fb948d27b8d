"""The control plane from the client's side: auth, WA sessions, REST, faults, reconnection."""

from __future__ import annotations

import asyncio
import logging

import anyio
import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio._control_connection import Timeouts
from telcoflow_trio.protocol import Backoff
from telcoflow_trio.testing import Sandbox, TestSignal, open_sandbox

from .conftest import claimed_call

FAST = Timeouts(setup=0.5, request=0.5, ping_interval=30, ping_timeout=10)


async def test_bad_api_key_is_an_authentication_error_without_the_key(sandbox: Sandbox) -> None:
    wrong = "sk-wrong-key-that-must-not-leak"
    config = sandbox.config(api_key=wrong)
    with trio.fail_after(10), pytest.raises(tf.WSSAuthenticationError) as info:
        async with tf.SessionManager(config):
            pass
    text = str(info.value)
    assert "HTTP 401" in text
    assert wrong not in text


async def test_unreachable_server_is_a_connection_error() -> None:
    async with open_sandbox() as sb:
        config = sb.config()
    with trio.fail_after(10), pytest.raises(tf.WSSConnectionError, match="could not connect"):
        async with tf.SessionManager(config):
            pass


async def test_withheld_setup_done_fails_within_the_deadline(sandbox: Sandbox) -> None:
    sandbox.faults.withhold_setup_done = True
    with trio.fail_after(10), pytest.raises(tf.WSSConnectionError, match=r"no setup\.done"):
        async with tf.SessionManager(sandbox.config(), timeouts=FAST):
            pass


async def test_withheld_response_is_a_clear_error_not_a_hang(sandbox: Sandbox) -> None:
    with trio.fail_after(10):
        async with tf.SessionManager(sandbox.config(), timeouts=FAST) as sm:
            sandbox.faults.withhold_responses.add("session.open")
            await sandbox.place_call()
            note = await sm.session_notifications.receive()
            with pytest.raises(tf.WSSConnectionError, match=r"no response to session\.open"):
                async with sm.open_session(note.session_id):
                    pass


async def test_wa_session_messages_rest_and_close(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            async with sm.create_session(tf.ChannelType.WA, "+4477") as session:
                assert session.channel is tf.ChannelType.WA
                await session.ready()
                listed = await sm.list_sessions(channel="WA")
                assert [s.id for s in listed] == [session.id]
                result = await session.send_message(tf.SendWAMessage("v1", {"text": "hello"}))
                assert result, result
                (out,) = await sandbox.wait_wa_out(1)
                assert (out.session_id, out.data) == (session.id, {"text": "hello"})
                await sandbox.send_wa_message("+4477", {"text": "hi back"})
                message = await session.messages.receive()
                assert message.content == {"text": "hi back"}
                with pytest.raises(tf.WrongChannelError):
                    await session.incoming_call()
                with pytest.raises(tf.WSSSessionAlreadyExists):
                    async with sm.create_session("WA", "+4477"):
                        pass
            assert session.is_closed
            assert session.close_reason is tf.CloseReason.SDK_REQUEST
            assert await sm.list_sessions(channel="WA") == []


async def test_open_unknown_session_is_not_found(sandbox: Sandbox) -> None:
    with trio.fail_after(10):
        async with tf.SessionManager(sandbox.config()) as sm:
            with pytest.raises(tf.WSSSessionNotFound):
                async with sm.open_session("no-such-session"):
                    pass
            with pytest.raises(ValueError, match="session_id"):
                sm.open_session("")
            with pytest.raises(ValueError, match="channel"):
                sm.create_session("SMS", "+1")


async def test_unread_notifications_are_dropped_and_counted(sandbox: Sandbox) -> None:
    with trio.fail_after(10):
        async with tf.SessionManager(sandbox.config(), notification_buffer=2) as sm:
            for _ in range(5):
                await sandbox.place_call()
            while sm.notifications_dropped < 3:  # noqa: ASYNC110 (a counter, not an event)
                await trio.sleep(0.01)
            assert sm.notifications_dropped == 3
            # The connection still works: commands keep flowing.
            assert await sm.list_sessions() != []


async def test_reconnect_keeps_live_calls_streaming(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(
            sandbox.config(), backoff=Backoff(first=0.05, maximum=0.2)
        ) as sm:
            sim = await sandbox.place_call(audio=TestSignal(seconds=2))
            async with claimed_call(sm) as (session, call):
                assert await call.answer()
                stream = await call.audio_stream()
                first_id = sm.sm_ws_id
                assert await sandbox.drop_control_connections() == 1
                with trio.fail_after(5):
                    await sm.wait_connection_state(tf.ConnectionState.RECONNECTING)
                    await sm.wait_connected()
                assert sm.sm_ws_id != first_id
                # The session is re-claimed by its holder on reconnect (another agent that
                # saw the RESUME first could not break the call); its call streams on.
                while sim.session.bound_sm_ws_id != sm.sm_ws_id:  # noqa: ASYNC110 (server state)
                    await trio.sleep(0.01)
                assert not session.is_closed
                received = 0
                async for chunk in stream:
                    await call.send_audio(chunk)
                    received += len(chunk)
                    if received >= len(sim.spoken) > 0:
                        break
                await sim.wait_heard(received)
                assert sim.heard == sim.spoken[:received]
            # Notifications resume after the reconnect.
            await sandbox.place_call()
            await sm.session_notifications.receive()


class RecordingBackoff(Backoff):
    """The protocol's schedule, scaled down 100x and without jitter; records each delay."""

    def __init__(self) -> None:
        super().__init__(first=0.005, maximum=0.1, jitter=0.0)
        self.delays: list[float] = []

    def next_delay(self) -> float:
        delay = super().next_delay()
        self.delays.append(delay)
        return delay


async def test_refused_reconnects_back_off_then_succeed(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="telcoflow_trio")
    backoff = RecordingBackoff()
    with trio.fail_after(20):
        async with tf.SessionManager(sandbox.config(), backoff=backoff) as sm:
            sandbox.faults.refuse_control = 3
            await sandbox.drop_control_connections()
            await sm.wait_connection_state(tf.ConnectionState.RECONNECTING)
            await sm.wait_connected()
            assert sandbox.faults.refuse_control == 0
            assert sm.reconnects == 1
            # One delay per failure, growing by 1.5 each time; not reset at setup.done, only
            # once the connection has stayed up for stable_after seconds.
            assert backoff.delays == pytest.approx([0.005, 0.0075, 0.01125, 0.016875])
            assert backoff.attempt == 4
            assert backoff.up_since is not None
    assert caplog.text.count("control connection attempt failed") == 3
    assert sandbox.api_key not in caplog.text


async def test_closing_the_manager_stops_reconnecting(sandbox: Sandbox) -> None:
    with trio.fail_after(10):
        async with tf.SessionManager(sandbox.config(), backoff=Backoff(first=30, maximum=30)) as sm:
            await sandbox.drop_control_connections()
            await sm.wait_connection_state(tf.ConnectionState.RECONNECTING)
        assert sm.connection_state is tf.ConnectionState.CLOSED


async def test_malformed_control_frames_are_ignored(sandbox: Sandbox) -> None:
    with trio.fail_after(10):
        async with tf.SessionManager(sandbox.config()) as sm:
            await sandbox.send_malformed_control()
            await sandbox.place_call()
            note = await sm.session_notifications.receive()
            assert note.channel is tf.ChannelType.TELCO
            assert sm.connection_state is tf.ConnectionState.CONNECTED


async def test_works_under_anyio_on_trio(sandbox: Sandbox) -> None:
    with trio.fail_after(10):
        async with anyio.create_task_group() as tg, tf.SessionManager(sandbox.config()) as sm:
            await sandbox.place_call()
            note = await sm.session_notifications.receive()
            assert note.channel is tf.ChannelType.TELCO
            tg.cancel_scope.cancel()


def test_refuses_to_run_under_asyncio() -> None:
    config = tf.SessionManagerConfig.create(
        api_key="k", connector_uuid="c", base_url="ws://127.0.0.1:9"
    )

    async def main() -> None:
        async with tf.SessionManager(config):
            pass

    with pytest.raises(RuntimeError, match="runs on trio"):
        asyncio.run(main())
