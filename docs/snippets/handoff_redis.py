"""Hand-off over Redis: a front claims calls and puts them on a stream; media workers in
a consumer group answer them (needs ``pip install "telcoflow-trio[redis]"``)."""

import os

import trio

import telcoflow_trio as tf
from telcoflow_trio import runner

STREAM = "telcoflow:calls"
GROUP = "media"


async def echo(call: tf.Call) -> None:
    """The media worker's handler: the call arrives adopted, still NEW."""
    if not await call.answer():
        return
    try:
        async for chunk in call.audio_stream():
            await call.send_audio(chunk, wait=True)
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass


async def front(redis_url: str) -> None:
    """Claim every call and put it on the stream (needs Telcoflow credentials)."""
    config = tf.SessionManagerConfig.from_env()
    async with runner.redis_client(redis_url) as redis, tf.SessionManager(config) as sm:
        await sm.serve_calls(runner.HandoffFront(redis, STREAM))


async def worker(redis_url: str, name: str) -> None:
    """Serve the calls handed off on the stream (needs no Telcoflow credentials)."""
    await runner.serve_handoffs(redis_url, STREAM, GROUP, name, echo)


async def main() -> None:
    """Both halves in one process; in production, one process of each kind (or many)."""
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker, redis_url, "worker-1")
        nursery.start_soon(front, redis_url)


if __name__ == "__main__":
    trio.run(main)
