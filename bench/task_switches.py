"""Task switches per incoming message and CPU per call-second of our echo agent (issue 15).

Compares two copies of the SDK ("trees": directories holding a ``telcoflow_trio`` package,
e.g. ``git archive`` of an older commit, and the work tree), on either engine, against
``bench/loadgen.py`` with N concurrent 24 kHz echo calls. Each run starts a fresh
generator and a fresh agent process (this script's ``agent`` mode, which imports the SDK
from its tree and echoes as ``agent_trio.py`` does: ``audio_stream()`` into
``send_audio()``, one ``whisper`` per call every 2 s). Over a window once every call is
live it reads:

- the agent's CPU (all threads, ``/proc``) per call-second;
- with ``--steps``, trio task steps (a ``trio.abc.Instrument`` counting
  ``before_task_step``) per incoming message; messages are what the generator sent in the
  window: caller audio frames plus pull requests (command responses, about 1 %, are left
  out of the count). Step runs are separate from CPU runs: the instrument costs CPU itself;
- the generator's pull fill time, underruns, tick lag and echo integrity, so that a run
  that saturated the machine can be told apart.

Runs are paired and interleaved: within a repetition, for each engine, the trees run back
to back, in an order that alternates between repetitions and engines; each ratio is taken
per repetition (second tree over first) and the summary shows the median of those ratios.

    python bench/task_switches.py --tree before=/tmp/old --tree after=. --reps 3
    python bench/task_switches.py --tree after=. --steps --reps 1 --engines websockets
    python bench/task_switches.py --tree after=. --py-spy /tmp/prof --reps 1
    python bench/task_switches.py --tree after=. --quick --steps   # smoke run (tests/bench)

``--py-spy DIR`` records the agent during the window with py-spy (``pip install py-spy``;
samples only while the agent's thread is on a CPU, idle samples excluded) and prints the
functions with the most samples; the raw stacks stay in ``DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPT = Path(__file__).resolve()
sys.path.insert(0, str(HERE))

ENGINES = ("trio-websocket", "websockets")
TICK = 0.02
PULL_INTERVAL = 0.1
LEAD = 0.3
READY_MARGIN = 0.1
COMMAND_EVERY = 2.0


# ── the agent process ───────────────────────────────────────────────────────────────────


def agent_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="task_switches.py agent")
    p.add_argument("--tree", required=True)
    p.add_argument("--transport", choices=ENGINES, required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--connector-uuid", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", action="store_true")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(args.tree).resolve()))
    import trio

    import telcoflow_trio as tf

    class StepCounter(trio.abc.Instrument):
        def __init__(self) -> None:
            self.steps = 0

        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            self.steps += 1

    counter = StepCounter()

    def note(event: str) -> None:
        line = {
            "event": event,
            "steps": counter.steps,
            "cpu": time.process_time(),
            "time": time.monotonic(),
            "sdk": tf.__file__,
        }
        with open(args.out, "a") as f:
            f.write(json.dumps(line) + "\n")

    async def whispers(call: tf.Call) -> None:
        await trio.sleep(COMMAND_EVERY * (hash(call.id) % 1000) / 1000)
        while True:
            try:
                await call.whisper()
            except tf.WSSCallClosedError:
                return
            await trio.sleep(COMMAND_EVERY)

    async def handle(call: tf.Call) -> None:
        if not await call.answer():
            return
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(whispers, call)
                async for chunk in call.audio_stream():
                    await call.send_audio(chunk)
                nursery.cancel_scope.cancel()
        except* tf.WSSCallClosedError:
            pass

    async def main() -> None:
        config = tf.SessionManagerConfig.create(
            api_key=args.api_key,
            connector_uuid=args.connector_uuid,
            base_url=args.url,
            call_audio=tf.CallAudioConfig(sample_rate=24_000),
            transport=args.transport,
        )
        with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGTERM) as signals:
            async with tf.SessionManager(config) as sm, trio.open_nursery() as nursery:
                nursery.start_soon(sm.serve_calls, handle)
                note("ready")
                async for signum in signals:
                    if signum == signal.SIGTERM:
                        break
                    note("mark")
                nursery.cancel_scope.cancel()

    trio.run(main, instruments=[counter] if args.steps else [])


# ── the driver ──────────────────────────────────────────────────────────────────────────


def _inside(path: str, tree: Path) -> bool:
    return Path(path).resolve().is_relative_to(tree.resolve())


def _marks(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


async def one_run(
    tree: Path, engine: str, n: int, seconds: float, steps: bool, spy: Path | None, label: str
) -> dict[str, Any]:
    import trio
    from _benchlib import cpu_seconds
    from loadgen import LoadGen

    gen_args = ["--tick", str(TICK), "--pull-interval", str(PULL_INTERVAL), "--lead", str(LEAD)]
    gen_args += ["--ready-margin", str(READY_MARGIN)]
    with tempfile.TemporaryDirectory(prefix="switches-") as tmp_name:
        tmp = Path(tmp_name)
        out, log_path = tmp / "agent.jsonl", tmp / "agent.log"
        async with LoadGen.start(*gen_args) as gen:
            cmd = [sys.executable, str(SCRIPT), "agent", "--tree", str(tree)]
            cmd += ["--transport", engine, "--url", gen.url, "--api-key", gen.api_key]
            cmd += ["--connector-uuid", gen.connector_uuid, "--out", str(out)]
            cmd += ["--steps"] if steps else []
            with log_path.open("wb") as log:
                proc = await trio.lowlevel.open_process(cmd, stdout=log, stderr=log)
            try:

                async def until(pred: Any, limit: float, what: str) -> None:
                    deadline = time.monotonic() + limit
                    while not pred():
                        if proc.poll() is not None or time.monotonic() > deadline:
                            tail = log_path.read_text(errors="replace")[-2000:]
                            raise RuntimeError(f"{label}: no {what}; agent log:\n{tail}")
                        await trio.sleep(0.05)

                await until(lambda: len(_marks(out)) >= 1, 30, "agent start")
                await gen.request("place", n=n)
                deadline = time.monotonic() + 10 + 0.1 * n
                while (await gen.request("status"))["live"] < n:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{label}: calls not live")
                    await trio.sleep(0.05)
                await trio.sleep(1.0)  # settle
                await gen.request("window")
                proc.send_signal(signal.SIGUSR1)
                cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
                spy_proc = None
                if spy is not None:
                    spy_out = spy / f"{label}.txt"
                    spy_cmd = ["py-spy", "record", "--pid", str(proc.pid), "--rate", "250"]
                    spy_cmd += ["--duration", str(int(seconds)), "--format", "raw"]
                    spy_cmd += ["--nonblocking", "-o", str(spy_out)]
                    spy_proc = await trio.lowlevel.open_process(
                        spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                    )
                await trio.sleep(seconds)
                cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
                proc.send_signal(signal.SIGUSR1)
                report = await gen.request("report")
                await until(lambda: len(_marks(out)) >= 3, 10, "second mark")
                if spy_proc is not None:
                    with trio.move_on_after(15):
                        await spy_proc.wait()
                    if spy_proc.returncode is None:
                        spy_proc.kill()
                        await spy_proc.wait()
                await gen.request("hangup")
                calls = (await gen.request("calls"))["calls"]
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    with trio.move_on_after(10):
                        await proc.wait()
                    if proc.returncode is None:
                        proc.kill()
                        await proc.wait()
        marks = _marks(out)
    sdk = marks[0]["sdk"]
    if not _inside(sdk, tree):
        raise RuntimeError(f"{label}: the agent imported {sdk}, not the tree {tree}")
    a, b = marks[1], marks[2]
    messages = int(report["framesOut"]) + int(report["pulls"])
    elapsed = t1 - t0
    return {
        "label": label,
        "engine": engine,
        "n": n,
        "seconds": elapsed,
        "cpuMsPerCallSecond": 1000 * (cpu1 - cpu0) / (n * elapsed),
        "messages": messages,
        "messagesPerSecond": messages / elapsed,
        "steps": (b["steps"] - a["steps"]) if steps else None,
        "stepsPerMessage": (b["steps"] - a["steps"]) / messages if steps and messages else None,
        "fillP50Ms": report["fillP50Ms"],
        "fillP99Ms": report["fillP99Ms"],
        "underruns": report["underruns"],
        "pullsCounted": report["pullsCounted"],
        "generatorLagP99Ms": report["lagP99Ms"],
        "generatorCpu": report["cpuShare"],
        "integrity": all(c["mismatchedFrames"] == 0 and c["overEchoBytes"] == 0 for c in calls),
        "loadavg": os.getloadavg()[0],
    }


def summarize_spy(path: Path, top: int = 25) -> str:
    """The functions with the most samples in a py-spy raw file: own (leaf) and inclusive."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [
            f.split(" (", 1)[0] + " " + f.rsplit("/", 1)[-1].split(":")[0] for f in stack.split(";")
        ]
        own[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    lines = [f"{path.name}: {total} samples (on-CPU only)", "  own %  function"]
    lines += [f"  {100 * c / total:5.1f}  {f}" for f, c in own.most_common(top)]
    lines += ["  incl %  function"]
    lines += [f"  {100 * c / total:5.1f}  {f}" for f, c in incl.most_common(top)]
    return "\n".join(lines)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def driver(args: argparse.Namespace) -> None:
    import trio

    trees = [(name, Path(path)) for name, _, path in (t.partition("=") for t in args.tree)]
    engines = args.engines.split(",")
    spy = Path(args.py_spy) if args.py_spy else None
    if spy is not None:
        if shutil.which("py-spy") is None:
            raise SystemExit("--py-spy needs py-spy on PATH (pip install py-spy)")
        spy.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []

    async def main() -> None:
        for rep in range(args.reps):
            for e, engine in enumerate(engines):
                order = trees if (rep + e) % 2 == 0 else trees[::-1]
                for name, path in order:
                    label = f"{name}-{engine}-r{rep}"
                    run = await one_run(
                        path, engine, args.calls, args.seconds, args.steps, spy, label
                    )
                    run.update(tree=name, rep=rep)
                    runs.append(run)
                    steps = run["stepsPerMessage"]
                    print(
                        f"{label}: {run['cpuMsPerCallSecond']:.3f} ms CPU/call-s, "
                        + (f"{steps:.2f} steps/msg, " if steps is not None else "")
                        + f"{run['messagesPerSecond']:.0f} msg/s, fill p50/p99 "
                        f"{run['fillP50Ms']}/{run['fillP99Ms']} ms, underruns "
                        f"{run['underruns']}/{run['pullsCounted']}, gen lag p99 "
                        f"{run['generatorLagP99Ms']} ms, integrity {run['integrity']}, "
                        f"load {run['loadavg']:.2f}",
                        flush=True,
                    )
                    if spy is not None:
                        print(summarize_spy(spy / f"{label}.txt"), flush=True)

    trio.run(main)
    summary: dict[str, Any] = {}
    for engine in engines:
        for key in ("cpuMsPerCallSecond", "stepsPerMessage"):
            by_tree = {
                name: [r[key] for r in runs if r["tree"] == name and r["engine"] == engine]
                for name, _ in trees
            }
            if any(v is None for vs in by_tree.values() for v in vs):
                continue
            entry: dict[str, Any] = {name: _median(vs) for name, vs in by_tree.items()}
            if len(trees) == 2:
                first, second = trees[0][0], trees[1][0]
                ratios = [b / a for a, b in zip(by_tree[first], by_tree[second], strict=True)]
                entry["ratios"] = ratios
                entry["medianRatio"] = _median(ratios)
            summary[f"{engine} {key}"] = entry
    for key, entry in summary.items():
        print(key, json.dumps(entry))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "summary": summary}, indent=1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "agent":
        agent_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", required=True, help="NAME=DIR, once or twice")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", action="store_true", help="count task steps (costs CPU itself)")
    p.add_argument("--py-spy", default=None, metavar="DIR")
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="smoke mode: 2 calls, 1 s, one rep")
    args = p.parse_args()
    if args.quick:
        args.calls, args.seconds, args.reps = 2, 1.0, 1
    if not 1 <= len(args.tree) <= 2:
        p.error("give --tree once or twice")
    if not 1 <= args.calls <= 500 or not 1 <= args.seconds <= 120 or not 1 <= args.reps <= 20:
        p.error("--calls 1..500, --seconds 1..120, --reps 1..20")
    driver(args)


if __name__ == "__main__":
    main()
