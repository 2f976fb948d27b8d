"""Real-time pacing, measured over 10 s of simulated time at 5x speed.

The sandbox paces by its clock without drift, but on a loaded machine a pull or a speech
frame due near an edge of the window may be recorded just past it: a stall of 40 ms real
time is 0.2 s simulated here (2 % of the window). The rates are checked within 5 %, which a
drifting pacer (a tick lost per late wake-up) or a wrong byte rate would still miss.
"""

from __future__ import annotations

import json

import pytest
import trio

from telcoflow_trio.testing import Silence, open_sandbox

from .raw import claimed_call, control, voice

SECONDS = 10.0
SCALE = 5.0


@pytest.mark.parametrize("rate", [8000, 24000])
async def test_pulls_and_speech_run_at_the_byte_rate(rate: int) -> None:
    byte_rate = rate * 2
    async with open_sandbox(time_scale=SCALE) as sandbox, control(sandbox, sample_rate=rate) as ctl:
        with trio.fail_after(10):
            call, call_in = await claimed_call(ctl, sandbox, audio=Silence(SECONDS + 1))
            async with voice(call_in) as v:
                assert (await v.command("call.answer"))["success"]
                start = sandbox.clock.now()
                heard_at: list[tuple[float, int]] = []
                spoken_at: list[tuple[float, int]] = []
                # The agent answers every pull at once with as much as was asked.
                while sandbox.clock.now() < start + SECONDS + 0.5:
                    data = await v.ws.get_message()
                    now = sandbox.clock.now()
                    if isinstance(data, bytes):
                        spoken_at.append((now, len(data) - 1))
                        continue
                    frame = json.loads(data)
                    if frame["type"] == "buffer_request":
                        asked = frame["data"]["requested_bytes"]
                        await v.send(b"\x00" + bytes(asked))
                        heard_at.append((now, asked))

                def rate_between(samples: list[tuple[float, int]], a: float, b: float) -> float:
                    return sum(n for t, n in samples if a <= t < b) / (b - a)

                # Paced by the sandbox's own clock, read where it sends: the moment our
                # reader gets to a frame lags on a loaded machine, the schedule does not.
                window = (start + 0.25, start + 0.25 + SECONDS)
                pulled = rate_between(
                    [(p.time, p.requested_bytes) for p in call.pull_requests], *window
                )
                offsets = [offset for _, offset in call.spoken_marks] + [len(call.spoken)]
                sent = [
                    (t, offsets[i + 1] - offset) for i, (t, offset) in enumerate(call.spoken_marks)
                ]
                assert pulled == pytest.approx(byte_rate, rel=0.05)
                assert rate_between(sent, *window) == pytest.approx(byte_rate, rel=0.05)
                # What crossed the wire is what the sandbox recorded, in order.
                assert [n for _, n in heard_at] == [
                    p.requested_bytes for p in call.pull_requests[: len(heard_at)]
                ]
                assert sum(n for _, n in spoken_at) <= len(call.spoken)
                await call.wait_heard(sum(n for _, n in heard_at))
