"""``call.audio_stream()``: a lazily opened trio receive channel of the caller's audio."""

from __future__ import annotations

import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio.testing import Sandbox, TestSignal

from .conftest import claimed_call


def state_of(call: tf.Call) -> tf.CallState:
    return call.state


async def test_iterating_opens_the_voice_plane_and_ends_with_the_call(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            sim = await sandbox.place_call(audio=TestSignal(seconds=0.5))
            async with claimed_call(sm) as (_session, call):
                stream = call.audio_stream()
                assert isinstance(stream, trio.abc.ReceiveChannel)
                assert state_of(call) is tf.CallState.NEW  # making a stream opens nothing
                assert "not yet opened" in repr(stream)
                assert await call.answer()
                await sim.wait_spoken()
                received = bytearray()
                while len(received) < len(sim.spoken):
                    received.extend(await stream.receive())
                await sim.hang_up()
                # The loop ends by itself: the call's end closes the channel.
                assert [chunk async for chunk in stream] == []
                assert state_of(call) is tf.CallState.TERMINATED
                assert bytes(received) == sim.spoken


async def test_awaiting_the_stream_opens_at_once(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            await sandbox.place_call()
            async with claimed_call(sm) as (_session, call):
                stream = await call.audio_stream()
                assert isinstance(stream, tf.AudioStream)
                assert state_of(call) is tf.CallState.LIVE
                assert "open" in repr(stream)


async def test_a_stream_of_an_ended_call_is_empty_not_an_error(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            sim = await sandbox.place_call()
            async with claimed_call(sm) as (_session, call):
                assert await call.answer()
                await sim.hang_up()
                await call.wait_terminated()
                chunks = [chunk async for chunk in call.audio_stream()]
                assert chunks == []


async def test_closing_one_stream_leaves_another_working(sandbox: Sandbox) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            sim = await sandbox.place_call(audio=TestSignal(seconds=0.2))
            async with claimed_call(sm) as (_session, call):
                first = await call.audio_stream()
                second = first.clone()
                assert await call.answer()
                await first.aclose()
                with pytest.raises(trio.ClosedResourceError):
                    await first.receive()
                with pytest.raises(trio.ClosedResourceError):
                    first.clone()
                assert await second.receive()
                await sim.hang_up()


@pytest.mark.parametrize(
    ("channel_id", "error", "words"),
    [("0", TypeError, "channel_id must be an int"), (True, TypeError, "got bool"),
     (-1, ValueError, "0..255"), (256, ValueError, "got 256")],
)  # fmt: skip
async def test_a_bad_channel_id_is_refused_where_it_is_passed(
    sandbox: Sandbox, channel_id: object, error: type[Exception], words: str
) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            await sandbox.place_call()
            async with claimed_call(sm) as (_session, call):
                with pytest.raises(error, match=words):
                    call.audio_stream(channel_id)  # type: ignore[arg-type]
                assert state_of(call) is tf.CallState.NEW
