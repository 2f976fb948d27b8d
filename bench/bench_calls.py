"""Calls side by side: telcoflow_trio, the official asyncio client and a bare trio-websocket floor.

Each measured point starts a fresh server and a fresh agent process (``agent_trio.py``,
``agent_official.py`` or ``agent_floor.py``) and reads the agent's CPU and memory from
/proc. The server is ``loadgen.py`` (``--server loadgen``, the default: a light server in
its own process that can drive 200 calls on two cores and measures its own saturation) or
the in-process sandbox (``--server sandbox``: 8-11 ms of CPU per call-second, saturates
near 100 calls). Within a repetition ours runs back to back with each reference client;
every ratio is taken per repetition, then the median of those ratios is reported.

Echo: N concurrent 24 kHz calls; each simulated caller speaks random PCM in 20 ms frames
in real time; the sandbox pulls 100 ms every 100 ms, starting 300 ms after the call goes
live (a playout lead), and the agent sends the audio straight back. Measured over a
window once every call is live:

- agent CPU seconds per call-second; idle RSS, peak RSS, RSS per call above idle;
- pull latency at the sandbox: from queueing a ``buffer_request`` to holding the bytes it
  asked for, counted only for requests whose audio the caller had spoken at least
  100 ms before (the agent had it queued, or should have);
- underruns: such requests not filled within one pull interval (the caller hears a gap);
- echo integrity: what came back is exactly a prefix of what was spoken, nothing extra;
- whisper round trips (one per call every 2 s) and answer round trips, at the agent;
- the server's own CPU share and lag (the generator's timer lag; the sandbox's event-loop
  lag), to tell when it saturates.

Interruption (always on the sandbox, which keeps the audio it hears): C calls, each a
model queueing T turns of 3 s of audio (every byte of turn t is t) and clearing at a
random point of each turn. Stale bytes are bytes of a cleared turn that reach the sandbox
after its ``agent.interrupt``; clear→interrupt is the time from the
``clear_send_audio_buffer()`` call (agent) to the frame's arrival (sandbox), both on the
system's monotonic clock.

    python bench/bench_calls.py                 # the full run (~15 min on 2 cores)
    python bench/bench_calls.py --quick         # smoke mode, under a minute (tests/bench runs it)
    python bench/bench_calls.py --server sandbox --points 1,25,50
    python bench/bench_calls.py --points 1,25 --reps 3 --seconds 5 --skip-interrupt
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

import trio
from _benchlib import (
    BYTES_PER_SECOND,
    SAMPLE_RATE,
    clean,
    cpu_seconds,
    fmt,
    median,
    memory,
    percentile,
    ratio,
)
from loadgen import LoadGen

from telcoflow_trio.sandbox import Sandbox, SimulatedCall, open_sandbox
from telcoflow_trio.sandbox._voice import VoiceSettings

HERE = Path(__file__).resolve().parent
AGENTS = {
    "ours": HERE / "agent_trio.py",
    "official": HERE / "agent_official.py",
    "floor": HERE / "agent_floor.py",
}
PULL_INTERVAL = 0.1
LEAD = 0.3
READY_MARGIN_BYTES = BYTES_PER_SECOND // 10
COMMAND_EVERY = 2.0
SATURATED_CPU = 0.9
SATURATED_LAG = 0.05
"""The sandbox's event-loop lag (p99) past which its figures say more about it than the agent."""
TICK = 0.02
"""The generator's tick: one caller frame per call per tick."""
GENERATOR_LAG = TICK
"""The generator's tick lag (p99) past which callers' frames come a whole frame late."""
UNDERRUN_SHARE = 0.01
"""Underruns (share of counted pulls) past which the point is no steady state."""
PAIRS = (("ours", "official"), ("ours", "floor"), ("official", "floor"))


@dataclass
class Options:
    points: list[int]
    clients: list[str]
    reps: int
    seconds: float
    settle: float
    interrupt_calls: int
    interrupt_turns: int
    turn_seconds: float
    interrupt_reps: int
    skip_echo: bool
    skip_interrupt: bool
    out_dir: Path
    chart: bool
    quick: bool
    server: str = "loadgen"
    official_max: int = 50
    phases: int = 4


# ── the sandbox side ────────────────────────────────────────────────────────────────────


@dataclass
class Window:
    start: float = math.inf
    end: float = math.inf

    def __contains__(self, t: float) -> bool:
        return self.start <= t <= self.end


@dataclass
class Probe:
    """Taps one simulated call's sandbox hooks to time pulls and interrupts."""

    sim: SimulatedCall
    window: Window
    heard: int = 0
    pending: deque[tuple[int, float, bool]] = field(default_factory=deque)
    latencies: list[float] = field(default_factory=list)
    late: int = 0
    interrupts: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        sim = self.sim
        pull, heard, interrupt = sim.record_pull, sim.record_heard, sim.record_interrupt

        def record_pull(nbytes: int) -> None:
            pull(nbytes)
            end = sim.bytes_requested
            ready = len(sim.spoken) - end >= READY_MARGIN_BYTES
            self.pending.append((end, time.monotonic(), ready))

        def record_heard(channel: int, pcm: bytes) -> None:
            heard(channel, pcm)
            if channel != 0:
                return
            self.heard += len(pcm)
            now = time.monotonic()
            pending = self.pending
            while pending and pending[0][0] <= self.heard:
                _, sent, ready = pending.popleft()
                if ready and sent in self.window:
                    latency = now - sent
                    self.latencies.append(latency)
                    if latency > PULL_INTERVAL:
                        self.late += 1

        def record_interrupt() -> Any:
            record = interrupt()
            self.interrupts.append((time.monotonic(), record.heard_bytes))
            return record

        # Instance attributes shadow the methods the sandbox calls: a bench-only tap.
        setattr(sim, "record_pull", record_pull)  # noqa: B010
        setattr(sim, "record_heard", record_heard)  # noqa: B010
        setattr(sim, "record_interrupt", record_interrupt)  # noqa: B010

    def unfilled(self, before: float) -> int:
        """Counted requests sent before ``before`` that were never filled."""
        return sum(
            1 for _, sent, ready in self.pending if ready and sent in self.window and sent < before
        )


class Agent:
    """An agent process and where it writes its own measurements."""

    def __init__(self, client: str, server: Sandbox | LoadGen, tmp: Path, extra: list[str]) -> None:
        self.out = tmp / f"{client}.json"
        self.log = tmp / f"{client}.log"
        self.cmd = [
            sys.executable,
            str(AGENTS[client]),
            "--url",
            server.url,
            "--api-key",
            server.api_key,
            "--connector-uuid",
            server.connector_uuid,
            "--out",
            str(self.out),
            *extra,
        ]
        self.proc: trio.Process | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[int]:
        """Start the agent; whatever happens in the block, it is not left running."""
        with self.log.open("wb") as log:
            self.proc = await trio.lowlevel.open_process(
                self.cmd, stdout=subprocess.DEVNULL, stderr=log
            )
            try:
                yield self.proc.pid
            finally:
                if self.proc.returncode is None:
                    self.proc.kill()
                    with trio.CancelScope(shield=True):
                        await self.proc.wait()

    async def stop(self) -> dict[str, Any]:
        proc = self.proc
        assert proc is not None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(15):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        try:
            return dict(json.loads(self.out.read_text()))
        except (OSError, ValueError):
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"agent wrote no results (exit {proc.returncode}):\n{tail}"
            ) from None

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"agent exited early ({self.proc.returncode}):\n{tail}")


async def _lag_monitor(window: Window, lags: list[float]) -> None:
    period = 0.02
    while True:
        before = time.monotonic()
        await trio.sleep(period)
        after = time.monotonic()
        if before in window:
            lags.append(after - before - period)


async def _wait_until(predicate: Callable[[], bool], limit: float, agent: Agent, what: str) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        agent.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await trio.sleep(0.05)


def _new_sandbox() -> Any:
    return open_sandbox(frame_log_limit=1, pull_interval=PULL_INTERVAL)


def _no_frame_log(*_: object) -> None:
    return None


def _set_lead(sandbox: Sandbox) -> None:
    sandbox.voice_settings = VoiceSettings(PULL_INTERVAL, None, LEAD)
    # The frame log is for tests' assertions; here it would only slow the sandbox down.
    setattr(sandbox.frames, "append", _no_frame_log)  # noqa: B010


async def echo_point(client: str, n: int, opts: Options, seed: int) -> dict[str, Any]:
    """One measured point: ``n`` echo calls against ``client``, on the chosen server."""
    if opts.server == "loadgen":
        return await echo_point_loadgen(client, n, opts, seed)
    return await echo_point_sandbox(client, n, opts, seed)


async def echo_point_sandbox(client: str, n: int, opts: Options, seed: int) -> dict[str, Any]:
    window = Window()
    lags: list[float] = []
    rng = random.Random(seed)
    async with _new_sandbox() as sandbox, trio.open_nursery() as nursery:
        _set_lead(sandbox)
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            agent = Agent(
                client,
                sandbox,
                Path(tmp),
                ["--command-every", str(COMMAND_EVERY), "--seed", str(seed)],
            )
            async with agent.running() as pid:
                await _wait_until(
                    lambda: len(sandbox.control_connections) >= 1, 30, agent, "the agent"
                )
                await trio.sleep(0.5)
                idle_rss, _ = memory(pid)
                setup_limit = 10.0 + 0.1 * n
                speech = (
                    int((setup_limit + opts.settle + opts.seconds + 1.0) * BYTES_PER_SECOND) & ~1
                )
                probes = []
                for i in range(n):
                    sim = await sandbox.place_call(f"+1555{i:07d}", audio=rng.randbytes(speech))
                    probes.append(Probe(sim, window))
                t0 = time.monotonic()
                await _wait_until(
                    lambda: all(p.sim.live.is_set() for p in probes),
                    setup_limit,
                    agent,
                    "calls live",
                )
                setup_seconds = time.monotonic() - t0
                nursery.start_soon(_lag_monitor, window, lags)
                await trio.sleep(opts.settle)
                rss_samples: list[int] = []
                window.start = time.monotonic()
                cpu0, sb_cpu0 = cpu_seconds(pid), time.process_time()
                while time.monotonic() < window.start + opts.seconds:
                    rss_samples.append(memory(pid)[0])
                    await trio.sleep(0.2)
                window.end = time.monotonic()
                cpu1, sb_cpu1 = cpu_seconds(pid), time.process_time()
                rss_now, hwm = memory(pid)
                rss_samples.append(rss_now)
                agent.check_alive()
                await trio.sleep(3 * PULL_INTERVAL)  # the window's last pulls get their bytes
                integrity = True
                excess = 0
                echo_lag = 0.0
                for p in probes:
                    heard, spoken = p.sim.heard, bytes(p.sim.spoken)
                    integrity = integrity and spoken.startswith(heard) and len(heard) > 0
                    excess += p.sim.excess_bytes
                    echo_lag = max(echo_lag, (len(spoken) - len(heard)) / BYTES_PER_SECOND)
                for p in probes:
                    await p.sim.hang_up()
                agent_doc = await agent.stop()
        nursery.cancel_scope.cancel()
    elapsed = window.end - window.start
    latencies = [x for p in probes for x in p.latencies]
    underruns = sum(p.late + p.unfilled(window.end) for p in probes)
    peak = max(rss_samples)
    sb_cpu = (sb_cpu1 - sb_cpu0) / elapsed
    lag_p99 = percentile(lags, 99)
    return {
        "client": client,
        "n": n,
        "seconds": elapsed,
        "setupSeconds": setup_seconds,
        "cpuSeconds": cpu1 - cpu0,
        "cpuMsPerCallSecond": 1000 * (cpu1 - cpu0) / (n * elapsed),
        "idleRss": idle_rss,
        "peakRss": peak,
        "hwm": hwm,
        "rssPerCall": (peak - idle_rss) / n,
        "pullP50Ms": 1000 * percentile(latencies, 50),
        "pullP99Ms": 1000 * percentile(latencies, 99),
        "pullsCounted": len(latencies),
        "underruns": underruns,
        "integrity": integrity and excess == 0,
        "excessBytes": excess,
        "echoLagSeconds": echo_lag,
        "commandP50Ms": 1000 * percentile(agent_doc["commandRtts"], 50),
        "commandP99Ms": 1000 * percentile(agent_doc["commandRtts"], 99),
        "commands": len(agent_doc["commandRtts"]),
        "answerP50Ms": 1000 * percentile(agent_doc["answerRtts"], 50),
        "answerP99Ms": 1000 * percentile(agent_doc["answerRtts"], 99),
        "agentCalls": agent_doc["calls"],
        "agentErrors": agent_doc["errors"],
        "server": "sandbox",
        "serverCpu": sb_cpu,
        "serverCpuMsPerCallSecond": 1000 * sb_cpu / n,
        "serverLagP50Ms": 1000 * percentile(lags, 50),
        "serverLagP99Ms": 1000 * lag_p99,
        "saturated": sb_cpu >= SATURATED_CPU or lag_p99 > SATURATED_LAG,
        "saturation": [
            *(["sandbox CPU"] if sb_cpu >= SATURATED_CPU else []),
            *(["sandbox lag"] if lag_p99 > SATURATED_LAG else []),
        ],
    }


async def _poll(
    gen: LoadGen, predicate: Callable[[dict[str, Any]], bool], limit: float, agent: Agent, what: str
) -> None:
    deadline = time.monotonic() + limit
    while not predicate(status := await gen.request("status")):
        agent.check_alive()
        if time.monotonic() > deadline:
            tail = agent.log.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"timed out waiting for {what}: {status}; agent log:\n{tail}")
        await trio.sleep(0.05)


def _saturation(report: dict[str, Any]) -> list[str]:
    """Why a point on the load generator measures more than the agent (empty: it does not)."""
    reasons = []
    if float(report["cpuShare"] or 0) >= SATURATED_CPU:
        reasons.append("generator CPU")
    lag = report["lagP99Ms"]
    if lag is None or lag > 1000 * GENERATOR_LAG:
        reasons.append("generator lag")
    counted = int(report["pullsCounted"])
    if counted == 0:
        reasons.append("no counted pulls")
    elif report["underruns"] > UNDERRUN_SHARE * counted:
        reasons.append("underruns")
    fill = report["fillP99Ms"]
    if fill is None or fill > 1000 * PULL_INTERVAL:
        reasons.append("fill time")
    return reasons


def _log_file(tmp: Path) -> IO[bytes]:
    """Where the generator's stderr goes (read back only if a point fails)."""
    return (tmp / "loadgen.log").open("wb")


async def echo_point_loadgen(client: str, n: int, opts: Options, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, _log_file(Path(tmp)) as log:
        args = ["--seed", str(seed), "--tick", str(TICK), "--pull-interval", str(PULL_INTERVAL)]
        args += [
            "--lead",
            str(LEAD),
            "--ready-margin",
            str(READY_MARGIN_BYTES / BYTES_PER_SECOND),
            "--phases",
            str(opts.phases),
        ]
        async with LoadGen.start(*args, stderr=log) as gen:
            agent = Agent(
                client,
                gen,
                Path(tmp),
                ["--command-every", str(COMMAND_EVERY), "--seed", str(seed)],
            )
            async with agent.running() as pid:
                await _poll(gen, lambda st: st["controls"] >= 1, 30, agent, "the agent")
                await trio.sleep(0.5)
                idle_rss, _ = memory(pid)
                t0 = time.monotonic()
                await gen.request("place", n=n)
                await _poll(gen, lambda st: st["live"] >= n, 10.0 + 0.1 * n, agent, "calls live")
                setup_seconds = time.monotonic() - t0
                await trio.sleep(opts.settle)
                rss_samples: list[int] = []
                await gen.request("window")
                start = time.monotonic()
                cpu0 = cpu_seconds(pid)
                while time.monotonic() < start + opts.seconds:
                    rss_samples.append(memory(pid)[0])
                    await trio.sleep(0.2)
                cpu1 = cpu_seconds(pid)
                report = await gen.request("report")
                elapsed = time.monotonic() - start
                rss_now, hwm = memory(pid)
                rss_samples.append(rss_now)
                agent.check_alive()
                await gen.request("hangup")
                calls = (await gen.request("calls"))["calls"]
                agent_doc = await agent.stop()
    peak = max(rss_samples)
    integrity = len(calls) == n and all(
        c["heardBytes"] > 0 and c["mismatchedFrames"] == 0 and c["overEchoBytes"] == 0
        for c in calls
    )
    excess = sum(c["excessBytes"] for c in calls)
    echo_lag = max((c["spokenBytes"] - c["heardBytes"]) / BYTES_PER_SECOND for c in calls)
    reasons = _saturation(report)
    return {
        "client": client,
        "n": n,
        "seconds": elapsed,
        "setupSeconds": setup_seconds,
        "cpuSeconds": cpu1 - cpu0,
        "cpuMsPerCallSecond": 1000 * (cpu1 - cpu0) / (n * elapsed),
        "idleRss": idle_rss,
        "peakRss": peak,
        "hwm": hwm,
        "rssPerCall": (peak - idle_rss) / n,
        "pullP50Ms": report["fillP50Ms"],
        "pullP99Ms": report["fillP99Ms"],
        "pullsCounted": report["pullsCounted"],
        "underruns": report["underruns"],
        "integrity": integrity and excess == 0,
        "excessBytes": excess,
        "echoLagSeconds": echo_lag,
        "commandP50Ms": 1000 * percentile(agent_doc["commandRtts"], 50),
        "commandP99Ms": 1000 * percentile(agent_doc["commandRtts"], 99),
        "commands": len(agent_doc["commandRtts"]),
        "answerP50Ms": 1000 * percentile(agent_doc["answerRtts"], 50),
        "answerP99Ms": 1000 * percentile(agent_doc["answerRtts"], 99),
        "agentCalls": agent_doc["calls"],
        "agentErrors": agent_doc["errors"],
        "server": "loadgen",
        "serverCpu": report["cpuShare"],
        "serverCpuMsPerCallSecond": report["cpuMsPerConnectionSecond"],
        "serverLagP50Ms": report["lagP50Ms"],
        "serverLagP99Ms": report["lagP99Ms"],
        "generator": report,
        "saturated": bool(reasons),
        "saturation": reasons,
    }


def _stale_bytes(heard: bytes, interrupts: list[tuple[float, int]]) -> int:
    """Bytes of turn <= k+1 heard after the (k+1)-th interrupt, summed over interrupts."""
    stale = 0
    for k, (_, position) in enumerate(interrupts):
        end = interrupts[k + 1][1] if k + 1 < len(interrupts) else len(heard)
        segment = heard[position:end]
        stale += sum(segment.count(turn) for turn in range(1, min(k + 2, 256)))
    return stale


async def interrupt_point(client: str, opts: Options, seed: int) -> dict[str, Any]:
    window = Window(start=0.0)
    calls, turns = opts.interrupt_calls, opts.interrupt_turns
    async with _new_sandbox() as sandbox:
        _set_lead(sandbox)
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            extra = ["--mode", "interrupt", "--turns", str(turns)]
            extra += ["--turn-seconds", str(opts.turn_seconds), "--seed", str(seed)]
            agent = Agent(client, sandbox, Path(tmp), extra)
            async with agent.running():
                await _wait_until(
                    lambda: len(sandbox.control_connections) >= 1, 30, agent, "the agent"
                )
                probes = []
                for i in range(calls):
                    sim = await sandbox.place_call(f"+1556{i:07d}")
                    probes.append(Probe(sim, window))
                limit = turns * opts.turn_seconds + 30
                await _wait_until(
                    lambda: all(len(p.interrupts) >= turns for p in probes),
                    limit,
                    agent,
                    "interrupts",
                )
                await trio.sleep(0.5)  # stale audio would come now, if at all
                stale = sum(_stale_bytes(p.sim.heard, p.interrupts) for p in probes)
                heard_total = sum(len(p.sim.heard) for p in probes)
                for p in probes:
                    await p.sim.hang_up()
                agent_doc = await agent.stop()
    by_call = {p.sim.call_id: p for p in probes}
    to_frame: list[float] = []
    clear_calls: list[float] = []
    for call_id, turn, started, returned in agent_doc["clears"]:
        probe = by_call.get(call_id)
        if probe is None or turn > len(probe.interrupts):
            continue
        to_frame.append(probe.interrupts[turn - 1][0] - started)
        clear_calls.append(returned - started)
    return {
        "client": client,
        "calls": calls,
        "turns": calls * turns,
        "interrupts": sum(len(p.interrupts) for p in probes),
        "staleBytes": stale,
        "heardBytes": heard_total,
        "clearToInterruptP50Ms": 1000 * percentile(to_frame, 50),
        "clearToInterruptP99Ms": 1000 * percentile(to_frame, 99),
        "clearCallP50Ms": 1000 * percentile(clear_calls, 50),
        "clearCallP99Ms": 1000 * percentile(clear_calls, 99),
    }


# ── aggregation and reports ─────────────────────────────────────────────────────────────

ECHO_METRICS = (
    "cpuMsPerCallSecond",
    "peakRss",
    "rssPerCall",
    "pullP50Ms",
    "pullP99Ms",
    "underruns",
    "echoLagSeconds",
    "commandP50Ms",
    "commandP99Ms",
    "answerP50Ms",
    "answerP99Ms",
    "serverCpu",
    "serverCpuMsPerCallSecond",
    "serverLagP50Ms",
    "serverLagP99Ms",
)
RATIO_METRICS = (
    "cpuMsPerCallSecond",
    "peakRss",
    "rssPerCall",
    "pullP50Ms",
    "pullP99Ms",
    "commandP50Ms",
    "commandP99Ms",
)
INTERRUPT_METRICS = (
    "staleBytes",
    "clearToInterruptP50Ms",
    "clearToInterruptP99Ms",
    "clearCallP50Ms",
    "clearCallP99Ms",
)


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def paired_ratios(points: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per N and pair ``"a/b"``: for each metric, a's value over b's in the same repetition
    (the two ran back to back), then the median of those ratios over the repetitions."""
    runs: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for p in points:
        runs.setdefault((str(p["n"]), int(p.get("rep", 0))), {})[p["client"]] = p
    values: dict[str, dict[str, dict[str, list[float]]]] = {}
    saturated: dict[tuple[str, str], int] = {}
    for (n, _), by_client in sorted(runs.items()):
        for a, b in PAIRS:
            if a not in by_client or b not in by_client:
                continue
            pa, pb = by_client[a], by_client[b]
            entry = values.setdefault(n, {}).setdefault(f"{a}/{b}", {m: [] for m in RATIO_METRICS})
            for metric in RATIO_METRICS:
                entry[metric].append(ratio(_num(pa.get(metric)), _num(pb.get(metric))))
            key = (n, f"{a}/{b}")
            saturated[key] = saturated.get(key, 0) + bool(pa["saturated"] or pb["saturated"])
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for n, by_pair in values.items():
        for pair, metrics in by_pair.items():
            out.setdefault(n, {})[pair] = {
                **{m: median(v) for m, v in metrics.items()},
                "reps": len(metrics[RATIO_METRICS[0]]),
                "saturatedReps": saturated[(n, pair)],
                "values": metrics,
            }
    return out


def summarise_echo(points: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per N and client: the median of each metric over the repetitions."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for p in points:
        out.setdefault(str(p["n"]), {}).setdefault(p["client"], {"runs": []})["runs"].append(p)
    for by_client in out.values():
        for entry in by_client.values():
            runs = entry.pop("runs")
            for metric in ECHO_METRICS:
                entry[metric] = median([_num(r.get(metric)) for r in runs])
            entry["runs"] = len(runs)
            entry["integrity"] = all(r["integrity"] for r in runs)
            entry["saturated"] = any(r["saturated"] for r in runs)
            entry["saturation"] = sorted({why for r in runs for why in r.get("saturation", [])})
            entry["server"] = runs[0].get("server", "sandbox")
    return out


def interrupt_ratios(points: list[dict[str, Any]]) -> dict[str, float]:
    """Per metric: the median over repetitions of ours / official in the same repetition."""
    runs: dict[int, dict[str, dict[str, Any]]] = {}
    for p in points:
        runs.setdefault(int(p.get("rep", 0)), {})[p["client"]] = p
    pairs = [r for r in runs.values() if "ours" in r and "official" in r]
    return {
        m: median([ratio(_num(r["ours"][m]), _num(r["official"][m])) for r in pairs])
        for m in INTERRUPT_METRICS
    }


def summarise_interrupt(points: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for client in sorted({p["client"] for p in points}):
        runs = [p for p in points if p["client"] == client]
        entry: dict[str, Any] = {m: median([_num(r[m]) for r in runs]) for m in INTERRUPT_METRICS}
        entry["staleBytesMax"] = max(r["staleBytes"] for r in runs)
        entry["runs"] = len(runs)
        entry["interrupts"] = sum(r["interrupts"] for r in runs)
        out[client] = entry
    return out


def target_n(summary: dict[str, Any], clients: tuple[str, ...], wanted: int = 50) -> str | None:
    """The N to judge a target at: ``wanted`` if every client in ``clients`` was measured
    there, else the largest such N below it (a client may fail to serve a larger N)."""
    ns = sorted(int(n) for n in summary if all(c in summary[n] for c in clients))
    below = [n for n in ns if n <= wanted]
    return str(below[-1]) if below else None


def targets(
    echo: dict[str, Any], interrupt: dict[str, Any], ratios: dict[str, Any]
) -> list[dict[str, Any]]:
    """Issue 15's targets at 50 calls (or the largest N below it both clients served),
    each judged on the median of paired per-repetition ratios."""
    rows: list[dict[str, Any]] = []

    def add(name: str, pair: tuple[str, str], metric: str, limit: float) -> None:
        n = target_n(echo, pair)
        paired = ratios.get(n or "", {}).get(f"{pair[0]}/{pair[1]}")
        if n is None or paired is None:
            return
        value = float(paired[metric])
        saturated = bool(paired["saturatedReps"])
        rows.append(
            {
                "target": name,
                "n": n,
                "value": value,
                "limit": limit,
                "met": bool(value <= limit),
                "saturated": saturated,
            }
        )

    cpu = "cpuMsPerCallSecond"
    add("CPU per call-second, ours / floor", ("ours", "floor"), cpu, 1.15)
    add("CPU per call-second, ours / official", ("ours", "official"), cpu, 1.0)
    add("RSS per call, ours / official", ("ours", "official"), "rssPerCall", 0.25)
    add("pull fill p50, ours / official", ("ours", "official"), "pullP50Ms", 1.0)
    if "ours" in interrupt:
        stale = float(interrupt["ours"]["staleBytesMax"])
        rows.append(
            {
                "target": "stale bytes after interrupt (ours, worst run)",
                "n": "-",
                "value": stale,
                "limit": 0.0,
                "met": stale == 0,
                "saturated": False,
            }
        )
    return rows


def markdown(doc: dict[str, Any]) -> str:
    meta, echo, intr = doc["meta"], doc["echo"]["summary"], doc["interrupt"]["summary"]
    ratios = doc["echo"].get("ratios", {})
    server = meta.get("server", "sandbox")
    lines = [
        f"Run {meta['date']} on {meta['machine']}; {meta['python']}; server: {server}; "
        f"{meta['reps']} repetition(s), {meta['seconds']:g} s measured per point. Values are "
        "medians over the repetitions; each ratio is the median of per-repetition ratios "
        "(the two clients ran back to back in each repetition).",
        "",
    ]

    def row(cells: list[str]) -> None:
        lines.append("| " + " | ".join(cells) + " |")

    def cell(entry: dict[str, Any], metric: str, spec: str = ".3g", scale: float = 1.0) -> str:
        v = entry.get(metric)
        return fmt(None if v is None else float(v) * scale, spec)

    def paired(n: str, pair: str, metric: str) -> str:
        found = ratios.get(n, {}).get(pair)
        return fmt(None if found is None else float(found[metric]), ".2f")

    def section(title: str, metric: str, spec: str, scale: float = 1.0) -> None:
        lines.extend([f"**{title}**", ""])
        row(["N", "ours", "official", "ours/official", "floor", "ours/floor", "official/floor"])
        row(["---:"] * 7)
        for n in sorted(echo, key=int):
            o, t, f = (echo[n].get(c, {}) for c in ("ours", "official", "floor"))
            sat = " (saturated)" if any(e.get("saturated") for e in (o, t, f)) else ""

            row(
                [
                    n + sat,
                    cell(o, metric, spec, scale),
                    cell(t, metric, spec, scale),
                    paired(n, "ours/official", metric),
                    cell(f, metric, spec, scale),
                    paired(n, "ours/floor", metric),
                    paired(n, "official/floor", metric),
                ]
            )
        lines.append("")

    if echo:
        section("Agent CPU, ms per call-second", "cpuMsPerCallSecond", ".3g")
        section("RSS per call above idle, KiB", "rssPerCall", ".4g", 1 / 1024)
        section("Peak RSS, MiB", "peakRss", ".4g", 1 / 2**20)
        section("Pull fill time p50, ms", "pullP50Ms", ".3g")
        section("Pull fill time p99, ms", "pullP99Ms", ".3g")
        section("Whisper round trip p50, ms", "commandP50Ms", ".3g")
        section("Whisper round trip p99, ms", "commandP99Ms", ".3g")
        lines.extend(["**Underruns, echo integrity, server load**", ""])
        row(
            [
                "N",
                "client",
                "underruns",
                "integrity",
                "answer p99 ms",
                "server CPU",
                "server ms per call-second",
                "server lag p99 ms",
                "saturated",
            ]
        )
        row(["---:", "---", "---:", "---", "---:", "---:", "---:", "---:", "---"])
        for n in sorted(echo, key=int):
            for client, e in sorted(echo[n].items()):
                row(
                    [
                        n,
                        client,
                        fmt(e["underruns"], ".3g"),
                        fmt(e["integrity"]),
                        fmt(e["answerP99Ms"], ".3g"),
                        fmt(e.get("serverCpu"), ".0%"),
                        fmt(e.get("serverCpuMsPerCallSecond"), ".3g"),
                        fmt(e.get("serverLagP99Ms"), ".3g"),
                        ", ".join(e.get("saturation", [])) or ("yes" if e["saturated"] else "no"),
                    ]
                )
        lines.append("")
    if intr:
        first = doc["interrupt"]["points"][0]
        lines.extend(
            [
                f"**Interruption** ({first['calls']} calls, {first['turns']} turns of "
                f"{meta['turnSeconds']:g} s per run)",
                "",
            ]
        )
        row(["metric", "ours", "official", "ours/official"])
        row(["---", "---:", "---:", "---:"])
        o, t = intr.get("ours", {}), intr.get("official", {})
        intr_ratios = doc["interrupt"].get("ratios", {})
        for metric, label in (
            ("staleBytesMax", "stale bytes after agent.interrupt (worst run)"),
            ("clearToInterruptP50Ms", "clear() → agent.interrupt at sandbox, p50 ms"),
            ("clearToInterruptP99Ms", "clear() → agent.interrupt at sandbox, p99 ms"),
            ("clearCallP50Ms", "clear() call returns, p50 ms"),
            ("clearCallP99Ms", "clear() call returns, p99 ms"),
        ):
            ov = float(o[metric]) if o else math.nan
            tv = float(t[metric]) if t else math.nan
            paired = intr_ratios.get(metric)
            row([label, fmt(ov, ".3g"), fmt(tv, ".3g"), fmt(_num(paired), ".2f")])
        lines.append("")
    if doc["targets"]:
        lines.extend(["**Targets**", ""])
        row(["target", "at N", "value", "limit", "met"])
        row(["---", "---:", "---:", "---:", "---"])
        for t in doc["targets"]:
            row(
                [
                    t["target"] + (" (saturated)" if t.get("saturated") else ""),
                    str(t["n"]),
                    fmt(t["value"], ".3g"),
                    fmt(t["limit"], "g"),
                    fmt(t["met"]),
                ]
            )
        lines.append("")
    if doc["failures"]:
        lines.append(f"Failed points (left out above): {len(doc['failures'])}; see the JSON.")
        lines.append("")
    return "\n".join(lines)


def chart(doc: dict[str, Any], path: Path) -> bool:
    """CPU per call-second and p99 pull latency against N; False without matplotlib."""
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return False
    echo = doc["echo"]["summary"]
    ns = sorted(echo, key=int)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for client, style in (("ours", "o-"), ("official", "s--"), ("floor", "^:")):
        xs = [int(n) for n in ns if client in echo[n]]
        if not xs:
            continue
        ax1.plot(xs, [echo[str(n)][client]["cpuMsPerCallSecond"] for n in xs], style, label=client)
        ax2.plot(xs, [echo[str(n)][client]["pullP99Ms"] for n in xs], style, label=client)
    ax1.set(xlabel="concurrent calls", ylabel="agent CPU, ms per call-second", title="CPU cost")
    ax2.set(
        xlabel="concurrent calls", ylabel="p99 pull fill time, ms (log)", title="Pull fill time p99"
    )
    ax2.set_yscale("log")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"telcoflow_trio vs official client, 24 kHz echo ({doc['meta']['date']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ── driving it ──────────────────────────────────────────────────────────────────────────


def _print_echo(p: dict[str, Any]) -> None:
    print(
        f"  N={p['n']:<4} {p['client']:9} cpu {p['cpuMsPerCallSecond']:7.2f} ms/call-s  "
        f"rss/call {p['rssPerCall'] / 1024:8.1f} KiB  pull p50/p99 "
        f"{fmt(p['pullP50Ms'], '.3g')}/{fmt(p['pullP99Ms'], '.3g')} ms  "
        f"underruns {p['underruns']}  integrity {fmt(p['integrity'])}  "
        f"cmd p99 {fmt(p['commandP99Ms'], '.3g')} ms  {p['server']} "
        f"{fmt(p['serverCpuMsPerCallSecond'], '.3g')} ms/call-s, lag p99 "
        f"{fmt(p['serverLagP99Ms'], '.3g')} ms"
        + (f"  SATURATED ({', '.join(p['saturation'])})" if p["saturated"] else ""),
        flush=True,
    )


def run_order(clients: list[str], turn: int) -> list[str]:
    """The order of one repetition's runs at one N: ours between the references, which
    swap sides from turn to turn, so ours runs back to back with each reference and each
    pair runs in both orders."""
    if "ours" not in clients:
        shift = turn % len(clients)
        return clients[shift:] + clients[:shift]
    refs = [c for c in clients if c != "ours"]
    if turn % 2:
        refs.reverse()
    if len(refs) == 1 and turn % 2:
        return ["ours", *refs]
    return [*refs[:1], "ours", *refs[1:]]


def run(opts: Options) -> dict[str, Any]:
    echo_points: list[dict[str, Any]] = []
    intr_points: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    seed = 1
    if not opts.skip_echo:
        for rep in range(opts.reps):
            print(f"echo, repetition {rep + 1}/{opts.reps}", flush=True)
            for i, n in enumerate(opts.points):
                # The official client cannot serve many calls (see the README): it runs
                # only where it can.
                clients = [c for c in opts.clients if c != "official" or n <= opts.official_max]
                seed += 1  # the clients of a pair hear the same caller
                for client in run_order(clients, rep + i):
                    try:
                        p = trio.run(echo_point, client, n, opts, seed)
                    except Exception as exc:  # one failed point must not lose the others
                        failures.append(
                            {
                                "bench": "echo",
                                "client": client,
                                "n": n,
                                "rep": rep,
                                "error": repr(exc)[:2000],
                            }
                        )
                        print(f"  N={n:<4} {client:9} FAILED: {exc!r}"[:300], flush=True)
                        continue
                    p["rep"] = rep
                    echo_points.append(p)
                    _print_echo(p)
    if not opts.skip_interrupt:
        clients = [c for c in opts.clients if c != "floor"]
        for rep in range(opts.interrupt_reps):
            shift = rep % len(clients)
            for client in clients[shift:] + clients[:shift]:
                seed += 1
                try:
                    p = trio.run(interrupt_point, client, opts, seed)
                except Exception as exc:
                    failures.append(
                        {
                            "bench": "interrupt",
                            "client": client,
                            "rep": rep,
                            "error": repr(exc)[:2000],
                        }
                    )
                    print(f"  interrupt {client:9} FAILED: {exc!r}"[:300], flush=True)
                    continue
                p["rep"] = rep
                intr_points.append(p)
                print(
                    f"  interrupt {client:9} stale {p['staleBytes']} B of {p['heardBytes']}  "
                    f"clear→interrupt p50/p99 {p['clearToInterruptP50Ms']:.2f}/"
                    f"{p['clearToInterruptP99Ms']:.2f} ms  ({p['interrupts']} interrupts)",
                    flush=True,
                )
    doc = {
        "meta": {
            "date": date.today().isoformat(),
            "machine": f"{os.cpu_count()} cores, {platform.machine()} {platform.system()}",
            "python": f"Python {platform.python_version()}",
            "reps": opts.reps,
            "interruptReps": opts.interrupt_reps,
            "seconds": opts.seconds,
            "points": opts.points,
            "sampleRate": SAMPLE_RATE,
            "pullInterval": PULL_INTERVAL,
            "lead": LEAD,
            "commandEvery": COMMAND_EVERY,
            "turnSeconds": opts.turn_seconds,
            "quick": opts.quick,
            "server": opts.server,
            "officialMax": opts.official_max,
            "phases": opts.phases,
        },
        "echo": {"points": echo_points},
        "interrupt": {"points": intr_points},
        "failures": failures,
    }
    summarise(doc)
    return doc


def summarise(doc: dict[str, Any]) -> None:
    """Fill in the medians, the paired ratios and the targets from the runs in ``doc``."""
    echo, intr = doc["echo"], doc["interrupt"]
    echo["summary"] = summarise_echo(echo["points"])
    echo["ratios"] = paired_ratios(echo["points"])
    intr["summary"] = summarise_interrupt(intr["points"])
    intr["ratios"] = interrupt_ratios(intr["points"])
    doc["targets"] = targets(echo["summary"], intr["summary"], echo["ratios"])


def parse(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke mode: tiny, one run each")
    p.add_argument("--points", default=None, help="comma-separated call counts")
    p.add_argument("--clients", default="ours,official,floor")
    p.add_argument(
        "--server",
        choices=("loadgen", "sandbox"),
        default="loadgen",
        help="echo calls against bench/loadgen.py (light, own process) or the in-process sandbox",
    )
    p.add_argument(
        "--official-max",
        type=int,
        default=50,
        help="largest N the official client is run at (its event bus drops call.in past ~100)",
    )
    p.add_argument(
        "--phases",
        type=int,
        default=4,
        help="loadgen: calls spread over this many phases of each 20 ms frame (see README)",
    )
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--seconds", type=float, default=None, help="measured seconds per point")
    p.add_argument("--interrupt-calls", type=int, default=None)
    p.add_argument("--interrupt-turns", type=int, default=None)
    p.add_argument("--interrupt-reps", type=int, default=None)
    p.add_argument("--skip-echo", action="store_true")
    p.add_argument("--skip-interrupt", action="store_true")
    p.add_argument("--out-dir", default=str(HERE / "results"))
    p.add_argument("--no-chart", action="store_true")
    a = p.parse_args(argv)
    q = a.quick
    points = a.points or ("2" if q else "1,25,50,100,150,200")
    clients = [c.strip() for c in a.clients.split(",") if c.strip()]
    unknown = set(clients) - set(AGENTS)
    if unknown or not clients:
        p.error(f"unknown clients: {sorted(unknown)}; choose from {sorted(AGENTS)}")
    opts = Options(
        points=[int(x) for x in points.split(",")],
        clients=clients,
        reps=a.reps if a.reps is not None else (1 if q else 3),
        seconds=a.seconds if a.seconds is not None else (1.0 if q else 6.0),
        settle=0.3 if q else 1.0,
        interrupt_calls=a.interrupt_calls if a.interrupt_calls is not None else (2 if q else 20),
        interrupt_turns=a.interrupt_turns if a.interrupt_turns is not None else (2 if q else 10),
        turn_seconds=0.6 if q else 3.0,
        interrupt_reps=a.interrupt_reps if a.interrupt_reps is not None else (1 if q else 3),
        skip_echo=a.skip_echo,
        skip_interrupt=a.skip_interrupt,
        out_dir=Path(a.out_dir),
        chart=not a.no_chart,
        quick=q,
        server=a.server,
        official_max=a.official_max,
        phases=a.phases,
    )
    if opts.reps < 1 or opts.interrupt_reps < 1 or opts.seconds <= 0:
        p.error("--reps, --interrupt-reps and --seconds must be positive")
    if not 1 <= opts.interrupt_turns <= 255:
        p.error("--interrupt-turns must be in 1..255")
    return opts


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--render"]:
        # Redraw the table and chart of an earlier run from its JSON.
        path = Path(argv[1])
        doc = json.loads(path.read_text())
        summarise(doc)
        path.write_text(json.dumps(clean(doc), indent=1) + "\n")
        path.with_suffix(".md").write_text(markdown(doc) + "\n")
        chart(doc, path.with_suffix(".png"))
        return 0
    opts = parse(argv)
    doc = run(opts)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    (opts.out_dir / "calls.json").write_text(json.dumps(clean(doc), indent=1) + "\n")
    table = markdown(doc)
    (opts.out_dir / "calls.md").write_text(table + "\n")
    print()
    print(table)
    if opts.chart and doc["echo"]["summary"]:
        drawn = chart(doc, opts.out_dir / "calls.png")
        print("chart:", opts.out_dir / "calls.png" if drawn else "skipped (no matplotlib)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
