"""RunOptions' checks and load_handler's errors: each bad input is one RunConfigError line
that names what was wrong."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from telcoflow_trio.runner._errors import RunConfigError
from telcoflow_trio.runner._options import RunOptions, load_handler, parse_workers
from tests.runner import agents


def _one_line(exc: pytest.ExceptionInfo[RunConfigError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_defaults() -> None:
    options = RunOptions("agent:handle")
    assert options.max_calls is None
    assert options.max_load is None
    assert options.drain_timeout == 600.0
    assert options.workers == 1
    assert options.http_host == "127.0.0.1"
    assert options.http_port is None


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"max_calls": 0}, "--max-calls"),
        ({"max_calls": True}, "--max-calls"),
        ({"max_load": 0.0}, "--max-load"),
        ({"max_load": 1.5}, "--max-load"),
        ({"max_load": float("nan")}, "--max-load"),
        ({"drain_timeout": -1.0}, "--drain-timeout"),
        ({"drain_timeout": float("inf")}, "--drain-timeout"),
        ({"workers": 0}, "--workers"),
        ({"workers": "many"}, "--workers"),
        ({"http_port": 70000}, "--http-port"),
        ({"http_port": -1}, "--http-port"),
        ({"http_host": " "}, "--http-host"),
    ],
)
def test_bad_option_names_the_flag(kwargs: dict[str, object], names: str) -> None:
    with pytest.raises(RunConfigError) as exc:
        RunOptions("agent:handle", **kwargs)  # type: ignore[arg-type]
    assert names in _one_line(exc)


def test_workers_parse() -> None:
    assert parse_workers("auto") == "auto"
    assert parse_workers(" AUTO ") == "auto"
    assert parse_workers("3") == 3
    assert RunOptions("a:b", workers="2").workers == 2  # type: ignore[arg-type]
    with pytest.raises(RunConfigError, match="at least 1"):
        parse_workers("-2")


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("agent", "has no ':'"),
        (":handle", "is not a module name"),
        ("agent:", "is not a function name"),
        ("agent-x:handle", "is not a module name"),
        ("agent:handle()", "is not a function name"),
    ],
)
def test_malformed_path(path: str, fragment: str) -> None:
    with pytest.raises(RunConfigError) as exc:
        RunOptions(path)
    assert fragment in _one_line(exc)
    with pytest.raises(RunConfigError):
        load_handler(path)


def test_loads_an_async_function_and_an_async_callable_object() -> None:
    assert load_handler("tests.runner.agents:answer_and_wait") is agents.answer_and_wait
    assert load_handler("tests.runner.agents:counter") is agents.counter
    assert load_handler("tests.runner.agents:Counter.__call__") is agents.Counter.__call__  # type: ignore[comparison-overlap]


def test_missing_module() -> None:
    with pytest.raises(RunConfigError) as exc:
        load_handler("tests.runner.no_such_agents:handle")
    message = _one_line(exc)
    assert "no module named 'tests.runner.no_such_agents'" in message


def test_missing_attribute() -> None:
    with pytest.raises(RunConfigError) as exc:
        load_handler("tests.runner.agents:no_such_handler")
    assert "'tests.runner.agents' has no attribute 'no_such_handler'" in _one_line(exc)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("sync_handler", "a plain def"), ("not_a_function", "an int"), ("Counter", "a class")],
)
def test_not_an_async_function(name: str, kind: str) -> None:
    with pytest.raises(RunConfigError) as exc:
        load_handler(f"tests.runner.agents:{name}")
    message = _one_line(exc)
    assert "is not an async function" in message
    assert f"(it is {kind})" in message


def test_the_current_directory_is_importable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cwd_agent_for_test.py").write_text("async def handle(call):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "cwd_agent_for_test", raising=False)
    handler = load_handler("cwd_agent_for_test:handle")
    assert handler.__name__ == "handle"  # type: ignore[attr-defined]
    assert sys.path[0] == str(tmp_path)
    sys.modules.pop("cwd_agent_for_test", None)


def test_a_module_that_imports_something_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_agent_for_test.py").write_text("import not_installed_anywhere_xyz\n")
    (tmp_path / "raising_agent_for_test.py").write_text("raise RuntimeError('boom\\nsecond')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RunConfigError) as exc:
        load_handler("broken_agent_for_test:handle")
    message = _one_line(exc)
    assert "it imports 'not_installed_anywhere_xyz', which is not installed" in message
    with pytest.raises(RunConfigError) as exc:
        load_handler("raising_agent_for_test:handle")
    assert "raised RuntimeError: boom" in _one_line(exc)
