"""Our own examples keep every agent-level invariant over generated call scripts.

A handful of scripts per example by default; 500 each with ``HYPOTHESIS_PROFILE=thorough``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from telcoflow_trio.testing import CallScript, QuietWhileInterrupted, run_script
from telcoflow_trio.testing.strategies import STEP_KINDS, call_scripts, sample_rates

from ._profile import SCRIPTS
from .agents import load_example

EXAMPLE_SETTINGS = settings(
    max_examples=SCRIPTS, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
SCRIPTS_OF_EVERY_KIND = call_scripts(STEP_KINDS, sample_rate=sample_rates)

echo_agent = load_example("echo_agent")
interruption = load_example("interruption")
assistant_whisper = load_example("assistant_whisper")


@EXAMPLE_SETTINGS
@given(SCRIPTS_OF_EVERY_KIND)
def test_echo_example(script: CallScript) -> None:
    run_script(script, echo_agent.handle_call)


@EXAMPLE_SETTINGS
@given(SCRIPTS_OF_EVERY_KIND)
def test_interruption_example(script: CallScript) -> None:
    # It stops talking when the caller talks over it, so it is held to that as well.
    run_script(script, interruption.handle_call, invariants=[QuietWhileInterrupted()])


@EXAMPLE_SETTINGS
@given(SCRIPTS_OF_EVERY_KIND)
def test_assistant_whisper_example(script: CallScript) -> None:
    run_script(script, assistant_whisper.handle_call)
