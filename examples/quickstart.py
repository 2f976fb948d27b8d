import trio

import telcoflow_trio as tf


async def handle_call(call: tf.Call) -> None:
    if not await call.answer():  # falsy CommandResult: refused or timed out
        return
    async for chunk in call.audio_stream():  # the caller's audio, PCM bytes
        await call.send_audio(chunk)  # queued; the server pulls it


async def main() -> None:
    config = tf.SessionManagerConfig.from_env()  # reads TELCOFLOW_API_KEY, ...
    async with tf.SessionManager(config) as sm:  # connected on entry
        await sm.serve_calls(handle_call)  # one task per call, until Ctrl+C


if __name__ == "__main__":
    trio.run(main)
