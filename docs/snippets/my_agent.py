"""A first agent: answer every call and send the caller's audio straight back."""

import trio

import telcoflow_trio as tf


async def handle_call(call: tf.Call) -> None:
    """One call: answer, then echo until the caller hangs up."""
    if not await call.answer():  # a falsy CommandResult: the server refused
        return
    try:
        async for chunk in call.audio_stream():  # ends when the call ends
            await call.send_audio(chunk, wait=True)  # queued; the server pulls it
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass  # the caller hung up while we were sending


async def main() -> None:
    config = tf.SessionManagerConfig.from_env()  # TELCOFLOW_API_KEY, ..._BASE_URL, ...
    async with tf.SessionManager(config) as sm:  # connected on entry
        await sm.serve_calls(handle_call)  # one child task per call, until Ctrl+C


if __name__ == "__main__":
    trio.run(main)
