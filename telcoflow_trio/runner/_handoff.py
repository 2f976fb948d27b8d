"""Call hand-off over a Redis stream (``coredis``, which runs on trio through anyio).

A front process claims calls and puts each NEW call's hand-off document on a stream
(:class:`HandoffFront`, or :func:`hand_off`); media workers in a consumer group serve them
(:func:`serve_handoffs`)::

    async with redis_client(url) as redis, tf.SessionManager(config) as sm:   # the front
        await sm.serve_calls(HandoffFront(redis, "calls"))

    await serve_handoffs(url, "calls", "media", "worker-1", handle_call)     # each worker

Every call is served once (its handler runs on one worker), and never twice. A worker
that dies before answering leaves the call to another; one that dies after answering
leaves it to no one (it is not NEW any more); one that dies in the instant between setting
the marker below and sending the answer leaves a call nobody answers. How:

- A worker reads an entry (``XREADGROUP``), opens the call's voice plane, and runs the
  handler. The entry stays pending until the handler returns, then it is acknowledged
  (``XACK``); while the handler runs the worker keeps the entry fresh (``XCLAIM ... JUSTID``
  resets its idle time), so only a dead worker's entries go idle.
- The first ``answer()`` (or ``connect()``) of a handed-off call first sets a marker for the
  call in Redis, ``SET <stream>:answered:<call id> NX``: only the worker that sets it may
  answer. The voice plane cannot say that a call was answered by a worker that died since
  (the server takes a new voice connection and a second answer), the marker can.
- A worker takes over entries idle for ``reclaim_idle`` seconds (``XAUTOCLAIM``). If the
  marker is set, the call is no longer NEW: acknowledged, logged, not served. If the voice
  plane says the call is over (HTTP 410), the same. If another voice connection still holds
  the call (409), the entry is left pending (its holder may be alive and acknowledge it).

The document carries the call's voice token: it never appears in a log line, a repr or an
exception message, here or in the SDK's hand-off code. (coredis's OpenTelemetry spans leave
command arguments out unless ``COREDIS_OTEL_CAPTURE_COMMAND_ARGS`` is set: do not set it.)
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final, get_args
from urllib.parse import urlsplit

import trio

try:
    import coredis
    import coredis.exceptions
except ImportError:  # pragma: no cover - the extra is not installed
    raise ImportError(
        "the Redis hand-off needs coredis 6 or later: pip install 'telcoflow-trio[redis]'"
    ) from None
from coredis import PureToken

from .._call import Call
from .._config import CallAudioConfig, Transport
from .._errors import WSSError
from ._errors import RunConfigError
from ._handoff_worker import DOCUMENT_FIELD, REDIS_ERRORS, Handler, Redis, Worker

__all__ = [
    "DEFAULT_MAXLEN",
    "DOCUMENT_FIELD",
    "HandoffError",
    "HandoffFront",
    "hand_off",
    "redis_client",
    "serve_handoffs",
]

logger = logging.getLogger(__name__)

DEFAULT_MAXLEN: Final = 10_000
"""The stream is trimmed (approximately) to this many entries on each ``XADD``."""
_SCHEMES: Final = ("redis", "rediss", "unix")
_UNUSABLE: Final = (
    coredis.exceptions.ConnectionError,
    coredis.exceptions.AuthenticationError,
    coredis.exceptions.AuthorizationError,
    OSError,
)
"""What a worker's first command may meet that no retry will mend."""


class HandoffError(Exception):
    """A hand-off document could not be put on the stream; the call was ended instead."""


# ── the Redis URL ─────────────────────────────────────────────────────────────────────────


def _redacted(url: str) -> str:
    """The URL without its password (and without a user name that might be one)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc="***@" + host).geturl()


def _url_problem(url: str) -> str | None:
    """What is wrong with a Redis URL, in a few words; None when it is usable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"it does not parse ({exc})"
    if parts.scheme not in _SCHEMES:
        return f"the scheme must be redis://, rediss:// or unix://, not {parts.scheme!r}"
    if parts.scheme == "unix":
        return None if parts.path else "a unix:// URL needs a socket path"
    if not parts.hostname:
        return "it names no host"
    if port == 0:
        return "port 0 is not a port to connect to"
    db = parts.path.strip("/")
    if db and not db.isdigit():
        return f"the path must be a database number, not {db!r}"
    return None


def redis_client(url: str, *, connect_timeout: float = 10.0) -> Redis:
    """A ``coredis`` client for ``url`` (``redis://[:password@]host[:port][/db]``,
    ``rediss://...`` or ``unix:///path``); use it as ``async with redis_client(url) as r:``.

    Raises :class:`RunConfigError` with one line naming what is wrong with the URL (a
    password in it is never repeated). Connecting happens on the first command.
    """
    if not isinstance(url, str):
        raise RunConfigError(f"the Redis URL must be a str, not {type(url).__name__}")
    problem = _url_problem(url)
    if problem is not None:
        raise RunConfigError(f"bad Redis URL {_redacted(url)}: {problem}")
    return coredis.Redis.from_url(url, connect_timeout=connect_timeout)


@asynccontextmanager
async def _opened(redis: str | Redis) -> AsyncIterator[Redis]:
    """A client given by the caller as is; one made from a URL, opened and closed here.

    coredis's pool runs a task group: an exception leaving its ``async with`` comes out
    wrapped in an exception group, so a single one is unwrapped to stay itself.
    """
    if not isinstance(redis, str):
        await trio.lowlevel.checkpoint()
        yield redis
        return
    client = redis_client(redis)
    try:
        async with client:
            yield client
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty str, got {type(value).__name__}")
    return value


def _check_maxlen(maxlen: object) -> int:
    if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
        raise ValueError(f"maxlen must be a positive int, got {maxlen!r}")
    return maxlen


# ── the front ─────────────────────────────────────────────────────────────────────────────


async def hand_off(
    call: Call,
    redis: Redis,
    stream: str,
    *,
    maxlen: int = DEFAULT_MAXLEN,
    ssl_context: ssl.SSLContext | None = None,
) -> str:
    """Put a NEW call's hand-off document on ``stream`` and return the entry id.

    The call object is inert afterwards (see :meth:`Call.to_json`). If the entry cannot be
    added, the call is taken back from its document and ended (over ``ssl_context`` for a
    wss:// voice URL; None: the system's CAs), so the caller is not left ringing, and
    :class:`HandoffError` is raised (its message never holds the document).
    """
    _check_name("stream", stream)
    _check_maxlen(maxlen)
    document = call.to_json()
    try:
        entry = await redis.xadd(
            stream,
            {DOCUMENT_FIELD: document},
            trim_strategy=PureToken.MAXLEN,
            trim_operator=PureToken.APPROXIMATELY,
            threshold=maxlen,
        )
    except REDIS_ERRORS as exc:
        reason = type(exc).__name__
        logger.warning("call %s: not put on stream %s (%s); ending it", call.id, stream, reason)
        await _take_back(document, call.audio_config, ssl_context)
        raise HandoffError(
            f"call {call.id} could not be put on stream {stream!r} ({reason}); it was ended"
        ) from None
    entry_id = entry.decode() if isinstance(entry, bytes) else str(entry)
    logger.info("call %s handed off as entry %s of %s", call.id, entry_id, stream)
    return entry_id


async def _take_back(document: str, audio: CallAudioConfig, tls: ssl.SSLContext | None) -> None:  # noqa: ASYNC910 (private; an error comes from awaited I/O)
    """Nobody will answer a call whose document was lost: end it from its document."""
    try:
        async with Call.from_json(document, audio, ssl_context=tls) as taken_back:
            await taken_back.disconnect()
    except WSSError as exc:
        logger.warning("a call taken back could not be ended (%s)", type(exc).__name__)


class HandoffFront:
    """The front's call handler: ``await sm.serve_calls(HandoffFront(redis, "calls"))``
    hands every claimed call, still NEW, to the workers reading ``stream`` (see
    :func:`hand_off`; ``ssl_context``: pass the manager's ``config.tls_context()`` if its
    voice servers need a CA of their own)."""

    def __init__(
        self,
        redis: Redis,
        stream: str,
        *,
        maxlen: int = DEFAULT_MAXLEN,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.redis = redis
        self.stream: str = _check_name("stream", stream)
        self.maxlen: int = _check_maxlen(maxlen)
        self.ssl_context = ssl_context

    def __repr__(self) -> str:
        return f"<HandoffFront stream={self.stream!r} maxlen={self.maxlen}>"

    async def __call__(self, call: Call) -> None:
        await hand_off(
            call, self.redis, self.stream, maxlen=self.maxlen, ssl_context=self.ssl_context
        )


async def serve_handoffs(
    redis: str | Redis,
    stream: str,
    group: str,
    consumer: str,
    handler: Handler,
    *,
    audio_config: CallAudioConfig | None = None,
    ssl_context: ssl.SSLContext | None = None,
    transport: Transport = "trio-websocket",
    max_calls: int = 100,
    reclaim_idle: float = 30.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the calls handed off on ``stream``, as ``consumer`` of the consumer ``group``
    (created if missing, from the stream's start): ``handler(call)`` for each, at most
    ``max_calls`` at once. Runs until cancelled.

    ``redis`` is a Redis URL (a bad one raises :class:`RunConfigError`) or a ``coredis``
    client the caller has opened. ``audio_config``, ``ssl_context`` and ``transport`` are
    this node's, as for :meth:`Call.from_json`. Entries pending for ``reclaim_idle``
    seconds (their worker died) are taken over, and served if their call is still NEW.
    With ``nursery.start`` it reports started once the group exists; a Redis it cannot
    connect or log in to at that point raises :class:`RunConfigError`.
    """
    _check_name("stream", stream)
    _check_name("group", group)
    _check_name("consumer", consumer)
    if not callable(handler):
        raise TypeError(f"handler must be an async function, got {type(handler).__name__}")
    if audio_config is not None and not isinstance(audio_config, CallAudioConfig):
        raise TypeError(
            f"audio_config must be a CallAudioConfig, got {type(audio_config).__name__}"
        )
    if transport not in get_args(Transport):
        # Checked here: Call.from_json would refuse every document for it, one by one.
        raise ValueError(f"transport must be one of {get_args(Transport)}, got {transport!r}")
    if isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < 1:
        raise ValueError(f"max_calls must be a positive int, got {max_calls!r}")
    if isinstance(reclaim_idle, bool) or not isinstance(reclaim_idle, int | float):
        raise TypeError(f"reclaim_idle must be a number, got {type(reclaim_idle).__name__}")
    if not 0 < reclaim_idle < float("inf"):
        raise ValueError(f"reclaim_idle must be positive seconds, got {reclaim_idle!r}")
    async with _opened(redis) as client:
        worker = Worker(
            client,
            stream,
            group,
            consumer,
            handler,
            audio=audio_config,
            tls=ssl_context,
            transport=transport,
            max_calls=max_calls,
            reclaim_idle=float(reclaim_idle),
        )
        try:
            await worker.ensure_group()
        except _UNUSABLE as exc:
            # A location is host:port or a socket path: nothing secret in it.
            where = _redacted(redis) if isinstance(redis, str) else client.connection_pool.location
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise RunConfigError(f"cannot use Redis at {where}: {reason}") from None
        await worker.run(task_status)
