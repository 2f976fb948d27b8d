"""An echo agent: answers every call and sends the caller's audio straight back.

    python examples/echo_agent.py --sandbox     # local sandbox + one simulated call
    TELCOFLOW_API_KEY=... TELCOFLOW_CONNECTOR_UUID=... python examples/echo_agent.py

With ``--sandbox`` it starts the sandbox in-process, places one simulated call that speaks a
test signal, checks that the caller heard its own words back, prints a summary and exits.
Without it, it serves real calls until interrupted (Ctrl+C). The environment may also set
TELCOFLOW_CERT_PATH and TELCOFLOW_KEY_PATH (mTLS instead of a key), TELCOFLOW_BASE_URL and
TELCOFLOW_CA_BUNDLE.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import trio

import telcoflow_trio as tf
from telcoflow_trio import run_main

log = logging.getLogger("echo_agent")


async def handle_call(call: tf.Call) -> None:
    """Answer, then send every chunk of the caller's audio back until the call ends."""
    if not await call.answer():
        return
    log.info("call %s from %s answered", call.id, call.caller_number)
    try:
        async for chunk in call.audio_stream():
            await call.send_audio(chunk, wait=True)  # back-pressure rather than an error
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass  # the caller hung up while we were sending


def config_from_env() -> tf.SessionManagerConfig:
    """Credentials from the environment (see ``SessionManagerConfig.from_env``)."""
    try:
        return tf.SessionManagerConfig.from_env()
    except (TypeError, ValueError) as exc:
        message = f"bad Telcoflow settings in the environment: {exc}, or pass --sandbox"
        raise SystemExit(message) from None


async def run_against_sandbox(seconds: float) -> int:
    from telcoflow_trio.sandbox import TestSignal, open_sandbox

    async with (
        open_sandbox() as sandbox,
        tf.SessionManager(sandbox.config()) as sm,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(sm.serve_calls, handle_call)
        sim = await sandbox.place_call(audio=TestSignal(seconds=seconds))
        with trio.fail_after(seconds + 20):
            await sim.wait_spoken()
            await sim.wait_heard(len(sim.spoken))
        await sim.hang_up()
        nursery.cancel_scope.cancel()
    ok = sim.heard == sim.spoken
    print(
        f"call {sim.call_id}: caller spoke {len(sim.spoken)} bytes, heard back "
        f"{len(sim.heard)} bytes: {'identical' if ok else 'DIFFERENT'}"
    )
    return 0 if ok else 1


async def run_for_real(config: tf.SessionManagerConfig) -> int:
    async with tf.SessionManager(config) as sm:
        await sm.serve_calls(handle_call)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sandbox", action="store_true", help="run against a local sandbox")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the test call")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.sandbox:
        return trio.run(run_against_sandbox, args.seconds)
    return trio.run(run_for_real, config_from_env())


if __name__ == "__main__":
    raise SystemExit(run_main(main))  # Ctrl+C: one line, status 130
