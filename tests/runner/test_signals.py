"""ShutdownSignals in this process: real SIGTERM/SIGINT through trio's signal receiver,
acting on a stand-in for the CallServer's drain controls; and a worker's lifeline to its
supervisor (its end-to-end test, a supervisor killed, is in test_run_cli.py)."""

from __future__ import annotations

import os
import signal

import pytest
import trio
import trio.testing

from telcoflow_trio.runner._app import _lifeline
from telcoflow_trio.runner._errors import RunConfigError
from telcoflow_trio.runner._signals import ShutdownSignals
from telcoflow_trio.runner._supervisor import LIFELINE_ENV


class FakeServer:
    def __init__(self) -> None:
        self.calls: tuple[object, ...] = (object(), object())
        self.actions: list[tuple[str, float | None]] = []

    def drain(self, timeout: float | None = 600.0) -> None:
        self.actions.append(("drain", timeout))

    def close_calls(self) -> None:
        self.actions.append(("close_calls", None))


class Signals(ShutdownSignals):
    """Tells the test each time a signal has been handled."""

    handled = trio.Event()

    def handle(self, signum: int) -> None:
        super().handle(signum)
        self.handled.set()


async def _deliver(signals: Signals, signum: int) -> None:
    signals.handled = trio.Event()
    os.kill(os.getpid(), signum)
    with trio.fail_after(5):  # a hang safety net
        await signals.handled.wait()


async def test_first_signal_drains_second_closes_then_ignored() -> None:
    startups: list[str] = []
    signals = Signals(12.5, lambda: startups.append("stop"))
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        await nursery.start(signals.watch)
        signals.serving(server)
        await _deliver(signals, signal.SIGTERM)
        assert server.actions == [("drain", 12.5)]
        # SIGINT is a drain request too, never a KeyboardInterrupt while watched.
        await _deliver(signals, signal.SIGINT)
        assert server.actions == [("drain", 12.5), ("close_calls", None)]
        await _deliver(signals, signal.SIGTERM)
        assert server.actions[-1] == ("close_calls", None)
        signals.stopping()
        await _deliver(signals, signal.SIGINT)
        assert len(server.actions) == 3
        nursery.cancel_scope.cancel()
    assert startups == []


async def test_a_signal_before_serving_stops_the_startup() -> None:
    with trio.CancelScope() as startup:
        signals = ShutdownSignals(1.0, startup.cancel)
        async with trio.open_nursery() as nursery:
            await nursery.start(signals.watch)
            os.kill(os.getpid(), signal.SIGINT)
            await trio.sleep_forever()
    assert startup.cancelled_caught
    assert signals.received == 1


async def test_a_gone_supervisor_drains_like_a_first_signal_and_a_signal_then_closes() -> None:
    startups: list[str] = []
    signals = Signals(7.0, lambda: startups.append("stop"))
    signals.supervisor_gone()  # before serving: the start-up stops
    assert startups == ["stop"]
    signals = Signals(7.0, lambda: startups.append("stop"))
    server = FakeServer()
    async with trio.open_nursery() as nursery:
        await nursery.start(signals.watch)
        signals.serving(server)
        signals.supervisor_gone()
        assert server.actions == [("drain", 7.0)]
        await _deliver(signals, signal.SIGTERM)  # the operator's signal now closes them
        assert server.actions == [("drain", 7.0), ("close_calls", None)]
        nursery.cancel_scope.cancel()
    assert signals.received == 1  # a gone supervisor is not a signal received


@pytest.mark.parametrize("value", ["three", "999999", "-1"])
def test_a_bad_lifeline_setting_is_refused_naming_it(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LIFELINE_ENV, value)
    with pytest.raises(RunConfigError, match=f"{LIFELINE_ENV} must be .* got '{value}'"):
        _lifeline()


def test_the_lifeline_setting_is_taken_out_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_end, write_end = os.pipe()
    try:
        monkeypatch.setenv(LIFELINE_ENV, str(read_end))
        assert _lifeline() == read_end
        assert LIFELINE_ENV not in os.environ
        assert _lifeline() is None
    finally:
        os.close(read_end)
        os.close(write_end)
