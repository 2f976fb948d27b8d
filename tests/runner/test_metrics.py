"""Metrics and /healthz over real sockets: a sandbox call served by ``serve_calls``, counted
in /metrics (parsed with prometheus_client's parser); /healthz 200, then 503 while the control
connection is down or the server drains; reconnects counted; watch's polling and its end."""

from __future__ import annotations

import logging
from functools import partial
from types import SimpleNamespace
from typing import cast

import httpx
import pytest
import trio
import trio.testing

import telcoflow_trio as tf
from telcoflow_trio.runner._http import serve_http
from telcoflow_trio.runner._metrics import Metrics, healthy
from telcoflow_trio.testing import Sandbox, open_sandbox

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
HEARD = 9600  # 0.3 s at 16 kHz: what the agent waits to hear before it speaks
SAID = 32000  # 1 s: what it says, all queued at once (as a TTS faster than real time would)


def parse(body: bytes) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[name, tuple(sorted(labels.items()))]


async def scrape(port: int, path: str = "/metrics") -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


async def listen_answer_return(call: tf.Call) -> None:
    """Answers, hears the caller out, says its piece, waits for it to be played, returns."""
    assert await call.answer()
    heard = 0
    async for chunk in call.audio_stream():
        heard += len(chunk)
        if heard >= HEARD:
            break
    await call.send_audio(bytes(range(256)) * (SAID // 256), wait=True)
    await call.wait_for_playout()


async def wait_for_hang_up(call: tf.Call) -> None:
    assert await call.answer()
    await call.wait_terminated()


async def fail_after_answering(call: tf.Call) -> None:
    assert await call.answer()
    raise RuntimeError("the agent broke")


@pytest.mark.sandbox(time_scale=10)
async def test_served_calls_are_counted_in_metrics(sandbox: Sandbox) -> None:
    metrics = Metrics()
    ended: list[tuple[tf.Call, str]] = []
    call_over = trio.Event()
    mid_call: list[Samples] = []
    port = 0

    async def first(call: tf.Call) -> None:
        await listen_answer_return(call)
        metrics.poll(sm, server)
        mid_call.append(parse((await scrape(port)).content))

    behaviours = [first, wait_for_hang_up, fail_after_answering]

    async def handler(call: tf.Call) -> None:
        await behaviours.pop(0)(call)

    def on_call_end(call: tf.Call, outcome: tf.CallOutcome) -> None:
        nonlocal call_over
        metrics.call_ended(call, outcome)
        ended.append((call, outcome))
        call_over.set()
        call_over = trio.Event()

    with trio.fail_after(60):  # a hang safety net, not a timing assertion
        async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
            server = tf.CallServer(sm, handler, max_calls=2, on_call_end=on_call_end)
            check = partial(healthy, sm, server)
            port = await nursery.start(
                partial(serve_http, "127.0.0.1", 0, healthy=check, metrics=metrics.render)
            )
            nursery.start_soon(server.run)
            await sandbox.wait_control_connections(1)
            # One call at a time, so each meets the next behaviour.
            over = call_over
            await sandbox.place_call(audio=bytes(HEARD * 2))
            await over.wait()
            over = call_over
            caller = await sandbox.place_call()
            await caller.wait_answered()
            await caller.hang_up()
            await over.wait()
            over = call_over
            await sandbox.place_call()
            await over.wait()
            metrics.poll(sm, server)
            response = await scrape(port)
            assert (await scrape(port, "/healthz")).status_code == 200
            nursery.cancel_scope.cancel()

    assert [outcome for _, outcome in ended] == ["completed", "hung_up", "failed"]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    found = parse(response.content)
    during = mid_call[0]
    assert value(during, "telcoflow_active_calls") == 1
    assert value(during, "telcoflow_calls_total", outcome="completed") == 0

    calls = [call for call, _ in ended]
    counters = [c.audio_counters for c in calls]
    assert all(c is not None for c in counters)
    assert counters[0] is not None and counters[0].sent_bytes == SAID // 256 * 256
    assert value(found, "telcoflow_active_calls") == 0
    assert value(found, "telcoflow_healthy") == 1
    for outcome in ("completed", "hung_up", "failed"):
        assert value(found, "telcoflow_calls_total", outcome=outcome) == 1
    assert value(found, "telcoflow_calls_total", outcome="closed") == 0
    assert value(found, "telcoflow_claims_total", result="won") == 3
    assert value(found, "telcoflow_claims_total", result="lost") == 0
    assert value(found, "telcoflow_claims_total", result="skipped_at_capacity") == 0
    assert value(found, "telcoflow_control_reconnects_total") == 0
    underruns = sum(c.underruns for c in counters if c is not None)
    assert value(found, "telcoflow_audio_underruns_total") == underruns
    dropped = sum(c.dropped_bytes for c in counters if c is not None)
    assert value(found, "telcoflow_audio_dropped_bytes_total", direction="outgoing") == dropped
    rtts = [t for c in calls for t in c.command_rtts]
    fills = [t for c in calls for t in c.pull_fill_times]
    assert all(c.command_rtts for c in calls)  # every one answered
    assert len(calls[0].pull_fill_times) >= 1  # pulls that found the agent's words queued
    assert value(found, "telcoflow_command_rtt_seconds_count") == len(rtts)
    assert value(found, "telcoflow_command_rtt_seconds_sum") == pytest.approx(sum(rtts))
    assert value(found, "telcoflow_pull_fill_seconds_count") == len(fills)
    assert value(found, "telcoflow_pull_fill_seconds_bucket", le="+Inf") == len(fills)


async def run_sandbox(
    stop: trio.Event, *, task_status: trio.TaskStatus[Sandbox] = trio.TASK_STATUS_IGNORED
) -> None:
    async with open_sandbox(time_scale=10) as sandbox:
        task_status.started(sandbox)
        await stop.wait()


async def test_healthz_follows_the_control_connection_and_reconnects_are_counted() -> None:
    metrics = Metrics()
    stop = trio.Event()
    with trio.fail_after(60):
        async with trio.open_nursery() as outer:
            sandbox = await outer.start(run_sandbox, stop)
            async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
                port = await nursery.start(
                    partial(
                        serve_http,
                        "127.0.0.1",
                        0,
                        healthy=partial(healthy, sm),
                        metrics=metrics.render,
                    )
                )
                assert (await scrape(port, "/healthz")).status_code == 200

                # A dropped control connection comes back: one reconnect.
                await sandbox.drop_control_connections()
                await sm.wait_connection_state(tf.ConnectionState.RECONNECTING)
                await sm.wait_connected()
                metrics.poll(sm)
                found = parse((await scrape(port)).content)
                assert value(found, "telcoflow_control_reconnects_total") == 1
                metrics.poll(sm)  # polled again: still one (counted as a delta)
                found = parse((await scrape(port)).content)
                assert value(found, "telcoflow_control_reconnects_total") == 1

                # The service is gone: the connection stays down, and so does health.
                stop.set()
                await sm.wait_connection_state(tf.ConnectionState.RECONNECTING)
                response = await scrape(port, "/healthz")
                assert (response.status_code, response.text) == (503, "unhealthy\n")
                metrics.poll(sm)
                assert value(parse(metrics.render()[0]), "telcoflow_healthy") == 0
                nursery.cancel_scope.cancel()


@pytest.mark.sandbox(time_scale=10)
async def test_healthz_is_503_while_draining(sandbox: Sandbox) -> None:
    metrics = Metrics()
    with trio.fail_after(60):
        async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
            server = tf.CallServer(sm, wait_for_hang_up)
            port = await nursery.start(
                partial(
                    serve_http,
                    "127.0.0.1",
                    0,
                    healthy=partial(healthy, sm, server),
                    metrics=metrics.render,
                )
            )
            nursery.start_soon(server.run)
            assert (await scrape(port, "/healthz")).status_code == 200
            server.drain()
            assert (await scrape(port, "/healthz")).status_code == 503
            metrics.poll(sm, server)
            assert value(parse(metrics.render()[0]), "telcoflow_healthy") == 0
            nursery.cancel_scope.cancel()


@pytest.mark.sandbox(time_scale=10)
async def test_watch_polls_until_cancelled_then_reports_the_process_gone(
    sandbox: Sandbox,
) -> None:
    metrics = Metrics()

    def health() -> float:
        return value(parse(metrics.render()[0]), "telcoflow_healthy")

    with trio.fail_after(60):
        async with tf.SessionManager(sandbox.config()) as sm:
            async with trio.open_nursery() as nursery:
                assert health() == 0
                nursery.start_soon(partial(metrics.watch, sm, interval=0.01))
                await trio.testing.wait_all_tasks_blocked()  # its first poll is at once
                assert health() == 1
                await sandbox.drop_control_connections()
                await sm.wait_connection_state(tf.ConnectionState.RECONNECTING)
                await sm.wait_connected()
                # Several polls' worth (their deadlines come first, and each woken one has
                # run once every task is blocked): the reconnect is counted once.
                await trio.sleep(0.05)
                await trio.testing.wait_all_tasks_blocked()
                found = parse(metrics.render()[0])
                assert value(found, "telcoflow_control_reconnects_total") == 1
                nursery.cancel_scope.cancel()
            assert health() == 0
            with pytest.raises(ValueError, match="interval"):
                await metrics.watch(sm, interval=0)


def test_an_unknown_outcome_is_logged_not_raised_nor_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    call = SimpleNamespace(
        id="c1",
        audio_counters=None,
        incoming_audio_dropped_bytes=0,
        command_rtts=(),
        pull_fill_times=(),
    )
    with caplog.at_level(logging.ERROR):
        metrics.call_ended(call, "exploded")  # type: ignore[arg-type]
    assert any("c1" in r.getMessage() for r in caplog.records)
    found = parse(metrics.render()[0])
    assert sum(v for (name, _), v in found.items() if name == "telcoflow_calls_total") == 0


class BrokenManager:
    """A manager whose claim counters cannot be read."""

    reconnects = 0
    connection_state = tf.ConnectionState.CONNECTED

    @property
    def claim_stats(self) -> tf.ClaimStats:
        raise RuntimeError("no stats today")


async def test_a_failing_poll_is_logged_once_and_watch_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    with trio.fail_after(20), caplog.at_level(logging.ERROR):
        async with trio.open_nursery() as nursery:
            broken = cast(tf.SessionManager, BrokenManager())
            nursery.start_soon(partial(metrics.watch, broken, interval=0.001))
            await trio.sleep(0.02)  # many polls, every one failing
            nursery.cancel_scope.cancel()
    failures = [r for r in caplog.records if "polling the manager failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
