"""Driving an asyncio-only model SDK from a trio agent, through an asyncio loop in a thread.

    python examples/asyncio_model_bridge.py --sandbox
    TELCOFLOW_API_KEY=... TELCOFLOW_CONNECTOR_UUID=... python examples/asyncio_model_bridge.py

Most speech-model SDKs are asyncio code: they create ``asyncio.Queue``s and tasks and need
the loop they were made on. ``FakeRealtimeModel`` below stands in for one (it answers each
chunk of caller audio with a chunk of its own "voice": the same audio at half volume).

The bridge runs one asyncio event loop in a worker thread for the whole process. From trio,
``await bridge.run(async_fn, *args)`` runs a coroutine on that loop and waits for its result
without blocking trio (nor a thread); cancelling the trio side cancels the asyncio task.
``bridge.iterate(agen)`` turns an asyncio async iterator into a trio one. Why not
trio-asyncio: it makes the whole program run inside its own loop, and it trails new trio
and Python releases; this bridge is 60 lines on public trio and asyncio APIs, and costs
one thread hop per chunk (about 50 a second per call). The environment variables are
those of echo_agent.py.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import logging
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

import trio

import telcoflow_trio as tf
from telcoflow_trio import run_main

log = logging.getLogger("asyncio_model_bridge")

T = TypeVar("T")


# ── the asyncio-only SDK we have to live with (faked) ──────────────────────────────────


def model_voice(pcm: bytes) -> bytes:
    """What the fake model says in answer to a chunk: the chunk at half volume."""
    count = len(pcm) // 2
    samples = struct.unpack(f"<{count}h", pcm[: 2 * count])
    return struct.pack(f"<{count}h", *(s // 2 for s in samples))


class FakeRealtimeModel:
    """An asyncio speech-to-speech client: usable only on the loop it was connected on."""

    def __init__(self) -> None:
        asyncio.get_running_loop()  # like real SDKs, it fails outside asyncio
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._think())

    @classmethod
    async def connect(cls) -> FakeRealtimeModel:
        await asyncio.sleep(0.01)  # the handshake with the model's servers
        return cls()

    async def send_audio(self, pcm: bytes) -> None:
        await self._inbox.put(pcm)

    async def end_input(self) -> None:
        await self._inbox.put(None)

    async def responses(self) -> AsyncIterator[bytes]:
        while (pcm := await self._outbox.get()) is not None:
            yield pcm

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _think(self) -> None:
        try:
            while (pcm := await self._inbox.get()) is not None:
                await asyncio.sleep(0.002)  # inference
                await self._outbox.put(model_voice(pcm))
        finally:
            self._outbox.put_nowait(None)


# ── the bridge ─────────────────────────────────────────────────────────────────────────


class AsyncioBridge:
    """Runs coroutines on an asyncio loop in another thread; see :func:`open_asyncio_bridge`."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    async def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """``await fn(*args)`` on the asyncio loop; cancelling this cancels that task."""
        future = asyncio.run_coroutine_threadsafe(fn(*args), self.loop)
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()

        def wake(_: concurrent.futures.Future[T]) -> None:
            with suppress(trio.RunFinishedError):  # trio already gone: nobody waits
                token.run_sync_soon(done.set)

        future.add_done_callback(wake)
        try:
            await done.wait()
        finally:
            future.cancel()  # a no-op once it is done
        return future.result()

    async def iterate(self, source: AsyncIterator[T]) -> AsyncIterator[T]:
        """An asyncio async iterator, consumed from trio one item per hop."""

        async def step() -> tuple[bool, T | None]:
            try:
                return True, await anext(source)
            except StopAsyncIteration:
                return False, None

        while True:
            more, item = await self.run(step)
            if not more:
                return
            yield item  # type: ignore[misc]  # present whenever `more` is true


@asynccontextmanager
async def open_asyncio_bridge() -> AsyncIterator[AsyncioBridge]:
    """An asyncio loop in a worker thread for the duration of the block."""
    loop = asyncio.new_event_loop()
    bridge = AsyncioBridge(loop)

    async def drain() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await loop.shutdown_asyncgens()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, loop.run_forever)
        try:
            yield bridge
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await bridge.run(drain)
            loop.call_soon_threadsafe(loop.stop)
    loop.close()


# ── the agent ──────────────────────────────────────────────────────────────────────────


async def handle_call(call: tf.Call, bridge: AsyncioBridge) -> None:
    """Caller audio goes to the model; the model's audio goes to the caller."""
    if not await call.answer():
        return
    model = await bridge.run(FakeRealtimeModel.connect)

    async def to_model() -> None:
        async for chunk in call.audio_stream():
            await bridge.run(model.send_audio, chunk)
        await bridge.run(model.end_input)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(to_model)
            async for pcm in bridge.iterate(model.responses()):
                await call.send_audio(pcm, wait=True)
    except (tf.BufferClosedError, tf.WSSCallClosedError):
        pass  # the caller hung up
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await bridge.run(model.close)


def config_from_env() -> tf.SessionManagerConfig:
    """Credentials from the environment (see ``SessionManagerConfig.from_env``)."""
    try:
        return tf.SessionManagerConfig.from_env()
    except (TypeError, ValueError) as exc:
        message = f"bad Telcoflow settings in the environment: {exc}, or pass --sandbox"
        raise SystemExit(message) from None


def handler_for(bridge: AsyncioBridge) -> Callable[[tf.Call], Awaitable[None]]:
    return functools.partial(handle_call, bridge=bridge)


async def run_against_sandbox() -> int:
    from telcoflow_trio.sandbox import TestSignal, open_sandbox

    async with (
        open_asyncio_bridge() as bridge,
        open_sandbox(time_scale=4) as sandbox,
        tf.SessionManager(sandbox.config()) as sm,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(sm.serve_calls, handler_for(bridge))
        sim = await sandbox.place_call(audio=TestSignal(seconds=1.5))
        with trio.fail_after(30):
            await sim.wait_spoken()
            await sim.wait_heard(len(sim.spoken))
        await sim.hang_up()
        nursery.cancel_scope.cancel()
    ok = sim.heard == model_voice(bytes(sim.spoken))
    print(
        f"call {sim.call_id}: the caller heard {len(sim.heard)} bytes of the model's voice: "
        + ("each chunk answered, in order" if ok else "NOT what the model said")
    )
    return 0 if ok else 1


async def run_for_real(config: tf.SessionManagerConfig) -> int:
    async with open_asyncio_bridge() as bridge, tf.SessionManager(config) as sm:
        await sm.serve_calls(handler_for(bridge))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sandbox", action="store_true", help="run against a local sandbox")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.sandbox:
        return trio.run(run_against_sandbox)
    return trio.run(run_for_real, config_from_env())


if __name__ == "__main__":
    raise SystemExit(run_main(main))  # Ctrl+C: one line, status 130
