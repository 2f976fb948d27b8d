"""Bench agent on the official asyncio client (telcoflow==1.0.0), through its documented API.

Same logic as ``agent_trio.py``: echo (answer, read audio, send it back), or a talking
model that gets interrupted. Runs until SIGTERM, then writes its JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
import time
from typing import Any

import telcoflow
from _benchlib import CHUNK_BYTES, SAMPLE_RATE, AgentStats, agent_parser, run_profiled, turn_audio


async def _whispers(call: Any, every: float, stats: AgentStats, rng: random.Random) -> None:
    await asyncio.sleep(rng.uniform(0, every))
    while True:
        started = time.monotonic()
        await call.whisper()
        stats.command_rtts.append(time.monotonic() - started)
        await asyncio.sleep(every)


async def _echo(call: Any, args: argparse.Namespace, stats: AgentStats) -> None:
    whispers = None
    if args.command_every > 0:
        rng = random.Random(f"{args.seed}-{call.id}")
        whispers = asyncio.create_task(_whispers(call, args.command_every, stats, rng))
    try:
        async for chunk in call.audio_stream():
            await call.send_audio(chunk)
    finally:
        if whispers is not None:
            whispers.cancel()


async def _talk(call: Any, args: argparse.Namespace, stats: AgentStats) -> None:
    rng = random.Random(f"{args.seed}-{call.id}")
    ended = asyncio.Event()
    call.on_terminated(ended.set)
    for turn in range(1, args.turns + 1):
        audio = turn_audio(turn, args.turn_seconds)
        for i in range(0, len(audio), CHUNK_BYTES):
            await call.send_audio(audio[i : i + CHUNK_BYTES])
        await asyncio.sleep(rng.uniform(0.05, 0.95) * args.turn_seconds)
        started = time.monotonic()
        await call.clear_send_audio_buffer()
        stats.clears.append((call.id, turn, started, time.monotonic()))
    await ended.wait()


async def _main(args: argparse.Namespace) -> None:
    stats = AgentStats("official")
    config = telcoflow.SessionManagerConfig.create(
        api_key=args.api_key,
        connector_uuid=args.connector_uuid,
        base_url=args.url,
        call_audio=telcoflow.CallAudioConfig(sample_rate=SAMPLE_RATE),
    )
    work = _echo if args.mode == "echo" else _talk
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async with telcoflow.SessionManager(config) as sm:

        async def handle(noti: Any) -> None:
            session = await sm.open_session(noti.session_id)

            async def on_call(call: Any) -> None:
                stats.calls += 1
                started = time.monotonic()
                answered = await call.answer()
                stats.answer_rtts.append(time.monotonic() - started)
                if not answered:
                    stats.errors += 1
                    return
                with contextlib.suppress(telcoflow.WSSError):  # the caller hung up mid-turn
                    await work(call, args, stats)

            session.on_incoming_call(on_call)  # register before ready(), as documented
            await session.ready()

        sm.on_session_notification(handle)

        await stop.wait()
    stats.write(args.out)


def main() -> None:
    args = agent_parser(__doc__.split("\n")[0]).parse_args()
    logging.basicConfig(level=logging.WARNING)
    run_profiled("official", lambda: asyncio.run(_main(args)))


if __name__ == "__main__":
    main()
