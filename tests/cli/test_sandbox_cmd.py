"""``python -m telcoflow_trio sandbox``: its export line connects an agent configured with
``SessionManagerConfig.from_env()``, and its text and ``--json`` outputs spell every key
the same way."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import httpx
import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio._cli._sandbox_cmd import ENV_NAMES, export_line

from .interrupting import running

# Header-safe, but every character a shell treats specially: only exact quoting survives.
NASTY_KEY = 'sk-it\'s a "key" $HOME `id` $(id) \\ ; & | * ? ! # ~ {a,b} > <'
LABEL = re.compile(r"^  ([a-z_]+):\s+(\S+)$")


def read_text(*extra: str) -> str:
    """Everything ``sandbox`` prints in text mode, up to "Press Ctrl+C to stop."."""
    with running(["-m", "telcoflow_trio", "sandbox", *extra]) as program:
        text = program.wait_for("stdout", "Press Ctrl+C to stop.")
        program.signal()
    return text


def labels(text: str) -> dict[str, str]:
    return {m[1]: m[2] for line in text.splitlines() if (m := LABEL.match(line))}


def the_export_line(text: str) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith("export ")]
    return line


def exported_by_bash(block: str) -> dict[str, str]:
    """The ``TELCOFLOW_*`` variables a shell has after running ``block``, in a clean env."""
    proc = subprocess.run(
        ["bash", "-c", block + "\nenv -0"],
        capture_output=True,
        env={"PATH": "/usr/bin:/bin"},
        check=True,
        timeout=30,
    )
    pairs = (item.split("=", 1) for item in proc.stdout.decode().split("\0") if "=" in item)
    return {k: v for k, v in pairs if k.startswith("TELCOFLOW_")}


async def test_the_export_line_connects_an_agent_configured_from_the_environment() -> None:
    with running(
        ["-m", "telcoflow_trio", "sandbox", "--api-key", NASTY_KEY, "--log-level", "INFO"]
    ) as program:
        text = program.wait_for("stdout", "Press Ctrl+C to stop.")
        # What a user pastes: the comment, the export line, (not the phone: no WAV here).
        block = "\n".join(
            line for line in text.splitlines() if line.startswith(("# an agent", "export "))
        )
        env = exported_by_bash(block)
        assert env == {
            "TELCOFLOW_API_KEY": NASTY_KEY,
            "TELCOFLOW_CONNECTOR_UUID": labels(text)["connector_uuid"],
            "TELCOFLOW_BASE_URL": labels(text)["base_url"],
        }
        config = tf.SessionManagerConfig.from_env(env)
        with trio.fail_after(30):
            async with tf.SessionManager(config) as sm:
                # Connected after __aenter__; the sandbox, asked over its admin API with
                # the same credentials, sees this manager's control connection.
                headers = {"x-api-key": NASTY_KEY, "x-connector-uuid": config.connector_uuid}
                url = labels(text)["admin_url"] + "/state"
                async with httpx.AsyncClient(headers=headers) as http:
                    state = (await http.get(url)).raise_for_status().json()
                assert state["controlConnections"] == [sm.sm_ws_id]
        ended = program.signal()
    assert ended.returncode == 130, ended.stderr


@pytest.mark.parametrize(
    "value", [NASTY_KEY, "", "plain", "new\nline", "'", '"', "ünïcode €", "-n", "a=b"]
)
def test_export_line_quotes_every_value_for_the_shell(value: str) -> None:
    env = {"TELCOFLOW_API_KEY": value, "TELCOFLOW_BASE_URL": "ws://127.0.0.1:1"}
    assert exported_by_bash(export_line(env)) == env
    assert shlex.split(export_line(env)) == ["export", *(f"{k}={v}" for k, v in env.items())]


def test_json_keys_are_the_text_labels_and_env_the_exported_names() -> None:
    fixed = ["--api-key", "sk-fixed-key-123", "--connector-uuid", "conn-1"]
    text = read_text(*fixed)
    with running(["-m", "telcoflow_trio", "sandbox", "--json", *fixed]) as program:
        info = json.loads(program.wait_for("stdout", "\n"))
        program.signal()
    shown = labels(text)
    assert set(info) == {*shown, "env"}
    assert list(shown) == ["base_url", "rest_url", "api_key", "connector_uuid", "admin_url"]
    assert (info["api_key"], info["connector_uuid"]) == ("sk-fixed-key-123", "conn-1")
    # `env` is the export line, under the names SessionManagerConfig.from_env reads.
    assert info["env"] == {env: info[key] for key, env in ENV_NAMES.items()}
    exported = dict(item.split("=", 1) for item in shlex.split(the_export_line(text))[1:])
    assert list(exported) == list(info["env"])
    assert tf.SessionManagerConfig.from_env(info["env"]).base_url == info["base_url"]
