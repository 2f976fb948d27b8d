"""bench/bench_calls.py's plan, without running a benchmark: which clients run where and in
what order, how each agent is started, the official client's ceiling search, and the
targets read from paired ratios. Nothing here measures anything."""

from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


bench = _load("bench_calls")
FOUR = ["ours", "ours-websockets", "official", "floor"]


def _adjacent(order: list[str], a: str, b: str) -> bool:
    """``a`` runs right before ``b``."""
    return (a, b) in itertools.pairwise(order)


def test_both_engines_run_next_to_each_reference_in_both_orders() -> None:
    orders = [bench.run_order(FOUR, turn) for turn in range(4)]
    for order in orders:
        assert sorted(order) == sorted(FOUR)
        # the default engine sits between the two references every time
        i = order.index("ours")
        assert {order[i - 1], order[i + 1]} == {"official", "floor"}, order
    for engine in ("ours", "ours-websockets"):
        for ref in ("official", "floor"):
            assert any(_adjacent(o, engine, ref) for o in orders), (engine, ref, orders)
            assert any(_adjacent(o, ref, engine) for o in orders), (engine, ref, orders)


def test_with_one_reference_it_runs_between_the_two_engines() -> None:
    three = ["ours", "ours-websockets", "floor"]
    orders = [bench.run_order(three, turn) for turn in range(2)]
    for order in orders:
        assert order[1] == "floor", order
    assert orders[0] == list(reversed(orders[1]))


def test_the_equal_buffer_pair_runs_back_to_back() -> None:
    six = [*FOUR, "ours-eqbuf", "official-eqbuf"]
    for turn in range(4):
        order = bench.run_order(six, turn)
        assert sorted(order) == sorted(six)
        i, j = order.index("ours-eqbuf"), order.index("official-eqbuf")
        assert abs(i - j) == 1, order
        # and the others keep their own order around it
        assert [c for c in order if c not in bench.EQUAL_BUFFER] == bench.run_order(FOUR, turn)


def test_the_runner_runs_next_to_ours_in_both_orders() -> None:
    alone = [bench.run_order(["ours", "ours-runner"], turn) for turn in range(2)]
    assert sorted(map(tuple, alone)) == [("ours", "ours-runner"), ("ours-runner", "ours")]
    five = [*FOUR, "ours-runner"]
    orders = [bench.run_order(five, turn) for turn in range(4)]
    for turn, order in enumerate(orders):
        assert sorted(order) == sorted(five)
        assert abs(order.index("ours") - order.index("ours-runner")) == 1, order
        # the others keep their own order around it
        assert [c for c in order if c != "ours-runner"] == bench.run_order(FOUR, turn)
    assert any(_adjacent(o, "ours", "ours-runner") for o in orders), orders
    assert any(_adjacent(o, "ours-runner", "ours") for o in orders), orders
    for ref in ("official", "floor"):  # ours still meets each reference in both orders
        assert any(_adjacent(o, "ours", ref) for o in orders), (ref, orders)
        assert any(_adjacent(o, ref, "ours") for o in orders), (ref, orders)


def test_clients_by_point() -> None:
    opts = bench.parse(["--points", "1,50,100", "--skip-ceiling"])
    assert opts.equal_buffer_points == [50]
    assert bench.clients_at(1, opts) == FOUR
    assert bench.clients_at(50, opts) == [*FOUR, "ours-eqbuf", "official-eqbuf"]
    assert bench.clients_at(100, opts) == ["ours", "ours-websockets", "floor"]
    assert opts.ceiling is None
    no_pair = bench.parse(["--points", "50", "--equal-buffer", "0", "--skip-ceiling"])
    assert bench.clients_at(50, no_pair) == FOUR
    with pytest.raises(SystemExit):
        bench.parse(["--equal-buffer", "1000"])  # not a power of two
    with pytest.raises(SystemExit):
        bench.parse(["--equal-buffer-points", "100"])  # past --official-max


def test_official_ceiling_alone_writes_its_own_files() -> None:
    opts = bench.parse(["--official-ceiling", "--ceiling-max", "80"])
    assert opts.skip_echo and opts.skip_interrupt
    assert opts.stem == "ceiling"
    assert bench.parse(["--name", "runner", "--skip-ceiling"]).stem == "runner"
    with pytest.raises(SystemExit):
        bench.parse(["--name", "../calls"])  # a name, not a path
    assert opts.ceiling is not None and opts.ceiling.max_n == 80


def test_agent_commands() -> None:
    assert bench.agent_command("ours")[1:] == [str(BENCH / "agent_trio.py")]
    assert bench.agent_command("ours-websockets")[-2:] == ["--transport", "websockets"]
    assert bench.agent_command("ours-eqbuf", 4096)[-2:] == ["--buffer-size", "4096"]
    assert bench.agent_command("ours-runner")[-1] == "--runner"
    official = bench.agent_command("official-eqbuf", 4096)
    assert official[1] == "-c" and official[3:] == [str(BENCH / "agent_official.py"), "4096"]


def test_agent_trio_takes_an_engine_and_a_buffer_size() -> None:
    agent = _load("agent_trio")
    common = ["--url", "ws://x", "--api-key", "k", "--connector-uuid", "c", "--out", "o"]
    args = agent.parser().parse_args(common)
    assert (args.transport, args.buffer_size) == ("trio-websocket", 1024 * 1024)
    args = agent.parser().parse_args([*common, "--transport", "websockets", "--buffer-size", "8"])
    assert (args.transport, args.buffer_size) == ("websockets", 8)
    with pytest.raises(SystemExit):
        agent.parser().parse_args([*common, "--transport", "asyncio"])


def test_the_official_agent_runs_with_another_buffer_size(tmp_path: Path) -> None:
    """The launcher gives agent_official.py's ``telcoflow.CallAudioConfig(...)`` another
    default buffer size: a stand-in script sees it, with its arguments passed through."""
    source = (BENCH / "agent_official.py").read_text()
    assert "telcoflow.CallAudioConfig(sample_rate=SAMPLE_RATE)" in source  # what it relies on
    script = tmp_path / "stand_in.py"
    script.write_text(
        "import sys, telcoflow\n"
        "config = telcoflow.CallAudioConfig(sample_rate=24000)\n"
        "print(config.buffer_size, type(config).__name__, sys.argv[1:])\n"
    )
    cmd = bench.agent_command("official-eqbuf", 4096)
    cmd[3] = str(script)
    done = subprocess.run(
        [*cmd, "--url", "u"], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["4096", "CallAudioConfig", "['--url',", "'u']"]


def test_the_ceiling_search_brackets_the_first_refusal() -> None:
    tried: list[int] = []

    def serves_up_to_57(n: int) -> bool:
        tried.append(n)
        return n <= 57

    found = bench.search_ceiling(bench.CeilingOptions(), serves_up_to_57)
    assert found == (57, 58, "bracketed", len(tried))
    assert tried[:3] == [20, 40, 60]
    assert len(tried) <= 3 + 5  # then a bisection of the 20 between 40 and 60


def test_the_ceiling_search_is_bounded() -> None:
    assert bench.search_ceiling(bench.CeilingOptions(max_n=100), lambda n: True) == (
        100,
        None,
        "max N",
        5,
    )
    few = bench.CeilingOptions(max_tries=4)  # 20, 40, 60 (refused), then 50
    assert bench.search_ceiling(few, lambda n: n <= 57) == (50, 60, "tries", 4)
    now = [0.0]

    def slow(n: int) -> bool:
        now[0] += 100.0  # each try takes 100 s of a 300 s budget
        return True

    served, refused, stopped, tries = bench.search_ceiling(
        bench.CeilingOptions(budget=300.0), slow, clock=lambda: now[0]
    )
    assert (served, refused, stopped, tries) == (60, None, "time budget", 3)
    # the first try fails: bisection below it
    assert bench.search_ceiling(bench.CeilingOptions(), lambda n: n <= 3)[:3] == (
        3,
        4,
        "bracketed",
    )


def _point(client: str, rep: int, **metrics: float) -> dict[str, Any]:
    return {"client": client, "n": 50, "rep": rep, "saturated": False, "integrity": True, **metrics}


def test_targets_read_both_engines_and_the_equal_buffer_pair() -> None:
    points = []
    for rep in range(3):
        points += [
            _point("ours", rep, cpuMsPerCallSecond=11.0, rssPerCall=100.0, pullP50Ms=1.0),
            _point("ours-websockets", rep, cpuMsPerCallSecond=9.0, rssPerCall=90.0, pullP50Ms=1.0),
            _point("official", rep, cpuMsPerCallSecond=10.0, rssPerCall=1000.0, pullP50Ms=2.0),
            _point("floor", rep, cpuMsPerCallSecond=10.0, rssPerCall=20.0, pullP50Ms=1.0),
            _point("ours-eqbuf", rep, rssPerCall=100 * 1024.0),
            _point("official-eqbuf", rep, rssPerCall=80 * 1024.0),
        ]
    summary = bench.summarise_echo(points)
    ratios = bench.paired_ratios(points)
    rows = {t["target"]: t for t in bench.targets(summary, {}, ratios)}
    cpu_ws = rows["CPU per call-second, ours-websockets / official"]
    assert cpu_ws["value"] == pytest.approx(0.9) and cpu_ws["met"] and cpu_ws["n"] == "50"
    assert not rows["CPU per call-second, ours-websockets / official (moonshot)"]["met"]
    assert rows["CPU per call-second, ours / floor"]["value"] == pytest.approx(1.1)
    assert rows["RSS per call, ours / official (defaults)"]["value"] == pytest.approx(0.1)
    equal = rows["RSS per call, ours / official (equal buffers)"]
    assert equal["value"] == pytest.approx(1.25) and not equal["met"]
    doc = {
        "meta": {
            "date": "d",
            "machine": "m",
            "python": "p",
            "reps": 3,
            "seconds": 6,
            "equalBuffer": 65536,
        },
        "echo": {"summary": summary, "ratios": ratios, "points": points},
        "interrupt": {"summary": {}, "points": []},
        "targets": list(rows.values()),
        "failures": [],
    }
    table = bench.markdown(doc)
    assert "| 50 | 100 | 80 | 1.25 |" in table  # the equal-buffer table, KiB per call
    assert "ours-websockets/official" in table


def test_cpu_targets_are_read_from_the_same_time_pairs() -> None:
    interleaved, same = [], []
    for rep in range(3):
        interleaved += [
            _point("ours", rep, cpuMsPerCallSecond=13.0, pullP50Ms=1.0),
            _point("ours-websockets", rep, cpuMsPerCallSecond=12.0, pullP50Ms=1.0),
            _point("official", rep, cpuMsPerCallSecond=10.0, pullP50Ms=1.0),
            _point("floor", rep, cpuMsPerCallSecond=10.0, pullP50Ms=1.0),
        ]
        for p in interleaved[-4:]:
            p.update(server="loadgen", serverCpuMsPerCallSecond=1.0 + rep / 2)
        # Two same-time runs per repetition; a ratio never crosses from one to the other.
        same += [
            {
                **_point("ours-websockets", rep, cpuMsPerCallSecond=9.0 + rep, pullP50Ms=1.0),
                "group": "ours-websockets+official",
            },
            {
                **_point("official", rep, cpuMsPerCallSecond=10.0, pullP50Ms=2.0),
                "group": "ours-websockets+official",
            },
            {**_point("ours", rep, cpuMsPerCallSecond=11.0, pullP50Ms=1.0), "group": "ours+floor"},
            {**_point("floor", rep, cpuMsPerCallSecond=1.0, pullP50Ms=1.0), "group": "ours+floor"},
        ]
    same[-1]["cpuMsPerCallSecond"] = 10.0  # the last repetition's floor: the median moves
    summary = bench.summarise_echo(interleaved)
    ratios = bench.paired_ratios(interleaved)
    same_ratios = bench.paired_ratios(same)
    assert set(same_ratios["50"]) == {"ours-websockets/official", "ours/floor"}
    rows = {t["target"]: t for t in bench.targets(summary, {}, ratios, same_ratios)}
    ws = rows["CPU per call-second, ours-websockets / official"]
    assert ws["value"] == pytest.approx(1.0) and ws["met"]  # median of 0.9, 1.0, 1.1
    assert ws["reading"] == "same time" and ws["interleaved"] == pytest.approx(1.2)
    floor = rows["CPU per call-second, ours / floor"]
    assert floor["value"] == pytest.approx(11.0) and not floor["met"]
    pull = rows["pull fill p50, ours-websockets / official"]
    assert pull["reading"] == "interleaved" and pull["value"] == pytest.approx(1.0)
    # Without same-time pairs the CPU targets read the interleaved runs.
    alone = {t["target"]: t for t in bench.targets(summary, {}, ratios)}
    assert alone["CPU per call-second, ours / floor"]["value"] == pytest.approx(1.3)

    doc = {
        "meta": {"date": "d", "machine": "m", "python": "p", "reps": 3, "seconds": 6},
        "echo": {"summary": summary, "ratios": ratios, "points": interleaved},
        "sameTime": {"n": 50, "points": same, "ratios": same_ratios},
        "interrupt": {"summary": {}, "points": []},
        "targets": list(rows.values()),
        "failures": [],
    }
    table = bench.markdown(doc)
    assert "**Same-time pairs** at N=50:" in table
    assert "ranged 1-2 ms (2.00x)" in table  # the generator's own CPU across the run
    assert "| ours-websockets/official | 3 | 1.00 (0.90-1.10) | 1.20 (1.20-1.20) |" in table
    assert "| same time (interleaved: 1.2) |" in table


def test_same_time_runs_only_the_pairs_the_run_measures() -> None:
    opts = bench.parse(["--points", "25,50,100", "--skip-ceiling"])
    assert opts.same_time == 50
    assert bench.same_time_pairs(opts) == [("ours-websockets", "official"), ("ours", "floor")]
    opts = bench.parse(["--points", "100", "--clients", "ours,floor,official", "--skip-ceiling"])
    assert opts.same_time == 0  # no point up to 50
    opts = bench.parse(["--same-time", "80", "--official-max", "50", "--skip-ceiling"])
    assert bench.same_time_pairs(opts) == [("ours", "floor")]
    assert bench.parse(["--together", "--skip-ceiling"]).same_time == 0
    for bad in (["--same-time", "-1"], ["--together", "--same-time", "50"]):
        with pytest.raises(SystemExit):
            bench.parse([*bad, "--skip-ceiling"])


def test_tls_runs_on_the_generator_only() -> None:
    assert bench.parse(["--tls", "--skip-ceiling"]).tls is True
    assert bench.parse(["--skip-ceiling"]).tls is False
    with pytest.raises(SystemExit):
        bench.parse(["--tls", "--server", "sandbox", "--skip-ceiling"])


def test_ceiling_markdown_names_the_bracket() -> None:
    ceiling = {
        "placement": "all N calls placed at once",
        "holdSeconds": 3.0,
        "served": 49,
        "refused": 50,
        "stoppedBy": "bracketed",
        "hangupRefusalsFrom": 40,
        "tries": [
            {"n": 40, "served": True, "live": 40, "echoing": 40, "refusedFramesAtHangup": {"a": 2}},
            {"n": 50, "served": False, "live": 31, "echoing": 31, "refusedFrames": {"b": 19}},
        ],
        "lifetime": {
            "batch": 10,
            "batchHoldSeconds": 2.0,
            "served": 30,
            "stoppedBy": "a batch not served",
            "rounds": [
                {"batch": 3, "placedSoFar": 30, "live": 10, "echoing": 10, "served": True},
                {"batch": 4, "placedSoFar": 40, "live": 0, "echoing": 0, "served": False},
            ],
        },
    }
    text = "\n".join(bench.ceiling_markdown(ceiling))
    assert "served up to N = 49, not served at N = 50" in text
    assert "From N = 40 on, its bus also refused frames at the hang-up" in text
    assert "| 40 | yes | 40 | 40 | - | a 2 |" in text
    assert "| 50 | NO | 31 | 31 | b 19 | - |" in text
    assert "30 calls served in all (stopped by: a batch not served)" in text
    assert "| 4 | 40 | 0 | 0 | NO | - |" in text


def test_refusals_are_read_from_the_official_clients_log() -> None:
    log = "\n".join(
        [
            "ERROR:telcoflow.x:Failed to emit bus event for SM-WS frame type: session.closed",
            "Traceback (most recent call last):",
            '  File "abxbus/event_bus.py", line 1319, in emit',
            "RuntimeError: EventBus(...) history limit reached (100/100); set ...",
            "ERROR:telcoflow.x:Failed to emit bus event for SM-WS frame type: session.notify",
            "RuntimeError: EventBus(...) history limit reached (100/100)",
            "ERROR:telcoflow.x:Failed to emit bus event for SM-WS frame type: call.in",
            "ValueError: something else",
            "ERROR:telcoflow.x:Failed to emit bus event for SM-WS frame type: session.notify",
            "RuntimeError: EventBus(...) history limit reached (100/100)",
        ]
    )
    assert bench.refused_frames(log) == {"session.closed": 1, "session.notify": 2}
