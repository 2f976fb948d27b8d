"""The lower level: sessions claimed one by one, full duplex in a nursery
(docs/guide/api-tour.rst). The "model" here is an echo through a memory channel."""

import trio

import telcoflow_trio as tf


# [sessions]
async def main(config: tf.SessionManagerConfig) -> None:
    async with tf.SessionManager(config) as sm, trio.open_nursery() as nursery:
        async for note in sm.session_notifications:  # bounded channel of notifications
            nursery.start_soon(handle_session, sm, note)


async def handle_session(sm: tf.SessionManager, note: tf.SessionNotification) -> None:
    try:
        async with sm.open_session(note.session_id) as session:
            call = await session.incoming_call()  # sends ready(), waits for call.in
            to_model, from_model = trio.open_memory_channel[bytes](16)
            async with trio.open_nursery() as n:  # full duplex is a nursery
                n.start_soon(caller_to_model, call, to_model)
                n.start_soon(model_to_caller, call, from_model)
    except tf.WSSSessionBusy:
        pass  # another agent process won the claim


# [/sessions]


async def caller_to_model(call: tf.Call, to_model: trio.MemorySendChannel[bytes]) -> None:
    async with to_model:
        if not await call.answer():
            return
        async for chunk in call.audio_stream():  # ends when the call ends
            await to_model.send(chunk)


async def model_to_caller(call: tf.Call, from_model: trio.MemoryReceiveChannel[bytes]) -> None:
    async with from_model:
        try:
            async for chunk in from_model:
                await call.send_audio(chunk)
        except (tf.BufferClosedError, tf.WSSCallClosedError):
            pass  # the call ended while we were talking
