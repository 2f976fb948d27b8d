"""Barge-in: stop talking the moment the caller speaks, and know what they heard."""

import math
import struct

import trio

import telcoflow_trio as tf

LOUD = 500  # RMS (of 32767) above which the caller's audio counts as speech


def loud(pcm: bytes) -> bool:
    """Whether a chunk of 16-bit little-endian PCM is louder than ``LOUD``."""
    count = len(pcm) // 2
    samples = struct.unpack(f"<{count}h", pcm[: 2 * count])
    return count > 0 and math.sqrt(sum(s * s for s in samples) / count) > LOUD


async def say_until_interrupted(call: tf.Call, utterance: bytes) -> int | None:
    """Say ``utterance``; None if it was played out whole, else how many of its bytes
    had been sent to the caller when they started speaking over it."""
    start = call.heard_position  # bytes of ours handed to the server so far
    interrupted = False

    async def listen(talking: trio.CancelScope) -> None:
        nonlocal interrupted
        # A stream we are done with is closed (every open one is a reader of the call).
        async with call.audio_stream() as audio:
            async for chunk in audio:
                if loud(chunk):
                    interrupted = True
                    talking.cancel()  # barge-in: stop talking at once
                    return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(listen, nursery.cancel_scope)
        await call.send_audio(utterance, wait=True)
        await call.wait_for_playout()
        nursery.cancel_scope.cancel()  # played out whole: stop listening
    if not interrupted:
        return None
    await call.clear_send_audio_buffer()  # no byte queued before this reaches the caller
    return call.heard_position - start


async def handle_call(call: tf.Call) -> None:
    """Greet the caller with a long tone; stop as soon as they talk over it."""
    if not await call.answer():
        return
    rate = call.audio_config.sample_rate
    greeting = b"".join(
        round(6000 * math.sin(2 * math.pi * 440 * i / rate)).to_bytes(2, "little", signed=True)
        for i in range(rate * 5)  # five seconds
    )
    try:
        heard = await say_until_interrupted(call, greeting)
        if heard is not None:
            print(f"interrupted after {heard / (2 * rate):.2f} s of the greeting")
        await call.wait_terminated()
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass  # the caller hung up
