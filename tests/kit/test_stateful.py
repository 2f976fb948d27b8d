"""The state-machine helper: several agent processes, calls arriving and ending at once."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from telcoflow_trio.testing import SimulatedCall, TestSignal
from telcoflow_trio.testing.stateful import CallScenarios, ScenarioFailure

from ._profile import THOROUGH
from .agents import blocks, echo

SCENARIO_SETTINGS = settings(
    max_examples=60 if THOROUGH else 4,
    stateful_step_count=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class EchoScenarios(CallScenarios):
    # Control cuts included (the default): the sandbox then offers live calls again
    # (RESUME), and the agent holding one must keep it while the others leave it alone.
    handler = staticmethod(echo)
    managers = 2


def test_echo_agents_racing_for_concurrent_calls_keep_every_invariant() -> None:
    run_state_machine_as_test(EchoScenarios, settings=SCENARIO_SETTINGS)


class BlockingScenarios(CallScenarios):
    handler = staticmethod(blocks)
    managers = 2
    cut_control = False


def test_a_blocking_agent_fails_the_scenario() -> None:
    with pytest.raises(ScenarioFailure) as info:
        run_state_machine_as_test(
            BlockingScenarios,
            settings=settings(
                SCENARIO_SETTINGS, max_examples=30, derandomize=True, phases=[Phase.generate]
            ),
        )
    assert any("still running" in str(v) for _, v in info.value.violations)


class ResumeScenarios(CallScenarios):
    handler = staticmethod(echo)
    managers = 2


def test_a_resumed_call_is_kept_by_its_holder_and_left_alone_by_the_others() -> None:
    machine = ResumeScenarios()
    sim = machine.place_call(TestSignal(0.5))
    assert isinstance(sim, SimulatedCall)
    machine.time_passes(1.0)
    holder = next(r for r in machine.recorder.handler_runs if r.call_id == sim.call_id)
    for number in range(2):
        machine.drop_control(number)
    machine.time_passes(2.0)
    machine.teardown()  # raises ScenarioFailure on any violated invariant
    assert holder.error is None
    # Nobody else ran a handler for it: the RESUME was not served twice.
    assert [r.call_id for r in machine.recorder.handler_runs].count(sim.call_id) == 1
