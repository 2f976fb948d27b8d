"""The README's quick start is examples/quickstart.py, verbatim, and that file echoes a call.

The file is run as a script, as a reader would run it, with the ``TELCOFLOW_*`` variables of
a sandbox's config (what ``python -m telcoflow_trio sandbox`` prints as an export line).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import trio

from telcoflow_trio.sandbox import TestSignal, open_sandbox

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart.py"
HEADING = "## Quick start"


def readme_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert HEADING in readme, f"README.md lost its {HEADING!r} section"
    section = readme.split(HEADING, 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_shows_the_quick_start_file_verbatim() -> None:
    assert readme_block() == QUICKSTART.read_text(encoding="utf-8")


def test_the_quick_start_is_short() -> None:
    assert len(readme_block().splitlines()) <= 22


def test_importing_the_quick_start_runs_nothing() -> None:
    spec = importlib.util.spec_from_file_location("example_quickstart", QUICKSTART)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no trio.run at import: a test may reuse handle_call
    assert callable(module.handle_call) and callable(module.main)


async def test_the_quick_start_echoes_a_call_on_the_sandbox() -> None:
    async with open_sandbox(time_scale=10) as sandbox:
        config = sandbox.config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELCOFLOW_")}
        assert config.api_key is not None and config.connector_uuid is not None
        env.update(
            TELCOFLOW_API_KEY=config.api_key,
            TELCOFLOW_CONNECTOR_UUID=config.connector_uuid,
            TELCOFLOW_BASE_URL=config.base_url,
        )
        with trio.fail_after(30):  # a hang safety net, not a timing assertion
            async with trio.open_nursery() as nursery:
                process = await nursery.start(
                    partial(
                        trio.run_process,
                        [sys.executable, str(QUICKSTART)],
                        env=env,
                        check=False,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
                await sandbox.wait_control_connections(1)
                sim = await sandbox.place_call(audio=TestSignal(seconds=1))
                await sim.wait_spoken()
                await sim.wait_heard(len(sim.spoken))
                process.terminate()
    assert sim.spoken and sim.heard == sim.spoken
    assert [c.command for c in sim.commands][:1] == ["call.answer"]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Two commands", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2, commands
    assert commands[0] == "python -m pip install -e . && python -m telcoflow_trio demo"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[1] in ci, "CI must run the README's test command verbatim (.ci/run)"
