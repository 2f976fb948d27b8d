"""Calls side by side: telcoflow_trio, the official asyncio client and a bare trio-websocket floor.

Each measured point starts a fresh server and a fresh agent process (``agent_trio.py``,
``agent_official.py`` or ``agent_floor.py``) and reads the agent's CPU and memory from
/proc. The server is ``loadgen.py`` (``--server loadgen``, the default: a light server in
its own process that can drive 200 calls on two cores and measures its own saturation) or
the in-process sandbox (``--server sandbox``: 8-11 ms of CPU per call-second, saturates
near 100 calls). Our agent runs on each WebSocket engine (``ours``: trio-websocket, the
default; ``ours-websockets``: websockets' sans-I/O protocol). Within a repetition every
client runs at each N, ``ours`` back to back with each reference client (see
:func:`run_order`); every ratio is taken per repetition, then the median of those ratios
is reported. RSS is also compared at an equal, small outgoing buffer (``ours-eqbuf``,
``official-eqbuf``), as the official client allocates its whole buffer per call.

At one N (``--same-time``, 50 by default) the pairs of the CPU targets (``ours-websockets``
with ``official``, ``ours`` with ``floor``) also run at the same time once per repetition,
each client against a generator of its own, their measuring windows opened together: the
machine's speed moves between interleaved runs, but hits both clients of a same-time pair
alike. The CPU targets are read from those pairs, the interleaved reading beside them.

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

The official client's ceiling (:func:`probe_ceiling`): how many concurrent calls one
official-client process serves before its event bus refuses, and how many over its life.

    python bench/bench_calls.py --reps 5        # the committed run (~30 min on 2 cores)
    python bench/bench_calls.py --official-ceiling   # the ceiling probes alone (~2 min)
    python bench/bench_calls.py --quick         # smoke mode, under a minute (tests/bench runs it)
    python bench/bench_calls.py --server sandbox --points 1,25,50
    python bench/bench_calls.py --points 1,25 --reps 3 --seconds 5 --skip-interrupt
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
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
SCRIPTS = {
    "trio": HERE / "agent_trio.py",
    "official": HERE / "agent_official.py",
    "floor": HERE / "agent_floor.py",
}
CLIENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ours": ("trio", ()),
    "ours-websockets": ("trio", ("--transport", "websockets")),
    "official": ("official", ()),
    "floor": ("floor", ()),
    "ours-eqbuf": ("trio", ()),
    "official-eqbuf": ("official", ()),
    "ours-runner": ("trio", ("--runner",)),
}
"""Client name -> (agent script, extra arguments). ``ours`` is our agent on the default
engine (trio-websocket), ``ours-websockets`` on websockets' sans-I/O protocol; the
``-eqbuf`` pair is ours and the official client with the same, smaller outgoing buffer
(``--equal-buffer``), for the RSS comparison at equal buffer sizes. ``ours-runner`` is
``ours`` served through the production runner (``telcoflow_trio.runner.serve``: signals,
metrics, an idle ``/healthz``/``/metrics`` server), for what the runner adds (not run by
default)."""
OURS = ("ours", "ours-websockets")
"""Our agent on each engine: each runs next to the references as ``ours`` always has."""
EQUAL_BUFFER = ("ours-eqbuf", "official-eqbuf")
RUNNER = "ours-runner"
"""``ours`` under the production runner: it runs next to ``ours`` (see :func:`_main_order`)."""
DEFAULT_CLIENTS = ("ours", "ours-websockets", "official", "floor", *EQUAL_BUFFER)
EQUAL_BUFFER_SIZE = 64 * 1024
"""The equal buffer: 1.4 s of 24 kHz audio, three times what the echo keeps queued (a
0.3 s playout lead plus one 0.1 s pull), small next to both clients' 1 MiB default."""
_OFFICIAL_WITH_BUFFER = """\
import functools, os, runpy, sys
import telcoflow
script, size = sys.argv[1], int(sys.argv[2])
sys.argv = [script, *sys.argv[3:]]
sys.path.insert(0, os.path.dirname(script))
telcoflow.CallAudioConfig = functools.partial(telcoflow.CallAudioConfig, buffer_size=size)
runpy.run_path(script, run_name="__main__")
"""
"""Runs agent_official.py with another default ``buffer_size``: it builds
``telcoflow.CallAudioConfig(sample_rate=...)`` through the module attribute, so the agent
itself stays the documented-API code it is."""
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
PAIRS = (
    ("ours", "official"),
    ("ours-websockets", "official"),
    ("ours", "floor"),
    ("ours-websockets", "floor"),
    ("ours-websockets", "ours"),
    ("official", "floor"),
    ("ours-eqbuf", "official-eqbuf"),
    ("ours-runner", "ours"),
)
"""Paired ratios (a / b, per repetition) the JSON keeps; the tables show them."""
SAME_TIME_PAIRS = (("ours-websockets", "official"), ("ours", "floor"))
"""The pairs of the CPU targets, also run at the same time (see :func:`same_time_point`)."""
HISTORY_LIMIT = "history limit reached"
"""What the official client's event bus (abxbus) says when it refuses an event."""
REFUSED_FRAME = re.compile(r"Failed to emit bus event for SM-WS frame type: (\S+)")
"""The official client's log line before such a refusal, naming the frame it dropped."""
LOG_RECORD = ("DEBUG:", "INFO:", "WARNING:", "ERROR:", "CRITICAL:")
"""How a record of ``logging.basicConfig`` (the agents' logging) starts."""


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
    equal_buffer: int = EQUAL_BUFFER_SIZE
    equal_buffer_points: list[int] = field(default_factory=list)
    ceiling: CeilingOptions | None = None
    """The official client's ceiling probe; None: not run."""
    stem: str = "calls"
    """Output files' name: calls.json/.md/.png, or ceiling.* for the probe alone (``--name``)."""
    together: bool = False
    """Run a repetition's clients at each N at the same time, each with its own generator,
    their windows opened at the same moment (``--together``)."""
    tls: bool = False
    """Echo points over TLS: the generator serves ``wss://`` (``--tls``)."""
    same_time: int = 0
    """N at which each of :data:`SAME_TIME_PAIRS` also runs at the same time, once per
    repetition (``--same-time``); 0: not run."""


@dataclass
class CeilingOptions:
    """The official client's ceiling probe. Concurrent calls: N from ``start`` by ``step``
    up to ``max_n`` until a point fails, then bisection between the last good N and the
    failed one; no more than ``max_tries`` points nor ``budget`` seconds. Calls over a
    process's life: ``batch`` calls at a time in one process, each batch held then hung
    up, until a batch is not served; at most ``batches`` batches nor ``budget`` seconds."""

    start: int = 20
    step: int = 20
    max_n: int = 200
    hold: float = 3.0
    budget: float = 300.0
    max_tries: int = 16
    batch: int = 10
    batches: int = 12
    batch_hold: float = 2.0


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


def agent_command(client: str, equal_buffer: int = EQUAL_BUFFER_SIZE) -> list[str]:
    """The command line that starts ``client``'s agent (its common options follow)."""
    script, extra = CLIENTS[client]
    path = str(SCRIPTS[script])
    if client == "official-eqbuf":
        return [sys.executable, "-c", _OFFICIAL_WITH_BUFFER, path, str(equal_buffer), *extra]
    if client == "ours-eqbuf":
        return [sys.executable, path, *extra, "--buffer-size", str(equal_buffer)]
    return [sys.executable, path, *extra]


class Agent:
    """An agent process and where it writes its own measurements."""

    def __init__(
        self,
        client: str,
        server: Sandbox | LoadGen,
        tmp: Path,
        extra: list[str],
        equal_buffer: int = EQUAL_BUFFER_SIZE,
        env: dict[str, str] | None = None,
    ) -> None:
        self.env = env
        self.out = tmp / f"{client}.json"
        self.log = tmp / f"{client}.log"
        self.cmd = [
            *agent_command(client, equal_buffer),
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
                self.cmd, stdout=subprocess.DEVNULL, stderr=log, env=self.env
            )
            try:
                yield self.proc.pid
            finally:
                if self.proc.returncode is None:
                    self.proc.kill()
                    with trio.CancelScope(shield=True):
                        await self.proc.wait()

    async def stop(self, grace: float = 15.0) -> dict[str, Any]:
        proc = self.proc
        assert proc is not None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(grace):
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
                opts.equal_buffer,
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


def _loadgen_args(opts: Options, seed: int) -> list[str]:
    return [
        *("--seed", str(seed), "--tick", str(TICK), "--pull-interval", str(PULL_INTERVAL)),
        *("--lead", str(LEAD), "--ready-margin", str(READY_MARGIN_BYTES / BYTES_PER_SECOND)),
        *("--phases", str(opts.phases)),
    ]


def tls_files(tmp: Path) -> tuple[list[str], dict[str, str]]:
    """A certificate authority made for one point, the generator's certificate for
    127.0.0.1 signed by it, in ``tmp``: the generator's arguments to serve ``wss://``
    with it, and the agent's environment, which trusts it (``SSL_CERT_FILE``: each client
    builds its default TLS context, which reads it, as it would the system's)."""
    import trustme  # a test dependency: only TLS runs need it

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, chain, key = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key))
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    env = {**os.environ, "SSL_CERT_FILE": str(ca_file)}
    return ["--certfile", str(chain), "--keyfile", str(key)], env


class Barrier:
    """Opens the measuring windows of points that run together at the same moment: each
    party arrives (or leaves, if it failed before arriving); the last one opens it."""

    def __init__(self, parties: list[str]) -> None:
        self._waiting = set(parties)
        self._open = trio.Event()

    def leave(self, party: str) -> None:
        self._waiting.discard(party)
        if not self._waiting:
            self._open.set()

    async def arrive(self, party: str) -> None:
        self.leave(party)
        await self._open.wait()


def _echo_or_error(client: str, n: int, opts: Options, seed: int) -> dict[str, Any] | Exception:
    """One point on its own, or why it failed."""
    try:
        return trio.run(echo_point, client, n, opts, seed)
    except Exception as exc:
        return exc


async def echo_points_together(
    clients: list[str], n: int, opts: Options, seed: int
) -> dict[str, dict[str, Any] | Exception]:
    """One point per client, all at once, each against a generator of its own; their
    measuring windows open together, so a change in the machine's speed hits them alike."""
    barrier = Barrier(clients)
    results: dict[str, dict[str, Any] | Exception] = {}

    async def one(client: str) -> None:
        try:
            results[client] = await echo_point_loadgen(client, n, opts, seed, barrier)
        except Exception as exc:  # one failed client must not lose the others
            results[client] = exc
        finally:
            barrier.leave(client)

    async with trio.open_nursery() as nursery:
        for client in clients:
            nursery.start_soon(one, client)
    return results


async def echo_point_loadgen(
    client: str, n: int, opts: Options, seed: int, barrier: Barrier | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, _log_file(Path(tmp)) as log:
        tls_args, env = tls_files(Path(tmp)) if opts.tls else ([], None)
        async with LoadGen.start(*_loadgen_args(opts, seed), *tls_args, stderr=log) as gen:
            agent = Agent(
                client,
                gen,
                Path(tmp),
                ["--command-every", str(COMMAND_EVERY), "--seed", str(seed)],
                opts.equal_buffer,
                env,
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
                if barrier is not None:
                    await barrier.arrive(client)
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


async def _wait_live(gen: LoadGen, n: int, agent: Agent, limit: float, stall: float) -> int:
    """Wait for ``n`` live calls; give up after ``limit`` seconds, or ``stall`` seconds
    without one more call going live. Returns how many are live."""
    start = last_change = time.monotonic()
    live = -1
    while True:
        now_live = int((await gen.request("status"))["live"])
        now = time.monotonic()
        if now_live != live:
            live, last_change = now_live, now
        if live >= n or now - start > limit or now - last_change > stall:
            return live
        if agent.proc is not None and agent.proc.poll() is not None:
            return live  # the agent died: nothing more will go live
        await trio.sleep(0.1)


def refused_frames(log: str) -> dict[str, int]:
    """Per SM-WS frame type, how many the official client's log says its bus refused."""
    counts: dict[str, int] = {}
    lines = log.splitlines()
    for i, line in enumerate(lines):
        found = REFUSED_FRAME.search(line)
        if found is None:
            continue
        # The refusal's traceback follows the logger's line, up to the next log record.
        for after in lines[i + 1 :]:
            if after.startswith(LOG_RECORD):
                break
            if HISTORY_LIMIT in after:
                counts[found.group(1)] = counts.get(found.group(1), 0) + 1
                break
    return counts


async def ceiling_point(n: int, opts: Options, seed: int) -> dict[str, Any]:
    """One try of the official client's ceiling: ``n`` calls placed at once (as the echo
    benchmark places them, whispers included) on a fresh generator and a fresh
    official-client process. Served when every call goes live, every caller hears its echo
    grow over the hold, the process is still up, and its log shows no event-bus refusal
    up to the hang-up. Refusals at the hang-up (``session.closed`` frames the bus turns
    away) are counted apart."""
    ceiling = opts.ceiling or CeilingOptions()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, _log_file(Path(tmp)) as log:
        async with LoadGen.start(*_loadgen_args(opts, seed), stderr=log) as gen:
            extra = ["--command-every", str(COMMAND_EVERY), "--seed", str(seed)]
            agent = Agent("official", gen, Path(tmp), extra, opts.equal_buffer)
            async with agent.running() as pid:
                await _poll(gen, lambda st: st["controls"] >= 1, 30, agent, "the agent")
                started = time.monotonic()
                await gen.request("place", n=n)
                live = await _wait_live(gen, n, agent, 10.0 + 0.1 * n, stall=5.0)
                setup_seconds = time.monotonic() - started
                before = {
                    c["callId"]: c["heardBytes"] for c in (await gen.request("calls"))["calls"]
                }
                cpu0 = cpu_seconds(pid)
                await trio.sleep(ceiling.hold)
                alive = agent.proc is not None and agent.proc.poll() is None
                cpu1 = cpu_seconds(pid) if alive else math.nan
                calls = (await gen.request("calls"))["calls"]
                during = refused_frames(agent.log.read_text(errors="replace"))
                await gen.request("hangup")
                await trio.sleep(1.0)  # the hang-up's frames reach the client
                after = refused_frames(agent.log.read_text(errors="replace"))
                try:
                    agent_doc: dict[str, Any] = await agent.stop(grace=5.0)
                except RuntimeError:
                    agent_doc = {}
            text = agent.log.read_text(errors="replace")
    echoing = sum(
        1 for c in calls if c["live"] and c["heardBytes"] > before.get(c["callId"], c["heardBytes"])
    )
    at_hangup = {k: v - during.get(k, 0) for k, v in after.items() if v > during.get(k, 0)}
    first = next((line for line in text.splitlines() if HISTORY_LIMIT in line), "")
    refusals = sum(during.values())
    served = alive and live >= n and echoing == n and refusals == 0
    return {
        "n": n,
        "served": served,
        "live": live,
        "echoing": echoing,
        "refusals": refusals,
        "refusedFrames": during,
        "refusalsAtHangup": sum(at_hangup.values()),
        "refusedFramesAtHangup": at_hangup,
        "refusal": first.strip()[:300],
        "alive": alive,
        "handled": agent_doc.get("calls"),
        "unanswered": agent_doc.get("errors"),
        "setupSeconds": setup_seconds,
        "cpuMsPerCallSecond": 1000 * (cpu1 - cpu0) / (n * ceiling.hold),
    }


def search_ceiling(
    ceiling: CeilingOptions,
    attempt: Callable[[int], bool],
    clock: Callable[[], float] = time.monotonic,
) -> tuple[int, int | None, str, int]:
    """N up from ``start`` by ``step`` until ``attempt(N)`` says not served, then bisection
    between the last served N and that one. Bounded by ``max_n``, ``max_tries`` and
    ``budget`` seconds. Returns (largest N served, smallest N not served or None, what
    stopped the search, tries made)."""
    deadline = clock() + ceiling.budget
    tries = 0
    served, refused = 0, None
    stopped = ""

    def room() -> bool:
        nonlocal stopped
        if tries >= ceiling.max_tries:
            stopped = "tries"
        elif clock() >= deadline:
            stopped = "time budget"
        return not stopped

    def serves(n: int) -> bool:
        nonlocal tries
        tries += 1
        return attempt(n)

    n = ceiling.start
    while refused is None and n <= ceiling.max_n and room():
        if serves(n):
            served, n = n, n + ceiling.step
        else:
            refused = n
    if refused is None and not stopped:
        stopped = "max N"
    while refused is not None and refused - served > 1 and room():
        mid = (served + refused) // 2
        if serves(mid):
            served = mid
        else:
            refused = mid
    if refused is not None and refused - served <= 1:
        stopped = "bracketed"
    return served, refused, stopped, tries


def probe_ceiling(opts: Options, seed: int) -> dict[str, Any]:
    """The official client's ceiling, measured (see :func:`search_ceiling`): every try is
    a :func:`ceiling_point` of its own."""
    ceiling = opts.ceiling or CeilingOptions()
    tries: list[dict[str, Any]] = []

    def attempt(n: int) -> bool:
        try:
            p = trio.run(ceiling_point, n, opts, seed + len(tries))
        except Exception as exc:  # a try that broke counts as not served
            p = {"n": n, "served": False, "error": repr(exc)[:2000]}
        tries.append(p)
        print(
            f"  ceiling N={n:<4} {'served' if p['served'] else 'NOT served'}: "
            f"{p.get('live', '-')} live, {p.get('echoing', '-')} echoing, "
            f"{p.get('refusals', '-')} refusals {p.get('refusedFrames', '')}, "
            f"{p.get('refusalsAtHangup', '-')} at hang-up {p.get('refusedFramesAtHangup', '')}"
            + (f"  {p['error'][:200]}" if "error" in p else ""),
            flush=True,
        )
        return bool(p["served"])

    served, refused, stopped, _ = search_ceiling(ceiling, attempt)
    print("official client's calls over one process's life", flush=True)
    try:
        lifetime = trio.run(lifetime_probe, opts, seed + 500)
    except Exception as exc:
        lifetime = {"error": repr(exc)[:2000]}
        print(f"  lifetime probe FAILED: {exc!r}"[:300], flush=True)
    at_hangup = [int(t["n"]) for t in tries if t.get("refusalsAtHangup")]
    return {
        "placement": "all N calls placed at once, a fresh process per try",
        "holdSeconds": ceiling.hold,
        "served": served,
        "refused": refused,
        "stoppedBy": stopped,
        "hangupRefusalsFrom": min(at_hangup, default=None),
        "tries": tries,
        "lifetime": lifetime,
    }


async def lifetime_probe(opts: Options, seed: int) -> dict[str, Any]:
    """Calls one official-client process serves over its life: batches of ``batch``
    calls placed at once in the same process, each held ``batch_hold`` seconds (echo
    checked) and hung up, until a batch is not wholly served (or the bounds)."""
    ceiling = opts.ceiling or CeilingOptions()
    deadline = time.monotonic() + ceiling.budget
    rounds: list[dict[str, Any]] = []
    served = 0
    stopped = "batches"
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, _log_file(Path(tmp)) as log:
        async with LoadGen.start(*_loadgen_args(opts, seed), stderr=log) as gen:
            extra = ["--command-every", str(COMMAND_EVERY), "--seed", str(seed)]
            agent = Agent("official", gen, Path(tmp), extra, opts.equal_buffer)
            async with agent.running():
                await _poll(gen, lambda st: st["controls"] >= 1, 30, agent, "the agent")
                for k in range(ceiling.batches):
                    if time.monotonic() >= deadline:
                        stopped = "time budget"
                        break
                    await gen.request("place", n=ceiling.batch)
                    live = await _wait_live(gen, ceiling.batch, agent, 10.0, stall=3.0)
                    first = {
                        c["callId"]: c["heardBytes"]
                        for c in (await gen.request("calls"))["calls"]
                        if c["live"]
                    }
                    await trio.sleep(ceiling.batch_hold)
                    calls = (await gen.request("calls"))["calls"]
                    echoing = sum(
                        1
                        for c in calls
                        if c["live"] and c["heardBytes"] > first.get(c["callId"], c["heardBytes"])
                    )
                    await gen.request("hangup")
                    await trio.sleep(1.0)  # the hang-up's frames reach the client
                    refused = refused_frames(agent.log.read_text(errors="replace"))
                    ok = live >= ceiling.batch and echoing == ceiling.batch
                    rounds.append(
                        {
                            "batch": k + 1,
                            "placedSoFar": (k + 1) * ceiling.batch,
                            "live": live,
                            "echoing": echoing,
                            "served": ok,
                            "refusedFramesSoFar": refused,
                        }
                    )
                    print(
                        f"  lifetime batch {k + 1}: {live} live, {echoing} echoing; "
                        f"refused so far {refused}",
                        flush=True,
                    )
                    if not ok or agent.proc is None or agent.proc.poll() is not None:
                        stopped = "a batch not served"
                        break
                    served += ceiling.batch
                with contextlib.suppress(RuntimeError):
                    await agent.stop(grace=5.0)
    return {
        "batch": ceiling.batch,
        "batchHoldSeconds": ceiling.batch_hold,
        "served": served,
        "stoppedBy": stopped,
        "rounds": rounds,
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
            agent = Agent(client, sandbox, Path(tmp), extra, opts.equal_buffer)
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
    (the two ran back to back, or at the same time), then the median of those ratios over
    the repetitions. Points that carry a ``group`` pair only within it."""
    runs: dict[tuple[str, int, str], dict[str, dict[str, Any]]] = {}
    for p in points:
        key = (str(p["n"]), int(p.get("rep", 0)), str(p.get("group", "")))
        runs.setdefault(key, {})[p["client"]] = p
    values: dict[str, dict[str, dict[str, list[float]]]] = {}
    saturated: dict[tuple[str, str], int] = {}
    for (n, _, _), by_client in sorted(runs.items()):
        for a, b in PAIRS:
            if a not in by_client or b not in by_client:
                continue
            pa, pb = by_client[a], by_client[b]
            entry = values.setdefault(n, {}).setdefault(f"{a}/{b}", {m: [] for m in RATIO_METRICS})
            for metric in RATIO_METRICS:
                entry[metric].append(ratio(_num(pa.get(metric)), _num(pb.get(metric))))
            where = (n, f"{a}/{b}")
            saturated[where] = saturated.get(where, 0) + bool(pa["saturated"] or pb["saturated"])
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
            entry["saturatedRuns"] = sum(bool(r["saturated"]) for r in runs)
            entry["saturation"] = sorted({why for r in runs for why in r.get("saturation", [])})
            entry["server"] = runs[0].get("server", "sandbox")
    return out


def interrupt_ratios(points: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per pair ``"<ours>/official"`` and metric: the median over repetitions of our
    engine's value over the official client's in the same repetition."""
    runs: dict[int, dict[str, dict[str, Any]]] = {}
    for p in points:
        runs.setdefault(int(p.get("rep", 0)), {})[p["client"]] = p
    out: dict[str, dict[str, float]] = {}
    for ours in OURS:
        pairs = [r for r in runs.values() if ours in r and "official" in r]
        if pairs:
            out[f"{ours}/official"] = {
                m: median([ratio(_num(r[ours][m]), _num(r["official"][m])) for r in pairs])
                for m in INTERRUPT_METRICS
            }
    return out


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
    echo: dict[str, Any],
    interrupt: dict[str, Any],
    ratios: dict[str, Any],
    same_time: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Issue 15's targets at 50 calls (or the largest N below it both clients served),
    each judged on the median of paired per-repetition ratios. A CPU target is judged on
    the pair's same-time runs where the run has them at that N (``same_time``: their
    :func:`paired_ratios`), with the interleaved reading kept beside it."""
    rows: list[dict[str, Any]] = []
    cpu = "cpuMsPerCallSecond"

    def add(name: str, pair: tuple[str, str], metric: str, limit: float) -> None:
        n = target_n(echo, pair)
        key = f"{pair[0]}/{pair[1]}"
        paired = ratios.get(n or "", {}).get(key)
        if n is None or paired is None:
            return
        row: dict[str, Any] = {"reading": "interleaved"}
        same = (same_time or {}).get(n, {}).get(key)
        if metric == cpu and same is not None:
            row = {"reading": "same time", "interleaved": float(paired[metric])}
            paired = same
        value = float(paired[metric])
        rows.append(
            {
                "target": name,
                "n": n,
                "value": value,
                "limit": limit,
                "met": bool(value <= limit),
                "saturated": bool(paired["saturatedReps"]),
                **row,
            }
        )

    add(
        "CPU per call-second, ours-websockets / official", ("ours-websockets", "official"), cpu, 1.0
    )
    add(
        "CPU per call-second, ours-websockets / official (moonshot)",
        ("ours-websockets", "official"),
        cpu,
        0.8,
    )
    add("CPU per call-second, ours / floor", ("ours", "floor"), cpu, 1.15)
    for ours in OURS:
        add(f"RSS per call, {ours} / official (defaults)", (ours, "official"), "rssPerCall", 0.25)
    add(
        "RSS per call, ours / official (equal buffers)",
        ("ours-eqbuf", "official-eqbuf"),
        "rssPerCall",
        1.0,
    )
    for ours in OURS:
        add(f"pull fill p50, {ours} / official", (ours, "official"), "pullP50Ms", 1.0)
    for ours in OURS:
        entry = echo.get("200", {}).get(ours)
        if entry is not None:
            rows.append(
                {
                    "target": f"200 calls unsaturated ({ours}, saturated runs)",
                    "n": "200",
                    "value": float(entry.get("saturatedRuns", int(entry["saturated"]))),
                    "limit": 0.0,
                    "met": not entry["saturated"],
                    "saturated": bool(entry["saturated"]),
                }
            )
    for ours in OURS:
        if ours in interrupt:
            stale = float(interrupt[ours]["staleBytesMax"])
            rows.append(
                {
                    "target": f"stale bytes after interrupt ({ours}, worst run)",
                    "n": "-",
                    "value": stale,
                    "limit": 0.0,
                    "met": stale == 0,
                    "saturated": False,
                }
            )
    return rows


TABLE_CLIENTS = ("ours", "ours-websockets", "official", "floor", "ours-runner")
TABLE_PAIRS = (
    "ours/official",
    "ours-websockets/official",
    "ours/floor",
    "ours-websockets/floor",
    "ours-websockets/ours",
    "official/floor",
    "ours-runner/ours",
)


def markdown(doc: dict[str, Any]) -> str:
    meta, echo, intr = doc["meta"], doc["echo"]["summary"], doc["interrupt"]["summary"]
    ratios = doc["echo"].get("ratios", {})
    server = meta.get("server", "sandbox")
    if meta.get("tls"):
        server += " over TLS (wss://, a certificate made for each point, trusted by the agent)"
    lines = [
        f"Run {meta['date']} on {meta['machine']}; {meta['python']}; server: {server}; "
        f"{meta['reps']} repetition(s), {meta['seconds']:g} s measured per point. Values are "
        "medians over the repetitions; each ratio is the median of per-repetition ratios "
        + (
            "(the clients of a repetition ran at the same time at each N, each against a "
            "generator of its own, their measuring windows opened together). "
            if meta.get("together")
            else "(the two clients ran in the same repetition at the same N, within a few "
            "runs of each other). "
        )
        + "`ours` is telcoflow_trio on its default engine (trio-websocket), "
        "`ours-websockets` on websockets' sans-I/O protocol.",
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

    shown = [c for c in TABLE_CLIENTS if any(c in echo[n] for n in echo)]
    shown_pairs = [p for p in TABLE_PAIRS if any(p in ratios.get(n, {}) for n in echo)]
    main_ns = [n for n in sorted(echo, key=int) if any(c in echo[n] for c in shown)]

    def section(title: str, metric: str, spec: str, scale: float = 1.0) -> None:
        lines.extend([f"**{title}**", ""])
        row(["N", *shown, *shown_pairs])
        row(["---:"] * (1 + len(shown) + len(shown_pairs)))
        for n in main_ns:
            entries = [echo[n].get(c, {}) for c in shown]
            sat = " (saturated)" if any(e.get("saturated") for e in entries) else ""
            row(
                [
                    n + sat,
                    *(cell(e, metric, spec, scale) for e in entries),
                    *(paired(n, pair, metric) for pair in shown_pairs),
                ]
            )
        lines.append("")

    if main_ns:
        section("Agent CPU, ms per call-second", "cpuMsPerCallSecond", ".3g")
        section("RSS per call above idle, KiB", "rssPerCall", ".4g", 1 / 1024)
        section("Peak RSS, MiB", "peakRss", ".4g", 1 / 2**20)
        section("Pull fill time p50, ms", "pullP50Ms", ".3g")
        section("Pull fill time p99, ms", "pullP99Ms", ".3g")
        section("Whisper round trip p50, ms", "commandP50Ms", ".3g")
        section("Whisper round trip p99, ms", "commandP99Ms", ".3g")
    eq_ns = [n for n in sorted(echo, key=int) if all(c in echo[n] for c in EQUAL_BUFFER)]
    if eq_ns:
        size = int(meta.get("equalBuffer") or EQUAL_BUFFER_SIZE)
        lines.extend(
            [
                f"**RSS at equal buffer sizes** (both clients' outgoing buffer "
                f"{size // 1024} KiB per call, `buffer_size={size}`). At their defaults both "
                "buffers are 1 MiB (`DEFAULT_BUFFER_SIZE`, the official client's default too): "
                "the official client allocates its ring buffer whole when a call starts, "
                "ours holds only the chunks queued, so the tables above compare RSS at equal "
                "configured sizes but unequal allocations; here the official client's "
                "allocation shrinks to the same small size.",
                "",
            ]
        )
        row(["N", "ours, KiB/call", "official, KiB/call", "ours/official"])
        row(["---:"] * 4)
        pair = "ours-eqbuf/official-eqbuf"
        for n in eq_ns:
            o, t = echo[n]["ours-eqbuf"], echo[n]["official-eqbuf"]
            sat = " (saturated)" if o.get("saturated") or t.get("saturated") else ""
            row(
                [
                    n + sat,
                    cell(o, "rssPerCall", ".4g", 1 / 1024),
                    cell(t, "rssPerCall", ".4g", 1 / 1024),
                    paired(n, pair, "rssPerCall"),
                ]
            )
        lines.append("")
    if echo:
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
        ours_shown = [c for c in OURS if c in intr]
        intr_ratios = doc["interrupt"].get("ratios", {})
        ratio_cols = [f"{c}/official" for c in ours_shown if f"{c}/official" in intr_ratios]
        columns = [*ours_shown, *(["official"] if "official" in intr else [])]
        row(["metric", *columns, *ratio_cols])
        row(["---", *(["---:"] * (len(columns) + len(ratio_cols)))])
        for metric, label in (
            ("staleBytesMax", "stale bytes after agent.interrupt (worst run)"),
            ("clearToInterruptP50Ms", "clear() → agent.interrupt at sandbox, p50 ms"),
            ("clearToInterruptP99Ms", "clear() → agent.interrupt at sandbox, p99 ms"),
            ("clearCallP50Ms", "clear() call returns, p50 ms"),
            ("clearCallP99Ms", "clear() call returns, p99 ms"),
        ):
            row(
                [
                    label,
                    *(fmt(_num(intr[c][metric]), ".3g") for c in columns),
                    *(fmt(_num(intr_ratios[r].get(metric)), ".2f") for r in ratio_cols),
                ]
            )
        lines.append("")
    ceiling = doc.get("ceiling")
    if ceiling:
        lines.extend(ceiling_markdown(ceiling))
    same = doc.get("sameTime", {})
    if same.get("ratios"):
        lines.extend(same_time_markdown(same, doc["echo"]["points"], ratios))
    if doc["targets"]:
        lines.extend(["**Targets**", ""])
        row(["target", "at N", "value", "limit", "met", "read from"])
        row(["---", "---:", "---:", "---:", "---", "---"])
        for t in doc["targets"]:
            reading = t.get("reading", "interleaved")
            if "interleaved" in t:
                reading += f" (interleaved: {fmt(t['interleaved'], '.3g')})"
            row(
                [
                    t["target"] + (" (saturated)" if t.get("saturated") else ""),
                    str(t["n"]),
                    fmt(t["value"], ".3g"),
                    fmt(t["limit"], "g"),
                    fmt(t["met"]),
                    reading,
                ]
            )
        lines.append("")
    if doc["failures"]:
        lines.append(f"Failed points (left out above): {len(doc['failures'])}; see the JSON.")
        lines.append("")
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    return f"{min(finite):.2f}-{max(finite):.2f}" if finite else "-"


def same_time_markdown(
    same: dict[str, Any], points: list[dict[str, Any]], ratios: dict[str, Any]
) -> list[str]:
    """The same-time pairs beside the same pairs' interleaved runs at that N, and how far
    the generator's own CPU (the same work in every run) moved across the interleaved runs."""
    n = str(same["n"])
    cpu = "cpuMsPerCallSecond"
    own = [
        float(p["serverCpuMsPerCallSecond"])
        for p in points
        if str(p["n"]) == n and p.get("server") == "loadgen"
    ]
    drift = (
        f" Across this run's interleaved points at N={n}, the load generator's own CPU per "
        f"call-second, the same work for every client, ranged {min(own):.3g}-{max(own):.3g} ms "
        f"({max(own) / min(own):.2f}x); "
        if own and min(own) > 0
        else " "
    )
    lines = [
        f"**Same-time pairs** at N={n}: each pair's two clients also ran at the same time, "
        "each against a generator of its own, their measuring windows opened together, once "
        "per repetition. The interleaved runs of a pair are seconds apart, and the machine's "
        f"speed can change between them.{drift}the CPU targets are read from the same-time "
        "pairs, where a change in speed hits both clients alike. Per-repetition ratios: "
        "median (min-max).",
        "",
        "| pair | reps | CPU, same time | CPU, interleaved | pull fill p50, same time "
        "| pull fill p50, interleaved |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for pair, entry in sorted(same["ratios"].get(n, {}).items()):
        inter = ratios.get(n, {}).get(pair)

        def reading(found: dict[str, Any] | None, metric: str) -> str:
            if found is None:
                return "-"
            return f"{fmt(float(found[metric]), '.2f')} ({_spread(found['values'][metric])})"

        sat = " (saturated)" if entry["saturatedReps"] else ""
        lines.append(
            f"| {pair}{sat} | {entry['reps']} | {reading(entry, cpu)} | {reading(inter, cpu)} "
            f"| {reading(entry, 'pullP50Ms')} | {reading(inter, 'pullP50Ms')} |"
        )
    lines.append("")
    return lines


def _frames(counts: dict[str, int] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((counts or {}).items())) or "-"


def ceiling_markdown(ceiling: dict[str, Any]) -> list[str]:
    """The official client's ceiling probe as a paragraph and a table."""
    refused = ceiling.get("refused")
    verdict = (
        f"served up to N = {ceiling['served']}, not served at N = {refused}"
        if refused is not None
        else f"served every N tried, up to {ceiling['served']} (no refusal found)"
    )
    hangup = ceiling.get("hangupRefusalsFrom")
    lines = [
        "**The official client's ceiling** (one process; "
        f"{ceiling['placement']}; whispers as in the echo benchmark; a try is served when "
        f"every call goes live, every caller's echo grows over a {ceiling['holdSeconds']:g} s "
        f"hold, and the client logs no `{HISTORY_LIMIT}` before the hang-up): {verdict} "
        f"(stopped by: {ceiling['stoppedBy']})."
        + (
            f" From N = {hangup} on, its bus also refused frames at the hang-up (the "
            "`session.closed` of calls that ended)."
            if hangup is not None
            else ""
        ),
        "",
        "| N | served | live | echoing | refused before hang-up | refused at hang-up "
        "| setup s | CPU ms per call-second |",
        "| ---: | --- | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for t in ceiling["tries"]:
        lines.append(
            "| "
            + " | ".join(
                [
                    str(t["n"]),
                    fmt(bool(t["served"])),
                    fmt(t.get("live")),
                    fmt(t.get("echoing")),
                    _frames(t.get("refusedFrames")),
                    _frames(t.get("refusedFramesAtHangup")),
                    fmt(t.get("setupSeconds"), ".3g"),
                    fmt(t.get("cpuMsPerCallSecond"), ".3g"),
                ]
            )
            + " |"
        )
    said = next((t["refusal"] for t in ceiling["tries"] if t.get("refusal")), "")
    if said:
        lines.extend(["", f"What it logged: `{said}`"])
    lines.append("")
    life = ceiling.get("lifetime") or {}
    if "rounds" in life:
        lines.extend(
            [
                f"**Calls over one official-client process's life**: batches of "
                f"{life['batch']} calls placed at once in the same process, each held "
                f"{life['batchHoldSeconds']:g} s and hung up before the next: "
                f"{life['served']} calls served in all (stopped by: {life['stoppedBy']}).",
                "",
                "| batch | calls placed so far | live | echoing | served | refused so far |",
                "| ---: | ---: | ---: | ---: | --- | --- |",
                *(
                    f"| {r['batch']} | {r['placedSoFar']} | {r['live']} | {r['echoing']} | "
                    f"{fmt(bool(r['served']))} | {_frames(r.get('refusedFramesSoFar'))} |"
                    for r in life["rounds"]
                ),
                "",
            ]
        )
    elif life:
        lines.extend([f"The lifetime probe failed: {life.get('error', '')[:300]}", ""])
    return lines


CHART_STYLES = (
    ("ours", "o-"),
    ("ours-websockets", "D-"),
    ("official", "s--"),
    ("floor", "^:"),
)


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
    for client, style in CHART_STYLES:
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
        f"  N={p['n']:<4} {p['client']:15} cpu {p['cpuMsPerCallSecond']:7.2f} ms/call-s  "
        f"rss/call {p['rssPerCall'] / 1024:8.1f} KiB  pull p50/p99 "
        f"{fmt(p['pullP50Ms'], '.3g')}/{fmt(p['pullP99Ms'], '.3g')} ms  "
        f"underruns {p['underruns']}  integrity {fmt(p['integrity'])}  "
        f"cmd p99 {fmt(p['commandP99Ms'], '.3g')} ms  {p['server']} "
        f"{fmt(p['serverCpuMsPerCallSecond'], '.3g')} ms/call-s, lag p99 "
        f"{fmt(p['serverLagP99Ms'], '.3g')} ms"
        + (f"  SATURATED ({', '.join(p['saturation'])})" if p["saturated"] else ""),
        flush=True,
    )


def clients_at(n: int, opts: Options) -> list[str]:
    """The clients measured at ``n``: the equal-buffer pair only at its points, the
    official client's agents only up to ``--official-max``."""
    chosen = []
    for client in opts.clients:
        if client in EQUAL_BUFFER:
            if opts.equal_buffer <= 0 or n not in opts.equal_buffer_points:
                continue
        elif n not in opts.points:
            continue
        if CLIENTS[client][0] == "official" and n > opts.official_max:
            continue
        chosen.append(client)
    return chosen


def _main_order(clients: list[str], turn: int) -> list[str]:
    if RUNNER in clients:
        rest = _main_order([c for c in clients if c != RUNNER], turn)
        if "ours" not in rest:
            return [*rest, RUNNER]
        # Next to ``ours``, on one side then the other. With references, the side changes
        # every other turn (they swap sides every turn), so ``ours`` keeps one reference as
        # its neighbour and meets each one in both orders over four turns.
        i = rest.index("ours")
        with_refs = any(c not in OURS for c in rest)
        after = (turn // 2 if with_refs else turn) % 2 == 1
        return [*rest[: i + after], RUNNER, *rest[i + after :]]
    ours = [c for c in clients if c in OURS]
    refs = [c for c in clients if c not in OURS]
    if not ours or not refs:
        shift = turn % len(clients) if clients else 0
        return clients[shift:] + clients[:shift]
    if turn % 2:
        refs.reverse()
    first, others = ours[0], ours[1:]
    if len(refs) == 1:
        order = [first, refs[0]] if turn % 2 else [refs[0], first]
        # A second engine goes on the reference's other side, so it too is next to it.
        for k, engine in enumerate(others):
            order = [engine, *order] if (turn + k) % 2 == 0 else [*order, engine]
        return order
    order = [refs[0], first, *refs[1:]]
    for k, engine in enumerate(others):
        order = [*order, engine] if (turn // 2 + k) % 2 == 0 else [engine, *order]
    return order


def run_order(clients: list[str], turn: int) -> list[str]:
    """The order of one repetition's runs at one N. The default engine (``ours``) runs
    between the references, which swap sides from turn to turn, so it runs back to back
    with each reference and each pair runs in both orders; the other engine runs at one
    end, next to one reference, then the other, in both orders over four turns. The
    equal-buffer pair runs back to back, before or after the rest; ``ours-runner`` runs next
    to ``ours``, before it in some turns and after it in others."""
    main = [c for c in clients if c not in EQUAL_BUFFER]
    pair = [c for c in clients if c in EQUAL_BUFFER]
    if turn % 2:
        pair.reverse()
    order = _main_order(main, turn)
    return [*order, *pair] if turn % 2 == 0 else [*pair, *order]


def same_time_pairs(opts: Options) -> list[tuple[str, str]]:
    """The pairs of :data:`SAME_TIME_PAIRS` whose clients this run measures at
    ``opts.same_time`` (the official client only up to ``--official-max``)."""
    measured = set(opts.clients)
    if opts.same_time > opts.official_max:
        measured -= {c for c in CLIENTS if CLIENTS[c][0] == "official"}
    return [pair for pair in SAME_TIME_PAIRS if set(pair) <= measured]


def _keep(
    outcomes: Iterable[tuple[str, dict[str, Any] | Exception]],
    n: int,
    rep: int,
    points: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    group: str | None = None,
) -> None:
    """Each client's point into ``points`` (tagged with its repetition and, for points
    that ran at the same time, their ``group``), or why it failed into ``failures``."""
    for client, outcome in outcomes:
        if isinstance(outcome, Exception):  # one failed point must not lose the others
            failure = {"bench": "echo", "client": client, "n": n, "rep": rep}
            failures.append({**failure, "error": repr(outcome)[:2000]})
            print(f"  N={n:<4} {client:15} FAILED: {outcome!r}"[:300], flush=True)
            continue
        outcome["rep"] = rep
        if group is not None:
            outcome["group"] = group
        points.append(outcome)
        _print_echo(outcome)


def run(opts: Options) -> dict[str, Any]:
    echo_points: list[dict[str, Any]] = []
    same_points: list[dict[str, Any]] = []
    intr_points: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    seed = 1
    if not opts.skip_echo:
        extra = opts.equal_buffer_points if opts.equal_buffer > 0 else []
        points = sorted(set(opts.points) | set(extra))
        for rep in range(opts.reps):
            print(f"echo, repetition {rep + 1}/{opts.reps}", flush=True)
            for i, n in enumerate(points):
                seed += 1  # the clients of a pair hear the same caller
                clients = clients_at(n, opts)
                outcomes = (
                    trio.run(echo_points_together, clients, n, opts, seed).items()
                    if opts.together
                    else (
                        (c, _echo_or_error(c, n, opts, seed)) for c in run_order(clients, rep + i)
                    )
                )
                _keep(outcomes, n, rep, echo_points, failures)
            if opts.same_time:
                pairs = same_time_pairs(opts)
                for pair in pairs if rep % 2 == 0 else pairs[::-1]:
                    seed += 1
                    group = "+".join(pair)
                    print(f"  same time at N={opts.same_time}: {group}", flush=True)
                    together = trio.run(
                        echo_points_together, list(pair), opts.same_time, opts, seed
                    )
                    _keep(together.items(), opts.same_time, rep, same_points, failures, group)
    if not opts.skip_interrupt:
        clients = [c for c in opts.clients if c in (*OURS, "official")]
        for rep in range(opts.interrupt_reps):
            shift = rep % len(clients) if clients else 0
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
                    print(f"  interrupt {client:15} FAILED: {exc!r}"[:300], flush=True)
                    continue
                p["rep"] = rep
                intr_points.append(p)
                print(
                    f"  interrupt {client:15} stale {p['staleBytes']} B of {p['heardBytes']}  "
                    f"clear→interrupt p50/p99 {p['clearToInterruptP50Ms']:.2f}/"
                    f"{p['clearToInterruptP99Ms']:.2f} ms  ({p['interrupts']} interrupts)",
                    flush=True,
                )
    ceiling = None
    if opts.ceiling is not None:
        print("official client's ceiling", flush=True)
        ceiling = probe_ceiling(opts, seed + 1000)
    doc = {
        "meta": {
            "date": date.today().isoformat(),
            "machine": f"{os.cpu_count()} cores, {platform.machine()} {platform.system()}",
            "python": f"Python {platform.python_version()}",
            "reps": opts.reps,
            "interruptReps": opts.interrupt_reps,
            "seconds": opts.seconds,
            "points": opts.points,
            "clients": opts.clients,
            "transports": {"ours": "trio-websocket", "ours-websockets": "websockets"},
            "equalBuffer": opts.equal_buffer,
            "equalBufferPoints": opts.equal_buffer_points,
            "sampleRate": SAMPLE_RATE,
            "pullInterval": PULL_INTERVAL,
            "lead": LEAD,
            "commandEvery": COMMAND_EVERY,
            "turnSeconds": opts.turn_seconds,
            "quick": opts.quick,
            "server": opts.server,
            "officialMax": opts.official_max,
            "phases": opts.phases,
            "together": opts.together,
            "sameTime": opts.same_time,
            "tls": opts.tls,
        },
        "echo": {"points": echo_points},
        "sameTime": {"n": opts.same_time, "points": same_points},
        "interrupt": {"points": intr_points},
        "failures": failures,
    }
    if ceiling is not None:
        doc["ceiling"] = ceiling
    summarise(doc)
    return doc


def summarise(doc: dict[str, Any]) -> None:
    """Fill in the medians, the paired ratios and the targets from the runs in ``doc``."""
    echo, intr = doc["echo"], doc["interrupt"]
    echo["summary"] = summarise_echo(echo["points"])
    echo["ratios"] = paired_ratios(echo["points"])
    intr["summary"] = summarise_interrupt(intr["points"])
    intr["ratios"] = interrupt_ratios(intr["points"])
    same = doc.setdefault("sameTime", {"n": 0, "points": []})
    same["ratios"] = paired_ratios(same["points"])
    doc["targets"] = targets(echo["summary"], intr["summary"], echo["ratios"], same["ratios"])


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke mode: tiny, one run each")
    p.add_argument("--points", default=None, help="comma-separated call counts")
    p.add_argument(
        "--clients",
        default=",".join(DEFAULT_CLIENTS),
        help=f"comma-separated, from {', '.join(CLIENTS)}",
    )
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
    p.add_argument(
        "--equal-buffer",
        type=int,
        default=EQUAL_BUFFER_SIZE,
        help="outgoing buffer (bytes, a power of two) of ours-eqbuf and official-eqbuf; 0: skip",
    )
    p.add_argument(
        "--equal-buffer-points",
        default=None,
        help="N of the equal-buffer pair (default: the largest point up to 50 and --official-max)",
    )
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--seconds", type=float, default=None, help="measured seconds per point")
    p.add_argument("--interrupt-calls", type=int, default=None)
    p.add_argument("--interrupt-turns", type=int, default=None)
    p.add_argument("--interrupt-reps", type=int, default=None)
    p.add_argument("--skip-echo", action="store_true")
    p.add_argument("--skip-interrupt", action="store_true")
    p.add_argument("--skip-ceiling", action="store_true", help="leave out the ceiling probe")
    p.add_argument(
        "--together",
        action="store_true",
        help="echo: run a repetition's clients at the same time (a generator each), windows "
        "opened together, so the machine's drift hits them alike (loadgen server only)",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="echo points over TLS (wss://, as production): the generator serves a "
        "certificate made for the run, which the agents trust (loadgen server only)",
    )
    p.add_argument(
        "--same-time",
        type=int,
        default=None,
        metavar="N",
        help="N at which the CPU targets' pairs also run at the same time, once per repetition "
        "(default: the largest point up to 50 and --official-max; 0: skip)",
    )
    p.add_argument(
        "--official-ceiling",
        action="store_true",
        help="only probe the official client's ceiling (writes ceiling.json/.md, not calls.*)",
    )
    p.add_argument("--ceiling-start", type=int, default=None, help="first N tried (20)")
    p.add_argument("--ceiling-step", type=int, default=None, help="N's step up to a refusal (20)")
    p.add_argument("--ceiling-max", type=int, default=None, help="largest N tried (200)")
    p.add_argument("--ceiling-hold", type=float, default=None, help="seconds held per try (3)")
    p.add_argument(
        "--ceiling-budget",
        type=float,
        default=None,
        help="seconds for each part of the probe (300)",
    )
    p.add_argument("--ceiling-tries", type=int, default=None, help="most tries (16)")
    p.add_argument(
        "--ceiling-batch", type=int, default=None, help="lifetime probe: calls per batch (10)"
    )
    p.add_argument(
        "--ceiling-batches", type=int, default=None, help="lifetime probe: most batches (12)"
    )
    p.add_argument("--out-dir", default=str(HERE / "results"))
    p.add_argument(
        "--name",
        default=None,
        help="output files' name in --out-dir (default: calls, calls-quick or ceiling)",
    )
    p.add_argument("--no-chart", action="store_true")
    a = p.parse_args(argv)
    q = a.quick
    points = a.points or ("2" if q else "1,25,50,100,150,200")
    clients = [c.strip() for c in a.clients.split(",") if c.strip()]
    unknown = set(clients) - set(CLIENTS)
    if unknown or not clients:
        p.error(f"unknown clients: {sorted(unknown)}; choose from {list(CLIENTS)}")
    opts = Options(
        points=_ints(points),
        clients=clients,
        reps=a.reps if a.reps is not None else (1 if q else 3),
        seconds=a.seconds if a.seconds is not None else (1.0 if q else 6.0),
        settle=0.3 if q else 1.0,
        interrupt_calls=a.interrupt_calls if a.interrupt_calls is not None else (2 if q else 20),
        interrupt_turns=a.interrupt_turns if a.interrupt_turns is not None else (2 if q else 10),
        turn_seconds=0.6 if q else 3.0,
        interrupt_reps=a.interrupt_reps if a.interrupt_reps is not None else (1 if q else 3),
        skip_echo=a.skip_echo or a.official_ceiling,
        skip_interrupt=a.skip_interrupt or a.official_ceiling,
        out_dir=Path(a.out_dir),
        chart=not a.no_chart,
        quick=q,
        server=a.server,
        official_max=a.official_max,
        phases=a.phases,
        equal_buffer=a.equal_buffer,
        together=a.together,
        tls=a.tls,
    )
    if opts.together and opts.server != "loadgen":
        p.error("--together needs the loadgen server")
    if opts.tls and opts.server != "loadgen":
        p.error("--tls needs the loadgen server")
    if opts.reps < 1 or opts.interrupt_reps < 1 or opts.seconds <= 0:
        p.error("--reps, --interrupt-reps and --seconds must be positive")
    if not 1 <= opts.interrupt_turns <= 255:
        p.error("--interrupt-turns must be in 1..255")
    if any(n < 1 for n in opts.points) or not opts.points:
        p.error("--points must be positive call counts")
    size = opts.equal_buffer
    if size < 0 or size & (size - 1):
        p.error("--equal-buffer must be 0 or a power of two")
    if a.equal_buffer_points is not None:
        opts.equal_buffer_points = _ints(a.equal_buffer_points)
    else:
        fits = [n for n in opts.points if n <= min(50, opts.official_max)]
        opts.equal_buffer_points = [max(fits)] if fits else []
    if a.same_time is not None:
        opts.same_time = a.same_time
    elif not (opts.together or opts.server != "loadgen" or opts.skip_echo):
        fits = [n for n in opts.points if n <= min(50, opts.official_max)]
        opts.same_time = max(fits) if fits else 0
    if opts.same_time < 0:
        p.error("--same-time must be a call count, or 0 to skip")
    if opts.same_time and (opts.together or opts.server != "loadgen"):
        p.error("--same-time needs the loadgen server, and is what --together does at every N")
    if any(n < 1 or n > opts.official_max for n in opts.equal_buffer_points):
        p.error("--equal-buffer-points must be in 1..--official-max (the official client runs)")
    if not a.skip_ceiling or a.official_ceiling:
        c = CeilingOptions()
        if q:
            c = CeilingOptions(2, 2, 4, 1.0, 60.0, 4, batch=2, batches=2, batch_hold=1.0)
        c.start = a.ceiling_start if a.ceiling_start is not None else c.start
        c.step = a.ceiling_step if a.ceiling_step is not None else c.step
        c.max_n = a.ceiling_max if a.ceiling_max is not None else c.max_n
        c.hold = a.ceiling_hold if a.ceiling_hold is not None else c.hold
        c.budget = a.ceiling_budget if a.ceiling_budget is not None else c.budget
        c.max_tries = a.ceiling_tries if a.ceiling_tries is not None else c.max_tries
        c.batch = a.ceiling_batch if a.ceiling_batch is not None else c.batch
        c.batches = a.ceiling_batches if a.ceiling_batches is not None else c.batches
        if not (1 <= c.start <= c.max_n <= 1000 and c.step >= 1 and c.max_tries >= 1):
            p.error("ceiling: need 1 <= --ceiling-start <= --ceiling-max <= 1000, step, tries >= 1")
        if not (1 <= c.batch <= 1000 and 1 <= c.batches <= 100):
            p.error("ceiling: --ceiling-batch in 1..1000, --ceiling-batches in 1..100")
        if not (0 < c.hold <= 60 and 0 < c.budget <= 3600):
            p.error("ceiling: --ceiling-hold in (0, 60] s, --ceiling-budget in (0, 3600] s")
        opts.ceiling = c
    opts.stem = a.name or ("ceiling" if a.official_ceiling else ("calls-quick" if q else "calls"))
    if not re.fullmatch(r"[\w.-]+", opts.stem):
        p.error(f"--name must be a plain file name (letters, digits, . - _), got {a.name!r}")
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
        if doc["echo"]["summary"]:
            chart(doc, path.with_suffix(".png"))
        return 0
    opts = parse(argv)
    started = time.monotonic()
    doc = run(opts)
    doc["meta"]["wallSeconds"] = round(time.monotonic() - started, 1)
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    (opts.out_dir / f"{opts.stem}.json").write_text(json.dumps(clean(doc), indent=1) + "\n")
    table = markdown(doc)
    (opts.out_dir / f"{opts.stem}.md").write_text(table + "\n")
    print()
    print(table)
    if opts.chart and doc["echo"]["summary"]:
        png = opts.out_dir / f"{opts.stem}.png"
        drawn = chart(doc, png)
        print("chart:", png if drawn else "skipped (no matplotlib)")
    print(f"wall time {doc['meta']['wallSeconds']:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
