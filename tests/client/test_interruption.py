"""No stale audio, end to end: after an interruption the caller hears only the new words."""

from __future__ import annotations

import math
import struct

import trio

import telcoflow_trio as tf
from telcoflow_trio.testing import Sandbox

from .conftest import claimed_call

RATE = 16000


def tone(freq: float, seconds: float, amplitude: int) -> bytes:
    n = int(RATE * seconds)
    return struct.pack(
        f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * freq * i / RATE)) for i in range(n))
    )


async def test_clear_drops_the_first_utterance_and_keeps_the_second(sandbox: Sandbox) -> None:
    first = tone(440, 5.0, 8000)  # what the model was saying when interrupted
    second = tone(660, 1.5, 12000)  # what it says next; no sample equals one of `first`'s runs
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config(sample_rate=RATE)) as sm:
            sim = await sandbox.place_call()
            async with claimed_call(sm) as (_session, call):
                assert await call.answer()
                mark = call.heard_position
                await call.send_audio(first)
                await sim.wait_heard(RATE * 2)  # one second heard
                dropped = await call.clear_send_audio_buffer()
                clear = call.last_clear
                assert clear is not None and clear.interrupt
                await call.send_audio(second)
                await call.wait_for_playout()
                await sim.wait_heard(clear.heard_position - mark + len(second))
            (interrupt,) = sim.interrupts
            before, after = sim.heard[: interrupt.heard_bytes], sim.heard_after(interrupt)
            assert before == first[: len(before)]  # heard in order, up to the interrupt
            assert after == second  # nothing stale after the interrupt; the new words whole
            assert dropped == len(first) - len(before)
            assert clear.heard_since(mark) == len(before)  # what the model may say was heard
