"""Interoperability with the official asyncio client, ``telcoflow==1.0.0``.

The sandbox runs from the command line in one subprocess; official-client agents
(``interop_client.py``) run in others, and the test drives calls through the admin API.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

CLIENT = Path(__file__).with_name("interop_client.py")


def _official_client_installed() -> None:
    # The `test` extra installs it; a missing package is a broken environment, not a skip.
    try:
        import telcoflow  # noqa: F401
    except ImportError as exc:  # pragma: no cover
        raise AssertionError("telcoflow==1.0.0 is required (pip install -e .[test])") from exc


@pytest.fixture(scope="module")
def sandbox_process() -> Iterator[dict[str, Any]]:
    """``python -m telcoflow_trio sandbox --json``, shared by this module's tests."""
    _official_client_installed()
    proc = subprocess.Popen(
        [sys.executable, "-m", "telcoflow_trio", "sandbox", "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "the sandbox printed nothing"
        info: dict[str, Any] = json.loads(line)
        yield info
    finally:
        proc.terminate()
        try:
            assert proc.wait(timeout=10) == 0, "the sandbox did not stop cleanly on SIGTERM"
        finally:
            proc.kill()
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture
async def admin(sandbox_process: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    headers = {
        "x-api-key": sandbox_process["api_key"],
        "x-connector-uuid": sandbox_process["connector_uuid"],
    }
    async with httpx.AsyncClient(base_url=sandbox_process["rest_url"], headers=headers) as http:
        yield http


class Agent:
    """One official-client agent process; ``result`` is its RESULT line."""

    def __init__(self, info: dict[str, Any], mode: str) -> None:
        self.info = info
        self.mode = mode
        self.sm_ws_id = ""
        self.result: dict[str, Any] | None = None
        self.output: list[str] = []
        self.ready = trio.Event()
        self.returncode: int | None = None

    async def run(self) -> None:
        env = {
            **os.environ,
            "SANDBOX_URL": self.info["base_url"],
            "SANDBOX_API_KEY": self.info["api_key"],
            "SANDBOX_CONNECTOR_UUID": self.info["connector_uuid"],
        }
        async with trio.open_nursery() as nursery:
            proc = await nursery.start(
                partial(
                    trio.run_process,
                    [sys.executable, str(CLIENT), self.mode],
                    env=env,
                    stdout=subprocess.PIPE,
                    check=False,
                )
            )
            buffer = b""
            assert proc.stdout is not None
            async for chunk in proc.stdout:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    line = raw.decode()
                    self.output.append(line)
                    if line.startswith("READY "):
                        self.sm_ws_id = line.split()[1]
                        self.ready.set()
                    elif line.startswith("RESULT "):
                        self.result = json.loads(line[len("RESULT ") :])
            self.returncode = await proc.wait()


async def _run_agents(
    info: dict[str, Any], modes: list[str], admin: httpx.AsyncClient, trigger: Any
) -> list[Agent]:
    agents = [Agent(info, mode) for mode in modes]
    async with trio.open_nursery() as nursery:
        for agent in agents:
            nursery.start_soon(agent.run)
        for agent in agents:
            await agent.ready.wait()
        # The agents must hear the notify: wait until they all finished setup.
        while True:
            state = (await admin.get("/admin/state")).json()
            if {a.sm_ws_id for a in agents} <= set(state["controlConnections"]):
                break
            await trio.sleep(0.05)
        await trigger()
    for agent in agents:
        assert agent.returncode == 0, agent.output
    return agents


async def test_echo_quickstart(sandbox_process: dict[str, Any], admin: httpx.AsyncClient) -> None:
    placed: dict[str, Any] = {}

    async def place() -> None:
        response = await admin.post(
            "/admin/calls", json={"caller": "+15550001", "audio": {"signal": {"seconds": 2}}}
        )
        assert response.status_code == 201
        placed.update(response.json())

    with trio.fail_after(40):
        (agent,) = await _run_agents(sandbox_process, ["echo"], admin, place)
        assert agent.result == {"answered": True, "echoed": 64_000, "closed": True}
        status = (await admin.get(f"/admin/calls/{placed['callId']}?audio=1")).json()
    assert status["state"] == "ENDED"
    assert status["endedBy"] == "AGENT_CLOSE"
    spoken = base64.b64decode(status["spoken"])
    heard = base64.b64decode(status["heard"])
    assert len(spoken) == 64_000
    # Byte for byte, a trailing partial frame aside.
    assert len(spoken) - len(heard) < 640
    assert heard == spoken[: len(heard)]
    assert status["excessBytes"] == 0


async def test_wa_round_trip(sandbox_process: dict[str, Any], admin: httpx.AsyncClient) -> None:
    async def message() -> None:
        response = await admin.post(
            "/admin/wa/messages",
            json={"remoteAddress": "+15550002", "content": {"text": {"body": "hola"}}},
        )
        assert response.status_code == 201

    with trio.fail_after(40):
        before = len((await admin.get("/admin/wa/outbox")).json()["items"])
        (agent,) = await _run_agents(sandbox_process, ["wa"], admin, message)
        outbox = (await admin.get("/admin/wa/outbox")).json()["items"][before:]
    assert agent.result is not None
    assert agent.result["sender"] == "+15550002"
    assert agent.result["text"] == "hola"
    assert agent.result["sent"] is True
    assert agent.result["message_id"].startswith("wamid.")
    assert agent.result["closed"] is True
    assert agent.result["close_seconds"] < 5  # confirmed by session.closed, not a timeout
    (out,) = outbox
    assert out["data"] == {"type": "text", "text": {"body": "echo: hola"}}
    assert out["api_version"] == "v21.0"


async def test_connect_unanswered(
    sandbox_process: dict[str, Any], admin: httpx.AsyncClient
) -> None:
    async def place() -> None:
        response = await admin.post("/admin/calls", json={"connect": {"outcome": "UNANSWERED"}})
        assert response.status_code == 201

    with trio.fail_after(40):
        (agent,) = await _run_agents(sandbox_process, ["connect"], admin, place)
    assert agent.result == {
        "success": False,
        "error_code": "CALL_UNANSWERED",
        "whisper_error": "CALL_NOT_CONNECTED",
        "disconnected": True,
    }


async def test_two_official_clients_race_for_one_session(
    sandbox_process: dict[str, Any], admin: httpx.AsyncClient
) -> None:
    async def place() -> None:
        assert (await admin.post("/admin/calls", json={})).status_code == 201

    with trio.fail_after(40):
        agents = await _run_agents(sandbox_process, ["race", "race"], admin, place)
    results = [a.result for a in agents]
    assert all(r is not None for r in results)
    winners = [a for a in agents if a.result and a.result["won"]]
    losers = [a for a in agents if a.result and not a.result["won"]]
    assert len(winners) == 1 and len(losers) == 1
    assert winners[0].result is not None and losers[0].result is not None
    assert winners[0].result["sm_ws_id"] == winners[0].sm_ws_id
    assert losers[0].result["bound"] == winners[0].sm_ws_id
    assert losers[0].result["message"].startswith("[SESSION_BUSY]")
