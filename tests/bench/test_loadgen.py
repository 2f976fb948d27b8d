"""bench/loadgen.py, the light server of the call benchmark: a real subprocess on port 0,
our SDK as the agent in this process, and the generator's own counters checked.

Nothing here looks at timings: only that frames went out, pulls were answered, and what
came back is byte for byte what the caller said (or, for an agent that does not echo,
that the generator notices).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pytest
import trio
import trio_websocket

import telcoflow_trio as tf

Engine = Literal["trio-websocket", "websockets"]
BENCH = Path(__file__).resolve().parents[2] / "bench"
RATE = 24_000
ONE_SECOND = RATE * 2


def _load(name: str) -> ModuleType:
    """A bench script as a module (they import their siblings, so bench/ goes on the path)."""
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


loadgen = _load("loadgen")


async def _echo(call: tf.Call) -> None:
    assert await call.answer()
    async for chunk in call.audio_stream():
        await call.send_audio(chunk)


async def _serve(
    gen: Any,
    handler: Callable[[tf.Call], Awaitable[None]],
    calls: int,
    ca_bundle: Path | None = None,
    transport: Engine | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """Place ``calls`` calls on ``gen`` served by ``handler``; measure until every call has
    had a second of its audio pulled; hang up. Returns (report, per-call counters, handlers
    that ended: returned, or raised ``WSSCallClosedError`` for the hang-up)."""
    config = tf.SessionManagerConfig.create(
        api_key=gen.api_key,
        connector_uuid=gen.connector_uuid,
        base_url=gen.url,
        call_audio=tf.CallAudioConfig(sample_rate=RATE),
        ca_bundle=ca_bundle,
        transport=transport,
    )
    finished = 0
    all_finished = trio.Event()

    async def counted(call: tf.Call) -> None:
        nonlocal finished
        # The hang-up may come between a chunk and its echo: an agent's normal end.
        with contextlib.suppress(tf.WSSCallClosedError):
            await handler(call)
        finished += 1
        if finished == calls:
            all_finished.set()

    async with tf.SessionManager(config) as sm, trio.open_nursery() as nursery:
        nursery.start_soon(sm.serve_calls, counted)
        await gen.wait_for(lambda s: s["controls"] == 1, 30, "the agent")
        await gen.request("place", n=calls)
        await gen.wait_for(lambda s: s["live"] == calls, 30, "live calls")
        await gen.request("window")
        with trio.fail_after(60):
            while True:
                counters = (await gen.request("calls"))["calls"]
                if all(c["requestedBytes"] >= ONE_SECOND for c in counters):
                    break
                await trio.sleep(0.1)
        report = await gen.request("report")
        assert (await gen.request("hangup"))["ended"] == calls
        with trio.fail_after(30):
            await all_finished.wait()
        counters = (await gen.request("calls"))["calls"]
        nursery.cancel_scope.cancel()
    return report, counters, finished


async def test_echo_calls_come_back_byte_exact() -> None:
    async with loadgen.LoadGen.start() as gen:
        report, calls, finished = await _serve(gen, _echo, 3)
        status = await gen.request("status")
    assert finished == 3
    assert status["ended"] == 3
    assert report["measured"] is True
    assert report["verified"] is True
    assert report["ticks"] > 0
    assert report["framesOut"] > 0
    assert report["connectionSeconds"] > 0
    assert report["cpuMsPerConnectionSecond"] > 0
    assert report["pulls"] >= 3
    assert report["pullsFilled"] > 0
    assert report["fillP50Ms"] is not None
    assert report["lagP50Ms"] is not None
    assert report["audioBytesIn"] > 0
    assert report["commands"] == {}
    for call in calls:
        assert call["ended"] is True, call
        assert call["heardBytes"] >= ONE_SECOND // 2, call
        assert call["mismatchedFrames"] == 0, call
        assert call["excessBytes"] == 0, call
        assert call["overEchoBytes"] == 0, call
        assert call["heardBytes"] <= call["requestedBytes"] <= call["spokenBytes"], call


@pytest.mark.parametrize("transport", ["trio-websocket", "websockets"])
async def test_over_tls_echo_calls_come_back_byte_exact(tmp_path: Path, transport: Engine) -> None:
    """With ``--certfile``/``--keyfile`` (as bench_calls.py --tls makes them) the generator
    serves wss:// only: an agent that trusts its authority echoes byte for byte; a plain
    ws:// client gets no upgrade."""
    args, env = _load("bench_calls").tls_files(tmp_path)
    ca = Path(env["SSL_CERT_FILE"])
    async with loadgen.LoadGen.start(*args) as gen:
        assert gen.url.startswith("wss://127.0.0.1:")
        port = int(gen.url.rsplit(":", 1)[1])
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(
                    b"GET /v1/agent/session-manager HTTP/1.1\r\nHost: x\r\n"
                    b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                )
                answer = b""
                with contextlib.suppress(trio.BrokenResourceError):
                    while chunk := await stream.receive_some(4096):
                        answer += chunk
        assert b"HTTP/1.1" not in answer  # at most a TLS alert, then the server hangs up
        report, calls, finished = await _serve(gen, _echo, 2, ca, transport)
    assert finished == 2
    assert report["verified"] is True and report["pullsFilled"] > 0
    for call in calls:
        assert call["heardBytes"] >= ONE_SECOND // 2, call
        assert call["mismatchedFrames"] == 0 and call["excessBytes"] == 0, call


async def test_audio_that_is_not_the_callers_is_caught() -> None:
    """The echo check can fail: an agent that answers pulls with silence is reported."""

    async def silence(call: tf.Call) -> None:
        assert await call.answer()
        async for chunk in call.audio_stream():
            await call.send_audio(bytes(len(chunk)))

    async with loadgen.LoadGen.start() as gen:
        _, calls, _ = await _serve(gen, silence, 2)
    for call in calls:
        assert call["heardBytes"] > 0, call
        assert call["mismatchedFrames"] > 0, call
        assert call["excessBytes"] == 0, call


async def test_commands_are_answered_as_the_sandbox_answers_them() -> None:
    results: list[tf.CommandResult] = []

    async def whisper_then_echo(call: tf.Call) -> None:
        assert await call.answer()
        results.append(await call.whisper())  # no connected human: a falsy round trip
        async for chunk in call.audio_stream():
            await call.send_audio(chunk)

    async with loadgen.LoadGen.start() as gen:
        report, calls, _ = await _serve(gen, whisper_then_echo, 2)
    assert len(results) == 2
    assert all(not r and r.error_code == "CALL_NOT_CONNECTED" for r in results)
    assert all(c["mismatchedFrames"] == 0 for c in calls)
    assert report["pullsFilled"] > 0


async def test_wrong_credentials_are_refused() -> None:
    async with loadgen.LoadGen.start() as gen:
        config = tf.SessionManagerConfig.create(
            api_key="sk-not-the-key", connector_uuid=gen.connector_uuid, base_url=gen.url
        )
        with pytest.raises(tf.WSSAuthenticationError):
            async with tf.SessionManager(config):
                pass
        assert (await gen.request("status"))["controls"] == 0


def test_frames_match_the_pattern_from_any_offset() -> None:
    frames = loadgen.Frames(RATE, 0.02, 0.1, None, seed=3)
    pcm = frames.doubled[: frames.period]
    assert frames.frame_bytes == 960
    assert frames.pull_bytes == 4800
    for start in (0, 17, frames.period - 5, 3 * frames.period + 11):
        size = 4800
        piece = (pcm * 3)[start % frames.period :][:size]
        assert frames.matches(start, memoryview(piece))
        assert not frames.matches(start + 2, memoryview(piece))
    longer = (pcm * 4)[100 : 100 + 2 * frames.period + 7]  # longer than the whole pattern
    assert frames.matches(100, memoryview(longer))
    assert not frames.matches(101, memoryview(longer))


def test_ratios_are_paired_per_repetition_then_the_median() -> None:
    bench = _load("bench_calls")

    def point(client: str, rep: int, cpu: float) -> dict[str, Any]:
        return {
            "client": client,
            "n": 50,
            "rep": rep,
            "cpuMsPerCallSecond": cpu,
            "saturated": False,
        }

    # Machine load moves both clients together: per-repetition ratios are 1.1 each time,
    # while the ratio of the medians (2.2 / 3.0) would say 0.73.
    points = [
        point("ours", 0, 1.1),
        point("floor", 0, 1.0),
        point("ours", 1, 2.2),
        point("floor", 1, 2.0),
        point("ours", 2, 5.5),
        point("floor", 2, 5.0),
        point("floor", 3, 3.0),  # its pair failed: not counted
    ]
    ratios = bench.paired_ratios(points)
    paired = ratios["50"]["ours/floor"]
    assert paired["reps"] == 3
    assert paired["cpuMsPerCallSecond"] == pytest.approx(1.1)
    assert paired["saturatedReps"] == 0


def test_ours_runs_back_to_back_with_each_reference_in_both_orders() -> None:
    bench = _load("bench_calls")
    three = ["ours", "official", "floor"]
    orders = [bench.run_order(three, turn) for turn in range(4)]
    for order in orders:
        assert sorted(order) == sorted(three)
        assert order[1] == "ours"  # next to both references
    assert orders[0] != orders[1]
    assert orders[0] == orders[2]
    two = [bench.run_order(["ours", "floor"], turn) for turn in range(2)]
    assert two == [["floor", "ours"], ["ours", "floor"]]


async def test_control_plane_handshake_and_pings() -> None:
    async with loadgen.LoadGen.start() as gen:
        headers = [
            (b"x-api-key", gen.api_key.encode()),
            (b"x-connector-uuid", gen.connector_uuid.encode()),
        ]
        async with trio_websocket.open_websocket_url(
            gen.url + "/v1/agent/session-manager", extra_headers=headers
        ) as ws:
            await ws.send_message(json.dumps({"type": "setup", "data": {"sampleRate": RATE}}))
            done = json.loads(await ws.get_message())
            assert done["type"] == "setup.done"
            assert done["smWsId"].startswith("smws-")
            with trio.fail_after(10):
                await ws.ping(b"are you there")  # returns once the pong has come back
            await gen.request("place", n=1)
            notify = json.loads(await ws.get_message())
            assert notify["type"] == "session.notify"
            assert notify["activity"] == "NEW_INCOMING_CALL"
            await ws.send_message(
                json.dumps(
                    {"type": "session.open", "sessionId": notify["sessionId"], "reqId": "r1"}
                )
            )
            opened = json.loads(await ws.get_message())
            assert opened["reqId"] == "r1"
            assert opened["ok"] is True
            assert opened["content"]["session"]["id"] == notify["sessionId"]
            await ws.send_message(
                json.dumps({"type": "session.ready", "sessionId": notify["sessionId"]})
            )
            call_in = json.loads(await ws.get_message())
            assert call_in["type"] == "call.in"
            assert call_in["url"] == f"{gen.url}/v1/voice/{call_in['callId']}"


async def _http(gen: Any, request: str) -> tuple[int, Any]:
    host, port = gen.url.removeprefix("ws://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(request.encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_rest_lists_and_closes_sessions() -> None:
    async with loadgen.LoadGen.start() as gen:
        await gen.request("place", n=2)
        auth = f"x-api-key: {gen.api_key}\r\nx-connector-uuid: {gen.connector_uuid}\r\n"
        status, listed = await _http(
            gen, f"GET /public/v1/sessions?state=OPEN HTTP/1.1\r\nHost: x\r\n{auth}\r\n"
        )
        assert status == 200
        assert len(listed["items"]) == 2
        first = listed["items"][0]["id"]
        close = f"POST /public/v1/sessions/{first}/close HTTP/1.1\r\nHost: x\r\n{auth}"
        status, closed = await _http(gen, close + "Content-Length: 0\r\n\r\n")
        assert (status, closed["reason"]) == (200, "SDK_REQUEST")
        status, _ = await _http(gen, close + "Content-Length: 0\r\n\r\n")
        assert status == 404  # already closed
        assert (await gen.request("status"))["ended"] == 1
        status, _ = await _http(gen, "GET /public/v1/sessions HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 401


async def test_a_voice_client_that_stops_reading_is_dropped() -> None:
    """Writes the kernel will not take wait in a backlog (counted as stalls) and are flushed
    in order; past --max-backlog the client is taken for dead and its connection dropped,
    and the call goes on without it."""
    # Small kernel buffers on both sides, so the backlog starts within a second.
    async with loadgen.LoadGen.start("--max-backlog", "65536", "--sndbuf", "8192") as gen:
        headers = [
            (b"x-api-key", gen.api_key.encode()),
            (b"x-connector-uuid", gen.connector_uuid.encode()),
        ]
        async with trio_websocket.open_websocket_url(
            gen.url + "/v1/agent/session-manager", extra_headers=headers
        ) as ws:
            await ws.send_message(json.dumps({"type": "setup", "data": {"sampleRate": RATE}}))
            await ws.get_message()  # setup.done
            await gen.request("place", n=1)
            session_id = json.loads(await ws.get_message())["sessionId"]
            await ws.send_message(
                json.dumps({"type": "session.open", "sessionId": session_id, "reqId": "r"})
            )
            await ws.get_message()  # the claim's response
            await ws.send_message(json.dumps({"type": "session.ready", "sessionId": session_id}))
            call_in = json.loads(await ws.get_message())

            # The voice plane by hand, on a socket with a tiny receive buffer that is
            # never read after the handshake.
            sock = trio.socket.socket()
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
            host, port = gen.url.removeprefix("ws://").split(":")
            await sock.connect((host, int(port)))
            with sock:
                path = call_in["url"].removeprefix(gen.url)
                await sock.send(
                    (
                        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {call_in['token']}"
                        "\r\n\r\n"
                    ).encode()
                )
                head = b""
                while b"\r\n\r\n" not in head:
                    head += await sock.recv(1)  # exactly the head: no frame is read
                assert head.startswith(b"HTTP/1.1 101")
                answer = json.dumps(
                    {"type": "command", "data": {"command_id": "c1", "command": "call.answer"}}
                ).encode()
                # A client frame is masked; a zero mask leaves the payload as it is.
                await sock.send(bytes([0x81, 0x80 | len(answer)]) + bytes(4) + answer)
                await gen.request("window")
                await gen.wait_for(
                    lambda s: s["answered"] == 1 and s["live"] == 0, 30, "the client dropped"
                )
                report = await gen.request("report")
        assert report["dropped"] == 1
        assert report["writeStalls"] >= 1
        assert report["framesOut"] > 0
        assert report["calls"] == 1
        assert report["ended"] == 0  # the call itself is still up
