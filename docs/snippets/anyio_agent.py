"""The SDK in an anyio application: it runs unchanged as long as anyio runs on trio."""

import anyio

import telcoflow_trio as tf


async def handle_call(call: tf.Call) -> None:
    """Echo the caller, as in the first tutorial."""
    if not await call.answer():
        return
    try:
        async for chunk in call.audio_stream():
            await call.send_audio(chunk, wait=True)
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass


async def heartbeat(sm: tf.SessionManager, ticks: list[int]) -> None:
    """Another task of the app (anyio's API throughout)."""
    while True:
        ticks.append(len(sm.calls))
        await anyio.sleep(1)


async def main() -> None:
    config = tf.SessionManagerConfig.from_env()
    ticks: list[int] = []
    async with tf.SessionManager(config) as sm, anyio.create_task_group() as tg:
        tg.start_soon(heartbeat, sm, ticks)
        await sm.serve_calls(handle_call)  # until the task group is cancelled


if __name__ == "__main__":
    anyio.run(main, backend="trio")  # on asyncio the SessionManager refuses at once
