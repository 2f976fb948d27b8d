"""Every example runs against the sandbox, bounded in time, and refuses clearly without
credentials; the real-server path (environment variables) is run against a sandbox too."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
from functools import partial
from types import ModuleType

import pytest
import trio

from telcoflow_trio._entry import INTERRUPTED_STATUS
from telcoflow_trio.testing import TestSignal, open_sandbox

from .cli.interrupting import Ended, running

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ENV_EXAMPLES = [
    "echo_agent.py",
    "interruption.py",
    "assistant_whisper.py",
    "messages.py",
    "anyio_app.py",
    "asyncio_model_bridge.py",
    "handoff/front.py",
]


def run_example(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELCOFLOW_")}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
        env=env,
    )


def load(name: str) -> ModuleType:
    path = EXAMPLES / name
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_echo_agent_against_the_sandbox() -> None:
    proc = run_example("examples/echo_agent.py", "--sandbox", "--seconds", "1")
    assert proc.returncode == 0, proc.stderr
    assert "identical" in proc.stdout
    assert "heard back 32000 bytes" in proc.stdout


def test_interruption_resumes_where_the_caller_stopped_hearing() -> None:
    proc = run_example("examples/interruption.py", "--sandbox", "--time-scale", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 interruption(s)" in proc.stdout
    assert "the greeting once and whole, then the reply" in proc.stdout


def test_assistant_whisper_connects_whispers_and_handles_no_answer() -> None:
    proc = run_example("examples/assistant_whisper.py", "--sandbox", "--time-scale", "10")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "call.connect CALL_UNANSWERED" in proc.stdout
    assert "agent.whisper ok" in proc.stdout


def test_messages_reply_and_close_the_conversation() -> None:
    proc = run_example("examples/messages.py", "--sandbox")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "agent -> +15551230000: You said: hi" in proc.stdout
    assert "agent -> +15559990000: Hello from the agent!" in proc.stdout


def test_anyio_app_runs_the_sdk_in_an_anyio_task_group() -> None:
    proc = run_example("examples/anyio_app.py", "--sandbox")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("report: call") == 2
    assert "both callers heard themselves back" in proc.stdout


def test_asyncio_model_bridge_drives_an_asyncio_model_from_trio() -> None:
    proc = run_example("examples/asyncio_model_bridge.py", "--sandbox")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "each chunk answered, in order" in proc.stdout


def test_handoff_front_gives_calls_to_a_worker_process() -> None:
    proc = run_example("examples/handoff/front.py", "--sandbox")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the worker accepted 2 call(s)" in proc.stdout
    assert proc.stdout.count("answered by the worker, echo exact") == 2


def test_handoff_worker_needs_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HANDOFF_SECRET", raising=False)
    with pytest.raises(SystemExit) as exc_info:
        load("handoff/worker.py").main([])
    assert "HANDOFF_SECRET" in str(exc_info.value.code)


def test_handoff_front_needs_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELCOFLOW_API_KEY", "sk-test")
    monkeypatch.setenv("TELCOFLOW_CONNECTOR_UUID", "c-1")
    monkeypatch.delenv("HANDOFF_WORKER_URL", raising=False)
    with pytest.raises(SystemExit) as exc_info:
        load("handoff/front.py").main([])
    assert "HANDOFF_WORKER_URL" in str(exc_info.value.code)


@pytest.mark.parametrize("name", ENV_EXAMPLES)
def test_without_credentials_an_example_says_what_to_set(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("TELCOFLOW_"):
            monkeypatch.delenv(key)
    with pytest.raises(SystemExit) as exc_info:
        load(name).main([])
    message = str(exc_info.value.code)
    assert "TELCOFLOW_API_KEY" in message and "--sandbox" in message


@pytest.mark.parametrize("name", ENV_EXAMPLES)
def test_bad_settings_in_the_environment_are_named(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELCOFLOW_API_KEY", "sk-test")
    monkeypatch.setenv("TELCOFLOW_CONNECTOR_UUID", "c-1")
    monkeypatch.setenv("TELCOFLOW_BASE_URL", "ftp://example.invalid")
    with pytest.raises(SystemExit) as exc_info:
        load(name).main([])
    message = str(exc_info.value.code)
    assert message.startswith("bad Telcoflow settings") and "base_url" in message
    assert "sk-test" not in message


async def test_echo_agent_serves_a_server_named_by_environment_variables() -> None:
    async with open_sandbox() as sandbox:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TELCOFLOW_")}
        env.update(
            TELCOFLOW_API_KEY=sandbox.api_key,
            TELCOFLOW_CONNECTOR_UUID=sandbox.connector_uuid,
            TELCOFLOW_BASE_URL=sandbox.url,
        )
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                process = await nursery.start(
                    partial(
                        trio.run_process,
                        [sys.executable, str(EXAMPLES / "echo_agent.py")],
                        env=env,
                        check=False,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
                await sandbox.wait_control_connections(1)
                sim = await sandbox.place_call(audio=TestSignal(seconds=0.5))
                await sim.wait_spoken()
                await sim.wait_heard(len(sim.spoken))
                process.terminate()
        assert sim.heard == sim.spoken


# ── Ctrl+C: status 130, the line "interrupted" last on stderr, no traceback ───────────────


def assert_interrupted(ended: Ended) -> None:
    assert "Traceback" not in ended.stderr, ended.stderr
    assert ended.returncode == INTERRUPTED_STATUS, ended.stderr
    # The example's INFO log may say how the SDK closed down; the interruption is one line.
    assert ended.stderr.splitlines()[-1:] == ["interrupted"], ended.stderr
    assert ended.stderr.count("interrupted") == 1, ended.stderr


def test_ctrl_c_stops_the_handoff_worker() -> None:
    with running(["examples/handoff/worker.py"], {"HANDOFF_SECRET": "s3cret"}) as worker:
        worker.wait_for("stdout", "worker listening on http://")
        ended = worker.signal()
    assert_interrupted(ended)
    assert ended.stderr == "interrupted\n"


def test_ctrl_c_stops_an_agent_waiting_for_calls() -> None:
    with running(["-m", "telcoflow_trio", "sandbox", "--json"]) as server:
        info = json.loads(server.wait_for("stdout", "\n"))
        env = {
            "TELCOFLOW_API_KEY": info["api_key"],
            "TELCOFLOW_CONNECTOR_UUID": info["connector_uuid"],
            "TELCOFLOW_BASE_URL": info["base_url"],
        }
        with running(["examples/echo_agent.py"], env) as agent:
            agent.wait_for("stderr", "control connection established")
            assert_interrupted(agent.signal())
        assert_interrupted(server.signal())


def test_ctrl_c_during_a_sandbox_call() -> None:
    with running(["examples/echo_agent.py", "--sandbox", "--seconds", "60"]) as agent:
        agent.wait_for("stderr", "answered")
        ended = agent.signal()
    assert_interrupted(ended)
