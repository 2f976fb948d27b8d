"""Fakes for the voice connection side of the audio seam."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable

import trio

from telcoflow_trio._errors import WSSCallClosedError
from telcoflow_trio._results import CommandResult
from telcoflow_trio.audio import PullServicer, SendAudioBuffer
from telcoflow_trio.protocol.voice import BufferRequest

INTERRUPT = "agent.interrupt"


class FakeConnection:
    """Records frames and interrupts in one log, in wire order.

    With ``hold`` set, each frame write blocks until :meth:`release`, so tests can put a
    write in flight. ``hold_interrupt`` keeps ``agent.interrupt`` from being written until
    :meth:`release_interrupt`.
    """

    def __init__(self) -> None:
        self.log: list[bytes | str] = []
        self.hold = False
        self.hold_interrupt = False
        self.inflight: bytes | None = None
        self._release = trio.Event()
        self._release_interrupt = trio.Event()
        self.interrupt_result = CommandResult(True)
        self.interrupt_error: BaseException | None = None

    @property
    def frames(self) -> list[bytes]:
        return [e for e in self.log if isinstance(e, bytes)]

    @property
    def payload(self) -> bytes:
        """Every PCM byte sent so far, channel bytes stripped."""
        return b"".join(f[1:] for f in self.frames)

    async def send_frame(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        self.inflight = data
        try:
            if self.hold:
                await self._release.wait()
                self._release = trio.Event()
            else:
                await trio.lowlevel.checkpoint()
        finally:
            self.inflight = None
        self.log.append(data)

    def release(self) -> None:
        self._release.set()

    # The synchronous write (a FrameWriter), used when make(..., at_once=True).
    writes_now = 0
    gone = False
    """write_now raises WSSCallClosedError (the socket closed under it)."""

    def ready(self) -> bool:
        # A held write, or one in flight, keeps the servicer on its task, as a busy socket.
        return not self.hold and self.inflight is None

    def write_now(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        assert self.ready()
        if self.gone:
            raise WSSCallClosedError("the call's voice connection is closed")
        self.writes_now += 1
        self.log.append(data)

    async def send_interrupt(self, written: Callable[[], None]) -> CommandResult:
        if self.hold_interrupt:
            await self._release_interrupt.wait()
        if self.interrupt_error is not None:
            raise self.interrupt_error
        self.log.append(INTERRUPT)
        written()
        await trio.lowlevel.checkpoint()
        return self.interrupt_result

    def release_interrupt(self) -> None:
        self._release_interrupt.set()


def make(
    capacity: int = 4096, *, interrupt: bool = True, at_once: bool = False
) -> tuple[SendAudioBuffer, PullServicer, FakeConnection]:
    """A buffer, its servicer and a fake connection; ``at_once``: the connection is also
    the servicer's FrameWriter, so requests that can be are answered at once."""
    buf = SendAudioBuffer(capacity)
    conn = FakeConnection()
    servicer = PullServicer(
        buf,
        send_frame=conn.send_frame,
        send_interrupt=conn.send_interrupt if interrupt else None,
        writer=conn if at_once else None,
    )
    return buf, servicer, conn


def req(n: int, pref: int = 0, channel: int = 0) -> BufferRequest:
    return BufferRequest(n, pref, channel)


def pcm(n: int, seed: int = 0) -> bytes:
    """``n`` bytes that differ from another seed's at almost every position."""
    return bytes((seed * 131 + i * 7 + (i >> 8)) & 0xFF for i in range(n))


TEST_DEADLINE = 20.0
"""Real seconds; every test here takes milliseconds, so this only turns a hang into a failure."""


def with_deadlines(namespace: dict[str, object]) -> None:
    """Wrap each async ``test_*`` function of a module in ``trio.fail_after``."""
    for name, fn in list(namespace.items()):
        if name.startswith("test_") and inspect.iscoroutinefunction(fn):
            namespace[name] = _deadline(fn)


def _deadline(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(fn)
    async def wrapper(*args: object, **kwargs: object) -> None:
        with trio.fail_after(TEST_DEADLINE):
            await fn(*args, **kwargs)

    return wrapper
