"""Ctrl+C ends ``python -m telcoflow_trio ...`` (and the examples) with one line and status 130."""

from __future__ import annotations

import json
import signal

import pytest
import trio

from telcoflow_trio._entry import INTERRUPTED_STATUS, is_interrupt, run_main

from .interrupting import running


@pytest.mark.parametrize(
    ("signum", "status", "stderr"),
    [(signal.SIGINT, INTERRUPTED_STATUS, "interrupted\n"), (signal.SIGTERM, 0, "")],
)
def test_sandbox_command_stops_cleanly_on_a_signal(signum: int, status: int, stderr: str) -> None:
    with running(["-m", "telcoflow_trio", "sandbox", "--json"]) as program:
        info = json.loads(program.wait_for("stdout", "\n"))
        assert info["base_url"].startswith("ws://127.0.0.1:")
        ended = program.signal(signum)
    assert "Traceback" not in ended.stderr
    assert (ended.returncode, ended.stderr) == (status, stderr)


def test_ctrl_c_in_a_nursery_is_one_line_and_status_130(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def task() -> None:
        raise KeyboardInterrupt  # where trio's signal handler raises it: in some task

    async def main() -> None:
        async with trio.open_nursery() as outer:
            outer.start_soon(trio.sleep_forever)
            async with trio.open_nursery() as inner:
                inner.start_soon(task)

    def program() -> int:
        trio.run(main)
        return 0

    with pytest.raises(BaseExceptionGroup) as raised:
        program()  # what a bare `except KeyboardInterrupt` misses
    assert is_interrupt(raised.value)
    assert run_main(program) == INTERRUPTED_STATUS
    assert capsys.readouterr() == ("", "interrupted\n")


def test_errors_beside_the_interrupt_are_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    def program() -> int:
        raise BaseExceptionGroup("torn down", [KeyboardInterrupt(), OSError("socket closed")])

    assert run_main(program) == INTERRUPTED_STATUS
    assert capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize(
    "exc",
    [
        SystemExit(2),
        ValueError("bad"),
        ExceptionGroup("no interrupt", [ValueError("bad")]),
        BaseExceptionGroup("no interrupt", [GeneratorExit()]),
    ],
)
def test_anything_but_an_interrupt_goes_through(
    exc: BaseException, capsys: pytest.CaptureFixture[str]
) -> None:
    def program() -> int:
        raise exc

    with pytest.raises(type(exc)) as raised:
        run_main(program)
    assert raised.value is exc
    assert capsys.readouterr().err == ""


def test_the_exit_status_comes_through() -> None:
    assert run_main(lambda: 3) == 3
    assert not is_interrupt(ValueError("x"))
