"""Metrics and /healthz over real sockets: a sandbox call served by ``serve_calls``, counted
in /metrics (parsed with prometheus_client's parser); /healthz 200, then 503 while the control
connection is down or the server drains; reconnects counted; watch's polling and its end."""

from __future__ import annotations

import logging
from functools import partial
from types import SimpleNamespace

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


@pytest.mark.sandbox(time_scale=10)
async def test_a_served_call_is_counted_in_metrics(sandbox: Sandbox) -> None:
    metrics = Metrics()
    ended: list[tf.Call] = []
    mid_call: list[Samples] = []
    port = 0

    async def handler(call: tf.Call) -> None:
        await listen_answer_return(call)
        metrics.poll(sm)
        mid_call.append(parse((await scrape(port)).content))
        # As CallServer does: on_call_end once the call is closed.
        await call.close()
        metrics.call_ended(call, "completed")
        ended.append(call)

    with trio.fail_after(60):  # a hang safety net, not a timing assertion
        async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
            check = partial(healthy, sm)
            port = await nursery.start(
                partial(serve_http, "127.0.0.1", 0, healthy=check, metrics=metrics.render)
            )
            nursery.start_soon(partial(sm.serve_calls, handler, max_calls=2))
            await sandbox.wait_control_connections(1)
            caller = await sandbox.place_call(audio=bytes(HEARD * 2))
            await caller.wait_terminated()
            # Everything runs in this process: once every task is blocked, the session's
            # close (and the slot's release) has gone through.
            await trio.testing.wait_all_tasks_blocked()
            assert ended
            assert sm.claim_stats.active_calls == 0
            metrics.poll(sm)
            response = await scrape(port)
            assert (await scrape(port, "/healthz")).status_code == 200
            nursery.cancel_scope.cancel()

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    found = parse(response.content)
    during = mid_call[0]
    assert value(during, "telcoflow_active_calls") == 1
    assert value(during, "telcoflow_calls_total", outcome="completed") == 0

    (call,) = ended
    counters = call.audio_counters
    assert counters is not None
    assert counters.sent_bytes == SAID // 256 * 256
    assert value(found, "telcoflow_active_calls") == 0
    assert value(found, "telcoflow_healthy") == 1
    assert value(found, "telcoflow_calls_total", outcome="completed") == 1
    for outcome in ("failed", "hung_up", "closed"):
        assert value(found, "telcoflow_calls_total", outcome=outcome) == 0
    assert value(found, "telcoflow_claims_total", result="won") == 1
    assert value(found, "telcoflow_claims_total", result="lost") == 0
    assert value(found, "telcoflow_claims_total", result="skipped_at_capacity") == 0
    assert value(found, "telcoflow_control_reconnects_total") == 0
    assert value(found, "telcoflow_audio_underruns_total") == counters.underruns
    dropped = value(found, "telcoflow_audio_dropped_bytes_total", direction="outgoing")
    assert dropped == counters.dropped_bytes
    rtts, fills = call.command_rtts, call.pull_fill_times
    assert len(rtts) >= 2  # answer, close
    assert len(fills) >= 1  # pulls that found the agent's words queued
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
    server = SimpleNamespace(draining=False, claim_stats=None)
    metrics = Metrics()
    with trio.fail_after(60):
        async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
            server.claim_stats = sm.claim_stats
            port = await nursery.start(
                partial(
                    serve_http,
                    "127.0.0.1",
                    0,
                    healthy=partial(healthy, sm, server),
                    metrics=metrics.render,
                )
            )
            assert (await scrape(port, "/healthz")).status_code == 200
            server.draining = True
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
            nursery.start_soon(partial(metrics.watch, BrokenManager(), interval=0.001))
            await trio.sleep(0.02)  # many polls, every one failing
            nursery.cancel_scope.cancel()
    failures = [r for r in caplog.records if "polling the manager failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
