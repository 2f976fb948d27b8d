"""Every code sample of the tutorials and how-to pages (``docs/snippets/*.py``, included by
``literalinclude``) run against the sandbox over real sockets, checking what its page says
it does. Handlers get real calls placed by the sandbox; scripts with a ``main()`` run with
the ``TELCOFLOW_*`` variables of the sandbox, in this process or as a child process."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio.sandbox import Pcm, Silence, Tone
from telcoflow_trio.testing import Sandbox, TestSignal, open_sandbox
from tests.runner.conftest import RedisServer, start_redis_server
from tests.runner.test_run_cli import open_runner, sandbox_env

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SNIPPETS = DOCS / "snippets"
WAIT = 20  # every fail_after below is a hang safety net, never a timing assertion


def snippet(name: str) -> ModuleType:
    """Import ``docs/snippets/NAME.py`` as the module ``docs_snippet_NAME``."""
    spec = importlib.util.spec_from_file_location(f"docs_snippet_{name}", SNIPPETS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with open_sandbox(time_scale=10) as sb:
        yield sb


@pytest.fixture
def telcoflow_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process's environment as ``python -m telcoflow_trio sandbox`` would set it."""
    env = sandbox_env(sandbox)
    for name in [n for n in os.environ if n.startswith("TELCOFLOW_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("TELCOFLOW_"):
            monkeypatch.setenv(name, value)
    return env


@asynccontextmanager
async def claimed_call(sm: tf.SessionManager) -> AsyncIterator[tf.Call]:
    note = await sm.session_notifications.receive()
    async with sm.open_session(note.session_id) as session:
        yield await session.incoming_call()


async def echo_check(sandbox: Sandbox, seconds: float = 1.0) -> None:
    """Place a call, and check the caller hears itself back byte for byte."""
    sim = await sandbox.place_call(audio=TestSignal(seconds=seconds))
    with trio.fail_after(WAIT):
        await sim.wait_spoken()
        await sim.wait_heard(len(sim.spoken))
    await sim.hang_up()
    assert sim.heard == sim.spoken
    assert [c.command for c in sim.commands][:1] == ["call.answer"]


# -- the pages include only snippets, and every snippet is included and tested -------------


def _included() -> set[str]:
    pages = [*DOCS.glob("tutorials/*.rst"), *DOCS.glob("howto/*.rst")]
    found = set()
    for page in pages:
        for target in re.findall(r"\.\. literalinclude:: (\S+)", page.read_text()):
            path = (page.parent / target).resolve()
            assert path.exists(), f"{page.name} includes {target}, which does not exist"
            assert path.parent == SNIPPETS, f"{page.name} includes {target}: not a snippet"
            found.add(path.stem)
        assert ".. code-block:: python" not in page.read_text(), (
            f"{page.name} has inline Python: put it in docs/snippets/ and literalinclude it"
        )
    return found


def test_every_snippet_is_on_a_page_and_tested_here() -> None:
    snippets = {path.stem for path in SNIPPETS.glob("*.py")}
    assert _included() == snippets
    text = Path(__file__).read_text()
    for name in snippets:
        # snippet("NAME"), "NAME.py" or "NAME:handler" somewhere below
        assert re.search(rf'"{name}["\.:]', text), f"docs/snippets/{name}.py is not run here"


# -- tutorial 1: a first agent ----------------------------------------------------------------


async def test_echo_agent_script_echoes_byte_for_byte(
    sandbox: Sandbox, telcoflow_env: dict[str, str]
) -> None:
    # As the tutorial says: the export line in the environment, then `python my_agent.py`.
    process = await trio.lowlevel.open_process(
        [sys.executable, str(SNIPPETS / "my_agent.py")],
        env=telcoflow_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # an undrained pipe could block the agent
    )
    try:
        await echo_check(sandbox)
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


async def test_echo_agent_imports_without_running() -> None:
    # The __main__ guard: a test can import the handler without starting the agent.
    module = snippet("my_agent")
    assert callable(module.handle_call)
    await trio.lowlevel.checkpoint()


# -- tutorial 2: interruption -------------------------------------------------------------


def _tone(seconds: float, rate: int = 16000) -> bytes:
    return Tone(440, seconds, 0.3).render(rate)


async def test_interruption_stops_audio_and_knows_what_was_heard(sandbox: Sandbox) -> None:
    say_until_interrupted = snippet("barge_in").say_until_interrupted
    utterance = _tone(5.0)
    async with tf.SessionManager(sandbox.config()) as sm:
        sim = await sandbox.place_call(audio=Silence(0.5))
        sim.say(Tone(300, 0.5, 0.5))  # the caller talks over the agent
        async with claimed_call(sm) as call:
            assert await call.answer()
            with trio.fail_after(WAIT):
                heard = await say_until_interrupted(call, utterance)
            assert heard is not None
            assert 0 < heard < len(utterance)
            assert sim.interrupts, "no agent.interrupt reached the server"
            sim.say(Silence(2.0))  # two more seconds: nothing more of the utterance comes
            with trio.fail_after(WAIT):
                await sim.wait_spoken()
            assert len(sim.heard) == heard
            assert bytes(sim.heard) == utterance[:heard]
            # The listener closed its stream: a new reader gets all the caller says next.
            later = Tone(500, 1.0, 0.5).render(16000)
            sim.say(Pcm(later))
            collected = bytearray()
            with trio.fail_after(WAIT):
                async with call.audio_stream() as audio:
                    async for chunk in audio:
                        collected += chunk
                        if later in collected:
                            break
            await sim.hang_up()


async def test_interruption_returns_none_when_played_out(sandbox: Sandbox) -> None:
    say_until_interrupted = snippet("barge_in").say_until_interrupted
    utterance = _tone(1.0)
    async with tf.SessionManager(sandbox.config()) as sm:
        sim = await sandbox.place_call(audio=Silence(5.0))
        async with claimed_call(sm) as call:
            assert await call.answer()
            with trio.fail_after(WAIT):
                assert await say_until_interrupted(call, utterance) is None
                await sim.wait_heard(len(utterance))
            assert bytes(sim.heard) == utterance
            await sim.hang_up()


async def test_interruption_handler_prints_how_much_was_heard(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    handle_call = snippet("barge_in").handle_call
    async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
        nursery.start_soon(sm.serve_calls, handle_call)
        sim = await sandbox.place_call(audio=Silence(0.5))
        sim.say(Tone(300, 0.5, 0.5))
        with trio.fail_after(WAIT):
            await sim.wait_spoken()
            sim.say(Silence(2.0))  # time for the clear's result to reach the handler
            await sim.wait_spoken()
        assert sim.interrupts
        await sim.hang_up()
        nursery.cancel_scope.cancel()
    assert re.search(r"interrupted after \d\.\d\d s of the greeting", capsys.readouterr().out)


async def pytest_in_trio_mode(directory: Path) -> tuple[int, str]:
    """Run pytest on ``directory`` as a user's project with ``trio_mode = true`` (no
    ``TELCOFLOW_*`` or ``PYTEST_*`` settings of ours leaking in); its status and output."""
    (directory / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELCOFLOW_", "PYTEST_"))}
    result = await trio.run_process(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        cwd=directory,
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return result.returncode, result.stdout.decode() + result.stderr.decode()


# -- tutorial 3: testing -------------------------------------------------------------------


async def test_testing_snippets_pass_under_pytest_in_trio_mode(tmp_path: Path) -> None:
    # What a user does: the agent and its tests in a project with trio_mode = true.
    for name in ("my_agent", "test_my_agent", "test_my_agent_properties"):
        (tmp_path / f"{name}.py").write_bytes((SNIPPETS / f"{name}.py").read_bytes())
    returncode, out = await pytest_in_trio_mode(tmp_path)
    assert returncode == 0, out
    assert "3 passed" in out, out


# -- tutorial 4: production ----------------------------------------------------------------


async def test_run_serves_the_echo_agent_with_health_and_metrics(sandbox: Sandbox) -> None:
    env = sandbox_env(sandbox)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SNIPPETS), env.get("PYTHONPATH")]))
    args = ("my_agent:handle_call", "--max-calls", "2", "--http-port", "0")
    with trio.fail_after(WAIT):
        async with open_runner(env, *args) as runner:
            line = await runner.wait_line(lambda line: "/healthz and /metrics on http://" in line)
            found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            assert found is not None, line
            await runner.wait_line(lambda line: "serving calls with" in line)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{found[1]}") as client:
                assert (await client.get("/healthz")).status_code == 200
                await echo_check(sandbox)
                metrics = (await client.get("/metrics")).text
            assert "telcoflow_active_calls" in metrics
            runner.signal(signal.SIGTERM)  # drain: no live call, so it exits at once
            assert await runner.exit_status() == 0


# -- how-to pages --------------------------------------------------------------------------


async def test_full_duplex_except_star_catches_the_end_of_the_call(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    module = snippet("full_duplex")
    caplog.set_level(logging.INFO, logger=module.__name__)
    async with tf.SessionManager(sandbox.config()) as sm:
        sim = await sandbox.place_call(audio=TestSignal(seconds=1))
        async with claimed_call(sm) as call:
            with trio.fail_after(WAIT):
                async with trio.open_nursery() as nursery:
                    # Raises here (an ExceptionGroup) if except* missed the end of the call.
                    nursery.start_soon(module.handle_call, call)
                    await sim.wait_spoken()
                    await sim.wait_heard(1)  # the writer task is talking
                    await sim.hang_up()
    messages = [r.getMessage() for r in caplog.records if r.name == module.__name__]
    assert f"call {call.id} ended under the handler" in messages


async def test_fan_out_gives_every_consumer_all_the_audio(sandbox: Sandbox) -> None:
    answer_and_share = snippet("fan_out").answer_and_share
    async with tf.SessionManager(sandbox.config()) as sm:
        sim = await sandbox.place_call(audio=TestSignal(seconds=1))
        sim.say(Silence(0.5))  # time for the last chunks to arrive before the hang-up
        async with claimed_call(sm) as call, trio.open_nursery() as nursery:
            got: dict[str, bytes] = {}

            async def share() -> None:
                got.update(await answer_and_share(call))

            nursery.start_soon(share)
            with trio.fail_after(WAIT):
                await sim.wait_spoken()
            await sim.hang_up()
    assert set(got) == {"recorder", "model"}
    assert got["recorder"] == got["model"] == bytes(sim.spoken)


async def test_two_audio_streams_split_the_audio_as_the_page_says(sandbox: Sandbox) -> None:
    async with tf.SessionManager(sandbox.config()) as sm:
        sim = await sandbox.place_call(audio=TestSignal(seconds=1))
        sim.say(Silence(0.5))
        got: list[bytearray] = [bytearray(), bytearray()]

        async def read(stream: tf.AudioStream, into: bytearray) -> None:
            async with stream:
                async for chunk in stream:
                    into += chunk

        async with claimed_call(sm) as call, trio.open_nursery() as nursery:
            assert await call.answer()
            for into in got:
                nursery.start_soon(read, call.audio_stream(), into)
            with trio.fail_after(WAIT):
                await sim.wait_spoken()
            await sim.hang_up()
    assert all(got), "one reader got nothing"
    assert len(got[0]) + len(got[1]) == len(sim.spoken)  # each chunk went to one reader


async def test_live_calls_lists_the_managers_and_the_servers_calls(sandbox: Sandbox) -> None:
    module = snippet("live_calls")
    async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
        server = tf.CallServer(sm, module.hold, max_calls=8)
        nursery.start_soon(server.run)
        sims = [await sandbox.place_call(caller=f"+1555000000{i}") for i in (1, 2)]
        with trio.fail_after(WAIT):
            for sim in sims:
                await sim.wait_answered()
        lines: list[str] = []
        nursery.start_soon(module.report_every, sm, 60.0, lines)
        await trio.testing.wait_all_tasks_blocked()
        expected = [f"{s.call_id} from {s.caller} ({tf.CallState.LIVE.name})" for s in sims]
        assert lines == expected
        assert module.describe(server.calls) == expected
        first = sm.calls[0]
        await sims[0].hang_up()
        with trio.fail_after(WAIT):
            await first.wait_terminated()
        assert module.describe(sm.calls) == expected[1:]
        nursery.cancel_scope.cancel()


async def test_live_calls_main_serves_from_the_environment(
    sandbox: Sandbox, telcoflow_env: dict[str, str]
) -> None:
    main = snippet("live_calls").main
    async with trio.open_nursery() as nursery:
        nursery.start_soon(main)
        sim = await sandbox.place_call()
        with trio.fail_after(WAIT):
            await sim.wait_answered()
        await sim.hang_up()
        nursery.cancel_scope.cancel()


async def test_anyio_app_echoes_under_trio(sandbox: Sandbox, telcoflow_env: dict[str, str]) -> None:
    main = snippet("anyio_agent").main  # anyio.run(main, backend="trio") is trio.run(main)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(main)
        await echo_check(sandbox)
        nursery.cancel_scope.cancel()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    names = ["telcoflow_trio", "telcoflow_trio.audio", "telcoflow_trio.sandbox"]
    levels = {name: logging.getLogger(name).level for name in names}
    root = logging.getLogger()
    handlers, root_level = list(root.handlers), root.level
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    root.handlers[:] = handlers
    root.setLevel(root_level)


@pytest.mark.usefixtures("restore_logging")
def test_logging_setup_sets_the_levels_it_says() -> None:
    snippet("logging_setup").configure_logging()
    assert logging.getLogger("telcoflow_trio").level == logging.INFO
    assert logging.getLogger("telcoflow_trio.audio").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("telcoflow_trio.audio._servicer").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("telcoflow_trio.sandbox").isEnabledFor(logging.INFO)


async def test_handoff_through_a_channel_echoes_on_the_adopting_side(sandbox: Sandbox) -> None:
    module = snippet("handoff")
    send, receive = trio.open_memory_channel[str](10)
    async with tf.SessionManager(sandbox.config()) as sm, trio.open_nursery() as nursery:
        nursery.start_soon(sm.serve_calls, partial(module.front, documents=send))
        nursery.start_soon(module.media_worker, receive)
        await echo_check(sandbox)
        assert sm.calls == ()  # a handed-off call is no longer this manager's
        nursery.cancel_scope.cancel()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis_server(tmp_path)
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.wait(5)


async def test_redis_handoff_front_and_worker_echo(
    sandbox: Sandbox,
    telcoflow_env: dict[str, str],
    redis: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", redis.url)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(snippet("handoff_redis").main)
        await echo_check(sandbox)
        nursery.cancel_scope.cancel()
