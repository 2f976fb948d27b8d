"""The receive path without a hop: ``MessageSocket.receive_each`` and the :class:`Inbox` behind it.

Each engine's reader task hands a message straight to the owner's handler, so an incoming
audio message costs two task steps (the engine's reader, then the application's reader of
``audio_stream``), not three or four through a channel and a reader task of ours. Counted
with a ``trio.abc.Instrument`` over each engine on a scripted stream, and over the
in-memory socket: counts, not timings.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from telcoflow_trio import _sansio_websocket, _websocket
from telcoflow_trio._connect import WrapStream
from telcoflow_trio._inbox import Inbox
from telcoflow_trio._transport import Connector, MemoryConnector, MessageSocket, SocketClosed
from telcoflow_trio._voice_connection import VoiceConnection
from telcoflow_trio.audio import IncomingAudio, SendAudioBuffer
from telcoflow_trio.protocol import voice

from ._fake import FakeTransport

URL = "ws://fake.example:8080/v1/voice/abc?token=tok"
ENGINES: dict[str, WrapStream] = {
    "trio-websocket": _websocket.wrap_stream,
    "websockets": _sansio_websocket.wrap_stream,
}
AUDIO_MESSAGES = 50
PCM = bytes(range(240)) * 4


class StepCounter(trio.abc.Instrument):
    """Task steps while ``counting``, except the test's own task (it plays the server)."""

    def __init__(self) -> None:
        self.steps = 0
        self.counting = False
        self.ignored: trio.lowlevel.Task | None = None

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.counting and task is not self.ignored:
            self.steps += 1


def closed() -> SocketClosed:
    return SocketClosed(1000, "bye")


# ── Inbox ───────────────────────────────────────────────────────────────────────────────


async def test_queued_messages_go_first_then_each_put_calls_the_handler_in_the_readers_task() -> (
    None
):
    inbox = Inbox(4, closed)
    await inbox.put("early 1")
    await inbox.put("early 2")
    seen: list[tuple[str | bytes, trio.lowlevel.Task]] = []
    owner: trio.lowlevel.Task | None = None

    async def own() -> None:
        nonlocal owner
        owner = trio.lowlevel.current_task()
        with pytest.raises(SocketClosed) as raised:
            await inbox.receive_each(lambda m: seen.append((m, trio.lowlevel.current_task())))
        assert raised.value.code == 1000

    async with trio.open_nursery() as nursery:
        nursery.start_soon(own)
        await trio.testing.wait_all_tasks_blocked()
        await inbox.put(b"late")
        inbox.put_nowait("later")
        inbox.end()
    me = trio.lowlevel.current_task()
    assert [m for m, _ in seen] == ["early 1", "early 2", b"late", "later"]
    assert [t for _, t in seen] == [owner, owner, me, me]


async def test_a_failing_handler_raises_in_the_owner_and_later_messages_queue() -> None:
    inbox = Inbox(4, closed)

    def handler(message: str | bytes) -> None:
        if message == "bad":
            raise ValueError("handler bug")

    async def own() -> None:
        with pytest.raises(ValueError, match="handler bug"):
            await inbox.receive_each(handler)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(own)
        await trio.testing.wait_all_tasks_blocked()
        await inbox.put("fine")
        await inbox.put("bad")  # the reader is not hurt
        await inbox.put("after")
    assert await inbox.receive() == "after"


async def test_cancelled_delivery_queues_again_and_a_full_queue_holds_the_reader() -> None:
    inbox = Inbox(1, closed)
    seen: list[str | bytes] = []
    with trio.move_on_after(0.01):
        await inbox.receive_each(seen.append)
    await inbox.put("queued")
    putting_done = trio.Event()

    async def reader() -> None:
        await inbox.put("held")  # waits: the queue is full
        putting_done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert not putting_done.is_set()

        async def own() -> None:
            with pytest.raises(SocketClosed):
                await inbox.receive_each(seen.append)

        nursery.start_soon(own)
        await trio.testing.wait_all_tasks_blocked()
        assert putting_done.is_set()
        await inbox.put("direct")
        inbox.end()
    assert seen == ["queued", "held", "direct"]


async def test_discard_ends_at_once_and_drops_what_comes_later() -> None:
    inbox = Inbox(math.inf, closed)
    await inbox.put("unread")
    inbox.discard()
    with pytest.raises(SocketClosed):
        await inbox.receive()
    with pytest.raises(SocketClosed):
        await inbox.receive_each(lambda m: None)
    await inbox.put("dropped")  # no error, and nothing kept


async def test_one_receive_each_at_a_time() -> None:
    inbox = Inbox(1, closed)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(inbox.receive_each, lambda m: None)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError):
            await inbox.receive_each(lambda m: None)
        nursery.cancel_scope.cancel()


# ── the engines ─────────────────────────────────────────────────────────────────────────


def over(fake: FakeTransport, wrap: WrapStream) -> Connector:
    """A connector that opens the socket over ``fake`` with the engine's ``wrap_stream``."""

    @asynccontextmanager
    async def connect(
        url: str,
        headers: Mapping[str, str],
        tls: ssl.SSLContext | None,
        *,
        what: str,
        secrets: tuple[str, ...] = (),
        message_queue_size: int = 1,
    ) -> AsyncIterator[MessageSocket]:
        async with wrap(
            fake, url, headers, what=what, secrets=secrets, message_queue_size=message_queue_size
        ) as sock:
            yield sock

    return connect


@pytest.mark.parametrize("engine", ENGINES)
async def test_each_engine_hands_messages_to_the_handler_in_its_reader_then_ends_with_the_code(
    engine: str,
) -> None:
    fake = FakeTransport()
    async with ENGINES[engine](fake, URL, {}, what="test plane", message_queue_size=2) as sock:
        if isinstance(sock, _websocket.TrioWebSocket):
            assert sock.fed, "trio-websocket changed: messages no longer come through our feed"
        fake.send_to_client("before")  # queued until receive_each starts
        await trio.testing.wait_all_tasks_blocked()
        seen: list[str | bytes] = []
        tasks: set[trio.lowlevel.Task] = set()

        def handler(message: str | bytes) -> None:
            seen.append(message)
            tasks.add(trio.lowlevel.current_task())

        async with trio.open_nursery() as nursery:

            async def own() -> None:
                with pytest.raises(SocketClosed) as raised:
                    await sock.receive_each(handler)
                assert raised.value.code == 4000

            nursery.start_soon(own)
            await trio.testing.wait_all_tasks_blocked()
            fake.send_to_client(b"\x00audio")
            fake.send_to_client("after")
            fake.close_from_server(4000, "done")
        assert seen == ["before", b"\x00audio", "after"]
        assert len(tasks) == 2  # the owner's, for the queued one; the reader's


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_handler_error_comes_out_of_receive_each_and_the_socket_still_closes_politely(
    engine: str,
) -> None:
    fake = FakeTransport()
    async with ENGINES[engine](fake, URL, {}, what="test plane") as sock:

        def handler(message: str | bytes) -> None:
            raise KeyError(message)

        async with trio.open_nursery() as nursery:

            async def send_soon() -> None:
                await trio.testing.wait_all_tasks_blocked()
                fake.send_to_client("boom")

            nursery.start_soon(send_soon)
            with pytest.raises(KeyError):
                await sock.receive_each(handler)
    assert fake.close_frames == 1


# ── a write at once from the handler (pull requests answered by the reader) ─────────────
# Over a stream that is not plain TCP (as TLS is): trio-websocket, and the websockets
# engine's socket reading itself, take it from the handler and write it before reading on.


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_message_is_taken_at_once_only_from_the_handler(engine: str) -> None:
    fake = FakeTransport()
    async with ENGINES[engine](fake, URL, {}, what="test plane") as sock:
        assert not sock.can_send_now()  # not in the reader's handler
        with pytest.raises(RuntimeError, match="can_send_now"):
            sock.send_now(b"\x00no")
        written_then: list[list[str | bytes]] = []
        tasks: set[trio.lowlevel.Task] = set()

        def handler(message: str | bytes) -> None:
            tasks.add(trio.lowlevel.current_task())
            written_then.append(list(fake.messages))
            if message == "pull":
                assert sock.can_send_now()
                sock.send_now(b"\x00answer")
                assert not sock.can_send_now()  # one at a time

        async with trio.open_nursery() as nursery:

            async def own() -> None:
                with pytest.raises(SocketClosed):
                    await sock.receive_each(handler)

            nursery.start_soon(own)
            await trio.testing.wait_all_tasks_blocked()
            fake.send_to_client("pull")
            fake.send_to_client("next")
            await trio.testing.wait_all_tasks_blocked()
            fake.close_from_server(1000)
        # Written by the reader after the handler returned and before it read on.
        assert written_then == [[], [b"\x00answer"]]
        assert len(tasks) == 1
        assert fake.messages == [b"\x00answer"]


@pytest.mark.parametrize("engine", ENGINES)
async def test_nothing_is_taken_at_once_while_a_write_is_under_way(engine: str) -> None:
    fake = FakeTransport()
    async with ENGINES[engine](fake, URL, {}, what="test plane") as sock:
        answers: list[bool] = []
        async with trio.open_nursery() as nursery:

            async def own() -> None:
                with pytest.raises(SocketClosed):
                    await sock.receive_each(lambda message: answers.append(sock.can_send_now()))

            nursery.start_soon(own)
            fake.stall = True  # the next write stops halfway until unstall
            nursery.start_soon(sock.send, b"\x00big")
            await trio.testing.wait_all_tasks_blocked()
            fake.send_to_client("pull")
            await trio.testing.wait_all_tasks_blocked()
            fake.stall = False
            fake.unstall.set()
            await trio.testing.wait_all_tasks_blocked()
            fake.send_to_client("pull")
            await trio.testing.wait_all_tasks_blocked()
            fake.close_from_server(1000)
        assert answers == [False, True]


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_failed_write_at_once_closes_the_socket(engine: str) -> None:
    fake = FakeTransport()
    async with ENGINES[engine](fake, URL, {}, what="test plane") as sock:

        def handler(message: str | bytes) -> None:
            if sock.can_send_now():
                fake.fail = True
                sock.send_now(b"\x00lost")

        fake.send_to_client("pull")  # queued: handed over in this task, then...
        fake.send_to_client("pull")  # ...this one by the reader, which then writes
        with trio.fail_after(5), pytest.raises(SocketClosed):
            await sock.receive_each(handler)
        assert fake.fail  # the handler did leave a message to write
        assert sock.closed
        await trio.testing.wait_all_tasks_blocked()  # the reader's abort, under way
        assert fake.closed  # closed forcefully: nothing more is written to it


# ── the voice plane: steps per incoming audio message ───────────────────────────────────


async def _steps_per_audio_message(
    connect: Connector, serve: Callable[[bytes], Awaitable[None]]
) -> float:
    incoming = IncomingAudio()
    vc = VoiceConnection(
        URL,
        "tok",
        None,
        SendAudioBuffer(48_000),
        lambda frame: None,
        incoming=incoming,
        connect=connect,
    )
    counter = StepCounter()
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(vc.run)
        done = trio.Event()

        async def application() -> None:
            async with incoming.stream(0) as chunks:
                async for chunk in chunks:
                    got.append(chunk)
                    if len(got) == AUDIO_MESSAGES:
                        done.set()

        nursery.start_soon(application)
        await trio.testing.wait_all_tasks_blocked()
        counter.ignored = trio.lowlevel.current_task()
        trio.lowlevel.add_instrument(counter)
        try:
            counter.counting = True
            for _ in range(AUDIO_MESSAGES):
                await serve(b"\x00" + PCM)
                await trio.testing.wait_all_tasks_blocked()
            counter.counting = False
        finally:
            trio.lowlevel.remove_instrument(counter)
        assert done.is_set()
        await vc.aclose()
        nursery.cancel_scope.cancel()
    assert got == [PCM] * AUDIO_MESSAGES
    return counter.steps / AUDIO_MESSAGES


@pytest.mark.parametrize("engine", ENGINES)
async def test_an_incoming_audio_message_costs_two_task_steps_on_each_engine(engine: str) -> None:
    fake = FakeTransport()

    async def serve(message: bytes) -> None:
        fake.send_to_client(message)
        await trio.lowlevel.checkpoint()

    steps = await _steps_per_audio_message(over(fake, ENGINES[engine]), serve)
    # The engine's reader, then the application's loop; through a reader task of ours it
    # was 3 (websockets) or 4 (trio-websocket, whose channel send is a schedule point).
    assert steps <= 2.0, steps


async def test_an_incoming_audio_message_costs_one_task_step_over_the_memory_socket() -> None:
    connector = MemoryConnector()
    peer: list[MessageSocket] = []

    async def serve(message: bytes) -> None:
        if not peer:
            peer.append((await connector.accept()).socket)
        await peer[0].send(message)

    # The sender's task plays the engine's reader: only the application's loop steps.
    steps = await _steps_per_audio_message(connector, serve)
    assert steps <= 1.0, steps


async def test_pull_requests_reach_the_servicer_in_the_same_step_as_the_audio_before_them() -> None:
    """Guarantee 2's side of it: a buffer_request parsed after audio is queued for the
    servicer at once, in the reader's step, not after the application has run."""
    fake = FakeTransport()
    incoming = IncomingAudio()
    vc = VoiceConnection(
        URL,
        "tok",
        None,
        SendAudioBuffer(48_000),
        lambda frame: None,
        incoming=incoming,
        connect=over(fake, ENGINES["websockets"]),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(vc.run)
        await trio.testing.wait_all_tasks_blocked()
        request = voice.encode_frame(voice.BufferRequest(960))
        fake.send_to_client(b"\x00" + PCM)
        fake.send_to_client(request)
        await trio.testing.wait_all_tasks_blocked()
        assert vc.servicer.owed_bytes == 960
        await vc.aclose()
        nursery.cancel_scope.cancel()
