"""Transport micro-benchmark: CPU per echoed message of the two WebSocket engines.

    python bench/bench_transport.py                 # 100 connections x 50 msg/s, 5 x 2 runs
    python bench/bench_transport.py --quick         # a smoke run (seconds)
    python bench/bench_transport.py --help

An echo server (``websockets``' sans-I/O server protocol on trio, the cheapest we have) runs
in its own process on 127.0.0.1 port 0. This process opens ``--connections`` client sockets
through one engine's connector (the ``Connector`` the SDK uses: ``_websocket.open_websocket``
for trio-websocket, ``_sansio_websocket.open_websocket`` for websockets) and, on each, sends
a ``--size``-byte binary message ``--rate`` times a second and waits for its echo, so each
way carries ``connections x rate`` messages a second. After a warm-up, it reads
``time.process_time()`` (this process's CPU: the client engine and trio, nothing else runs
here) over a ``--seconds`` window and divides by the echoes completed in it.

Repetitions are paired and interleaved: each runs both engines, in alternating order, and
the figure to read is the median over repetitions of the per-repetition ratio (websockets /
trio-websocket), which cancels most of the drift of a shared machine. Each run also reports
the rate it reached and the server's CPU share, so a saturated run shows as one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling _benchlib
sys.path.insert(0, str(HERE.parent))  # telcoflow_trio from this checkout

from _benchlib import cpu_seconds  # noqa: E402

from telcoflow_trio import _sansio_websocket, _websocket  # noqa: E402
from telcoflow_trio._transport import Connector, MessageSocket  # noqa: E402
from telcoflow_trio._voice_connection import MESSAGE_QUEUE  # noqa: E402

ENGINES: dict[str, Connector] = {
    "trio-websocket": _websocket.open_websocket,
    "websockets": _sansio_websocket.open_websocket,
}
MAX_CONNECTIONS = 1000
MAX_REPS = 20
MAX_SECONDS = 30.0


# ── the echo server (its own process) ─────────────────────────────────────────────────


async def _echo(stream: trio.SocketStream) -> None:
    try:
        await _echo_protocol(stream)
    except Exception as exc:  # one bad connection must not take the server down
        print(f"echo server: {type(exc).__name__}: {exc}", file=sys.stderr)


async def _echo_protocol(stream: trio.SocketStream) -> None:
    from websockets.frames import Opcode
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    protocol = ServerProtocol(max_size=None)
    async with stream:
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not data:
                protocol.receive_eof()
                return
            protocol.receive_data(data)
            for event in protocol.events_received():
                opcode = getattr(event, "opcode", None)
                if protocol.state is not State.OPEN and opcode is not None:
                    continue  # closing: the client's close came in this read
                if opcode is None:
                    protocol.send_response(protocol.accept(event))  # type: ignore[arg-type]
                elif opcode is Opcode.BINARY:
                    protocol.send_binary(event.data)  # type: ignore[union-attr]
                elif opcode is Opcode.TEXT:
                    protocol.send_text(event.data)  # type: ignore[union-attr]
            out = protocol.data_to_send()
            try:
                if any(out):
                    await stream.send_all(b"".join(out))
                if b"" in out:  # the protocol's signal to close TCP
                    return
            except trio.BrokenResourceError:
                return


async def _serve() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, _echo, 0, host="127.0.0.1"))
        print(listeners[0].socket.getsockname()[1], flush=True)
        # Ends when the benchmark closes our stdin (or dies).
        await trio.to_thread.run_sync(sys.stdin.read)
        nursery.cancel_scope.cancel()


# ── the client side (this process) ────────────────────────────────────────────────────


SLOTS = 10
"""Ticks per period: one timer for all connections, each sending in its slot."""


async def _run_engine(
    connect: Connector, port: int, connections: int, rate: float, size: int, seconds: float
) -> dict[str, float]:
    url = f"ws://127.0.0.1:{port}/bench"
    message = bytes(size)
    period = 1.0 / rate
    sent = echoed = late = 0
    warmup = min(1.0, seconds)
    socks: list[MessageSocket] = []

    async def connection(task_status: trio.TaskStatus[None]) -> None:
        nonlocal echoed
        async with connect(url, {}, None, what="bench", message_queue_size=MESSAGE_QUEUE) as sock:
            socks.append(sock)
            task_status.started()
            while True:
                reply = await sock.receive()
                if len(reply) != size:
                    raise AssertionError(f"echo of {size} bytes came back as {len(reply)}")
                echoed += 1

    async def ticker() -> None:
        # One timer for all connections (as a light load generator has): each tick sends
        # on the connections of its slot, so the harness adds no task or timer per message.
        nonlocal sent, late
        slots = [socks[i::SLOTS] for i in range(SLOTS)]
        tick = trio.current_time()
        while True:
            for slot in slots:
                tick += period / SLOTS
                if trio.current_time() > tick + period:
                    late += 1
                await trio.sleep_until(tick)
                for sock in slot:
                    await sock.send(message)
                    sent += 1

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            await nursery.start(connection)
        nursery.start_soon(ticker)
        await trio.sleep(warmup)
        cpu0, n0, late0, t0 = time.process_time(), echoed, late, trio.current_time()
        await trio.sleep(seconds)
        cpu1, n1, late1, t1 = time.process_time(), echoed, late, trio.current_time()
        nursery.cancel_scope.cancel()
    count = n1 - n0
    return {
        "us_per_message": (cpu1 - cpu0) / count * 1e6 if count else math.nan,
        "rate": count / (t1 - t0),
        "target_rate": connections * rate,
        "late": late1 - late0,
        "unanswered": sent - echoed,
    }


def _run_one(name: str, port: int, server_pid: int, args: argparse.Namespace) -> dict[str, float]:
    server0, wall0 = cpu_seconds(server_pid), time.monotonic()
    result = trio.run(
        _run_engine, ENGINES[name], port, args.connections, args.rate, args.size, args.seconds
    )
    result["server_cpu_share"] = (cpu_seconds(server_pid) - server0) / (time.monotonic() - wall0)
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--rate", type=float, default=50.0, help="messages a second per connection")
    p.add_argument("--size", type=int, default=960, help="bytes per message (20 ms at 24 kHz)")
    p.add_argument("--seconds", type=float, default=3.0, help="measured window per run")
    p.add_argument("--reps", type=int, default=5, help="paired repetitions")
    p.add_argument("--quick", action="store_true", help="smoke run: 10 connections, 1 x 0.5 s")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        trio.run(_serve)
        return
    if args.quick:
        args.connections, args.seconds, args.reps = 10, 0.5, 1
    # Bounded in count and time, whatever is asked.
    if not 1 <= args.connections <= MAX_CONNECTIONS:
        p.error(f"--connections must be 1..{MAX_CONNECTIONS}")
    if not 1 <= args.reps <= MAX_REPS:
        p.error(f"--reps must be 1..{MAX_REPS}")
    if not 0 < args.seconds <= MAX_SECONDS or not 0 < args.rate <= 1000 or args.size < 1:
        p.error(f"--seconds must be in (0, {MAX_SECONDS:g}], --rate in (0, 1000], --size >= 1")

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.strip().isdigit():
            raise SystemExit(f"the echo server did not start (exit code {server.poll()})")
        port = int(line)
        print(
            f"{args.connections} connections x {args.rate:g} msg/s each way, "
            f"{args.size}-byte binary messages, {args.seconds:g} s windows, "
            f"{args.reps} paired repetitions; echo server pid {server.pid} on port {port}"
        )
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in ENGINES}
        ratios: list[float] = []
        names = list(ENGINES)
        for rep in range(args.reps):
            order = names if rep % 2 == 0 else names[::-1]
            for name in order:
                result = _run_one(name, port, server.pid, args)
                runs[name].append(result)
                print(
                    f"  rep {rep + 1} {name:>14}: {result['us_per_message']:6.1f} µs CPU/msg, "
                    f"{result['rate']:7.0f}/{result['target_rate']:.0f} msg/s, "
                    f"ticks a period late {result['late']:.0f}, "
                    f"server CPU {result['server_cpu_share']:.0%}"
                )
            a, b = runs["trio-websocket"][-1], runs["websockets"][-1]
            ratios.append(b["us_per_message"] / a["us_per_message"])
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    summary = {
        name: statistics.median(r["us_per_message"] for r in results)
        for name, results in runs.items()
    }
    print("median µs CPU per echoed message (client process, send + receive):")
    for name, value in summary.items():
        print(f"  {name:>14}: {value:.1f}")
    print(
        f"websockets / trio-websocket, median of per-repetition ratios: "
        f"{statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})"
    )
    saturated = any(
        r["rate"] < 0.95 * r["target_rate"] or r["server_cpu_share"] > 0.9
        for results in runs.values()
        for r in results
    )
    if saturated:
        print("WARNING: a run fell short of its rate or the server was busy: read with care")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"args": vars(args), "runs": runs, "ratios": ratios, "median_us": summary},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
