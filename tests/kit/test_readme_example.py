"""Property-test an agent with telcoflow_trio's kit (the example of docs/guide/testing.rst)."""

from hypothesis import given, settings

import telcoflow_trio as tf
from telcoflow_trio.testing import CallScript, PlayedCall, audible, run_script
from telcoflow_trio.testing.strategies import call_scripts


async def handle_call(call: tf.Call) -> None:
    """The agent under test: greets the caller, then echoes what it hears."""
    if not await call.answer():
        return
    rate = call.audio_config.sample_rate
    beep = b"".join(
        (3000 if (i // 20) % 2 else -3000).to_bytes(2, "little", signed=True)
        for i in range(rate // 2)
    )
    try:
        await call.send_audio(beep)  # half a second of a square wave: "hello"
        async for chunk in call.audio_stream():
            await call.send_audio(chunk, wait=True)
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass  # the caller hung up


def greets_within_2_s(played: PlayedCall) -> None:
    """Our own invariant: the agent says something within 2 s of answering (we look at
    what it sent: when the caller hears it is up to the server's pulls, which may stall)."""
    answered = played.agent_answered_at
    if answered is None or (played.ended_at is not None and played.ended_at < answered + 2):
        return  # never answered, or the call was over before 2 s had passed
    said = b"".join(w.data for w in played.writes if w.started <= answered + 2)
    assert audible(said), "silent for 2 s after answering"


@settings(max_examples=25, deadline=None)
@given(call_scripts(max_steps=6, max_seconds=5.0, endings={"hang_up", "implicit"}))
def test_my_agent(script: CallScript) -> None:
    # Plays the call on a fresh sandbox, on a mock clock: seconds of call in milliseconds.
    run_script(script, handle_call, invariants=[greets_within_2_s])
