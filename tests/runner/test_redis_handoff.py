"""The Redis-stream hand-off against a real redis-server and the sandbox, over real sockets:
a front puts NEW calls on a stream, workers in a consumer group serve each exactly once, a
worker killed before answering leaves its call to another, a call no longer NEW is
acknowledged and not served, and the voice token never reaches a log."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from types import ModuleType

import pytest
import trio
from coredis.response.types import StreamPending

import telcoflow_trio as tf
from telcoflow_trio.runner._errors import RunConfigError
from telcoflow_trio.runner._handoff import (
    HandoffError,
    HandoffFront,
    hand_off,
    redis_client,
    serve_handoffs,
)
from telcoflow_trio.runner._handoff_worker import Redis
from telcoflow_trio.sandbox import TestSignal
from telcoflow_trio.testing import Sandbox, open_sandbox
from tests.runner.conftest import RedisServer, start_redis_server

STREAM = "calls"
GROUP = "media"
HANDOFF_LOGGER = "telcoflow_trio.runner"

Served = dict[str, list[str]]

# A worker in its own process, to be killed with SIGKILL: its handler announces the call
# ("hold": the voice plane is open, not answered; "answer": answered) and waits forever.
WORKER_SCRIPT = """
import sys
from functools import partial
from pathlib import Path
from types import ModuleType
import trio
from telcoflow_trio.runner._handoff import serve_handoffs

url, stream, group, consumer, mode = sys.argv[1:6]

async def handler(call):
    if mode == "answer":
        await call.answer()
    print(mode, call.id, flush=True)
    await trio.sleep_forever()

async def main():
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(serve_handoffs, url, stream, group, consumer, handler, reclaim_idle=60)
        )
        print("ready", flush=True)

trio.run(main)
"""


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with open_sandbox(time_scale=10) as sb:
        yield sb


def echo_handler(consumer: str, served: Served) -> Callable[[tf.Call], Awaitable[None]]:
    async def handle(call: tf.Call) -> None:
        served.setdefault(call.id, []).append(consumer)
        if not await call.answer():
            return
        with contextlib.suppress(tf.BufferClosedError, tf.WSSCallClosedError):
            async for chunk in call.audio_stream():
                await call.send_audio(chunk, wait=True)

    return handle


async def wait_until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll Redis (nothing there can wake us) until ``check`` holds."""
    while True:
        if await check():
            return
        await trio.sleep(0.02)


async def pending(redis: Redis) -> int:
    summary = await redis.xpending(STREAM, GROUP)
    assert isinstance(summary, StreamPending)
    return summary.pending


async def no_pending(redis: Redis) -> bool:
    """Every entry on the stream delivered to the group and acknowledged."""
    (group,) = await redis.xinfo_groups(STREAM)
    return group[b"pending"] == 0 and group[b"lag"] == 0


async def converse(sim: tf.sandbox.SimulatedCall) -> None:
    """The caller speaks, hears it all back, hangs up."""
    await sim.wait_answered()
    await sim.wait_spoken()
    await sim.wait_heard(len(sim.spoken))
    await sim.hang_up()


def answers(sim: tf.sandbox.SimulatedCall) -> int:
    return [c.command for c in sim.commands].count("call.answer")


class WorkerProcess:
    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._buffer = b""

    async def line(self, prefix: str) -> str:
        """The next line of the worker's stdout, which must start with ``prefix``."""
        assert self.process.stdout is not None
        await trio.lowlevel.checkpoint()
        while b"\n" not in self._buffer:
            data = await self.process.stdout.receive_some(1024)
            assert data, f"the worker exited before saying {prefix!r}"
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        text = line.decode()
        assert text.startswith(prefix), text
        return text


@asynccontextmanager
async def worker_process(url: str, consumer: str, mode: str) -> AsyncIterator[WorkerProcess]:
    command = [sys.executable, "-c", WORKER_SCRIPT, url, STREAM, GROUP, consumer, mode]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    try:
        worker = WorkerProcess(process)
        await worker.line("ready")
        yield worker
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


@asynccontextmanager
async def front(sandbox: Sandbox, redis: Redis) -> AsyncIterator[None]:
    """A front process's manager, handing every call it claims to the stream."""
    async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
        nursery.start_soon(sm.serve_calls, HandoffFront(redis, STREAM))
        yield
        nursery.cancel_scope.cancel()


async def test_two_workers_serve_every_call_exactly_once(
    redis_server: RedisServer, sandbox: Sandbox
) -> None:
    served: Served = {}
    with trio.fail_after(30):
        async with redis_client(redis_server.url) as redis, trio.open_nursery() as nursery:
            # One worker given the URL, one given an open client: both forms work.
            for consumer, where in (("w1", redis_server.url), ("w2", redis)):
                handler = echo_handler(consumer, served)
                await nursery.start(
                    partial(serve_handoffs, where, STREAM, GROUP, consumer, handler)
                )
            async with front(sandbox, redis):
                sims = [
                    await sandbox.place_call(f"+1555000{i}", audio=TestSignal(0.5, seed=i))
                    for i in range(5)
                ]
                async with trio.open_nursery() as calls:
                    for sim in sims:
                        calls.start_soon(converse, sim)
            await wait_until(partial(no_pending, redis))
            nursery.cancel_scope.cancel()
    assert sorted(served) == sorted(sim.call_id for sim in sims)
    assert all(len(consumers) == 1 for consumers in served.values()), served
    for sim in sims:
        assert answers(sim) == 1
        assert sim.heard == sim.spoken
        assert sim.voice_connections == 1  # the front never opened it


async def test_a_worker_killed_half_way_leaves_its_unanswered_calls_to_another(
    redis_server: RedisServer, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, HANDOFF_LOGGER)
    served: Served = {}
    survivor = echo_handler("survivor", served)
    with trio.fail_after(30):
        async with (
            redis_client(redis_server.url) as redis,
            front(sandbox, redis),
            worker_process(redis_server.url, "doomed", "hold") as doomed,
            trio.open_nursery() as nursery,
        ):
            first = await sandbox.place_call(audio=TestSignal(0.5))
            assert await doomed.line("hold") == f"hold {first.call_id}"
            await nursery.start(
                partial(
                    serve_handoffs,
                    redis,
                    STREAM,
                    GROUP,
                    "survivor",
                    survivor,
                    reclaim_idle=0.5,
                )
            )
            # Both read from here on: the doomed worker holds what it gets, unanswered.
            sims = [first]
            for i in range(3):
                sims.append(await sandbox.place_call(audio=TestSignal(0.5, seed=i)))
                await trio.sleep(0.05)
            doomed.process.kill()  # half way: it read documents, answered none
            async with trio.open_nursery() as calls:
                for sim in sims:
                    calls.start_soon(converse, sim)
            await wait_until(partial(no_pending, redis))
            nursery.cancel_scope.cancel()
    assert served == {sim.call_id: ["survivor"] for sim in sims}
    for sim in sims:
        assert answers(sim) == 1
        assert sim.heard == sim.spoken
    assert first.voice_connections == 2  # the dead worker's, then the survivor's
    assert any("taken over" in r.getMessage() for r in caplog.records)


async def test_a_call_answered_by_a_worker_that_died_is_acknowledged_not_served(
    redis_server: RedisServer, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, HANDOFF_LOGGER)
    served: Served = {}
    with trio.fail_after(30):
        async with redis_client(redis_server.url) as redis, front(sandbox, redis):
            async with worker_process(redis_server.url, "doomed", "answer") as doomed:
                sim = await sandbox.place_call(audio=TestSignal(0.5))
                assert await doomed.line("answer") == f"answer {sim.call_id}"
                doomed.process.kill()  # answered, then gone: the call is not NEW
            survivor = echo_handler("survivor", served)
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    partial(
                        serve_handoffs,
                        redis,
                        STREAM,
                        GROUP,
                        "survivor",
                        survivor,
                        reclaim_idle=0.5,
                    )
                )
                await wait_until(partial(no_pending, redis))
                nursery.cancel_scope.cancel()
            await sim.hang_up()
    assert served == {}
    assert answers(sim) == 1
    assert sim.voice_connections == 1  # the survivor did not touch it
    assert any("answered before" in r.getMessage() for r in caplog.records)


async def test_a_call_over_before_it_is_reclaimed_is_acknowledged_not_served(
    redis_server: RedisServer, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, HANDOFF_LOGGER)
    served: Served = {}
    with trio.fail_after(30):
        async with redis_client(redis_server.url) as redis, front(sandbox, redis):
            await redis.xgroup_create(STREAM, GROUP, identifier="0", mkstream=True)
            sim = await sandbox.place_call()
            # A worker that read the entry and died at once: it stays pending.
            reply = None
            while not reply:
                reply = await redis.xreadgroup(GROUP, "ghost", {STREAM: ">"}, count=1, block=1000)
            await sim.hang_up()
            survivor = echo_handler("survivor", served)
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    partial(
                        serve_handoffs,
                        redis,
                        STREAM,
                        GROUP,
                        "survivor",
                        survivor,
                        reclaim_idle=0.2,
                    )
                )
                await wait_until(partial(no_pending, redis))
                nursery.cancel_scope.cancel()
    assert served == {}
    assert answers(sim) == 0
    assert any("over before it was served" in r.getMessage() for r in caplog.records)


TOKEN = "tok-NEVER-LOG-ME-3f9a1c"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def assert_token_absent(caplog: pytest.LogCaptureFixture, *texts: str) -> None:
    formatter = logging.Formatter()
    for record in caplog.records:
        assert TOKEN not in formatter.format(record), record.getMessage()
    for text in texts:
        assert TOKEN not in text


async def test_failing_documents_are_dropped_and_their_token_never_logged(
    redis_server: RedisServer, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim = await sandbox.place_call()  # nobody claims it: a real voice URL for a wrong token
    port = closed_port()
    documents = [
        {"channel": "TELCO", "session_url": "ws://127.0.0.1/v", "session_token": TOKEN},
        {"id": "c-closed", "session_url": f"ws://127.0.0.1:{port}/v", "session_token": TOKEN},
        {"id": sim.call_id, "session_url": sandbox.url + sim.voice_path, "session_token": TOKEN},
        {"id": 7, "session_url": "ws://127.0.0.1/v", "session_token": TOKEN},
    ]
    served: Served = {}
    with trio.fail_after(30):
        async with redis_client(redis_server.url) as redis, trio.open_nursery() as nursery:
            for document in documents:
                await redis.xadd(STREAM, {"document": json.dumps(document)})
            await redis.xadd(STREAM, {"not-a-document": TOKEN})
            await nursery.start(
                partial(
                    serve_handoffs,
                    redis,
                    STREAM,
                    GROUP,
                    "w",
                    echo_handler("w", served),
                    reclaim_idle=0.2,
                )
            )
            await wait_until(partial(no_pending, redis))
            nursery.cancel_scope.cancel()
    assert served == {}
    for document in (documents[0], documents[3]):  # what the worker met, raised to a caller
        with pytest.raises(ValueError, match="not a call hand-off document") as exc_info:
            tf.Call.from_json(json.dumps(document))
        assert TOKEN not in str(exc_info.value)
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(HANDOFF_LOGGER) and r.levelno == logging.WARNING
    ]
    # One warning for each of the five entries. A voice attempt slower than reclaim_idle
    # (a slow machine) is reclaimed and tried again: at least once, so its entry may warn twice.
    found = [re.search(r"entry (\S+) of", text) for text in warned]
    assert all(found), warned  # every warning names its entry
    assert len({m.group(1) for m in found if m}) == 5, warned
    assert_token_absent(caplog)


async def test_a_front_that_cannot_reach_redis_ends_the_call_and_says_so(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[HandoffError] = []
    done = trio.Event()
    with trio.fail_after(30):
        dead = redis_client(f"redis://127.0.0.1:{closed_port()}/0", connect_timeout=1)
        async with (
            dead,
            tf.SessionManager(sandbox.config()) as sm,
            trio.open_nursery() as nursery,
        ):

            async def handler(call: tf.Call) -> None:
                try:
                    await hand_off(call, dead, STREAM)
                except HandoffError as exc:
                    errors.append(exc)
                    await trio.lowlevel.checkpoint()
                done.set()

            nursery.start_soon(sm.serve_calls, handler)
            sim = await sandbox.place_call()
            await done.wait()
            await sim.wait_terminated()
            nursery.cancel_scope.cancel()
    (error,) = errors
    assert str(error).startswith(f"call {sim.call_id} could not be put on stream 'calls'")
    assert error.__cause__ is None and error.__suppress_context__
    assert [c.command for c in sim.commands] == ["call.disconnect"]
    assert sim.token not in str(error)
    formatter = logging.Formatter()
    assert all(sim.token not in formatter.format(r) for r in caplog.records)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:6379/0", "the scheme must be redis://, rediss:// or unix://"),
        ("redis://:hunter2@127.0.0.1:99999/0", "it does not parse"),
        ("redis://:hunter2@127.0.0.1:6379/zero", "the path must be a database number"),
        ("redis://user:hunter2@:6379/0", "it names no host"),
        ("redis://127.0.0.1:0", "port 0"),
        ("unix://", "a unix:// URL needs a socket path"),
    ],
)
def test_a_bad_redis_url_is_one_line_naming_its_problem_without_the_password(
    url: str, problem: str
) -> None:
    with pytest.raises(RunConfigError) as exc_info:
        redis_client(url)
    message = str(exc_info.value)
    assert message.startswith("bad Redis URL ") and problem in message
    assert "\n" not in message and "hunter2" not in message


async def test_serve_handoffs_with_a_bad_url_raises_run_config_error() -> None:
    with pytest.raises(RunConfigError, match="bad Redis URL redis://\\*\\*\\*@"):
        await serve_handoffs("redis://:pw@h:x/0", STREAM, GROUP, "w", echo_handler("w", {}))


async def test_a_redis_that_refuses_the_worker_at_start_is_a_run_config_error(
    tmp_path: Path,
) -> None:
    server = start_redis_server(tmp_path, "--requirepass", "right-one")
    try:
        wrong = f"redis://:hunter2@127.0.0.1:{server.port}/0"
        with pytest.raises(RunConfigError) as exc_info:
            await serve_handoffs(wrong, STREAM, GROUP, "w", echo_handler("w", {}))
    finally:
        server.process.terminate()
        server.process.wait(5)
    message = str(exc_info.value)
    assert message.startswith(f"cannot use Redis at redis://***@127.0.0.1:{server.port}/0: ")
    assert "Authentication" in message
    assert "\n" not in message and "hunter2" not in message
    closed = f"redis://127.0.0.1:{closed_port()}/0"
    with pytest.raises(RunConfigError, match="ConnectionError"):
        await serve_handoffs(closed, STREAM, GROUP, "w", echo_handler("w", {}))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"stream": ""}, ValueError, "stream must be a non-empty str"),
        ({"group": None}, ValueError, "group must be a non-empty str"),
        ({"consumer": 3}, ValueError, "consumer must be a non-empty str"),
        ({"handler": "mod:func"}, TypeError, "handler must be an async function"),
        ({"max_calls": 0}, ValueError, "max_calls must be a positive int"),
        ({"max_calls": True}, ValueError, "max_calls must be a positive int"),
        ({"reclaim_idle": 0}, ValueError, "reclaim_idle must be positive seconds"),
        ({"reclaim_idle": float("inf")}, ValueError, "reclaim_idle must be positive seconds"),
        ({"reclaim_idle": "30"}, TypeError, "reclaim_idle must be a number"),
        ({"transport": "aiohttp"}, ValueError, "transport must be one of"),
        ({"audio_config": {}}, TypeError, "audio_config must be a CallAudioConfig"),
    ],
)
async def test_serve_handoffs_names_a_bad_argument(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    arguments: dict[str, object] = {
        "redis": "redis://127.0.0.1:1/0",
        "stream": STREAM,
        "group": GROUP,
        "consumer": "w",
        "handler": echo_handler("w", {}),
    }
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        await serve_handoffs(**arguments)  # type: ignore[arg-type]


async def test_hand_off_returns_the_entry_id_and_keeps_the_stream_bounded(
    redis_server: RedisServer,
) -> None:
    calls = [
        tf.Call.from_json(
            json.dumps({"id": f"c{i}", "session_url": "ws://127.0.0.1/v", "session_token": "t"})
        )
        for i in range(250)
    ]
    async with redis_client(redis_server.url) as redis:
        ids = [await hand_off(call, redis, STREAM, maxlen=10) for call in calls]
        assert ids[0] < ids[-1] and len(set(ids)) == len(ids)
        assert all(call.handed_off for call in calls)
        (entry,) = await redis.xrange(STREAM, ids[-1], ids[-1])
        assert json.loads(entry.field_values[b"document"])["id"] == "c249"
        # Trimmed by whole stream nodes (MAXLEN ~): near the bound, never all 250.
        assert await redis.xlen(STREAM) < 250
        with pytest.raises(ValueError, match="maxlen must be a positive int"):
            await hand_off(calls[0], redis, STREAM, maxlen=-1)


def test_a_front_names_a_bad_argument() -> None:
    redis = redis_client("redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="stream must be a non-empty str"):
        HandoffFront(redis, "")
    with pytest.raises(ValueError, match="maxlen must be a positive int, got 0"):
        HandoffFront(redis, STREAM, maxlen=0)
    assert repr(HandoffFront(redis, STREAM)) == "<HandoffFront stream='calls' maxlen=10000>"


ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "redis_handoff.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_redis_handoff", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_serves_three_calls_with_two_workers_each_once(
    redis_server: RedisServer,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELCOFLOW_")}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--sandbox", "--redis-url", redis_server.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("1 time(s), echo exact") == 3
    assert "3 call(s) served, each once" in proc.stdout


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "set REDIS_URL"),
        (["--redis-url", "redis://127.0.0.1:1/0"], "say front or worker, or pass --sandbox"),
        (["worker", "--redis-url", "http://:pw@h/0"], "bad Redis URL http://***@h/0: the scheme"),
        (["front", "--redis-url", "redis://127.0.0.1:1/0"], "TELCOFLOW_API_KEY"),
    ],
)
def test_the_example_says_what_is_missing_or_wrong(
    argv: list[str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("TELCOFLOW_") or key == "REDIS_URL":
            monkeypatch.delenv(key)
    with pytest.raises(SystemExit) as exc_info:
        load_example().main(argv)
    assert says in str(exc_info.value.code)
