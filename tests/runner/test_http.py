"""serve_http over real sockets on 127.0.0.1: the routes and their answers, port 0, a port in
use, a host that is not ours, and cancellation with connections still open."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import httpx
import pytest
import trio

from telcoflow_trio.runner._errors import RunConfigError
from telcoflow_trio.runner._http import serve_http

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Health:
    def __init__(self) -> None:
        self.ok = True
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.ok


def metrics_body() -> tuple[bytes, str]:
    return b"# a body\nx 1.0\n", METRICS_TYPE


@asynccontextmanager
async def running(
    healthy: Callable[[], bool], metrics: Callable[[], tuple[bytes, str]] = metrics_body
) -> AsyncIterator[tuple[int, trio.Nursery]]:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            partial(serve_http, "127.0.0.1", 0, healthy=healthy, metrics=metrics)
        )
        yield port, nursery
        nursery.cancel_scope.cancel()


async def test_routes_answer_over_a_real_socket() -> None:
    health = Health()
    with trio.fail_after(20):  # a hang safety net, not a timing assertion
        async with running(health) as (port, _):
            assert port > 0
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                r = await client.get("/healthz")
                assert (r.status_code, r.text) == (200, "ok\n")
                health.ok = False
                r = await client.get("/healthz")
                assert (r.status_code, r.text) == (503, "unhealthy\n")
                assert health.calls == 2  # asked per request, never cached

                r = await client.get("/metrics")
                assert r.status_code == 200
                assert r.headers["content-type"] == METRICS_TYPE
                assert r.content == metrics_body()[0]

                r = await client.head("/metrics")
                assert (r.status_code, r.content) == (200, b"")
                assert r.headers["content-length"] == str(len(metrics_body()[0]))

                assert (await client.get("/")).status_code == 404
                assert (await client.get("/metrics/x")).status_code == 404
                r = await client.post("/healthz", content=b"x")
                assert r.status_code == 405
                assert r.headers["allow"] == "GET, HEAD"


async def test_a_raising_check_is_503_and_a_raising_metrics_is_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_health() -> bool:
        raise RuntimeError("health boom")

    def broken_metrics() -> tuple[bytes, str]:
        raise RuntimeError("metrics boom")

    with trio.fail_after(20):
        async with (
            running(broken_health, broken_metrics) as (port, _),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        ):
            assert (await client.get("/healthz")).status_code == 503
            assert (await client.get("/metrics")).status_code == 500
    messages = [r.getMessage() for r in caplog.records if r.exc_info]
    assert any("/healthz" in m for m in messages)
    assert any("/metrics" in m for m in messages)


async def test_a_port_in_use_is_one_line_naming_host_and_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RunConfigError) as info:
            await serve_http("127.0.0.1", port, healthy=Health(), metrics=metrics_body)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "address already in use" in message
    assert "\n" not in message


async def test_a_host_that_is_not_ours_is_a_run_config_error() -> None:
    # 192.0.2.0/24 is TEST-NET-1: never an address of this machine.
    with pytest.raises(RunConfigError, match=r"192\.0\.2\.1:0"):
        await serve_http("192.0.2.1", 0, healthy=Health(), metrics=metrics_body)


@pytest.mark.parametrize(
    ("host", "port", "error"),
    [("127.0.0.1", -1, ValueError), ("127.0.0.1", 70000, ValueError), ("", 0, TypeError)],
)
async def test_bad_arguments_are_refused(host: str, port: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        await serve_http(host, port, healthy=Health(), metrics=metrics_body)


async def test_cancel_returns_with_connections_open_and_frees_the_port() -> None:
    with trio.fail_after(20):
        # An idle keep-alive connection, and one that sent half a request.
        async with (
            running(Health()) as (port, nursery),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        ):
            assert (await client.get("/healthz")).status_code == 200
            half = await trio.open_tcp_stream("127.0.0.1", port)
            await half.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            nursery.cancel_scope.cancel()
        await half.aclose()
    # The listening socket is closed: the port can be bound at once.
    async with running(Health()) as (again, _):
        assert again > 0
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
