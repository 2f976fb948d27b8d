"""A receptionist agent: puts the caller through to a human, whispers a briefing to the
human, then listens in; when nobody picks up it apologises and leaves.

    python examples/assistant_whisper.py --sandbox    # one call answered, one unanswered
    TELCOFLOW_API_KEY=... TELCOFLOW_CONNECTOR_UUID=... python examples/assistant_whisper.py

``call.connect(ring_time_seconds=...)`` rings the connector's destination. It returns a
falsy ``CommandResult`` with ``error_code == "CALL_UNANSWERED"`` when nobody answers in
time, and the call stays up, so the agent can still speak to the caller. Once connected,
``call.whisper()`` makes the agent's audio reach the human only, and ``call.spy()`` makes
it a silent listener. The environment variables are those of echo_agent.py.
"""

from __future__ import annotations

import argparse
import logging
import math
import struct
from collections.abc import Sequence
from typing import Final

import trio

import telcoflow_trio as tf
from telcoflow_trio import run_main

log = logging.getLogger("assistant_whisper")

RING_SECONDS: Final = 15


def prompt(name: str, sample_rate: int) -> bytes:
    """Stand-ins for recorded prompts: a short melody per message (deterministic)."""
    notes = {
        "hold": (440, 550, 440),  # "please hold, I'm putting you through"
        "briefing": (660, 660, 880, 660),  # to the human: who calls and why
        "sorry": (550, 440, 330),  # "nobody is available, please call again later"
    }[name]
    out = bytearray()
    for freq in notes:
        count = int(sample_rate * 0.15)
        out += struct.pack(
            f"<{count}h",
            *(round(7000 * math.sin(2 * math.pi * freq * i / sample_rate)) for i in range(count)),
        )
        out += bytes(2 * int(sample_rate * 0.05))
    return bytes(out)


async def play(call: tf.Call, name: str) -> None:
    """Queue a prompt and wait until the server has pulled all of it."""
    await call.send_audio(prompt(name, call.audio_config.sample_rate), wait=True)
    await call.wait_for_playout()


async def handle_call(call: tf.Call) -> None:
    """Answer, put the caller through, brief the human in a whisper, then listen in."""
    if not await call.answer():
        return
    try:
        await play(call, "hold")
        result = await call.connect(ring_time_seconds=RING_SECONDS)
        if not result:
            if result.error_code == "CALL_UNANSWERED":
                log.info("call %s: nobody answered within %d s", call.id, RING_SECONDS)
            else:
                log.warning("call %s: connect failed: %s", call.id, result.error_code)
            await play(call, "sorry")
            await call.close(drain_timeout=2.0)  # let the last word out, then leave
            return
        log.info("call %s: connected to a human", call.id)
        if await call.whisper():
            await play(call, "briefing")
        if not await call.spy():
            log.warning("call %s: could not switch to listening", call.id)
        await call.wait_terminated()  # the caller and the human talk; we listen
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass  # somebody hung up


def config_from_env() -> tf.SessionManagerConfig:
    """Credentials from the environment (see ``SessionManagerConfig.from_env``)."""
    try:
        return tf.SessionManagerConfig.from_env()
    except (TypeError, ValueError) as exc:
        message = f"bad Telcoflow settings in the environment: {exc}, or pass --sandbox"
        raise SystemExit(message) from None


async def run_against_sandbox(time_scale: float) -> int:
    from telcoflow_trio.sandbox import ConnectBehaviour, EndedBy, open_sandbox

    rate: tf.SampleRate = 16000
    async with (
        open_sandbox(time_scale=time_scale) as sandbox,
        tf.SessionManager(sandbox.config(sample_rate=rate)) as sm,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(sm.serve_calls, handle_call)
        answered = await sandbox.place_call(
            "+15550001", connect=ConnectBehaviour("ANSWERED", answer_after=2.0)
        )
        unanswered = await sandbox.place_call("+15550002", connect=ConnectBehaviour("UNANSWERED"))
        briefed = prompt("hold", rate) + prompt("briefing", rate)
        with trio.fail_after((RING_SECONDS + 10) / time_scale + 20):
            await unanswered.wait_terminated()
            await answered.wait_heard(len(briefed))
            await sandbox.wait_for(lambda: any(c.command == "agent.spy" for c in answered.commands))
        await answered.hang_up()
        nursery.cancel_scope.cancel()
    ok = True
    for sim, commands, heard in (
        (answered, ["call.answer", "call.connect", "agent.whisper", "agent.spy"], briefed),
        (unanswered, ["call.answer", "call.connect", "call.close"], None),
    ):
        sent = [c.command for c in sim.commands]
        results = [c.error_code or ("ok" if c.success else "refused") for c in sim.commands]
        print(
            f"call from {sim.caller}: "
            + ", ".join(f"{c} {r}" for c, r in zip(sent, results, strict=True))
        )
        # Leaving may add a call.close that finds the call already over: harmless.
        ok = ok and sent[: len(commands)] == commands and (heard is None or sim.heard == heard)
    ok = ok and unanswered.heard == prompt("hold", rate) + prompt("sorry", rate)
    ok = ok and unanswered.ended_by is EndedBy.AGENT_CLOSE
    print("as expected" if ok else "NOT as expected")
    return 0 if ok else 1


async def run_for_real(config: tf.SessionManagerConfig) -> int:
    async with tf.SessionManager(config) as sm:
        await sm.serve_calls(handle_call)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sandbox", action="store_true", help="run against a local sandbox")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=5.0,
        help="sandbox speed-up, so the unanswered ring does not take 15 s (default 5)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.sandbox:
        return trio.run(run_against_sandbox, args.time_scale)
    return trio.run(run_for_real, config_from_env())


if __name__ == "__main__":
    raise SystemExit(run_main(main))  # Ctrl+C: one line, status 130
