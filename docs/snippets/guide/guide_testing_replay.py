"""Replay one call script in a plain test (docs/guide/testing.rst, "When a script fails")."""

from telcoflow_trio.testing import PlayedCall
from tests.kit.test_readme_example import handle_call  # the agent of the property test


def replay() -> PlayedCall:
    # [replay]
    from telcoflow_trio.testing import CallScript, Speak, run_script

    played = run_script(CallScript([Speak(seconds=0.31)]), handle_call, raise_on_failure=False)
    print(played.violations, played.summary())
    # [/replay]
    return played
