"""Soak: calls arriving and ending continuously against a sandbox in another process.

This process is the agent: one ``SessionManager`` echoing every call with ``serve_calls``.
The sandbox runs as ``python -m telcoflow_trio sandbox`` in a child process and is driven
through its admin endpoints: up to ``--concurrency`` calls at once, ``--calls`` in all, each
caller speaking ``--seconds`` of a test signal and hanging up once it has heard all of it
echoed back (both directions stream for the whole call).

Reported: calls completed (the caller heard exactly what it said) and failed, the agent's
RSS over time, RSS after the run against RSS after warm-up, and open file descriptors
before and after. ``--json`` prints one JSON object instead of text.

    python bench/soak.py                      # 200 calls, 50 at once, 3 s each, real time
    python bench/soak.py --calls 20 --concurrency 5 --seconds 0.5 --time-scale 5 --json
    python bench/soak.py --drop-control-every 5   # cut the control plane every 4-6 s
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import time
from typing import Any

import httpx
import trio

import telcoflow_trio as tf
from telcoflow_trio.sandbox import frame_bytes

POLL_SECONDS = 0.5
SAMPLE_RATE = 16000  # the default CallAudioConfig
SAMPLE_SECONDS = 0.5


def rss_kb() -> int:
    """This process's resident set size, from /proc."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) - 1  # minus the one listdir itself holds


async def echo(call: tf.Call) -> None:
    if not await call.answer():
        return
    async for chunk in call.audio_stream():
        await call.send_audio(chunk, wait=True)


class Soak:
    def __init__(self, args: argparse.Namespace, admin: httpx.AsyncClient) -> None:
        self.args = args
        self.admin = admin
        self.completed = 0
        self.failed = 0
        self.failures: list[str] = []
        self.active = 0
        self.peak_active = 0
        self.samples: list[tuple[float, int, int, int]] = []  # (t, rss KiB, fds, active)
        self.warm_rss = 0
        self.warmed = trio.Event()
        self.drops = 0

    async def one_call(self, index: int, limit: trio.CapacityLimiter) -> None:
        async with limit:
            self.active += 1
            self.peak_active = max(self.peak_active, self.active)
            try:
                ok, why = await self._drive(index)
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                ok, why = False, f"driver error: {type(exc).__name__}"
            finally:
                self.active -= 1
        if ok:
            self.completed += 1
        else:
            self.failed += 1
            self.failures.append(f"call {index}: {why}")
        if self.completed + self.failed == self.args.warmup:
            self.warmed.set()

    async def _drive(self, index: int) -> tuple[bool, str]:
        spec = {"audio": {"signal": {"seconds": self.args.seconds, "seed": index}}}
        placed = await self.admin.post("/admin/calls", json=spec)
        call_id = placed.json()["callId"]
        total = frame_bytes(SAMPLE_RATE, self.args.seconds)
        # Generous: three times the call's audio at the sandbox's pace, plus twenty seconds.
        deadline = 3 * self.args.seconds / self.args.time_scale + 20
        status: dict[str, Any] = {}
        with trio.move_on_after(deadline):
            while True:
                status = (await self.admin.get(f"/admin/calls/{call_id}")).json()
                spoken, heard = status["spokenBytes"], status["heardBytes"]
                if status["state"] == "ENDED":
                    break
                # The echo keeps up with the speech, so wait for the whole of it first.
                if spoken >= total and heard >= spoken:
                    await self.admin.post(f"/admin/calls/{call_id}/hangup")
                    break
                await trio.sleep(POLL_SECONDS)
        final = (await self.admin.get(f"/admin/calls/{call_id}?audio=1")).json()
        if final["state"] != "ENDED":
            await self.admin.post(f"/admin/calls/{call_id}/hangup")
            return False, f"not finished in time ({status.get('state')})"
        if final["heard"] != final["spoken"] or not final["spokenBytes"]:
            return False, f"heard {final['heardBytes']} of {final['spokenBytes']} bytes"
        return True, ""

    async def drop_control(self, every: float) -> None:
        """Cut the agent's control connection every ``every`` s (±20 %): live calls must
        stream on, and calls offered meanwhile must still be claimed and served."""
        rng = random.Random(0)
        while True:
            await trio.sleep(every * rng.uniform(0.8, 1.2))
            await self.admin.post("/admin/control/drop")
            self.drops += 1

    async def sample(self, started: float) -> None:
        while True:
            self.samples.append((time.monotonic() - started, rss_kb(), open_fds(), self.active))
            await trio.sleep(SAMPLE_SECONDS)


async def run(args: argparse.Namespace, sandbox: dict[str, Any]) -> dict[str, Any]:
    config = tf.SessionManagerConfig.create(
        api_key=sandbox["api_key"],
        connector_uuid=sandbox["connector_uuid"],
        base_url=sandbox["base_url"],
    )
    headers = {"x-api-key": sandbox["api_key"], "x-connector-uuid": sandbox["connector_uuid"]}
    started = time.monotonic()
    async with tf.SessionManager(config) as sm, trio.open_nursery() as agent:
        agent.start_soon(sm.serve_calls, echo)
        gc.collect()
        fds_before = open_fds()
        rss_start = rss_kb()
        # The driver's client is closed before descriptors are counted again.
        async with httpx.AsyncClient(
            base_url=sandbox["rest_url"], headers=headers, timeout=30
        ) as admin:
            soak = Soak(args, admin)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(soak.sample, started)
                if args.drop_control_every > 0:
                    nursery.start_soon(soak.drop_control, args.drop_control_every)
                limit = trio.CapacityLimiter(args.concurrency)
                async with trio.open_nursery() as calls:
                    for index in range(args.calls):
                        await limit.acquire_on_behalf_of(index)  # pace arrivals to the cap
                        limit.release_on_behalf_of(index)
                        calls.start_soon(soak.one_call, index, limit)
                        if index + 1 == args.warmup:
                            await soak.warmed.wait()
                            gc.collect()
                            soak.warm_rss = rss_kb()
                        await trio.lowlevel.checkpoint()
                nursery.cancel_scope.cancel()
        # Let the last calls' sockets and tasks go, then measure.
        await trio.sleep(0.5)
        gc.collect()
        rss_end = rss_kb()
        fds_after = open_fds()
        agent.cancel_scope.cancel()
    elapsed = time.monotonic() - started
    return {
        "calls": args.calls,
        "concurrency": args.concurrency,
        "peak_concurrent": soak.peak_active,
        "seconds_per_call": args.seconds,
        "completed": soak.completed,
        "failed": soak.failed,
        "failures": soak.failures[:10],
        "elapsed_s": round(elapsed, 1),
        "rss_start_mb": round(rss_start / 1024, 1),
        "rss_warm_mb": round(soak.warm_rss / 1024, 1),
        "rss_end_mb": round(rss_end / 1024, 1),
        "rss_peak_mb": round(max(s[1] for s in soak.samples) / 1024, 1),
        "rss_drift_mb": round((rss_end - soak.warm_rss) / 1024, 1),
        "fds_before": fds_before,
        "fds_after": fds_after,
        "reconnects": sm.reconnects,
        "control_drops": soak.drops,
        "samples": [(round(t, 1), round(r / 1024, 1), f, a) for t, r, f, a in soak.samples],
    }


def start_sandbox(time_scale: float) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    command = [sys.executable, "-m", "telcoflow_trio", "sandbox", "--json"]
    command += ["--time-scale", str(time_scale)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise SystemExit("the sandbox process did not start")
    return proc, json.loads(line)


def report(result: dict[str, Any]) -> str:
    lines = [
        f"soak: {result['calls']} calls, up to {result['concurrency']} at once "
        f"(peak {result['peak_concurrent']}), {result['seconds_per_call']} s of audio each way",
        f"  completed {result['completed']}, failed {result['failed']}, "
        f"in {result['elapsed_s']} s, control drops {result['control_drops']}, "
        f"reconnects {result['reconnects']}",
        f"  agent RSS: start {result['rss_start_mb']} MB, after warm-up "
        f"{result['rss_warm_mb']} MB, peak {result['rss_peak_mb']} MB, end "
        f"{result['rss_end_mb']} MB (drift {result['rss_drift_mb']:+} MB)",
        f"  open fds: before {result['fds_before']}, after {result['fds_after']}",
        "  RSS over time (s, MB, fds, active calls):",
    ]
    samples = result["samples"]
    step = max(1, len(samples) // 12)
    lines += [f"    {t:6.1f} {r:7.1f} {f:5d} {a:4d}" for t, r, f, a in samples[::step]]
    lines += [f"  {why}" for why in result["failures"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0, help="audio per call, each way")
    parser.add_argument("--time-scale", type=float, default=1.0, help="sandbox speed-up")
    parser.add_argument("--warmup", type=int, default=0, help="calls before the warm mark")
    parser.add_argument(
        "--drop-control-every",
        type=float,
        default=0.0,
        help="cut the agent's control connection every this many seconds (0: never)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.warmup <= 0:
        args.warmup = max(1, min(args.calls // 4, 2 * args.concurrency))
    proc, sandbox = start_sandbox(args.time_scale)
    try:
        result = trio.run(run, args, sandbox)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(json.dumps(result) if args.json else report(result), flush=True)
    ok = result["failed"] == 0 and result["fds_after"] <= result["fds_before"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
