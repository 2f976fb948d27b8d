"""Barge-in: an agent whose (fake) streaming voice model is interrupted by the caller and
picks up where the caller stopped hearing it.

    python examples/interruption.py --sandbox     # a scripted caller interrupts the greeting
    TELCOFLOW_API_KEY=... TELCOFLOW_CONNECTOR_UUID=... python examples/interruption.py

The agent greets the caller. A listener task watches the caller's audio: when the caller
starts speaking while the agent talks, the talking is cancelled (a cancel scope) and
``call.clear_send_audio_buffer()`` drops everything queued, so no stale word reaches the
caller. ``call.last_clear`` says how much of the greeting the caller had actually heard;
once the caller is quiet again the agent resumes the greeting from exactly there. After
each later turn of the caller it answers with a new reply. ``call.wait_for_playout()``
tells when a reply has been played out entirely.

With ``--sandbox`` a simulated caller interrupts the greeting, then asks a question; the
example checks that the caller heard the greeting once, whole, with no gap and no
repetition, and then the reply. The environment variables are those of echo_agent.py.
"""

from __future__ import annotations

import argparse
import logging
import math
import struct
from collections.abc import AsyncIterator, Sequence
from typing import Final

import trio

import telcoflow_trio as tf
from telcoflow_trio import run_main

log = logging.getLogger("interruption")

LOUD: Final = 500
"""RMS (of 32767) above which a chunk of caller audio counts as speech."""
END_OF_TURN_SECONDS: Final = 0.4
"""Quiet this long after speech ends the caller's turn."""
CHUNK_SECONDS: Final = 0.02
MODEL_SPEED: Final = 3.0
"""How many times faster than real time the fake model produces audio."""


def _rms(pcm: bytes) -> float:
    count = len(pcm) // 2
    if count == 0:
        return 0.0
    samples = struct.unpack(f"<{count}h", pcm[: 2 * count])
    return math.sqrt(sum(s * s for s in samples) / count)


class FakeStreamingModel:
    """Stands in for a text-to-speech model that streams audio while it generates it.

    Turn 0 is a greeting, turn n > 0 the n-th reply; each is a few "words" (short tones).
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate

    def utterance(self, turn: int) -> bytes:
        """The whole audio of a turn (deterministic, so a test can compare bytes)."""
        words = 12 if turn == 0 else 6
        out = bytearray()
        for word in range(words):
            freq = 260 + 45 * ((word * 3 + turn) % 7)
            count = int(self.sample_rate * 0.2)
            out += struct.pack(
                f"<{count}h",
                *(
                    round(6000 * math.sin(2 * math.pi * freq * i / self.sample_rate))
                    for i in range(count)
                ),
            )
            out += bytes(2 * int(self.sample_rate * 0.05))
        return bytes(out)

    async def stream(self, turn: int, start: int = 0) -> AsyncIterator[bytes]:
        """The turn's audio from byte ``start``, chunk by chunk, faster than real time."""
        audio = self.utterance(turn)
        step = 2 * int(self.sample_rate * CHUNK_SECONDS)
        for pos in range(start, len(audio), step):
            await trio.sleep(CHUNK_SECONDS / MODEL_SPEED)
            yield audio[pos : pos + step]


class Conversation:
    """One call's turn-taking: a listener that watches the caller, a talker that speaks."""

    def __init__(self, call: tf.Call, model: FakeStreamingModel) -> None:
        self.call = call
        self.model = model
        self.rate = call.audio_config.sample_rate
        self.caller_speaking = False
        self.interruptions = 0
        self._talking: trio.CancelScope | None = None
        self._turn_ended = trio.Event()

    async def listen(self) -> None:
        """Follow the caller's audio: barge in on speech, end the turn on quiet."""
        quiet = 0.0
        async for chunk in self.call.audio_stream():
            if _rms(chunk) > LOUD:
                quiet = 0.0
                if not self.caller_speaking:
                    self.caller_speaking = True
                    if self._talking is not None:
                        self._talking.cancel()  # barge-in: stop talking at once
            elif self.caller_speaking:
                quiet += len(chunk) / (2 * self.rate)
                if quiet >= END_OF_TURN_SECONDS:
                    self.caller_speaking = False
                    self._turn_ended.set()
                    self._turn_ended = trio.Event()

    async def wait_for_caller_turn(self) -> None:
        await self._turn_ended.wait()

    def _position(self) -> int:
        counters = self.call.audio_counters
        return 0 if counters is None else counters.written_bytes

    async def say(self, turn: int, start: int = 0) -> int | None:
        """Speak a turn from byte ``start``. None when it was played out whole; otherwise
        the byte of the turn up to which the caller heard it before interrupting."""
        mark = self._position()
        with trio.CancelScope() as talking:
            self._talking = talking
            if self.caller_speaking:
                talking.cancel()
            async for chunk in self.model.stream(turn, start):
                await self.call.send_audio(chunk, wait=True)
            await self.call.wait_for_playout()
        self._talking = None
        if not talking.cancelled_caught:
            return None
        await self.call.clear_send_audio_buffer()
        clear = self.call.last_clear
        heard = 0 if clear is None else clear.heard_since(mark)
        self.interruptions += 1
        position = start + heard - heard % 2  # whole samples
        log.info("call %s: interrupted in turn %d at byte %d", self.call.id, turn, position)
        return position

    async def talk(self) -> None:
        """Greet, then answer each turn of the caller; resume whatever was interrupted."""
        turn, position = 0, 0
        while True:
            heard_up_to = await self.say(turn, position)
            if heard_up_to is None:
                turn, position = turn + 1, 0
                await self.wait_for_caller_turn()
            else:
                position = heard_up_to
                if self.caller_speaking:  # a very short interruption may be over already
                    await self.wait_for_caller_turn()


async def handle_call(call: tf.Call) -> None:
    """Answer, greet, and take turns with the caller until the call ends."""
    if not await call.answer():
        return
    conversation = Conversation(call, FakeStreamingModel(call.audio_config.sample_rate))
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conversation.talk)
            await conversation.listen()  # returns when the call ends
            nursery.cancel_scope.cancel()
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass  # the call ended while we were talking


def config_from_env() -> tf.SessionManagerConfig:
    """Credentials from the environment (see ``SessionManagerConfig.from_env``)."""
    try:
        return tf.SessionManagerConfig.from_env()
    except (TypeError, ValueError) as exc:
        message = f"bad Telcoflow settings in the environment: {exc}, or pass --sandbox"
        raise SystemExit(message) from None


async def run_against_sandbox(time_scale: float) -> int:
    from telcoflow_trio.sandbox import Silence, Tone, open_sandbox

    async with (
        open_sandbox(time_scale=time_scale) as sandbox,
        tf.SessionManager(sandbox.config()) as sm,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(sm.serve_calls, handle_call)
        sim = await sandbox.place_call(audio=Silence(1.0))
        sim.say(Tone(300, 0.6, 0.5))  # interrupts the greeting
        sim.say(Silence(5.0))  # the agent resumes and finishes it
        sim.say(Tone(500, 0.5, 0.5))  # a question
        sim.say(Silence(3.0))  # the agent replies
        model = FakeStreamingModel(16000)
        expected = model.utterance(0) + model.utterance(1)
        with trio.fail_after(60 / time_scale + 20):
            await sim.wait_spoken()
            await sim.wait_heard(len(expected))
        await sim.hang_up()
        nursery.cancel_scope.cancel()
    heard = sim.heard
    ok = len(sim.interrupts) == 1 and heard == expected
    for interrupt in sim.interrupts:
        print(f"interrupted after the caller heard {interrupt.heard_bytes / 32000:.2f} s")
    print(
        f"call {sim.call_id}: {len(sim.interrupts)} interruption(s); heard "
        f"{len(heard) / 32000:.2f} s: "
        + ("the greeting once and whole, then the reply" if ok else "NOT the expected audio")
    )
    return 0 if ok else 1


async def run_for_real(config: tf.SessionManagerConfig) -> int:
    async with tf.SessionManager(config) as sm:
        await sm.serve_calls(handle_call)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sandbox", action="store_true", help="run against a local sandbox")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="sandbox speed-up (simulated s per real s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.sandbox:
        return trio.run(run_against_sandbox, args.time_scale)
    return trio.run(run_for_real, config_from_env())


if __name__ == "__main__":
    raise SystemExit(run_main(main))  # Ctrl+C: one line, status 130
