"""Small agents for the kit's own tests: well-behaved ones, and ones broken on purpose."""

from __future__ import annotations

import importlib.util
import math
import pathlib
import struct
from types import ModuleType
from typing import Final

import trio

import telcoflow_trio as tf
from telcoflow_trio.testing import audible

ROOT: Final = pathlib.Path(__file__).resolve().parents[2]
CHUNK_SECONDS: Final = 0.02


def load_example(name: str) -> ModuleType:
    """An example of ``examples/`` (not a package), imported by path."""
    path = ROOT / "examples" / f"{name}.py"
    assert path.exists(), f"{path} is missing: the kit's tests run every example through it"
    spec = importlib.util.spec_from_file_location(f"kit_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def echo(call: tf.Call) -> None:
    """Sends the caller's audio straight back."""
    if not await call.answer():
        return
    try:
        async for chunk in call.audio_stream():
            await call.send_audio(chunk, wait=True)
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass


def tone(sample_rate: int, seconds: float, freq: float = 440.0) -> bytes:
    count = round(sample_rate * seconds)
    return struct.pack(
        f"<{count}h",
        *(round(5000 * math.sin(2 * math.pi * freq * i / sample_rate)) for i in range(count)),
    )


class BargeIn:
    """Talks (a long prompt, streamed in real time) and stops when the caller talks over it:
    cancel the talking, clear the buffer, wait for the caller to be quiet, talk again.

    ``broken=True`` forgets to stop the talking: it clears the buffer, but its streaming
    loop carries on with the rest of the prompt.
    """

    def __init__(self, *, broken: bool = False) -> None:
        self.broken = broken

    async def __call__(self, call: tf.Call) -> None:
        if not await call.answer():
            return
        rate = call.audio_config.sample_rate
        prompt = tone(rate, 3.0)
        step = 2 * round(rate * CHUNK_SECONDS)
        caller_quiet = trio.Event()
        caller_quiet.set()

        async def talk() -> None:
            while True:
                await caller_quiet.wait()
                with trio.CancelScope() as scope:
                    talking.append(scope)
                    for pos in range(0, len(prompt), step):
                        await call.send_audio(prompt[pos : pos + step], wait=True)
                        await trio.sleep(CHUNK_SECONDS)
                    await call.wait_for_playout()
                talking.remove(scope)
                await trio.sleep(1.0)

        async def listen() -> None:
            nonlocal caller_quiet
            quiet_for = 0.0
            async for chunk in call.audio_stream():
                if audible(chunk, 1000):
                    quiet_for = 0.0
                    if caller_quiet.is_set():
                        caller_quiet = trio.Event()
                        if not self.broken:
                            for scope in talking:
                                scope.cancel()
                        await call.clear_send_audio_buffer()
                else:
                    quiet_for += len(chunk) / (2 * rate)
                    if quiet_for >= 0.3 and not caller_quiet.is_set():
                        caller_quiet.set()

        talking: list[trio.CancelScope] = []
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(talk)
                await listen()
                nursery.cancel_scope.cancel()
        except (tf.BufferClosedError, tf.WSSCallClosedError):
            pass


class NeverCloses:
    """Hands each call off to a worker pool (``call.to_json()``) that never takes it."""

    def __init__(self) -> None:
        self.pending: list[str] = []

    async def __call__(self, call: tf.Call) -> None:
        self.pending.append(call.to_json())
        await trio.lowlevel.checkpoint()


async def blocks(call: tf.Call) -> None:
    """Echoes, then waits for a goodbye that never comes, even once the call is over."""
    await echo(call)
    await trio.Event().wait()
