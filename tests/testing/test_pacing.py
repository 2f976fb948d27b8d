"""Real-time pacing, measured over 10 s of simulated time at 10x speed."""

from __future__ import annotations

import json

import pytest
import trio

from telcoflow_trio.testing import Silence, open_sandbox

from .raw import claimed_call, control, voice

SECONDS = 10.0
SCALE = 10.0


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

                window = (start + 0.25, start + 0.25 + SECONDS)
                pulled = rate_between(heard_at, *window)
                spoken = rate_between(spoken_at, *window)
                assert pulled == pytest.approx(byte_rate, rel=0.02)
                assert spoken == pytest.approx(byte_rate, rel=0.02)
                # The sandbox's own record agrees with what crossed the wire.
                recorded = rate_between(
                    [(p.time, p.requested_bytes) for p in call.pull_requests], *window
                )
                assert recorded == pytest.approx(byte_rate, rel=0.02)
                await call.wait_heard(sum(n for _, n in heard_at))
