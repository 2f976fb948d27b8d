"""Full duplex: a reader and a writer task in one nursery, and the end of the call."""

import logging

import trio

import telcoflow_trio as tf

log = logging.getLogger(__name__)


async def read_caller(call: tf.Call, heard: list[bytes]) -> None:
    """Collect what the caller says (a real agent feeds its speech model)."""
    async for chunk in call.audio_stream():  # ends when the call ends
        heard.append(chunk)


async def talk(call: tf.Call) -> None:
    """Say something every 100 ms (a real agent streams its voice model's output)."""
    filler = bytes(2 * call.audio_config.sample_rate // 10)  # 100 ms of silence
    while True:  # ends only by an exception: the call is over, or we are cancelled
        await call.send_audio(filler, wait=True)
        await trio.sleep(0.1)


async def handle_call(call: tf.Call) -> None:
    if not await call.answer():
        return
    heard: list[bytes] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_caller, call, heard)
            nursery.start_soon(talk, call)
    except* (tf.BufferClosedError, tf.WSSCallClosedError):
        # When the call ends, read_caller returns and talk's next send_audio raises.
        # A nursery wraps what its tasks raise in an ExceptionGroup: ``except*`` takes
        # the end-of-call errors out of it and lets anything else propagate.
        log.info("call %s ended under the handler", call.id)
    log.info("call %s: heard %d bytes", call.id, sum(map(len, heard)))
