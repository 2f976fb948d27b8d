"""The agent of the property test, raced by three managers (docs/guide/testing.rst)."""

from tests.kit.test_readme_example import greets_within_2_s, handle_call  # the property test's

# isort: split
# [scenarios]
from telcoflow_trio.testing.stateful import CallScenarios


class MyAgentScenarios(CallScenarios):
    handler = staticmethod(handle_call)  # or program = staticmethod(main)
    managers = 3  # agent processes racing for each call
    call_invariants = (greets_within_2_s,)


TestMyAgentScenarios = MyAgentScenarios.TestCase
# [/scenarios]
