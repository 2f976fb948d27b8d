"""Every code sample of the guide pages (``docs/snippets/guide/*.py``, included by
``literalinclude``) run against the sandbox over real sockets, checking what its page says;
and a guard: no page of the docs, nor the README, shows Python that no test runs."""

from __future__ import annotations

import ast
import importlib.util
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest
import trio
from hypothesis import settings

import telcoflow_trio as tf
from telcoflow_trio.protocol import control
from telcoflow_trio.testing import Sandbox, TestSignal, open_sandbox
from tests.test_docs_snippets import echo_check, pytest_in_trio_mode

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SNIPPETS = DOCS / "snippets"
GUIDE = SNIPPETS / "guide"
WAIT = 20  # every fail_after below is a hang safety net, never a timing assertion


def guide_snippet(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import ``docs/snippets/guide/NAME.py``, with ``docs/snippets`` (``my_agent``) and the
    repository (``tests.kit.test_readme_example``) importable, as a user's project would be."""
    monkeypatch.syspath_prepend(str(SNIPPETS))
    monkeypatch.syspath_prepend(str(REPO))
    spec = importlib.util.spec_from_file_location(f"docs_guide_{name}", GUIDE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with open_sandbox(time_scale=10) as sb:
        yield sb


# -- docs/guide/testing.rst --------------------------------------------------------------


async def test_guide_testing_pytest_snippets_pass_in_trio_mode(tmp_path: Path) -> None:
    # The page's two tests, as a user has them: next to my_agent.py, under trio_mode = true,
    # with the package's own pytest plugin giving the `sandbox` fixture and its marker.
    (tmp_path / "my_agent.py").write_bytes((SNIPPETS / "my_agent.py").read_bytes())
    for name in ("guide_testing_sandbox", "guide_testing_fixture"):
        (tmp_path / f"test_{name}.py").write_bytes((GUIDE / f"{name}.py").read_bytes())
    returncode, out = await pytest_in_trio_mode(tmp_path)
    assert returncode == 0, out
    assert "2 passed" in out, out


def test_guide_testing_replay_prints_the_played_call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    played = guide_snippet("guide_testing_replay", monkeypatch).replay()
    assert played.violations == []  # raise_on_failure=False: returned, not raised
    out = capsys.readouterr().out
    assert out.startswith("[] ")
    assert played.summary() in out
    assert "Speak(seconds=0.31)" in out


def test_guide_testing_scenarios_run_as_a_test_case(monkeypatch: pytest.MonkeyPatch) -> None:
    scenarios = guide_snippet("guide_testing_scenarios", monkeypatch)
    case = scenarios.TestMyAgentScenarios
    assert scenarios.MyAgentScenarios.managers == 3
    # A few short runs keep this quick; the machine and its rules are the page's.
    case.settings = settings(max_examples=3, stateful_step_count=6, deadline=None)
    case("runTest").runTest()


# -- docs/guide/api-tour.rst, configuration.rst, protocol-layer.rst, logging.rst ----------


async def test_guide_api_tour_sessions_echo_with_two_racing_managers(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    main = guide_snippet("guide_api_tour_sessions", monkeypatch).main
    async with trio.open_nursery() as nursery:
        # Two agent processes: both are notified, one claims, the other's WSSSessionBusy is
        # caught (were it not, it would cancel this nursery and fail the test).
        nursery.start_soon(main, sandbox.config())
        nursery.start_soon(main, sandbox.config())
        with trio.fail_after(WAIT):
            await sandbox.wait_control_connections(2)
        await echo_check(sandbox)
        sim = await sandbox.place_call(audio=TestSignal(seconds=0.5))
        with trio.fail_after(WAIT):
            await sim.wait_spoken()
            await sim.wait_heard(len(sim.spoken))
        await sim.hang_up()
        nursery.cancel_scope.cancel()
    assert sim.heard == sim.spoken


async def test_guide_configuration_builds_a_working_config(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = guide_snippet("guide_configuration", monkeypatch)
    config, flow = module.make_config(sandbox.api_key, sandbox.connector_uuid, sandbox.url)
    assert isinstance(flow, tf.CallFlowConfig)
    assert config.call_audio.sample_rate == 24000
    assert sandbox.api_key not in repr(config)
    assert "api_key='***'" in repr(config)
    with pytest.raises(ValueError, match="base_url"):
        module.make_config(sandbox.api_key, sandbox.connector_uuid, "http:/nowhere")
    echo = guide_snippet("guide_testing_sandbox", monkeypatch).handle_call  # my_agent's
    async with tf.SessionManager(config) as sm, trio.open_nursery() as nursery:
        nursery.start_soon(sm.serve_calls, echo)
        sim = await sandbox.place_call(audio=TestSignal(seconds=1))
        with trio.fail_after(WAIT):
            await sim.wait_spoken()
            await sim.wait_heard(len(sim.spoken))
        await sim.hang_up()
        nursery.cancel_scope.cancel()
    assert sim.heard == sim.spoken
    assert sim.sample_rate == 24000


def test_guide_protocol_layer_decodes_and_encodes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    module = guide_snippet("guide_protocol_layer", monkeypatch)
    call_in = control.CallIn("s-1", "c-1", "wss://voice", "secret-token")
    assert module.on_control_text(control.encode_frame(call_in)) == ("s-1", "c-1")
    caplog.set_level(logging.DEBUG, logger=module.__name__)
    assert module.on_control_text('{"type": "call.in", "token": "secret-token"') is None
    logged = [r.getMessage() for r in caplog.records if r.name == module.__name__]
    assert len(logged) == 1
    assert logged[0].startswith("ignored frame: ")
    assert "secret-token" not in logged[0]  # the reason, never the raw text
    text, data = module.encode(b"\x01\x02\x03\x04")
    frame = control.decode_client_frame(text)
    assert isinstance(frame, control.SessionOpen)
    assert frame.session_id == "session-id"
    assert frame.req_id
    assert data == b"\x00\x01\x02\x03\x04"


def test_guide_logging_config_sets_the_levels() -> None:
    # In a fresh process, as in an application: under pytest the root logger already has
    # pytest's handlers, and basicConfig would rightly do nothing.
    probe = (
        "import logging, runpy, sys\n"
        "runpy.run_path(sys.argv[1])['configure_logging']()\n"
        "root = logging.getLogger()\n"
        "print(logging.getLevelName(root.level), len(root.handlers),\n"
        "      logging.getLogger('telcoflow_trio.audio._servicer').isEnabledFor(logging.DEBUG),\n"
        "      logging.getLogger('telcoflow_trio.client').isEnabledFor(logging.DEBUG))\n"
    )
    path = str(GUIDE / "guide_logging_config.py")
    result = subprocess.run(
        [sys.executable, "-c", probe, path], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["INFO", "1", "True", "False"]


# -- the guard: every Python sample on a page is a file that a test runs -----------------

PYTHON_LANGUAGES = {"python", "python3", "py", "py3", "pycon", "ipython", "default", ""}
DIRECTIVE = re.compile(r"^(\s*)\.\. (code-block|code|sourcecode|literalinclude)::\s*(.*?)\s*$")
ANY_DIRECTIVE = re.compile(r"^\s*\.\. [\w:-]+::")
# The test files that run the included files: a file counts as run when its name is named in
# one of them ("NAME", NAME.py or NAME:handler, as tests/test_docs_snippets.py asks too).
RUNNERS = [
    REPO / "tests" / "test_docs_snippets.py",
    REPO / "tests" / "test_docs_guide_snippets.py",
    REPO / "tests" / "test_quickstart.py",
]
# The property-test example on docs/guide/testing.rst is inline, but verbatim
# tests/kit/test_readme_example.py (tests/kit/test_readme_matches.py checks it), which
# pytest runs as it is.
VERBATIM_TESTED = [REPO / "tests" / "kit" / "test_readme_example.py"]


def _pages() -> list[Path]:
    skipped = {"_build", "_inv", "_ext"}
    return sorted(
        page
        for page in DOCS.rglob("*.rst")
        if not skipped.intersection(page.relative_to(DOCS).parts)
    )


def _block(lines: list[str], start: int, indent: int) -> tuple[list[str], list[str]]:
    """The options and the body of the directive or literal block that begins at ``start``."""
    options: list[str] = []
    body: list[str] = []
    for line in lines[start + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        if not body and line.strip().startswith(":") and not any(b.strip() for b in body):
            options.append(line.strip())
        else:
            body.append(line)
    return options, body


def _dedented(body: list[str]) -> str:
    return textwrap.dedent("\n".join(body)).strip("\n") + "\n"


def _parses_as_python(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def _is_run(path: Path) -> bool:
    texts = [runner.read_text(encoding="utf-8") for runner in RUNNERS]
    return any(re.search(rf'"{re.escape(path.stem)}["\.:]', text) for text in texts)


def _problems_in_page(page: Path) -> list[str]:
    problems: list[str] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    where = page.relative_to(REPO) if page.is_relative_to(REPO) else page
    for number, line in enumerate(lines):
        found = DIRECTIVE.match(line)
        if found is not None:
            indent, kind, argument = len(found[1]), found[2], found[3]
            options, body = _block(lines, number, indent)
            if kind == "literalinclude":
                target = (page.parent / argument).resolve()
                languages = [o.split(None, 1)[1] for o in options if o.startswith(":language:")]
                python = target.suffix == ".py" or languages[:1] in (["python"], ["pycon"])
                if not target.exists():
                    problems.append(f"{where}:{number + 1} includes {argument}: no such file")
                elif python and not _is_run(target):
                    problems.append(f"{where}:{number + 1} includes {argument}, run by no test")
            elif argument.lower() in PYTHON_LANGUAGES:
                code = _dedented(body)
                if not any(
                    code == tested.read_text(encoding="utf-8") for tested in VERBATIM_TESTED
                ):
                    problems.append(
                        f"{where}:{number + 1} has an inline {argument or 'default'} block: put it"
                        " in docs/snippets/ and literalinclude it from a test that runs it"
                    )
            continue
        if line.rstrip().endswith("::") and not ANY_DIRECTIVE.match(line):
            # A literal block; highlight_language is Python ("default"), so Python could hide here.
            indent = len(line) - len(line.lstrip())
            _, body = _block(lines, number, indent)
            code = _dedented(body)
            if code.strip() and (_parses_as_python(code) or ">>> " in code):
                problems.append(
                    f"{where}:{number + 1} has a literal block of Python: include a file"
                )
        elif line.lstrip().startswith(">>> "):
            problems.append(f"{where}:{number + 1} has a doctest block: include a file instead")
    return problems


def test_every_python_sample_in_the_docs_is_a_file_a_test_runs() -> None:
    pages = _pages()
    assert DOCS / "guide" / "testing.rst" in pages  # the scan sees the guide pages
    problems = [problem for page in pages for problem in _problems_in_page(page)]
    assert problems == []


def test_every_guide_snippet_is_on_a_page_and_run_here() -> None:
    included: set[Path] = set()
    for page in _pages():
        for target in re.findall(r"\.\. literalinclude:: (\S+)", page.read_text(encoding="utf-8")):
            included.add((page.parent / target).resolve())
    text = Path(__file__).read_text(encoding="utf-8")
    for path in sorted(GUIDE.glob("*.py")):
        assert path in included, f"{path.relative_to(REPO)} is on no page"
        named = re.search(rf'"{re.escape(path.stem)}["\.:]', text)
        assert named, f"{path.relative_to(REPO)} is not run here"


def test_the_readmes_only_python_is_the_tested_quick_start() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quickstart = (REPO / "examples" / "quickstart.py").read_text(encoding="utf-8")
    blocks = re.findall(r"^```([\w+-]*)[^\n]*\n(.*?)^```", readme, flags=re.MULTILINE | re.DOTALL)
    python = [code for language, code in blocks if language.lower() in PYTHON_LANGUAGES - {""}]
    untagged = [code for language, code in blocks if not language and _parses_as_python(code)]
    assert python == [quickstart], "a ```python block of README.md is not examples/quickstart.py"
    assert untagged == [], "README.md has an untagged block of Python"
    assert _is_run(REPO / "examples" / "quickstart.py")


def test_the_guard_catches_inline_python(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text(
        "Title\n=====\n\n.. code-block:: python\n\n   x = 1\n\nText::\n\n   y = 2\n\n"
        ".. code-block:: text\n\n   not python\n\n>>> 1 + 1\n",
        encoding="utf-8",
    )
    assert len(_problems_in_page(page)) == 3, _problems_in_page(page)
