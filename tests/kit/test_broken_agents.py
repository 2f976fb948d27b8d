"""Agents broken on purpose are caught by the runner, and hypothesis shrinks the script
that catches them to a short one."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from telcoflow_trio.testing import (
    CallScript,
    Handler,
    Invariant,
    QuietWhileInterrupted,
    ScriptFailure,
    Shutdown,
    Speak,
    run_script,
)
from telcoflow_trio.testing.strategies import call_scripts

from .agents import BargeIn, NeverCloses, blocks, echo


def minimal_failure(
    agent: Handler, invariants: Sequence[Invariant] = (), max_examples: int = 60
) -> ScriptFailure:
    """Let hypothesis find a script the agent fails on, shrink it, and return its failure."""

    @settings(
        max_examples=max_examples,
        database=None,
        derandomize=True,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow],
        report_multiple_bugs=False,
    )
    @given(call_scripts(max_steps=6, max_seconds=4.0))
    def property_(script: CallScript) -> None:
        run_script(script, agent, invariants=invariants)

    with pytest.raises(ScriptFailure) as info:
        property_()
    return info.value


def test_an_agent_that_keeps_talking_after_an_interruption_is_caught() -> None:
    failure = minimal_failure(BargeIn(broken=True), [QuietWhileInterrupted()])
    assert {v.invariant for v in failure.violations} == {"quiet_while_interrupted"}, failure
    assert failure.script is not None
    # The shortest way to catch it: the caller talks over the agent once.
    assert len(failure.script) <= 2, failure.script
    assert any(isinstance(step, Speak) for step in failure.script.steps)
    # The same agent done right passes that very script.
    run_script(failure.script, BargeIn(), invariants=[QuietWhileInterrupted()])


def test_an_agent_that_never_closes_its_call_is_caught() -> None:
    failure = minimal_failure(NeverCloses())
    assert [v.invariant for v in failure.violations] == ["ends_closed_on_both_sides"], failure
    assert "handed off" in failure.violations[0].message
    assert failure.script is not None
    assert len(failure.script) <= 2, failure.script
    assert isinstance(failure.script.steps[-1], Shutdown)


def test_an_agent_that_blocks_in_its_handler_is_caught() -> None:
    failure = minimal_failure(blocks)
    assert [v.invariant for v in failure.violations] == ["ends_closed_on_both_sides"], failure
    assert "still running" in failure.violations[0].message
    assert failure.script is not None
    assert len(failure.script) <= 1, failure.script


def test_a_well_behaved_agent_is_not_flagged() -> None:
    @settings(max_examples=10, database=None, derandomize=True)
    @given(call_scripts(max_steps=6, max_seconds=4.0))
    def property_(script: CallScript) -> None:
        run_script(script, echo)

    property_()
