"""Bench agent on telcoflow_trio: echo, or a talking model that gets interrupted.

Started by ``bench_calls.py``; runs until SIGTERM, then writes its own measurements
(command round trips, clear times) as JSON to ``--out``. ``--transport`` picks the
WebSocket engine (``SessionManagerConfig.transport``), ``--buffer-size`` the outgoing
buffer's capacity per call (``CallAudioConfig.buffer_size``). ``--runner`` serves the calls
through the production runner (``telcoflow_trio.runner.serve``: its signal handling, metrics
fed per call and polled every second, and an idle ``/healthz``/``/metrics`` server on a free
port) instead of a bare ``sm.serve_calls``, to measure what the runner costs.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable

import trio
from _benchlib import CHUNK_BYTES, SAMPLE_RATE, AgentStats, agent_parser, run_profiled, turn_audio

import telcoflow_trio as tf


async def _whispers(call: tf.Call, every: float, stats: AgentStats, rng: random.Random) -> None:
    await trio.sleep(rng.uniform(0, every))  # spread the calls' commands over the period
    while True:
        started = time.monotonic()
        try:
            await call.whisper()  # falsy here (no connected human), but a full round trip
        except tf.WSSCallClosedError:
            return  # the caller hung up
        stats.command_rtts.append(time.monotonic() - started)
        await trio.sleep(every)


async def _echo(call: tf.Call, args: argparse.Namespace, stats: AgentStats) -> None:
    async with trio.open_nursery() as nursery:
        if args.command_every > 0:
            rng = random.Random(f"{args.seed}-{call.id}")
            nursery.start_soon(_whispers, call, args.command_every, stats, rng)
        async for chunk in call.audio_stream():
            await call.send_audio(chunk)
        nursery.cancel_scope.cancel()


async def _talk(call: tf.Call, args: argparse.Namespace, stats: AgentStats) -> None:
    rng = random.Random(f"{args.seed}-{call.id}")
    for turn in range(1, args.turns + 1):
        audio = turn_audio(turn, args.turn_seconds)
        for i in range(0, len(audio), CHUNK_BYTES):
            await call.send_audio(audio[i : i + CHUNK_BYTES])
        await trio.sleep(rng.uniform(0.05, 0.95) * args.turn_seconds)
        started = time.monotonic()
        await call.clear_send_audio_buffer()
        stats.clears.append((call.id, turn, started, time.monotonic()))
    await call.wait_terminated()


async def _main(args: argparse.Namespace) -> None:
    stats = AgentStats("ours")
    config = tf.SessionManagerConfig.create(
        api_key=args.api_key,
        connector_uuid=args.connector_uuid,
        base_url=args.url,
        call_audio=tf.CallAudioConfig(sample_rate=SAMPLE_RATE, buffer_size=args.buffer_size),
        transport=args.transport,
    )
    work = _echo if args.mode == "echo" else _talk

    async def handle(call: tf.Call) -> None:
        stats.calls += 1
        started = time.monotonic()
        answered = await call.answer()
        stats.answer_rtts.append(time.monotonic() - started)
        if not answered:
            stats.errors += 1
            return
        try:
            await work(call, args, stats)
        except* tf.WSSCallClosedError:
            pass  # the caller hung up mid-turn

    if args.runner:
        await _serve_with_runner(handle, config)
    else:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with tf.SessionManager(config) as sm, trio.open_nursery() as nursery:
                nursery.start_soon(sm.serve_calls, handle)
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()
    stats.write(args.out)


async def _serve_with_runner(
    handle: Callable[[tf.Call], Awaitable[None]], config: tf.SessionManagerConfig
) -> None:
    """Serve through the production runner until SIGTERM. The handler path is only checked
    for its form (``serve`` gets the handler itself); no drain time, so the driver's SIGTERM
    closes what is left at once and ``serve`` returns; metrics in single-process mode."""
    from telcoflow_trio.runner import RunOptions, serve

    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    options = RunOptions(handler="agent_trio:handle", drain_timeout=0, http_port=0)
    await serve(handle, config, options)


def parser() -> argparse.ArgumentParser:
    """The bench agents' common options, and this agent's engine and buffer size."""
    p = agent_parser(__doc__.split("\n")[0])
    p.add_argument(
        "--transport", choices=("trio-websocket", "websockets"), default="trio-websocket"
    )
    p.add_argument(
        "--buffer-size",
        type=int,
        default=tf.DEFAULT_BUFFER_SIZE,
        help="outgoing buffer per call, bytes (a power of two)",
    )
    p.add_argument(
        "--runner",
        action="store_true",
        help="serve through telcoflow_trio.runner.serve (metrics, /healthz, signals)",
    )
    return p


def main() -> None:
    args = parser().parse_args()
    logging.basicConfig(level=logging.WARNING)
    name = "trio" if args.transport == "trio-websocket" else "trio-websockets"
    name += "-runner" if args.runner else ""
    run_profiled(name, lambda: trio.run(_main, args))


if __name__ == "__main__":
    main()
