"""One reader of the caller's audio feeding several consumers, each getting all of it.

Two ``call.audio_stream()`` readers would *split* the audio between them (each chunk goes
to one of them); to give every consumer every chunk, read once and fan out.
"""

import trio

import telcoflow_trio as tf


async def fan_out(call: tf.Call, outputs: list[trio.MemorySendChannel[bytes]]) -> None:
    """Send every chunk of the caller's audio to every output; close them at the end."""
    try:
        async for chunk in call.audio_stream():
            for output in outputs:
                await output.send(chunk)  # a slow consumer holds up the others
    finally:
        for output in outputs:
            output.close()  # each consumer's ``async for`` ends


async def consume(
    name: str, chunks: trio.MemoryReceiveChannel[bytes], got: dict[str, bytes]
) -> None:
    """A consumer (a recorder, a speech model, a level meter...)."""
    data = bytearray()
    async with chunks:
        async for chunk in chunks:
            data += chunk
    got[name] = bytes(data)


async def answer_and_share(call: tf.Call) -> dict[str, bytes]:
    """Answer and give the whole of the caller's audio to two consumers."""
    got: dict[str, bytes] = {}
    if not await call.answer():
        return got
    send_a, receive_a = trio.open_memory_channel[bytes](100)
    send_b, receive_b = trio.open_memory_channel[bytes](100)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume, "recorder", receive_a, got)
        nursery.start_soon(consume, "model", receive_b, got)
        await fan_out(call, [send_a, send_b])
    return got
