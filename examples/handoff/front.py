"""The front of the hand-off example: claims each new call and hands it, still NEW, to a
media worker process over HTTP; the worker answers it and streams its audio.

    python examples/handoff/front.py --sandbox     # sandbox + a worker process + two calls
    TELCOFLOW_API_KEY=... TELCOFLOW_CONNECTOR_UUID=... HANDOFF_WORKER_URL=http://10.0.0.5:8090 \\
        HANDOFF_SECRET=... python examples/handoff/front.py

The front holds the control connection and wins the claim race; ``call.to_json()`` gives
the hand-off document of a call that has not opened its voice plane yet (``CallState.NEW``),
after which the front's ``Call`` is inert and leaving the session's scope leaves the call
alone. If the worker cannot take the call, the front takes it back from the same document
and ends it, rather than leaving the caller ringing. The document carries the call's voice
token: send it over a private network, with the shared secret, and never log it.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import httpx
import trio

import telcoflow_trio as tf
from telcoflow_trio import run_main

log = logging.getLogger("handoff.front")

WORKER = Path(__file__).with_name("worker.py")


async def hand_off(call: tf.Call, http: httpx.AsyncClient, worker_url: str, secret: str) -> bool:
    """Give a NEW call to the worker; True once the worker has accepted it."""
    document = call.to_json()
    try:
        response = await http.post(
            worker_url.rstrip("/") + "/calls",
            content=document,
            headers={"content-type": "application/json", "x-handoff-secret": secret},
        )
    except httpx.HTTPError as exc:
        log.warning("call %s: worker unreachable (%s)", call.id, type(exc).__name__)
    else:
        if response.status_code == 202:
            log.info("call %s handed to the worker", call.id)
            return True
        log.warning("call %s: worker refused it (HTTP %d)", call.id, response.status_code)
    # Nobody will answer it: take it back from the document and end it.
    async with tf.Call.from_json(document, call.audio_config) as taken_back:
        await taken_back.disconnect()
    return False


async def serve_front(sm: tf.SessionManager, worker_url: str, secret: str) -> None:
    """Claim every TELCO notification and hand its call over; runs until cancelled."""

    async def claim(session_id: str) -> None:
        try:
            async with sm.open_session(session_id) as session:
                call = await session.incoming_call()
                await hand_off(call, http, worker_url, secret)
        except tf.WSSSessionBusy:
            log.debug("session %s: another front has it", session_id)
        except tf.WSSError as exc:
            log.warning("session %s: %s", session_id, exc)

    async with httpx.AsyncClient(timeout=10) as http, trio.open_nursery() as nursery:
        async for note in sm.session_notifications:
            if note.channel is tf.ChannelType.TELCO:
                nursery.start_soon(claim, note.session_id)


def config_from_env() -> tf.SessionManagerConfig:
    """Credentials from the environment (see ``SessionManagerConfig.from_env``)."""
    try:
        return tf.SessionManagerConfig.from_env()
    except (TypeError, ValueError) as exc:
        message = f"bad Telcoflow settings in the environment: {exc}, or pass --sandbox"
        raise SystemExit(message) from None


async def start_worker(nursery: trio.Nursery, secret: str) -> tuple[trio.Process, str]:
    """Run worker.py as a child process and read the URL it announces."""
    env = dict(os.environ, HANDOFF_SECRET=secret)
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            [sys.executable, str(WORKER)],
            env=env,
            stdout=subprocess.PIPE,
            check=False,
        )
    )
    assert process.stdout is not None
    announced = b""
    with trio.fail_after(15):
        while b"\n" not in announced:
            data = await process.stdout.receive_some(1024)
            if not data:
                raise RuntimeError("the worker exited before it was ready")
            announced += data
    line = announced.split(b"\n", 1)[0].decode()
    return process, line.rsplit(" ", 1)[-1]


async def run_against_sandbox() -> int:
    from telcoflow_trio.sandbox import TestSignal, open_sandbox

    secret = secrets.token_urlsafe(16)
    async with trio.open_nursery() as outer:
        worker, worker_url = await start_worker(outer, secret)
        try:
            async with (
                open_sandbox(time_scale=4) as sandbox,
                tf.SessionManager(sandbox.config()) as sm,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(serve_front, sm, worker_url, secret)
                sims = [
                    await sandbox.place_call(f"+1555000{i}", audio=TestSignal(1.0, seed=i))
                    for i in range(2)
                ]
                with trio.fail_after(30):
                    for sim in sims:
                        await sim.wait_spoken()
                        await sim.wait_heard(len(sim.spoken))
                        await sim.hang_up()
                nursery.cancel_scope.cancel()
            async with httpx.AsyncClient(timeout=10) as http:
                health = (await http.get(worker_url + "/health")).json()
        finally:
            worker.terminate()
    ok = health.get("accepted") == len(sims)
    print(f"the worker accepted {health.get('accepted')} call(s)")
    for sim in sims:
        # The front's connection claimed the session; the worker opened the voice plane.
        echoed = sim.heard == sim.spoken and sim.voice_connections == 1
        ok = ok and echoed and [c.command for c in sim.commands][:1] == ["call.answer"]
        print(f"call {sim.call_id}: answered by the worker, echo {'exact' if echoed else 'WRONG'}")
    return 0 if ok else 1


async def run_for_real(config: tf.SessionManagerConfig, worker_url: str, secret: str) -> int:
    async with tf.SessionManager(config) as sm:
        await serve_front(sm, worker_url, secret)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sandbox", action="store_true", help="run against a local sandbox")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.sandbox:
        return trio.run(run_against_sandbox)
    config = config_from_env()
    worker_url = os.environ.get("HANDOFF_WORKER_URL", "")
    secret = os.environ.get("HANDOFF_SECRET", "")
    if not worker_url or not secret:
        raise SystemExit(
            "set HANDOFF_WORKER_URL and HANDOFF_SECRET (the worker's), or pass --sandbox"
        )
    return trio.run(run_for_real, config, worker_url, secret)


if __name__ == "__main__":
    raise SystemExit(run_main(main))  # Ctrl+C: one line, status 130
