"""Fixtures for the runner's tests: a real ``redis-server`` on 127.0.0.1.

``redis_server`` starts one on a free port in a temporary directory (no persistence) and
stops it afterwards. redis-server cannot pick its own TCP port (``--port 0`` turns TCP
off), so a free port is found by binding a socket, and a start that loses the port to
someone else in between is retried on another. A missing binary fails the test (CI
installs the Debian package ``redis-server``); it is never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

REDIS_SERVER_BINARY = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
_START_ATTEMPTS = 5
_READY_DEADLINE = 10.0


@attrs.frozen
class RedisServer:
    """A running redis-server: its ``url`` is ``redis://127.0.0.1:PORT/0``."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            # NOAUTH: a server with --requirepass is up too.
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def start_redis_server(directory: Path, *options: str) -> RedisServer:
    """Start redis-server in ``directory`` on a free port, with more command-line
    ``options`` (``"--requirepass", "pw"``); fail the test if it cannot."""
    binary = REDIS_SERVER_BINARY
    if binary is None or not Path(binary).exists():
        where = f"no {binary}" if binary else "no redis-server on PATH"
        pytest.fail(
            f"redis-server is not installed ({where}): the Redis hand-off tests need it "
            "(Debian package redis-server; .ci/run installs it; or set REDIS_SERVER=/path)",
            pytrace=False,
        )
    failures: list[str] = []
    for attempt in range(_START_ATTEMPTS):
        port = _free_port()
        log = directory / f"redis-{attempt}.log"
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(directory), "--logfile", str(log)]
        command += options
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + _READY_DEADLINE
        while process.poll() is None and time.monotonic() < deadline:
            if _answers_ping(port):
                return RedisServer(port, process, log)
            time.sleep(0.02)
        _stop(process)
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Address already in use" not in text:
            pytest.fail(f"redis-server did not start on port {port}:\n{text}", pytrace=False)
        failures.append(f"port {port} was taken")
    pytest.fail("redis-server did not start: " + "; ".join(failures), pytrace=False)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis_server(tmp_path)
    try:
        yield server
    finally:
        _stop(server.process)
