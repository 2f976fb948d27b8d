"""The worker side of the Redis hand-off (see :mod:`._handoff`): reading the consumer
group, taking over idle entries, and serving one entry's call exactly once."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, TypeAlias

import coredis
import coredis.exceptions
import trio
from coredis import PureToken
from coredis.response.types import StreamEntry

from .._call import Call
from .._config import CallAudioConfig, Transport
from .._errors import WSSCallClosedError, WSSCallStateError, WSSError, WSSSessionBusy
from .._results import CommandResult

__all__ = ["ANSWERED_TTL", "DOCUMENT_FIELD", "REDIS_ERRORS", "Handler", "Redis", "Worker"]

logger = logging.getLogger(__name__)

Redis: TypeAlias = "coredis.Redis[bytes]"
Handler: TypeAlias = Callable[[Call], Awaitable[None]]

DOCUMENT_FIELD: Final = "document"
"""The stream entry's field that holds the hand-off document."""
ANSWERED_TTL: Final = 24 * 3600
"""How long the answered marker of a call is kept (seconds): longer than any call."""
REDIS_ERRORS: Final = (coredis.exceptions.RedisError, OSError)


def answered_key(stream: str, call_id: str) -> str:
    """The key of a call's answered marker."""
    return f"{stream}:answered:{call_id}"


_BLOCK_MS: Final = 2000
"""How long one ``XREADGROUP`` waits for an entry (a cancellation ends it at once)."""
_RETRY_AFTER: Final = 1.0
"""How long a reader waits after Redis failed before it asks again."""


class _HandoffCall(Call):
    """A call read from the stream: its first answer (or connect) sets the call's answered
    marker in Redis first, and is refused if another worker set it."""

    _mark: Callable[[], Awaitable[bool]] | None = None
    _marked = False

    async def answer(self) -> CommandResult:
        await self._take()
        return await super().answer()

    async def connect(self, ring_time_seconds: int = 60) -> CommandResult:
        await self._take()
        return await super().connect(ring_time_seconds)

    async def _take(self) -> None:
        if self._marked or self._mark is None:
            await trio.lowlevel.checkpoint()
            return
        if not await self._mark():
            raise WSSCallStateError(f"call {self.id} was answered by another worker")
        self._marked = True


async def _attach(call: Call) -> None:
    """Open the call's voice plane: what the server says to that tells whether it is over
    (410) or held by another connection (409)."""
    stream = call.audio_stream()
    try:
        await stream.open()
    finally:
        await stream.aclose()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Worker:
    """One consumer of the group: a reader, a reclaimer, and a task per entry it serves,
    at most ``max_calls`` at once (a slot is taken before an entry is read or claimed)."""

    def __init__(
        self,
        redis: Redis,
        stream: str,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        audio: CallAudioConfig | None,
        tls: ssl.SSLContext | None,
        transport: Transport,
        max_calls: int,
        reclaim_idle: float,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.audio = audio
        self.tls = tls
        self.transport: Transport = transport
        self.reclaim_idle = reclaim_idle
        self.slots = trio.Semaphore(max_calls)
        self.nursery: trio.Nursery | None = None

    async def ensure_group(self) -> None:
        try:
            # From the stream's start: entries a front added before any worker ran count.
            await self.redis.xgroup_create(self.stream, self.group, identifier="0", mkstream=True)
        except coredis.exceptions.StreamDuplicateConsumerGroupError:
            await trio.lowlevel.checkpoint()  # another worker made it: ours too

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        """Read and take over entries until cancelled (the group exists already)."""
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            nursery.start_soon(self._read_loop)
            nursery.start_soon(self._reclaim_loop)
            task_status.started()

    def _spawn(self, entry: StreamEntry) -> None:
        assert self.nursery is not None
        self.nursery.start_soon(self._serve, entry, name=f"hand-off entry {entry.identifier!r}")

    async def _read_loop(self) -> None:
        key = self.stream.encode()
        while True:
            await self.slots.acquire()
            spawned = False
            try:
                reply = await self.redis.xreadgroup(
                    self.group, self.consumer, {self.stream: ">"}, count=1, block=_BLOCK_MS
                )
                for entry in (reply or {}).get(key, ()):
                    self._spawn(entry)
                    spawned = True
            except coredis.exceptions.ResponseError as exc:
                await self._failed("reading", exc)
                if "NOGROUP" in str(exc):
                    await self._recreate_group()
            except REDIS_ERRORS as exc:
                await self._failed("reading", exc)
            finally:
                if not spawned:
                    self.slots.release()

    async def _recreate_group(self) -> None:
        try:
            await self.ensure_group()
        except REDIS_ERRORS as exc:
            await self._failed("recreating the group", exc)

    async def _failed(self, doing: str, exc: BaseException) -> None:
        logger.warning(
            "stream %s, consumer %s: Redis failed while %s (%s: %s); retrying in %g s",
            self.stream,
            self.consumer,
            doing,
            type(exc).__name__,
            exc,
            _RETRY_AFTER,
        )
        await trio.sleep(_RETRY_AFTER)

    async def _reclaim_loop(self) -> None:
        idle_ms = max(1, round(self.reclaim_idle * 1000))
        cursor = "0-0"
        while True:
            await trio.sleep(self.reclaim_idle / 2)
            while self.slots.value > 0:
                await self.slots.acquire()
                spawned = False
                try:
                    reply = await self.redis.xautoclaim(
                        self.stream, self.group, self.consumer, idle_ms, cursor, count=1
                    )
                    cursor = _text(reply[0])
                    for gone in reply[2] if len(reply) > 2 else ():
                        logger.warning(
                            "entry %s of %s was trimmed from the stream before it was served",
                            _text(gone),
                            self.stream,
                        )
                    for entry in reply[1]:
                        if isinstance(entry, StreamEntry):
                            logger.info(
                                "entry %s of %s: taken over from a worker idle %g s or more",
                                _text(entry.identifier),
                                self.stream,
                                self.reclaim_idle,
                            )
                            self._spawn(entry)
                            spawned = True
                except REDIS_ERRORS as exc:
                    await self._failed("reclaiming", exc)
                finally:
                    if not spawned:
                        self.slots.release()
                if not spawned and cursor == "0-0":
                    break

    async def _serve(self, entry: StreamEntry) -> None:  # noqa: ASYNC910 (private; an error comes from awaited I/O)
        entry_id = _text(entry.identifier)
        try:
            await self._serve_entry(entry_id, entry.field_values)
        except REDIS_ERRORS as exc:
            logger.warning(
                "entry %s of %s: Redis failed (%s); the entry stays pending",
                entry_id,
                self.stream,
                type(exc).__name__,
            )
        except Exception:
            # One entry's failure must not stop the worker's other calls (nor its reading).
            logger.exception(
                "entry %s of %s: serving it failed; it stays pending", entry_id, self.stream
            )
        finally:
            self.slots.release()

    async def _ack(self, entry_id: str) -> None:
        await self.redis.xack(self.stream, self.group, [entry_id])

    async def _serve_entry(self, entry_id: str, fields: Mapping[str | bytes, str | bytes]) -> None:
        where = f"entry {entry_id} of {self.stream}"
        document = fields.get(DOCUMENT_FIELD.encode())
        if document is None:
            logger.warning("%s has no %r field; acknowledged, dropped", where, DOCUMENT_FIELD)
            await self._ack(entry_id)
            return
        try:
            call = _HandoffCall.from_json(
                document, self.audio, ssl_context=self.tls, transport=self.transport
            )
        except ValueError as exc:  # the SDK's reason names the field, never the token
            logger.warning("%s: %s; acknowledged, dropped", where, exc)
            await self._ack(entry_id)
            return
        assert isinstance(call, _HandoffCall)
        key = answered_key(self.stream, call.id)
        if await self.redis.exists([key]):
            logger.info("call %s (%s): answered before; acknowledged, not served", call.id, where)
            await self._ack(entry_id)
            return
        call._mark = lambda: self._set_marker(key, entry_id)
        async with call:
            try:
                await _attach(call)
            except WSSCallClosedError:
                logger.info("call %s (%s): over before it was served; acknowledged", call.id, where)
                await self._ack(entry_id)
                return
            except WSSSessionBusy:
                logger.info("call %s (%s): held by another voice connection; left", call.id, where)
                return
            except WSSError as exc:
                logger.warning(
                    "call %s (%s): its voice plane did not open (%s: %s); acknowledged",
                    call.id,
                    where,
                    type(exc).__name__,
                    exc,
                )
                await self._ack(entry_id)
                return
            logger.info("call %s (%s): serving it as %s", call.id, where, self.consumer)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keep_fresh, entry_id)
                try:
                    await self.handler(call)
                except Exception:
                    logger.exception("call %s: the hand-off handler failed", call.id)
                nursery.cancel_scope.cancel()
        await self._ack(entry_id)
        logger.info("call %s (%s): served; acknowledged", call.id, where)

    async def _set_marker(self, key: str, entry_id: str) -> bool:
        mine = f"{self.consumer} {entry_id}"
        if await self.redis.set(key, mine, condition=PureToken.NX, ex=ANSWERED_TTL):
            return True
        # Set already: by this worker (a second answer) or by another one.
        return await self.redis.get(key) == mine.encode()

    async def _keep_fresh(self, entry_id: str) -> None:
        """While the handler runs, reset the entry's idle time: only a dead worker's entries
        go idle long enough to be taken over."""
        while True:
            # At once first: reading and attaching may have taken much of reclaim_idle.
            try:
                await self.redis.xclaim(
                    self.stream, self.group, self.consumer, 0, [entry_id], justid=True
                )
            except REDIS_ERRORS as exc:
                logger.warning(
                    "entry %s of %s: could not refresh it (%s)",
                    entry_id,
                    self.stream,
                    type(exc).__name__,
                )
            await trio.sleep(self.reclaim_idle / 3)
