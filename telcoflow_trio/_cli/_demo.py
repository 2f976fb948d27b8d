"""``python -m telcoflow_trio demo``: an echo agent answers a simulated call, end to end.

It starts a sandbox in this process, connects a :class:`~telcoflow_trio.SessionManager`
that serves calls with an echo handler, places a call whose caller speaks a generated test
utterance, shows progress while the call runs, and prints a summary: the call id, seconds
of audio each way, the caller's round-trip latency, underruns and drops. What the caller
heard is written to a WAV file.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
from array import array
from typing import Any, TextIO

import attrs
import trio

from .. import BufferClosedError, Call, CallAudioConfig, SessionManager, WSSCallClosedError
from .._config import SampleRate
from ..sandbox import SimulatedCall, frame_bytes, open_sandbox, write_wav
from ._progress import Progress, add_output_options, bar, start_output

__all__ = ["DemoResult", "Utterance", "echo_round_trips", "register", "run", "run_demo"]

logger = logging.getLogger(__name__)

# (F1, F2, F3) in Hz of a few vowels: enough to sound like someone talking.
_VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480))
_BANDWIDTHS = (90.0, 110.0, 170.0)
SYLLABLE_SECONDS = 0.22
GAP_SECONDS = 0.06


@attrs.frozen
class Utterance:
    """A synthetic voice saying vowel syllables for ``seconds``: a pitch-varying buzz
    through three formant resonators, with a pause every few syllables. Deterministic."""

    seconds: float = 3.0
    amplitude: float = 0.5

    def render(self, sample_rate: int) -> bytes:
        count = frame_bytes(sample_rate, self.seconds) // 2
        out = array("h", bytes(2 * count))
        period = SYLLABLE_SECONDS + GAP_SECONDS
        ramp = 0.03 * sample_rate
        phase = 0.0
        history = [[0.0, 0.0] for _ in _BANDWIDTHS]
        peak = 1e-9
        raw = [0.0] * count
        for i in range(count):
            t = i / sample_rate
            syllable = int(t / period)
            within = t - syllable * period
            # Every fourth syllable slot is a pause, as between words.
            voiced = within < SYLLABLE_SECONDS and syllable % 4 != 3
            f0 = 150 - 25 * (t % 1.2) / 1.2 + 12 * math.sin(2 * math.pi * within / period)
            phase = (phase + f0 / sample_rate) % 1.0
            x = 2.0 * phase - 1.0 if voiced else 0.0
            if voiced:
                pos = within * sample_rate
                end = SYLLABLE_SECONDS * sample_rate - pos
                x *= min(1.0, pos / ramp, end / ramp)
            formants = _VOWELS[syllable % len(_VOWELS)]
            for k, (freq, bw) in enumerate(zip(formants, _BANDWIDTHS, strict=True)):
                r = math.exp(-math.pi * bw / sample_rate)
                b = 2 * r * math.cos(2 * math.pi * min(freq, 0.45 * sample_rate) / sample_rate)
                c = -r * r
                y = (1 - b - c) * x + b * history[k][0] + c * history[k][1]
                history[k][1] = history[k][0]
                history[k][0] = y
                x = y
            raw[i] = x
            peak = max(peak, abs(x))
        scale = 32767 * max(0.0, min(1.0, self.amplitude)) / peak
        for i, x in enumerate(raw):
            out[i] = round(x * scale)
        if sys.byteorder == "big":
            out.byteswap()
        return out.tobytes()


async def echo(call: Call) -> None:
    """The demo's agent: answer, then send the caller's audio straight back."""
    if not await call.answer():
        return
    try:
        async for chunk in call.audio_stream():
            await call.send_audio(chunk, wait=True)
    except (BufferClosedError, WSSCallClosedError):
        pass  # the caller hung up while we were sending


def echo_round_trips(sim: SimulatedCall) -> list[float]:
    """For each channel-0 frame the caller heard: simulated seconds from the moment the
    caller had spoken the frame's last byte to the moment the frame arrived (echo only)."""
    marks = sim.spoken_marks
    out: list[float] = []
    heard = 0
    j = 0  # the spoken frame holding the last byte heard so far; both only move forward
    for frame in sim.heard_frames:
        if frame.channel != 0:
            continue
        heard += len(frame.pcm)
        if not marks or heard > len(sim.spoken):
            continue
        while j + 1 < len(marks) and marks[j + 1][1] <= heard - 1:
            j += 1
        out.append(frame.time - marks[j][0])
    return out


@attrs.frozen
class DemoResult:
    """What the demo measured; times are real seconds."""

    call_id: str
    sample_rate: int
    spoken_seconds: float
    heard_seconds: float
    identical: bool
    first_difference: int | None
    latency_median: float | None
    latency_p95: float | None
    latency_max: float | None
    answer_rtt: float | None
    underruns: int
    dropped_incoming_bytes: int
    dropped_outgoing_bytes: int
    out_path: str | None

    def summary_lines(self) -> list[str]:
        def ms(value: float | None) -> str:
            return "n/a" if value is None else f"{value * 1000:.0f} ms"

        check = (
            "identical, byte for byte"
            if self.identical
            else f"DIFFERENT from byte {self.first_difference}"
        )
        lines = [
            f"call        {self.call_id} ({self.sample_rate} Hz)",
            f"audio       caller spoke {self.spoken_seconds:.2f} s, "
            f"agent sent back {self.heard_seconds:.2f} s ({check})",
            f"round trip  caller speaks -> hears it back: median {ms(self.latency_median)}, "
            f"p95 {ms(self.latency_p95)}, max {ms(self.latency_max)}",
            f"answer      command round trip {ms(self.answer_rtt)}",
            f"underruns   {self.underruns} (server pulls that found the agent's buffer empty)",
            f"drops       {self.dropped_incoming_bytes} bytes incoming, "
            f"{self.dropped_outgoing_bytes} bytes outgoing",
        ]
        if self.out_path is not None:
            lines.append(f"recording   {self.out_path} (what the caller heard)")
        return lines


def _first_difference(a: bytes, b: bytes) -> int | None:
    if a == b:
        return None
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def run_demo(
    *,
    seconds: float = 3.0,
    sample_rate: SampleRate = 16000,
    time_scale: float = 1.0,
    out_path: str | None = "demo_heard.wav",
    progress: Progress | None = None,
) -> DemoResult:
    """Run the demo once and return its measurements (see the module docs)."""
    if not 0 < seconds <= 600:
        raise ValueError(f"seconds must be in (0, 600], got {seconds}")
    if not 0 < time_scale <= 1000:
        raise ValueError(f"time_scale must be in (0, 1000], got {time_scale}")
    # Whole 20 ms frames: an echo holds back a shorter tail (the pull protocol's floor).
    seconds = max(1, round(seconds * 50)) / 50
    show = progress if progress is not None else Progress(sys.stdout, "none")
    calls: list[Call] = []

    async def agent(call: Call) -> None:
        calls.append(call)
        await echo(call)

    config_audio = CallAudioConfig(sample_rate)
    # Generous: covers a loaded machine, never needed on an idle one.
    deadline = seconds / time_scale + 30
    with trio.fail_after(deadline):
        async with open_sandbox(time_scale=time_scale) as sandbox:
            show.line(f"sandbox     listening on {sandbox.url}")
            async with (
                SessionManager(sandbox.config(call_audio=config_audio)) as sm,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(sm.serve_calls, agent)
                sim = await sandbox.place_call(audio=Utterance(seconds))
                show.line(f"calling     call {sim.call_id}, the caller speaks for {seconds:g} s")
                await sim.wait_answered()
                expected = frame_bytes(sample_rate, seconds)
                while len(sim.heard) < expected:
                    per_second = sim.bytes_per_second()
                    spoken = len(sim.spoken) / per_second
                    heard = len(sim.heard) / per_second
                    show.update(
                        f"{bar(heard / seconds)} spoken {spoken:4.1f} s  "
                        f"heard back {heard:4.1f} s of {seconds:g} s"
                    )
                    with trio.move_on_after(0.1):
                        await sim.wait_heard(expected)
                show.update(
                    f"{bar(1.0)} spoken {seconds:4.1f} s  heard back {seconds:4.1f} s", force=True
                )
                show.clear()
                await sim.hang_up()
                with trio.move_on_after(5):
                    await calls[0].wait_terminated()
                nursery.cancel_scope.cancel()
    call = calls[0]
    per_second = sim.bytes_per_second()
    trips = [t / time_scale for t in echo_round_trips(sim)]
    counters = call.audio_counters
    rtts = call.command_rtts
    heard_pcm = sim.heard
    if out_path is not None:
        write_wav(out_path, heard_pcm, sample_rate)
    return DemoResult(
        call_id=sim.call_id,
        sample_rate=sample_rate,
        spoken_seconds=len(sim.spoken) / per_second,
        heard_seconds=len(heard_pcm) / per_second,
        identical=heard_pcm == bytes(sim.spoken),
        first_difference=_first_difference(heard_pcm, bytes(sim.spoken)),
        latency_median=statistics.median(trips) if trips else None,
        latency_p95=_percentile(trips, 0.95) if trips else None,
        latency_max=max(trips) if trips else None,
        answer_rtt=rtts[0] if rtts else None,
        underruns=0 if counters is None else counters.underruns,
        dropped_incoming_bytes=call.incoming_audio_dropped_bytes,
        dropped_outgoing_bytes=0 if counters is None else counters.dropped_bytes,
        out_path=out_path,
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="an echo agent answers a simulated call on a local sandbox (no account needed)",
        description=(
            "Start a sandbox in this process, serve calls with an echo agent, place a call "
            "whose caller speaks a generated test utterance, and print a summary. What the "
            "caller heard is written to a WAV file."
        ),
    )
    p.add_argument("--seconds", type=float, default=4.0, help="how long the caller speaks")
    p.add_argument("--sample-rate", type=int, choices=(8000, 16000, 24000), default=16000)
    p.add_argument(
        "--time-scale", type=float, default=1.0, help="simulated seconds per real one (speed-up)"
    )
    p.add_argument(
        "--out", default="demo_heard.wav", help="WAV file of what the caller heard ('' for none)"
    )
    add_output_options(p, "the summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Run the demo; 0 when the caller heard its own words back exactly."""
    out, progress = start_output(args, stream)
    try:
        result = trio.run(
            lambda: run_demo(
                seconds=args.seconds,
                sample_rate=args.sample_rate,
                time_scale=args.time_scale,
                out_path=args.out or None,
                progress=progress,
            )
        )
    except (ValueError, OSError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    except trio.TooSlowError:
        print("demo: the call did not complete in time", file=sys.stderr)
        return 1
    finally:
        progress.clear()  # whatever ends the run (Ctrl+C too), no half status line is left
    if args.json:
        payload: dict[str, Any] = attrs.asdict(result)
        print(json.dumps(payload), file=out, flush=True)
    else:
        for line in result.summary_lines():
            print(line, file=out, flush=True)
    return 0 if result.identical else 1
