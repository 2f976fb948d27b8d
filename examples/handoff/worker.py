"""The media worker of the hand-off example: receives NEW calls as JSON over HTTP, answers
them and streams their audio (an echo here). Started by front.py, or on its own:

    HANDOFF_SECRET=... python examples/handoff/worker.py --port 8090

It needs no Telcoflow credentials: the hand-off document carries the call's own voice URL
and token. That token is a credential, so the worker accepts documents only with the shared
secret (header ``x-handoff-secret``), never logs them, and should listen on a private
address. It prints ``worker listening on http://HOST:PORT`` once it is ready.
POST /calls takes a document (202: accepted); GET /health answers 200.
TELCOFLOW_CA_BUNDLE, if set, verifies wss:// voice servers against that CA bundle.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import ssl
import sys
from collections.abc import Sequence
from functools import partial
from typing import Final

import h11
import trio

import telcoflow_trio as tf
from telcoflow_trio import run_main

log = logging.getLogger("handoff.worker")

MAX_BODY: Final = 64 * 1024
REQUEST_DEADLINE: Final = 10.0


async def handle_call(call: tf.Call) -> None:
    """The media side: answer and echo (a real worker would run its model here)."""
    if not await call.answer():
        log.warning("call %s: answer refused", call.id)
        return
    log.info("call %s from %s answered on the worker", call.id, call.caller_number)
    try:
        async for chunk in call.audio_stream():
            await call.send_audio(chunk, wait=True)
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass


class Worker:
    def __init__(
        self,
        nursery: trio.Nursery,
        secret: str,
        audio: tf.CallAudioConfig,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.nursery = nursery
        self.secret = secret
        self.audio = audio
        self.tls = tls
        self.accepted = 0

    async def run_call(self, call: tf.Call) -> None:
        try:
            async with call:  # the call's own scope: closed on the server when it ends
                await handle_call(call)
        except Exception:
            log.exception("call %s failed on the worker", call.id)

    def accept(self, headers: dict[bytes, bytes], body: bytes) -> tuple[int, dict[str, object]]:
        given = headers.get(b"x-handoff-secret", b"")
        if not secrets.compare_digest(given, self.secret.encode()):
            return 401, {"error": "missing or wrong x-handoff-secret"}
        try:
            call = tf.Call.from_json(body, self.audio, ssl_context=self.tls)
        except (TypeError, ValueError) as exc:
            return 400, {"error": str(exc)}  # says what is wrong, never echoes the document
        self.accepted += 1
        self.nursery.start_soon(self.run_call, call)
        return 202, {"callId": call.id}

    async def serve(self, stream: trio.SocketStream) -> None:
        """One request per connection, with a deadline and a size limit."""
        conn = h11.Connection(h11.SERVER)
        status: int = 400
        reply: dict[str, object] = {"error": "bad request"}
        with trio.move_on_after(REQUEST_DEADLINE):
            try:
                request: h11.Request | None = None
                body = bytearray()
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += event.data
                        if len(body) > MAX_BODY:
                            status, reply = 413, {"error": "document too large"}
                            break
                    elif isinstance(event, h11.EndOfMessage) and request is not None:
                        status, reply = self.route(request, bytes(body))
                        break
                    else:
                        return  # the client went away
                payload = json.dumps(reply).encode()
                headers = [
                    ("content-type", "application/json"),
                    ("content-length", str(len(payload))),
                    ("connection", "close"),
                ]
                await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
                await stream.send_all(conn.send(h11.Data(data=payload)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
            except (h11.ProtocolError, trio.BrokenResourceError):
                pass
        await stream.aclose()

    def route(self, request: h11.Request, body: bytes) -> tuple[int, dict[str, object]]:
        target = request.target.split(b"?", 1)[0]
        if request.method == b"GET" and target == b"/health":
            return 200, {"ok": True, "accepted": self.accepted}
        if request.method == b"POST" and target == b"/calls":
            return self.accept({k.lower(): v for k, v in request.headers}, body)
        return 404, {"error": "no such endpoint"}


async def run(host: str, port: int, secret: str, audio: tf.CallAudioConfig) -> None:
    ca_bundle = os.environ.get("TELCOFLOW_CA_BUNDLE")
    tls = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None
    async with trio.open_nursery() as nursery:
        worker = Worker(nursery, secret, audio, tls)
        listeners = await nursery.start(partial(trio.serve_tcp, worker.serve, port, host=host))
        bound = listeners[0].socket.getsockname()
        print(f"worker listening on http://{host}:{bound[1]}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    parser.add_argument("--sample-rate", type=int, default=16000, choices=(8000, 16000, 24000))
    args = parser.parse_args(argv)
    secret = os.environ.get("HANDOFF_SECRET", "")
    if not secret:
        raise SystemExit("set HANDOFF_SECRET: the front must send it with every call it hands over")
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    trio.run(run, args.host, args.port, secret, tf.CallAudioConfig(args.sample_rate))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))  # Ctrl+C: one line, status 130
