"""ControlConnection and VoiceConnection over the in-memory connector, on a MockClock: the
handshake, requests, commands, pushed frames, reconnection and both keep-alives, in
milliseconds and without a socket."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import trio
import trio.testing

import telcoflow_trio as tf
from telcoflow_trio._control_connection import ConnectionState, ControlConnection, Timeouts
from telcoflow_trio._transport import Accepted, MemoryConnector, SocketClosed
from telcoflow_trio._voice_connection import VoiceConnection, VoiceTimeouts
from telcoflow_trio.audio import IncomingAudio, SendAudioBuffer
from telcoflow_trio.protocol import Backoff, control, voice

API_KEY = "sk-unit-test-secret"
CONFIG = tf.SessionManagerConfig.create(
    api_key=API_KEY, connector_uuid="connector-1", base_url="ws://unit.test:9"
)
NO_JITTER = Backoff(first=0.5, jitter=0.0)


async def receive_json(accepted: Accepted) -> dict[str, Any]:
    frame = json.loads(await accepted.socket.receive())
    assert isinstance(frame, dict)
    return frame


async def serve_setup(connector: MemoryConnector, sm_ws_id: str) -> Accepted:
    """Play the server's side of one control connection's handshake."""
    accepted = await connector.accept()
    assert await receive_json(accepted) == {
        "type": "setup",
        "data": {"sampleRate": 16000, "audioMode": "mixed"},
    }
    await accepted.socket.send(json.dumps({"type": "setup.done", "smWsId": sm_ws_id}))
    return accepted


async def test_control_handshake_request_push_and_a_polite_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    connector = MemoryConnector()
    pushed: list[control.ServerControlFrame] = []
    conn = ControlConnection(CONFIG, pushed.append, connect=connector)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.run)
        server = await serve_setup(connector, "sm-1")
        await conn.wait_state(ConnectionState.CONNECTED)
        assert conn.sm_ws_id == "sm-1"
        assert server.url == CONFIG.control_url
        assert server.headers["x-api-key"] == API_KEY
        assert server.headers["x-connector-uuid"] == "connector-1"

        async def answer() -> None:
            frame = await receive_json(server)
            assert (frame["type"], frame["sessionId"]) == ("session.open", "s-1")
            reply = control.Response(frame["reqId"], ok=True, content={"session": "s-1"})
            await server.socket.send(control.encode_frame(reply))

        nursery.start_soon(answer)
        response = await conn.request(control.SessionOpen("s-1"))
        assert response.ok
        assert response.content == {"session": "s-1"}

        await conn.send(control.SessionReady("s-1"))
        assert await receive_json(server) == {"type": "session.ready", "sessionId": "s-1"}

        closed = control.SessionClosed("s-1", tf.CloseReason.SDK_REQUEST)
        await server.socket.send(control.encode_frame(closed))
        await trio.testing.wait_all_tasks_blocked()
        assert pushed == [closed]

        await conn.close()
    assert conn.state is ConnectionState.CLOSED
    with pytest.raises(SocketClosed) as info:
        await server.socket.receive()
    assert info.value.code == 1000
    assert connector.attempts == 1


async def test_control_reconnects_after_the_server_end_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    connector = MemoryConnector()
    restored: list[str | None] = []

    async def on_reconnected() -> None:
        restored.append(conn.sm_ws_id)

    conn = ControlConnection(
        CONFIG, lambda frame: None, on_reconnected, backoff=NO_JITTER, connect=connector
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.run)
        first = await serve_setup(connector, "sm-1")
        await conn.wait_state(ConnectionState.CONNECTED)

        failed: list[Exception] = []

        async def request_in_flight() -> None:
            try:
                await conn.request(control.SessionOpen("s-1"))
            except tf.WSSConnectionError as exc:
                failed.append(exc)

        nursery.start_soon(request_in_flight)
        await receive_json(first)  # the request reached the server: now it drops
        await first.socket.aclose()
        await conn.wait_state(ConnectionState.RECONNECTING)
        await trio.testing.wait_all_tasks_blocked()
        assert [str(e) for e in failed] == ["control connection lost"]
        with pytest.raises(tf.WSSConnectionError, match="not connected"):
            await conn.send(control.SessionReady("s-1"))

        start = trio.current_time()
        await serve_setup(connector, "sm-2")
        assert trio.current_time() - start == pytest.approx(NO_JITTER.first)
        await conn.wait_state(ConnectionState.CONNECTED)
        await trio.testing.wait_all_tasks_blocked()
        assert (conn.reconnects, conn.sm_ws_id, restored) == (1, "sm-2", ["sm-2"])
        await conn.close()


async def test_control_first_attempt_refused_or_never_set_up_is_an_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    connector = MemoryConnector()
    connector.refuse_next(503, "maintenance")
    conn = ControlConnection(CONFIG, lambda frame: None, connect=connector)
    with pytest.raises(tf.WSSConnectionError) as refused:
        await conn.run()
    assert refused.value.status_code == 503
    assert conn.state is ConnectionState.CLOSED

    conn = ControlConnection(CONFIG, lambda frame: None, connect=connector)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connector.accept)  # accepted, never answered
        start = trio.current_time()
        with pytest.raises(tf.WSSConnectionError, match=r"no setup\.done within 10 s"):
            await conn.run()
        assert trio.current_time() - start == pytest.approx(10)


async def test_control_keep_alive_ends_a_half_dead_socket_then_reconnects(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="telcoflow_trio")
    connector = MemoryConnector()
    conn = ControlConnection(CONFIG, lambda frame: None, backoff=NO_JITTER, connect=connector)
    timeouts = Timeouts()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.run)
        server = await serve_setup(connector, "sm-1")
        await conn.wait_state(ConnectionState.CONNECTED)
        # Answered pings keep it up.
        await trio.sleep(timeouts.ping_interval * 3)
        assert conn.state is ConnectionState.CONNECTED
        server.socket.stop_answering_pings()
        start = trio.current_time()
        await conn.wait_state(ConnectionState.RECONNECTING)
        assert trio.current_time() - start <= timeouts.ping_interval + timeouts.ping_timeout
        # Dropped, not closed: a half-dead path gets no close frame.
        with pytest.raises(SocketClosed) as info:
            await server.socket.receive()
        assert info.value.code == 1006
        await serve_setup(connector, "sm-2")
        await conn.wait_state(ConnectionState.CONNECTED)
        await conn.close()
    assert "control plane: no pong within 10 s: connection lost" in caplog.text


def voice_connection(connector: MemoryConnector, **kwargs: Any) -> VoiceConnection:
    return VoiceConnection(
        "ws://unit.test:9/v1/voice/call-1",
        "tok-unit-secret",
        None,
        SendAudioBuffer(1024),
        lambda event: None,
        connect=connector,
        **kwargs,
    )


async def test_voice_commands_audio_and_a_polite_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    connector = MemoryConnector()
    incoming = IncomingAudio()
    conn = voice_connection(connector, incoming=incoming)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        server = await connector.accept()
        assert server.headers["Authorization"] == "Bearer tok-unit-secret"
        assert server.what == "voice plane"

        async def answer() -> None:
            frame = await receive_json(server)
            reply = voice.CommandResponse(frame["data"]["command_id"], success=True)
            await server.socket.send(voice.encode_frame(reply))

        nursery.start_soon(answer)
        assert await conn.command("call.answer", 10_000)
        assert len(conn.command_rtts) == 1

        await server.socket.send(b"\x00pcm")
        assert await incoming.stream(0).receive() == b"pcm"
        await conn.aclose()
    assert conn.closed
    with pytest.raises(SocketClosed) as info:
        await server.socket.receive()
    assert info.value.code == 1000


@pytest.mark.parametrize("timeouts", [VoiceTimeouts(), VoiceTimeouts(1, 2)])
async def test_voice_keep_alive_ends_a_half_dead_socket_within_its_deadline(
    timeouts: VoiceTimeouts,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="telcoflow_trio")
    connector = MemoryConnector()
    incoming = IncomingAudio()
    conn = voice_connection(connector, timeouts=timeouts, incoming=incoming)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        server = await connector.accept()
        await trio.sleep(timeouts.ping_interval * 3)
        assert not server.socket.closed  # answered pings keep it up
        server.socket.stop_answering_pings()
        start = trio.current_time()
        # The call's audio stream ends with the socket, as for any lost socket.
        async for _ in incoming.stream(0):
            pass  # pragma: no cover
        assert trio.current_time() - start <= timeouts.ping_interval + timeouts.ping_timeout
    assert conn.closed
    with pytest.raises(tf.WSSCallClosedError):
        await conn.command("call.answer", 10_000)
    with pytest.raises(SocketClosed) as info:
        await server.socket.receive()
    assert info.value.code == 1006
    assert f"voice plane: no pong within {timeouts.ping_timeout:g} s" in caplog.text
    assert VoiceTimeouts() == VoiceTimeouts(ping_interval=20, ping_timeout=20)
