"""The pytest plugin as a user meets it: installed, it is registered by its entry point;
its ``sandbox`` fixture works in pytest-trio's trio mode; ``pytest_plugins`` must not name
it again. Each case is a real pytest run in a directory of its own."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

USER_TEST = """
import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio.sandbox import TestSignal


async def test_the_sandbox_answers(sandbox):
    async def echo(call):
        if await call.answer():
            async for chunk in call.audio_stream():
                await call.send_audio(chunk, wait=True)

    async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
        nursery.start_soon(sm.serve_calls, echo)
        sim = await sandbox.place_call(audio=TestSignal(seconds=1))
        with trio.fail_after(10):
            await sim.wait_spoken()
            await sim.wait_heard(len(sim.spoken))
        await sim.hang_up()
        nursery.cancel_scope.cancel()
    assert sim.heard == sim.spoken


@pytest.mark.sandbox(time_scale=10)
async def test_the_marker_configures_it(sandbox):
    assert sandbox.clock.time_scale == 10
"""


def run_pytest(where: pathlib.Path, ini: str, conftest: str | None = None) -> str:
    (where / "pytest.ini").write_text(ini)
    (where / "test_user.py").write_text(USER_TEST)
    if conftest is not None:
        (where / "conftest.py").write_text(conftest)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a hang safety net only
        check=False,
    )
    return f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


def test_the_fixture_works_in_trio_mode_with_nothing_in_conftest(tmp_path: pathlib.Path) -> None:
    out = run_pytest(tmp_path, "[pytest]\ntrio_mode = true\n")
    assert out.startswith("exit 0"), out
    assert "2 passed" in out, out


def test_without_trio_mode_the_async_fixture_is_not_run(tmp_path: pathlib.Path) -> None:
    out = run_pytest(tmp_path, "[pytest]\n")
    assert not out.startswith("exit 0"), out
    assert "async fixture 'sandbox'" in out, out


def test_naming_the_plugin_in_pytest_plugins_as_well_crashes_pytest(
    tmp_path: pathlib.Path,
) -> None:
    # What the docstrings warn about: the entry point has registered it already.
    conftest = 'pytest_plugins = ["telcoflow_trio.testing.pytest_plugin"]\n'
    out = run_pytest(tmp_path, "[pytest]\ntrio_mode = true\n", conftest)
    assert not out.startswith("exit 0"), out
    assert "Plugin already registered" in out, out
