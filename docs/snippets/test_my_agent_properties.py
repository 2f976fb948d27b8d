"""Property tests of the echo agent: generated calls, on a mock clock."""

from hypothesis import given, settings
from my_agent import handle_call

from telcoflow_trio.testing import CallScript, HangUp, PlayedCall, Speak, run_script
from telcoflow_trio.testing.strategies import call_scripts


def echoes_everything_heard(played: PlayedCall) -> None:
    """Our own rule: the agent says back what the caller said, in order."""
    said = b"".join(write.data for write in played.writes)
    assert bytes(played.sim.spoken).startswith(said), "the agent said something of its own"


@settings(max_examples=10, deadline=None)
@given(call_scripts(max_steps=4, max_seconds=3.0, endings={"hang_up", "implicit"}))
def test_my_agent(script: CallScript) -> None:
    run_script(script, handle_call, invariants=[echoes_everything_heard])


def test_one_script_replayed() -> None:
    # A script pasted from a failure: seed=0 (the default) replays trio's scheduling.
    script = CallScript([Speak(seconds=0.3), HangUp()])
    played = run_script(script, handle_call, raise_on_failure=False, seed=0)
    assert not played.violations, played.summary()
