"""Hand a call to another process: the claiming side serialises it, the other adopts it."""

import trio

import telcoflow_trio as tf


async def front(call: tf.Call, documents: trio.MemorySendChannel[str]) -> None:
    """The claiming side: hand the still-NEW call over instead of answering it."""
    document = call.to_json()  # carries the voice token: never log it
    await documents.send(document)  # in production: a queue, a Redis stream, an RPC


async def media_worker(documents: trio.MemoryReceiveChannel[str]) -> None:
    """The other side: adopt each call, answer it, and echo it."""
    async with trio.open_nursery() as nursery:
        async for document in documents:
            nursery.start_soon(serve_adopted, document)


async def serve_adopted(document: str) -> None:
    async with tf.Call.from_json(document, tf.CallAudioConfig(16000)) as call:
        if not await call.answer():
            return
        try:
            async for chunk in call.audio_stream():
                await call.send_audio(chunk, wait=True)
        except (tf.BufferClosedError, tf.WSSCallClosedError):
            pass
