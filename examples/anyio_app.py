"""The SDK inside an anyio application (trio backend): task groups, anyio streams, threads.

    python examples/anyio_app.py --sandbox     # two simulated calls at once
    TELCOFLOW_API_KEY=... TELCOFLOW_CONNECTOR_UUID=... python examples/anyio_app.py

An app written against anyio runs the SDK unchanged, as long as anyio runs on trio
(``anyio.run(main, backend="trio")``; on asyncio the SessionManager refuses at once). Here
``serve_calls`` runs in an anyio task group next to a reporter task; each call's handler
looks the caller up with a blocking function in a worker thread
(``anyio.to_thread.run_sync``), echoes the call, and sends a report over an anyio memory
object stream. The environment variables are those of echo_agent.py.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import anyio
import attrs
from anyio.abc import ObjectReceiveStream, ObjectSendStream

import telcoflow_trio as tf
from telcoflow_trio import run_main

log = logging.getLogger("anyio_app")


@attrs.frozen
class CallReport:
    call_id: str
    customer: str
    echoed_bytes: int


def lookup_customer(number: str) -> str:
    """A blocking CRM lookup, as many in-house libraries still are."""
    time.sleep(0.01)
    return f"customer#{sum(map(ord, number)) % 1000:03d}"


def make_handler(reports: ObjectSendStream[CallReport]) -> Callable[[tf.Call], Awaitable[None]]:
    async def handle_call(call: tf.Call) -> None:
        customer = await anyio.to_thread.run_sync(lookup_customer, call.caller_number)
        if not await call.answer():
            return
        echoed = 0
        try:
            async for chunk in call.audio_stream():
                await call.send_audio(chunk, wait=True)
                echoed += len(chunk)
        except (tf.BufferClosedError, tf.WSSCallClosedError):
            pass
        await reports.send(CallReport(call.id, customer, echoed))

    return handle_call


async def report(reports: ObjectReceiveStream[CallReport], count: int | None) -> None:
    """Log each finished call; return after ``count`` of them (None: never)."""
    seen = 0
    async for item in reports:
        log.info("call %s (%s): echoed %d bytes", item.call_id, item.customer, item.echoed_bytes)
        print(f"report: call {item.call_id} for {item.customer}: {item.echoed_bytes} bytes")
        seen += 1
        if count is not None and seen >= count:
            return


def config_from_env() -> tf.SessionManagerConfig:
    """Credentials from the environment (see ``SessionManagerConfig.from_env``)."""
    try:
        return tf.SessionManagerConfig.from_env()
    except (TypeError, ValueError) as exc:
        message = f"bad Telcoflow settings in the environment: {exc}, or pass --sandbox"
        raise SystemExit(message) from None


async def run_against_sandbox() -> int:
    from telcoflow_trio.sandbox import TestSignal, open_sandbox

    send, receive = anyio.create_memory_object_stream[CallReport](16)
    async with open_sandbox(time_scale=4) as sandbox, tf.SessionManager(sandbox.config()) as sm:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sm.serve_calls, make_handler(send))
                sims = [
                    await sandbox.place_call(f"+1555000{i}", audio=TestSignal(1.0, seed=i))
                    for i in range(2)
                ]
                for sim in sims:
                    await sim.wait_spoken()
                    await sim.wait_heard(len(sim.spoken))
                    await sim.hang_up()
                await report(receive, count=len(sims))
                tg.cancel_scope.cancel()
    ok = all(sim.heard == sim.spoken for sim in sims)
    print("both callers heard themselves back" if ok else "an echo was WRONG")
    return 0 if ok else 1


async def run_for_real(config: tf.SessionManagerConfig) -> int:
    send, receive = anyio.create_memory_object_stream[CallReport](16)
    async with tf.SessionManager(config) as sm, anyio.create_task_group() as tg:
        tg.start_soon(report, receive, None)
        await sm.serve_calls(make_handler(send))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sandbox", action="store_true", help="run against a local sandbox")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.sandbox:
        return anyio.run(run_against_sandbox, backend="trio")
    return anyio.run(run_for_real, config_from_env(), backend="trio")


if __name__ == "__main__":
    raise SystemExit(run_main(main))  # Ctrl+C: one line, status 130
