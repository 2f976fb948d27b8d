"""An echo agent: answers every call and sends the caller's audio straight back.

    python examples/echo_agent.py --sandbox     # local sandbox + one simulated call
    TELCOFLOW_API_KEY=... TELCOFLOW_CONNECTOR_UUID=... python examples/echo_agent.py

With ``--sandbox`` it starts the sandbox in-process, places one simulated call that speaks a
test signal, checks that the caller heard its own words back, prints a summary and exits.
Without it, it serves real calls until interrupted (Ctrl+C).
"""

from __future__ import annotations

import argparse
import logging
import os

import trio

import telcoflow_trio as tf

log = logging.getLogger("echo_agent")


async def echo(call: tf.Call) -> None:
    if not await call.answer():
        return
    log.info("call %s from %s answered", call.id, call.caller_number)
    async for chunk in await call.audio_stream():
        await call.send_audio(chunk, wait=True)  # back-pressure rather than an error


async def run_against_sandbox(seconds: float) -> int:
    from telcoflow_trio.testing import TestSignal, open_sandbox

    async with (
        open_sandbox() as sandbox,
        tf.SessionManager(sandbox.config()) as sm,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(sm.serve_calls, echo)
        sim = await sandbox.place_call(audio=TestSignal(seconds=seconds))
        with trio.fail_after(seconds + 10):
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


async def run_for_real() -> int:
    config = tf.SessionManagerConfig.create(
        api_key=os.environ["TELCOFLOW_API_KEY"],
        connector_uuid=os.environ["TELCOFLOW_CONNECTOR_UUID"],
        base_url=os.environ.get("TELCOFLOW_BASE_URL"),
    )
    async with tf.SessionManager(config) as sm:
        await sm.serve_calls(echo)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sandbox", action="store_true", help="run against a local sandbox")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the test call")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.sandbox:
        return trio.run(run_against_sandbox, args.seconds)
    return trio.run(run_for_real)


if __name__ == "__main__":
    raise SystemExit(main())
