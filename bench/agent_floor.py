"""The floor: a minimal echo agent written directly on trio-websocket, with no SDK logic.

One task per call reads the voice socket and answers pull requests inline, with the
official client's framing rule (wait for min(prefer_audio_frame_bytes, owed), then send
what is held up to what is owed). No channels, no buffer object, no cancel scopes, no
validation: what is left is the transport's own cost, which our SDK is measured against.
Echo mode only; sends the same periodic whisper as the SDK agents.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import uuid
from typing import Any

import trio
import trio_websocket
from _benchlib import SAMPLE_RATE, AgentStats, agent_parser, run_profiled

CONTROL_PATH = "/v1/agent/session-manager"


def _command(name: str) -> str:
    data = {"command_id": str(uuid.uuid4()), "command": name, "timeout_ms": 10_000}
    return json.dumps({"type": "command", "data": data})


async def _whispers(ws: trio_websocket.WebSocketConnection, every: float, seed: str) -> None:
    await trio.sleep(random.Random(seed).uniform(0, every))
    while True:
        await ws.send_message(_command("agent.whisper"))
        await trio.sleep(every)


async def _call(msg: dict[str, Any], args: argparse.Namespace, stats: AgentStats) -> None:
    headers = [(b"authorization", f"Bearer {msg['token']}".encode())]
    stats.calls += 1
    async with (
        trio_websocket.open_websocket_url(msg["url"], extra_headers=headers) as ws,
        trio.open_nursery() as nursery,
    ):
        await ws.send_message(_command("call.answer"))
        if args.command_every > 0:
            nursery.start_soon(_whispers, ws, args.command_every, f"{args.seed}-{msg['callId']}")
        held = bytearray()
        owed = 0
        floor = 960
        try:
            while True:
                data = await ws.get_message()
                if isinstance(data, bytes):
                    held += memoryview(data)[1:]
                else:
                    frame = json.loads(data)
                    if frame["type"] == "buffer_request":
                        req = frame["data"]
                        owed += req["requested_bytes"]
                        floor = req.get("prefer_audio_frame_bytes") or 960
                    elif frame["type"] == "call_event":
                        if frame["data"].get("event") == "call.terminated":
                            break
                        continue
                    else:
                        continue
                while owed and len(held) >= min(floor, owed):
                    n = min(len(held), owed)
                    await ws.send_message(b"\x00" + held[:n])
                    del held[:n]
                    owed -= n
        except trio_websocket.ConnectionClosed:
            pass
        nursery.cancel_scope.cancel()


async def _main(args: argparse.Namespace) -> None:
    stats = AgentStats("floor")
    headers = [
        (b"x-api-key", args.api_key.encode()),
        (b"x-connector-uuid", args.connector_uuid.encode()),
        (b"x-sdk-version", b"bench-floor"),
    ]
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with (
            trio_websocket.open_websocket_url(args.url + CONTROL_PATH, extra_headers=headers) as sm,
            trio.open_nursery() as nursery,
        ):

            async def control() -> None:
                setup = {"sampleRate": SAMPLE_RATE, "audioMode": "mixed"}
                await sm.send_message(json.dumps({"type": "setup", "data": setup}))
                opening: dict[str, str] = {}
                while True:
                    msg = json.loads(await sm.get_message())
                    kind = msg.get("type")
                    if kind == "session.notify":
                        req_id = str(uuid.uuid4())
                        opening[req_id] = msg["sessionId"]
                        frame = {"type": "session.open", "sessionId": msg["sessionId"]}
                        await sm.send_message(json.dumps({**frame, "reqId": req_id}))
                    elif kind == "response":
                        session_id = opening.pop(msg.get("reqId"), None)
                        if session_id is not None and msg.get("ok"):
                            ready = {"type": "session.ready", "sessionId": session_id}
                            await sm.send_message(json.dumps(ready))
                    elif kind == "call.in":
                        nursery.start_soon(_call, msg, args, stats)

            nursery.start_soon(control)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
    stats.write(args.out)


def main() -> None:
    args = agent_parser(__doc__.split("\n")[0]).parse_args()
    if args.mode != "echo":
        raise SystemExit("the floor agent only echoes")
    logging.basicConfig(level=logging.WARNING)
    run_profiled("floor", lambda: trio.run(_main, args))


if __name__ == "__main__":
    main()
