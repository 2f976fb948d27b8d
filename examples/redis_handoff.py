"""Hand-off over Redis: a front claims each new call and puts it, still NEW, on a Redis
stream; media workers in a consumer group answer the calls and stream their audio (an echo
here). A worker that dies before answering leaves its call to another.

    python examples/redis_handoff.py --sandbox --redis-url redis://127.0.0.1:6379/0
        # a sandbox, the front and two workers in this process, three calls
    TELCOFLOW_API_KEY=... TELCOFLOW_CONNECTOR_UUID=... REDIS_URL=redis://10.0.0.7:6379/0 \\
        python examples/redis_handoff.py front
    REDIS_URL=redis://10.0.0.7:6379/0 python examples/redis_handoff.py worker --consumer w1

Workers need no Telcoflow credentials: the hand-off document carries the call's own voice
URL and token. That token is a credential: keep Redis private (a password in the URL, TLS
with rediss://), and never log the documents (the runner does not).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import trio

import telcoflow_trio as tf
from telcoflow_trio import run_main
from telcoflow_trio.runner._errors import RunConfigError
from telcoflow_trio.runner._handoff import HandoffFront, redis_client, serve_handoffs
from telcoflow_trio.runner._handoff_worker import answered_key

log = logging.getLogger("redis_handoff")

STREAM = "telcoflow:calls"
GROUP = "media"


async def handle_call(call: tf.Call) -> None:
    """The media side: answer and echo (a real worker would run its model here)."""
    if not await call.answer():
        log.warning("call %s: answer refused", call.id)
        return
    with contextlib.suppress(tf.BufferClosedError, tf.WSSCallClosedError):
        async for chunk in call.audio_stream():
            await call.send_audio(chunk, wait=True)


async def run_front(config: tf.SessionManagerConfig, redis_url: str) -> int:
    async with redis_client(redis_url) as redis, tf.SessionManager(config) as sm:
        await sm.serve_calls(HandoffFront(redis, STREAM))
    return 0


async def run_worker(redis_url: str, consumer: str) -> int:
    await serve_handoffs(redis_url, STREAM, GROUP, consumer, handle_call)
    return 0


async def run_against_sandbox(redis_url: str) -> int:
    from telcoflow_trio.sandbox import TestSignal, open_sandbox

    stream = f"{STREAM}:demo-{secrets.token_hex(4)}"  # its own stream and group, deleted after
    served: Counter[str] = Counter()
    by: dict[str, str] = {}

    def worker_handler(name: str) -> Callable[[tf.Call], Awaitable[None]]:
        async def handle(call: tf.Call) -> None:
            served[call.id] += 1
            by[call.id] = name
            await handle_call(call)

        return handle

    async with (
        open_sandbox(time_scale=4) as sandbox,
        redis_client(redis_url) as redis,
    ):
        async with trio.open_nursery() as workers:
            for name in ("worker-1", "worker-2"):
                handler = worker_handler(name)
                await workers.start(partial(serve_handoffs, redis, stream, GROUP, name, handler))
            async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as front:
                front.start_soon(sm.serve_calls, HandoffFront(redis, stream))
                sims = [
                    await sandbox.place_call(f"+1555000{i}", audio=TestSignal(1.0, seed=i))
                    for i in range(3)
                ]
                with trio.fail_after(30):
                    for sim in sims:
                        await sim.wait_spoken()
                        await sim.wait_heard(len(sim.spoken))
                        await sim.hang_up()
                front.cancel_scope.cancel()
            workers.cancel_scope.cancel()
        await redis.delete([stream, *(answered_key(stream, c) for c in served)])
    ok = True
    for sim in sims:
        echoed = sim.heard == sim.spoken
        once = served[sim.call_id] == 1
        ok = ok and echoed and once
        print(
            f"call {sim.call_id}: answered by {by.get(sim.call_id, 'nobody')}"
            f" {served[sim.call_id]} time(s), echo {'exact' if echoed else 'WRONG'}"
        )
    print(f"{sum(served.values())} call(s) served, {'each once' if ok else 'NOT each once'}")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("role", nargs="?", choices=["front", "worker"], help="what to run")
    parser.add_argument("--sandbox", action="store_true", help="run it all against a sandbox")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    parser.add_argument("--consumer", default="", help="this worker's name in the group")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.redis_url:
        raise SystemExit("set REDIS_URL (or pass --redis-url), e.g. redis://127.0.0.1:6379/0")
    if not args.sandbox and args.role is None:
        raise SystemExit("say front or worker, or pass --sandbox")
    try:
        redis_client(args.redis_url)  # a bad URL: one line, before anything runs
        return _run(args)
    except* RunConfigError as group:  # bad URL, or Redis refusing us, maybe from a nursery
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        raise SystemExit(str(error)) from None


def _run(args: argparse.Namespace) -> int:
    if args.sandbox:
        return trio.run(run_against_sandbox, args.redis_url)
    if args.role == "worker":
        consumer = args.consumer or f"worker-{os.getpid()}"
        return trio.run(run_worker, args.redis_url, consumer)
    try:
        config = tf.SessionManagerConfig.from_env()
    except (TypeError, ValueError) as exc:
        message = f"bad Telcoflow settings in the environment: {exc}, or pass --sandbox"
        raise SystemExit(message) from None
    return trio.run(run_front, config, args.redis_url)


if __name__ == "__main__":
    raise SystemExit(run_main(main))  # Ctrl+C: one line, status 130
