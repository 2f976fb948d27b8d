"""A light Telcoflow server for the call benchmark: many echo calls, little CPU.

The in-process sandbox is built for tests (a frame log, a task per call and per plane,
trio-websocket) and spends 8-11 ms of CPU per call-second, more than the agents it drives.
This process speaks the part of the protocol the bench agents use, and nothing more:

- control plane: ``setup`` / ``setup.done``, ``session.notify`` broadcast, the
  ``session.open`` claim race, ``session.ready`` then ``call.in``, ``session.closed``;
- voice plane: the caller's PCM in 20 ms frames, ``buffer_request`` pulls (one pull
  interval's worth every interval, after a playout lead), ``command_response`` for every
  command, ``call_event`` ``call.terminated`` and a clean close on hang-up;
- REST: ``GET /public/v1/sessions`` and ``POST /public/v1/sessions/{id}/close``.

How it stays cheap: plain non-blocking sockets woken by trio (one listening socket, one
reader task per connection and no other per-call task; a plain ``send`` costs a fifth of
trio's ``SocketStream.send_all``, a checkpoint each); websockets' sans-I/O protocol
for the handshake and for parsing what clients send (5 µs per 4.8 kB masked frame here,
wsproto 23 µs); every frame the server sends often (each caller frame of a looped
pattern, each caller frame followed by a pull, the pull alone) encoded to WebSocket bytes
once at start; ONE timer task that every tick writes each live call its caller frame and,
every pull interval, its pull request, in one ``send`` per call (the calls spread over a
few phases of the tick, so agents do not get every frame in one burst). Agent audio is counted
and compared with what was spoken (a ``startswith`` on the pattern), never decoded; only
text frames are parsed as JSON.

It measures its own saturation over a window the driver opens and closes: the timer's
lag (how late each tick ran), pull fill time (from a ``buffer_request`` to the agent
audio that completes it), underruns (pulls not filled within one pull interval, counted
as bench_calls counts them at the sandbox) and its own CPU per connection-second.

Driven through stdin/stdout, one JSON object a line. At start it prints
``{"url", "apiKey", "connectorUuid", "pid"}``; then each command line gets one reply
line: ``{"op": "status"}``, ``{"op": "place", "n": N}``, ``{"op": "window"}`` (start
measuring), ``{"op": "report"}`` (stop and return the window's figures), ``{"op":
"calls"}`` (per-call counters), ``{"op": "hangup"}``, ``{"op": "quit"}``. It exits when
stdin closes, so a dead driver never leaves it running. :class:`LoadGen` is the driver's
side (bench_calls.py and the tests use it).

With ``--certfile``/``--keyfile`` it serves TLS (``wss://``, as production does): the same
non-blocking sockets wrapped in :class:`ssl.SSLSocket`, the handshake driven by trio's
readiness waits, a write the TLS layer cannot take yet queued as one the kernel would not.

    python bench/loadgen.py --port 0      # prints its URL, then reads commands
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import json
import logging
import math
import os
import random
import re
import resource
import secrets
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any, Final

import trio
from trio.lowlevel import wait_readable, wait_writable
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from telcoflow_trio import ChannelType, CloseReason, SessionActivityType
from telcoflow_trio.protocol import control, voice

logger = logging.getLogger(__name__)

CONTROL_PATH: Final = "/v1/agent/session-manager"
VOICE_PREFIX: Final = "/v1/voice/"
SESSIONS_PATH: Final = "/public/v1/sessions"
MAX_HEAD: Final = 64 * 1024
HEAD_TIMEOUT: Final = 10.0
CLOSE_TIMEOUT: Final = 2.0
RECV_BYTES: Final = 64 * 1024
"""Below malloc's mmap threshold: a larger buffer costs an mmap and page faults per recv
(22 µs against 5 µs per 4.8 kB message, measured)."""
MAX_BACKLOG: Final = 8 * 1024 * 1024
"""Bytes queued for a client that does not read before it is cut off as dead."""
PATTERN_SECONDS: Final = 2.0
"""The caller repeats this much random PCM; calls start at different points of it."""
SCRIPT: Final = Path(__file__).resolve()
_UPGRADE = re.compile(rb"(?im)^upgrade:[ \t]*websocket[ \t]*\r?$")


def _frame(opcode: Opcode, payload: bytes) -> bytes:
    """A server frame's bytes on the wire (unmasked, unfragmented)."""
    return Frame(opcode, payload).serialize(mask=False)


def _text(data: str) -> bytes:
    return _frame(Opcode.TEXT, data.encode())


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def _ms(value: float | None) -> float | None:
    return None if value is None else 1000 * value


# ── what is sent often, encoded once ──────────────────────────────────────────────────


class Frames:
    """Every frame the timer sends for one sample rate, as WebSocket bytes.

    The caller says a random pattern of ``PATTERN_SECONDS`` over and over; ``caller[k]``
    is its k-th frame, ``caller_pull[k]`` the same frame followed by a pull request, so
    a tick costs one ``send`` per call.
    """

    def __init__(self, rate: int, tick: float, pull_interval: float, prefer: int | None, seed: int):
        self.bytes_per_second = rate * 2
        self.frame_bytes = round(rate * tick) * 2
        self.pull_bytes = round(rate * pull_interval) * 2
        count = max(1, round(PATTERN_SECONDS / tick))
        pcm = random.Random(seed).randbytes(self.frame_bytes * count)
        self.period = len(pcm)
        self.doubled = pcm + pcm  # any stretch of at most one period, from any offset
        self.count = count
        prefer = self.frame_bytes if prefer is None else prefer
        pull = _text(voice.encode_frame(voice.BufferRequest(self.pull_bytes, prefer, 0)))
        fb = self.frame_bytes
        self.caller = [
            _frame(Opcode.BINARY, b"\x00" + pcm[i * fb : (i + 1) * fb]) for i in range(count)
        ]
        self.caller_pull = [f + pull for f in self.caller]

    def matches(self, position: int, pcm: memoryview) -> bool:
        """Whether ``pcm`` is what the caller said from byte ``position`` of its speech."""
        period = self.period
        start = position % period
        if len(pcm) <= period:
            return self.doubled.startswith(pcm, start)
        return all(
            self.doubled.startswith(pcm[i : i + period], (start + i) % period)
            for i in range(0, len(pcm), period)
        )


# ── connections ───────────────────────────────────────────────────────────────────────


WOULD_BLOCK: Final = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
"""What a non-blocking ``send`` or ``recv`` raises when it must wait: the kernel's
buffer, or (TLS) a record not yet whole, both retried with the same bytes."""


async def recv_some(sock: socket.socket) -> bytes:
    """The next bytes from ``sock`` (empty at EOF), waiting for them as needed. Over TLS
    what one record decrypted beyond the last read is taken before waiting on the socket."""
    while True:
        if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            await wait_readable(sock)
        try:
            return sock.recv(RECV_BYTES)
        except WOULD_BLOCK:
            continue


async def tls_handshake(context: ssl.SSLContext, sock: socket.socket) -> ssl.SSLSocket:
    """``sock`` (non-blocking) wrapped as the server side of a TLS connection, handshaken."""
    tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    while True:
        try:
            tls.do_handshake()
            return tls
        except ssl.SSLWantReadError:
            await wait_readable(tls)
        except ssl.SSLWantWriteError:
            await wait_writable(tls)


class Backlogs:
    """The connections whose writes wait for the kernel (the timer flushes them every
    tick), and how much may wait on one before its client is taken for dead."""

    def __init__(self, limit: int = MAX_BACKLOG) -> None:
        self.conns: set[Conn] = set()
        self.limit = limit
        self.dropped = 0
        """Clients dropped for not reading."""


class Conn:
    """One accepted socket: non-blocking writes, whole frames in order, never cut."""

    __slots__ = (
        "backlog",
        "backlog_bytes",
        "backlogged",
        "closing",
        "dead",
        "proto",
        "scope",
        "sock",
    )

    def __init__(self, sock: socket.socket, proto: ServerProtocol, backlogged: Backlogs) -> None:
        self.sock = sock
        self.proto = proto
        self.backlogged = backlogged
        self.backlog: deque[bytes | memoryview] = deque()
        self.backlog_bytes = 0
        self.closing = False
        self.dead = False
        self.scope = trio.CancelScope()

    def write(self, data: bytes) -> bool:
        """Send ``data`` now, or queue it behind what the kernel would not take yet.

        Returns True when this write started a backlog (the timer flushes it next tick)."""
        if self.dead:
            return False
        if self.backlog:
            self.backlog.append(data)
            self.backlog_bytes += len(data)
            if self.backlog_bytes > self.backlogged.limit:
                logger.warning("a client stopped reading; dropping its connection")
                self.backlogged.dropped += 1
                self._drop()
            return False
        try:
            sent = self.sock.send(data)
        except WOULD_BLOCK:
            sent = 0
        except OSError:
            self._drop()
            return False
        if sent == len(data):
            return False
        self.backlog.append(memoryview(data)[sent:])
        self.backlog_bytes += len(data) - sent
        self.backlogged.conns.add(self)
        return True

    def _drop(self) -> None:
        """Give up on the client: its reader wakes up to an empty read and ends."""
        self.dead = True
        self.backlog.clear()
        self.backlog_bytes = 0
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def flush(self) -> bool:
        """Send what waits; True when all of it went."""
        backlog = self.backlog
        while backlog:
            head = backlog[0]
            try:
                sent = self.sock.send(head)
            except WOULD_BLOCK:
                return False
            except OSError:
                self._drop()
                return True
            self.backlog_bytes -= sent
            if sent < len(head):
                backlog[0] = memoryview(head)[sent:]
                return False
            backlog.popleft()
        return True

    def send(self, data: bytes) -> bool:
        """A data frame; dropped once the close handshake has begun."""
        if self.closing:
            return False
        return self.write(data)

    def close(self) -> None:
        """Begin the close handshake; the reader gives the client CLOSE_TIMEOUT to answer."""
        if self.closing:
            return
        self.closing = True
        self.proto.send_close(1000)
        for chunk in self.proto.data_to_send():
            if chunk:
                self.write(chunk)
        self.scope.deadline = trio.current_time() + CLOSE_TIMEOUT


class ControlConn(Conn):
    __slots__ = ("rate", "ready", "sm_ws_id")

    def __init__(self, sock: socket.socket, proto: ServerProtocol, backlogged: Backlogs) -> None:
        super().__init__(sock, proto, backlogged)
        self.sm_ws_id = "smws-" + secrets.token_hex(8)
        self.rate = 16000
        self.ready = False


class VoiceConn(Conn):
    __slots__ = ("call",)

    def __init__(
        self, sock: socket.socket, proto: ServerProtocol, backlogged: Backlogs, call: Call
    ) -> None:
        super().__init__(sock, proto, backlogged)
        self.call = call


class Call:
    """A TELCO session and its call (one each here), with the counters of its audio."""

    __slots__ = (
        "bound",
        "call_id",
        "caller",
        "claimed",
        "delivered",
        "ended",
        "excess",
        "frames",
        "heard",
        "mismatches",
        "offset",
        "over_echo",
        "owed",
        "pending",
        "requested",
        "session_id",
        "slot",
        "spoken",
        "start_tick",
        "token",
        "voice",
    )

    def __init__(self, caller: str, offset: int, slot: int) -> None:
        self.session_id = "sess-" + secrets.token_hex(8)
        self.call_id = "call-" + secrets.token_hex(8)
        self.token = secrets.token_urlsafe(18)
        self.caller = caller
        self.offset = offset
        self.slot = slot
        """Which of the timer's phases this call's frames go out in."""
        self.bound: ControlConn | None = None
        self.claimed = False
        self.delivered = False
        self.ended = False
        self.voice: VoiceConn | None = None
        self.frames: Frames | None = None
        self.start_tick = -1
        """The timer step of its first frame once live (always in its slot's phase)."""
        self.spoken = 0
        self.heard = 0
        self.requested = 0
        self.owed = 0
        self.excess = 0
        self.mismatches = 0
        self.over_echo = 0
        self.pending: deque[tuple[int, float, bool]] = deque()
        """(end of the pull in requested bytes, monotonic time sent, counted)"""

    def counters(self) -> dict[str, Any]:
        return {
            "callId": self.call_id,
            "sessionId": self.session_id,
            "live": self.start_tick >= 0 and not self.ended,
            "ended": self.ended,
            "spokenBytes": self.spoken,
            "heardBytes": self.heard,
            "requestedBytes": self.requested,
            "excessBytes": self.excess,
            "mismatchedFrames": self.mismatches,
            "overEchoBytes": self.over_echo,
        }


class Window:
    """What is measured between the driver's ``window`` and ``report``."""

    def __init__(self) -> None:
        self.open = False
        self.started = time.monotonic()
        self.cpu0 = time.process_time()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.user0, self.system0 = usage.ru_utime, usage.ru_stime
        self.lags: list[float] = []
        self.fills: list[float] = []
        self.connection_ticks = 0
        self.pulls = 0
        self.pulls_counted = 0
        self.underruns = 0
        self.frames_out = 0
        self.audio_frames_in = 0
        self.audio_bytes_in = 0
        self.text_frames_in = 0
        self.commands: dict[str, int] = {}
        self.stalls = 0


# ── the server ────────────────────────────────────────────────────────────────────────


class Server:
    def __init__(self, args: argparse.Namespace) -> None:
        self.api_key: str = args.api_key or "sk-loadgen-" + secrets.token_urlsafe(18)
        self.connector_uuid: str = args.connector_uuid or str(uuid.uuid4())
        self.tick: float = args.tick
        self.pull_interval: float = args.pull_interval
        self.pull_every = round(args.pull_interval / args.tick)
        if self.pull_every < 1 or not math.isclose(self.pull_every * args.tick, args.pull_interval):
            raise SystemExit("--pull-interval must be a whole number of ticks")
        self.lead_ticks = round(args.lead / args.tick)
        self.phases: int = args.phases
        if self.phases < 1:
            raise SystemExit("--phases must be at least 1")
        self.ready_margin: float = args.ready_margin
        self.prefer: int | None = args.prefer
        self.seed: int = args.seed
        self.verify: bool = not args.no_verify
        self.tls: ssl.SSLContext | None = None
        if args.certfile is not None:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(args.certfile, args.keyfile)
        self.url = ""
        self.frames: dict[int, Frames] = {}
        self.calls: dict[str, Call] = {}
        self.sessions: dict[str, Call] = {}
        self.controls: list[ControlConn] = []
        self.live: dict[str, Call] = {}
        self.slots: list[dict[str, Call]] = [{} for _ in range(self.phases)]
        """The live calls by phase: each timer step serves one phase."""
        self.backlogged = Backlogs(args.max_backlog)
        self.sndbuf: int = args.sndbuf
        self.ticks = 0
        self.placed = 0
        self.window = Window()
        self.started_cpu = time.process_time()
        self.started = time.monotonic()

    def frames_for(self, rate: int) -> Frames:
        found = self.frames.get(rate)
        if found is None:
            found = Frames(rate, self.tick, self.pull_interval, self.prefer, self.seed)
            self.frames[rate] = found
        return found

    def _write(self, conn: Conn, data: bytes) -> None:
        if conn.send(data):
            self.window.stalls += 1

    # ── the timer: every call's caller frame and pull, one send each ──────────────

    async def timer(self) -> None:
        # Calls are spread over ``phases`` phases of a tick, as calls that went live at
        # different moments would be: a server that sent every call's frame at the same
        # instant would hand agents bursts, which they serve more cheaply than real traffic.
        phases = self.phases
        step = self.tick / phases
        start = trio.current_time()
        n = 0
        while True:
            due = start + n * step
            await trio.sleep_until(due)
            now = trio.current_time()
            win = self.window
            measuring = win.open
            if measuring:
                win.lags.append(now - due)
            self.ticks = n
            waiting = self.backlogged.conns
            if waiting:
                for conn in list(waiting):
                    if conn.flush() or conn.dead:
                        waiting.discard(conn)
            margin = self.ready_margin
            lead = self.lead_ticks
            every = self.pull_every
            sent = 0
            for call in self.slots[n % phases].values():
                vc = call.voice
                frames = call.frames
                if vc is None or vc.closing or frames is None:
                    continue
                k = (n - call.start_tick) // phases
                if k < 0:
                    continue
                index = (call.offset + k) % frames.count
                p = k - lead
                call.spoken += frames.frame_bytes
                if p >= 0 and p % every == 0:
                    call.requested += frames.pull_bytes
                    call.owed += frames.pull_bytes
                    # Counted only if the caller spoke this pull's audio well before: the
                    # agent had it, or should have.
                    counted = (
                        measuring
                        and call.spoken - call.requested >= margin * frames.bytes_per_second
                    )
                    # Timed per call: with hundreds of calls a tick's writes take a while.
                    call.pending.append((call.requested, trio.current_time(), counted))
                    data = frames.caller_pull[index]
                    if measuring:
                        win.pulls += 1
                        win.pulls_counted += counted
                else:
                    data = frames.caller[index]
                if vc.write(data):
                    win.stalls += 1
                sent += 1
            if measuring:
                win.frames_out += sent
                win.connection_ticks += sent
            n += 1

    # ── accepting ─────────────────────────────────────────────────────────────────

    async def serve(self, listener: socket.socket, task_status: trio.TaskStatus[None]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.timer)
            task_status.started()
            while True:
                await wait_readable(listener)
                while True:
                    try:
                        sock, _ = listener.accept()
                    except BlockingIOError:
                        break
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if self.sndbuf:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
                    nursery.start_soon(self.connection, sock)

    async def connection(self, sock: socket.socket) -> None:
        conn: Conn | None = None
        try:
            with trio.fail_after(HEAD_TIMEOUT):
                if self.tls is not None:
                    sock = await tls_handshake(self.tls, sock)
                head = await self._read_head(sock)
            if head is None:
                return
            if not _UPGRADE.search(head.split(b"\r\n\r\n", 1)[0]):
                await self._http(sock, head)
                return
            proto = ServerProtocol(max_size=None)
            proto.receive_data(head)
            events = proto.events_received()
            if not events or not isinstance(events[0], Request):
                return
            conn = self._route(sock, proto, events[0])
            # A refusal is a few hundred bytes on a fresh socket: the kernel takes them whole.
            writer = conn if conn is not None else Conn(sock, proto, self.backlogged)
            for chunk in proto.data_to_send():
                if chunk:
                    writer.write(chunk)
            if conn is None:
                return
            await self._pump(conn)
        except (OSError, trio.TooSlowError) as exc:  # ssl.SSLError too: a failed handshake
            logger.debug("connection ended: %r", exc)
        except Exception:
            # A frame the generator did not expect ends its connection, not the benchmark.
            logger.exception("connection failed")
        finally:
            if conn is not None:
                conn.dead = True
                self._lost(conn)
            sock.close()

    async def _read_head(self, sock: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_HEAD:
                return None
            more = await recv_some(sock)
            if not more:
                return None
            data += more
        return data

    def _route(self, sock: socket.socket, proto: ServerProtocol, req: Request) -> Conn | None:
        path = req.path.split("?", 1)[0]
        headers = req.headers
        if path == CONTROL_PATH:
            if not self._authorised(headers):
                proto.send_response(proto.reject(401, "Unauthorized: invalid API key\n"))
                return None
            response = proto.accept(req)
            proto.send_response(response)
            ok = response.status_code == 101
            return ControlConn(sock, proto, self.backlogged) if ok else None
        if path.startswith(VOICE_PREFIX):
            call = self.calls.get(path[len(VOICE_PREFIX) :])
            bearer = headers.get("Authorization", "")
            if call is None or not secrets.compare_digest(bearer, "Bearer " + call.token):
                proto.send_response(proto.reject(401, "Unauthorized: invalid voice token\n"))
                return None
            if call.voice is not None or call.ended:
                proto.send_response(proto.reject(409, "Conflict: no voice connection now\n"))
                return None
            response = proto.accept(req)
            proto.send_response(response)
            if response.status_code != 101:
                return None
            conn = VoiceConn(sock, proto, self.backlogged, call)
            call.voice = conn
            return conn
        proto.send_response(proto.reject(404, "no WebSocket endpoint at this path\n"))
        return None

    def _authorised(self, headers: Headers) -> bool:
        key = headers.get("x-api-key", "")
        connector = headers.get("x-connector-uuid", "")
        return secrets.compare_digest(key, self.api_key) and secrets.compare_digest(
            connector, self.connector_uuid
        )

    async def _pump(self, conn: Conn) -> None:
        sock, proto = conn.sock, conn.proto
        handle: Callable[[Frame], None]
        if isinstance(conn, VoiceConn):
            handle = functools.partial(self._voice_frame, conn)
        else:
            assert isinstance(conn, ControlConn)
            handle = functools.partial(self._control_frame, conn)
        fragments: list[bytes] = []
        opcode = Opcode.CONT
        with conn.scope:
            while not conn.dead:
                data = await recv_some(sock)
                if data:
                    proto.receive_data(data)
                else:
                    proto.receive_eof()
                for event in proto.events_received():
                    if not isinstance(event, Frame):
                        continue
                    op = event.opcode
                    if op is Opcode.CONT:
                        fragments.append(bytes(event.data))
                        if not event.fin:
                            continue
                        event = Frame(opcode, b"".join(fragments))
                        fragments.clear()
                    elif op is Opcode.TEXT or op is Opcode.BINARY:
                        if not event.fin:
                            opcode = op
                            fragments.append(bytes(event.data))
                            continue
                    else:
                        continue  # ping (answered by the protocol), pong, close
                    handle(event)
                out = proto.data_to_send()
                done = not data
                for chunk in out:
                    if chunk:
                        conn.write(chunk)
                    else:
                        done = True  # the close handshake is over: the server hangs up
                if done or conn.dead:
                    return

    def _lost(self, conn: Conn) -> None:
        self.backlogged.conns.discard(conn)
        if isinstance(conn, VoiceConn):
            call = conn.call
            if call.voice is conn:
                # The call stays up (the agent may reconnect), but nobody hears it now.
                call.voice = None
            return
        if isinstance(conn, ControlConn):
            if conn in self.controls:
                self.controls.remove(conn)
            for call in self.sessions.values():
                if call.bound is conn:
                    call.bound = None
                    call.delivered = False  # whoever claims it next gets call.in again
                    if not call.ended:
                        self._notify(call, SessionActivityType.RESUME)

    # ── control plane ─────────────────────────────────────────────────────────────

    def _control_frame(self, conn: ControlConn, frame: Frame) -> None:
        if self.window.open:
            self.window.text_frames_in += 1
        try:
            obj = json.loads(bytes(frame.data))
            kind = obj["type"]
        except (ValueError, TypeError, KeyError):
            logger.debug("ignoring a malformed control frame")
            return
        if kind == "setup":
            if conn.ready:
                return
            data = obj.get("data") or {}
            conn.rate = int(data.get("sampleRate") or 16000)
            if data.get("audioMode", "mixed") != "mixed":
                logger.warning("only mixed audio is generated; isolated legs are not sent")
            conn.ready = True
            self._write(conn, _text(control.encode_frame(control.SetupDone(conn.sm_ws_id))))
            self.controls.append(conn)
            for call in self.sessions.values():
                if call.bound is None and not call.ended:
                    activity = (
                        SessionActivityType.RESUME
                        if call.claimed
                        else SessionActivityType.NEW_INCOMING_CALL
                    )
                    self._write(conn, self._notify_frame(call, activity))
            return
        if kind == "session.ready":
            ready = self.sessions.get(obj.get("sessionId", ""))
            if (
                ready is not None
                and ready.bound is conn
                and not ready.ended
                and not ready.delivered
            ):
                self._deliver(conn, ready)
            return
        req_id = obj.get("reqId")
        if not isinstance(req_id, str) or not conn.ready:
            return
        if kind == "session.open":
            self._respond(conn, req_id, *self._claim(conn, obj.get("sessionId")))
        elif kind == "call_flow.setup":
            self._respond(conn, req_id, True, None, None, None)
        elif kind == "session.create":
            self._respond(conn, req_id, False, None, "CHANNEL_NOT_CONFIGURED", None)
        else:
            self._respond(conn, req_id, False, None, "INVALID_REQUEST", None)

    def _claim(self, conn: ControlConn, session_id: object) -> tuple[bool, Any, str | None, Any]:
        call = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if call is None:
            return False, None, "SESSION_NOT_FOUND", None
        if call.ended:
            return False, None, "SESSION_CLOSED", None
        if call.bound is not None and call.bound is not conn:
            return False, None, "SESSION_BUSY", {"boundSmWsId": call.bound.sm_ws_id}
        call.bound = conn
        call.claimed = True
        opened = control.OpenedSession(
            call.session_id, ChannelType.TELCO, call.caller, "+15550100000", int(self.started)
        )
        return True, opened.to_content(), None, None

    def _respond(
        self, conn: ControlConn, req_id: str, ok: bool, content: Any, code: str | None, error: Any
    ) -> None:
        response = control.Response(req_id, ok, content, code, error)
        self._write(conn, _text(control.encode_frame(response)))

    def _deliver(self, conn: ControlConn, call: Call) -> None:
        call.delivered = True
        call.frames = self.frames_for(conn.rate)
        frame = control.CallIn(
            session_id=call.session_id,
            call_id=call.call_id,
            url=self.url + VOICE_PREFIX + call.call_id,
            token=call.token,
            caller=call.caller,
            callee="+15550100000",
            org_uuid="org-loadgen",
        )
        self._write(conn, _text(control.encode_frame(frame)))

    def _notify_frame(self, call: Call, activity: SessionActivityType) -> bytes:
        frame = control.SessionNotify(
            session_id=call.session_id,
            channel=ChannelType.TELCO,
            remote_address=call.caller,
            local_address="+15550100000",
            activity=activity,
            created_at=int(time.time()),
        )
        return _text(control.encode_frame(frame))

    def _notify(self, call: Call, activity: SessionActivityType) -> None:
        data = self._notify_frame(call, activity)
        for conn in self.controls:
            self._write(conn, data)

    # ── voice plane ───────────────────────────────────────────────────────────────

    def _voice_frame(self, conn: VoiceConn, frame: Frame) -> None:
        call = conn.call
        data = frame.data
        win = self.window
        if frame.opcode is Opcode.BINARY:
            size = len(data) - 1
            if size < 1 or data[0] != 0:
                return  # too short, or a channel clients never send on
            if win.open:
                win.audio_frames_in += 1
                win.audio_bytes_in += size
            owed = call.owed
            if size > owed:
                call.excess += size - owed
                call.owed = 0
            else:
                call.owed = owed - size
            frames = call.frames
            if self.verify and frames is not None:
                position = call.offset * frames.frame_bytes + call.heard
                call.mismatches += not frames.matches(position, memoryview(data)[1:])
            heard = call.heard = call.heard + size
            if heard > call.spoken:
                call.over_echo = heard - call.spoken
            pending = call.pending
            if pending and pending[0][0] <= heard:
                now = trio.current_time()
                interval = self.pull_interval
                while pending and pending[0][0] <= heard:
                    _, sent, counted = pending.popleft()
                    if counted:
                        fill = now - sent
                        win.fills.append(fill)
                        if fill > interval:
                            win.underruns += 1
            return
        if win.open:
            win.text_frames_in += 1
        try:
            obj = json.loads(bytes(data))
            body = obj["data"]
            command_id = body["command_id"]
            name = body["command"]
        except (ValueError, TypeError, KeyError):
            logger.debug("ignoring a malformed voice frame")
            return
        if win.open:
            win.commands[str(name)] = win.commands.get(str(name), 0) + 1
        result: Any = None
        code: str | None = None
        message: str | None = None
        end = False
        if call.ended:
            code, message = "CALL_TERMINATED", "the call is over"
        elif name == "call.answer":
            self._go_live(call)
        elif name in ("agent.whisper", "agent.barge", "agent.spy"):
            code, message = "CALL_NOT_CONNECTED", f"{name} needs a connected call"
        elif name == "agent.interrupt":
            result = {"heardBytes": call.heard}
        elif name == "call.disconnect":
            end = True
        elif name == "call.close":
            if call.start_tick < 0:
                code, message = "CALL_NOT_ANSWERED", "call.close needs an answered call"
            else:
                end = True
        elif name == "call.connect":
            code, message = "CONNECT_FAILED", "the load generator connects no one"
        else:
            code, message = "UNKNOWN_COMMAND", f"unknown command {name!r}"
        try:
            response = voice.CommandResponse(command_id, code is None, result, code, message)
        except (TypeError, ValueError):
            return
        self._write(conn, _text(voice.encode_frame(response)))
        if end:
            self.end_call(call)

    def _go_live(self, call: Call) -> None:
        if call.start_tick < 0:
            after = self.ticks + 1
            call.start_tick = after + (call.slot - after) % self.phases
            self.live[call.call_id] = call
            self.slots[call.slot][call.call_id] = call

    # ── what the driver asks for ──────────────────────────────────────────────────

    def place(self, n: int) -> None:
        for _ in range(n):
            call = Call(
                f"+1555{self.placed:07d}",
                offset=(self.placed * 7) % 100,
                slot=self.placed % self.phases,
            )
            self.placed += 1
            self.calls[call.call_id] = call
            self.sessions[call.session_id] = call
            self._notify(call, SessionActivityType.NEW_INCOMING_CALL)

    def end_call(self, call: Call) -> None:
        """The caller hangs up: ``call.terminated`` and a close, then ``session.closed``."""
        if call.ended:
            return
        call.ended = True
        self.live.pop(call.call_id, None)
        self.slots[call.slot].pop(call.call_id, None)
        conn = call.voice
        if conn is not None:
            terminated = voice.CallEventFrame("call.terminated")
            self._write(conn, _text(voice.encode_frame(terminated)))
            conn.close()
        if call.bound is not None:
            closed = control.SessionClosed(call.session_id, CloseReason.CALL_TERMINATED)
            self._write(call.bound, _text(control.encode_frame(closed)))

    def close_session(self, session_id: str) -> bool:
        call = self.sessions.get(session_id)
        if call is None or call.ended:
            return False
        self.end_call(call)
        return True

    def status(self) -> dict[str, Any]:
        return {
            "controls": len(self.controls),
            "calls": len(self.calls),
            "answered": sum(c.start_tick >= 0 for c in self.calls.values()),
            "live": sum(c.voice is not None for c in self.live.values()),
            "ended": sum(c.ended for c in self.calls.values()),
        }

    def open_window(self) -> None:
        self.window = Window()
        self.window.open = True

    def report(self) -> dict[str, Any]:
        win = self.window
        was_open = win.open
        win.open = False
        seconds = time.monotonic() - win.started
        cpu = time.process_time() - win.cpu0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        now = trio.current_time()
        late = 0
        for call in self.live.values():
            late += sum(
                1
                for _, sent, counted in call.pending
                if counted and now - sent > self.pull_interval
            )
        connection_seconds = win.connection_ticks * self.tick
        calls = list(self.calls.values())
        return {
            "measured": was_open,
            "seconds": seconds,
            "ticks": len(win.lags),
            "lagP50Ms": _ms(_percentile(win.lags, 50)),
            "lagP99Ms": _ms(_percentile(win.lags, 99)),
            "lagMaxMs": _ms(max(win.lags, default=None)),
            "cpuSeconds": cpu,
            "cpuShare": cpu / seconds if seconds > 0 else None,
            "userSeconds": usage.ru_utime - win.user0,
            "systemSeconds": usage.ru_stime - win.system0,
            "connectionSeconds": connection_seconds,
            "cpuMsPerConnectionSecond": (
                1000 * cpu / connection_seconds if connection_seconds > 0 else None
            ),
            "framesOut": win.frames_out,
            "pulls": win.pulls,
            "pullsCounted": win.pulls_counted,
            "pullsFilled": len(win.fills),
            "fillP50Ms": _ms(_percentile(win.fills, 50)),
            "fillP99Ms": _ms(_percentile(win.fills, 99)),
            "underruns": win.underruns + late,
            "unfilled": late,
            "audioFramesIn": win.audio_frames_in,
            "audioBytesIn": win.audio_bytes_in,
            "textFramesIn": win.text_frames_in,
            "commands": win.commands,
            "writeStalls": win.stalls,
            "backlogBytes": sum(c.backlog_bytes for c in self.backlogged.conns),
            "dropped": self.backlogged.dropped,
            "excessBytes": sum(c.excess for c in calls),
            "mismatchedFrames": sum(c.mismatches for c in calls),
            "overEchoBytes": sum(c.over_echo for c in calls),
            "heardBytes": sum(c.heard for c in calls),
            "spokenBytes": sum(c.spoken for c in calls),
            "verified": self.verify,
            **self.status(),
        }

    # ── REST, and anything else that is not an upgrade ───────────────────────────

    async def _http(self, sock: socket.socket, data: bytes) -> None:
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target = [*lines[0].split(" "), "", ""][:2]
        headers = Headers()
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        while len(body) < length:
            more = await recv_some(sock)
            if not more:
                return
            body += more
        status, doc = self._rest(method, target.split("?", 1)[0], headers)
        payload = json.dumps(doc).encode()
        reply = Response(status, "OK" if status < 400 else "Error", Headers(), payload)
        reply.headers["Content-Type"] = "application/json"
        reply.headers["Content-Length"] = str(len(payload))
        reply.headers["Connection"] = "close"
        Conn(sock, ServerProtocol(), self.backlogged).write(reply.serialize())

    def _rest(self, method: str, path: str, headers: Headers) -> tuple[int, Any]:
        if not self._authorised(headers):
            return 401, {"code": "UNAUTHORIZED", "message": "invalid API key"}
        if method == "GET" and path == SESSIONS_PATH:
            items = [
                {
                    "id": c.session_id,
                    "channel": "TELCO",
                    "initiator": "CONNECTOR",
                    "state": "OPEN",
                    "remoteAddress": c.caller,
                    "localAddress": "+15550100000",
                    "openedAt": int(self.started),
                    "closedAt": None,
                }
                for c in self.sessions.values()
                if not c.ended
            ]
            return 200, {"items": items}
        parts = path.split("/")
        if method == "POST" and path.startswith(SESSIONS_PATH + "/") and parts[-1] == "close":
            if self.close_session(parts[-2]):
                return 200, {"closedAt": int(time.time()), "reason": "SDK_REQUEST"}
            return 404, {"code": "SESSION_NOT_FOUND", "message": "no such open session"}
        return 404, {"code": "INVALID_REQUEST", "message": "no such route"}


# ── the process: listening socket, stdin commands ─────────────────────────────────────


async def _commands(server: Server, out: IO[str]) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffer = b""
    async with stdin:
        while True:
            while b"\n" not in buffer:
                more = await stdin.receive_some(65536)
                if not more:
                    return
                buffer += more
            line, buffer = buffer.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                cmd = json.loads(line)
                op = cmd["op"]
            except (ValueError, TypeError, KeyError):
                reply: dict[str, Any] = {"error": "bad command"}
                op = ""
            else:
                try:
                    reply = _command(server, op, cmd)
                except (TypeError, ValueError) as exc:
                    reply = {"error": f"bad {op!r} command: {exc}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
            if op == "quit":
                return


def _command(server: Server, op: str, cmd: dict[str, Any]) -> dict[str, Any]:
    if op == "status":
        return server.status()
    if op == "place":
        server.place(int(cmd.get("n", 1)))
        return server.status()
    if op == "window":
        server.open_window()
        return {"ok": True}
    if op == "report":
        return server.report()
    if op == "calls":
        return {"calls": [c.counters() for c in server.calls.values()]}
    if op == "hangup":
        ended = 0
        for call in list(server.calls.values()):
            if not call.ended:
                server.end_call(call)
                ended += 1
        return {"ended": ended}
    if op == "quit":
        return {"ok": True, "cpuSeconds": time.process_time() - server.started_cpu}
    return {"error": f"unknown op {op!r}"}


async def _main(args: argparse.Namespace) -> None:
    server = Server(args)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((args.host, args.port))
        listener.listen(1024)
        listener.setblocking(False)
        host, port = listener.getsockname()[:2]
        server.url = f"{'wss' if server.tls is not None else 'ws'}://{host}:{port}"
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, listener)
            hello = {
                "url": server.url,
                "apiKey": server.api_key,
                "connectorUuid": server.connector_uuid,
                "pid": os.getpid(),
            }
            sys.stdout.write(json.dumps(hello) + "\n")
            sys.stdout.flush()
            await _commands(server, sys.stdout)
            nursery.cancel_scope.cancel()
    finally:
        listener.close()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--api-key", default=None, help="default: a random one, printed at start")
    p.add_argument("--connector-uuid", default=None)
    p.add_argument("--tick", type=float, default=0.02, help="caller frame length, seconds")
    p.add_argument(
        "--phases",
        type=int,
        default=4,
        help="calls are spread over this many phases of a tick (the timer wakes as often)",
    )
    p.add_argument("--pull-interval", type=float, default=0.1, help="seconds between pulls")
    p.add_argument("--lead", type=float, default=0.3, help="first pull this long after live")
    p.add_argument(
        "--prefer", type=int, default=None, help="prefer_audio_frame_bytes (default: one tick)"
    )
    p.add_argument(
        "--ready-margin",
        type=float,
        default=0.1,
        help="a pull is counted if the caller had spoken this many seconds beyond it",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the caller's PCM pattern")
    p.add_argument("--no-verify", action="store_true", help="count agent audio, do not compare it")
    p.add_argument(
        "--max-backlog",
        type=int,
        default=MAX_BACKLOG,
        help="bytes waiting on a client that does not read before it is dropped",
    )
    p.add_argument(
        "--sndbuf",
        type=int,
        default=0,
        help="SO_SNDBUF of accepted sockets (0: the kernel's autotuning; tests set it small)",
    )
    p.add_argument("--certfile", default=None, help="serve TLS (wss://) with this PEM chain")
    p.add_argument("--keyfile", default=None, help="the private key of --certfile")
    p.add_argument("--log-level", default="WARNING")
    p.add_argument("--profile", default=None, help="write cProfile stats to this file at exit")
    args = p.parse_args(argv)
    if (args.certfile is None) != (args.keyfile is None):
        p.error("--certfile and --keyfile go together")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr)
    if args.profile is None:
        trio.run(_main, args)
        return
    profiler = cProfile.Profile()
    try:
        profiler.runcall(trio.run, _main, args)
    finally:
        profiler.dump_stats(args.profile)


# ── the driver's side ─────────────────────────────────────────────────────────────────


class LoadGen:
    """A running ``loadgen.py`` subprocess and its command line (use :meth:`start`)."""

    def __init__(self, proc: trio.Process, hello: dict[str, Any]) -> None:
        self.proc = proc
        self.url: str = hello["url"]
        self.api_key: str = hello["apiKey"]
        self.connector_uuid: str = hello["connectorUuid"]
        self.pid: int = proc.pid
        self._buffer = b""

    def __repr__(self) -> str:
        return f"<LoadGen {self.url} pid {self.pid}>"

    @classmethod
    @asynccontextmanager
    async def start(
        cls, *args: str, stderr: IO[bytes] | None = None, startup_timeout: float = 30.0
    ) -> AsyncIterator[LoadGen]:
        """Start the generator with ``args``; on every way out it is stopped, killed if need be."""
        cmd = [sys.executable, str(SCRIPT), *args]
        proc = await trio.lowlevel.open_process(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr if stderr is not None else subprocess.DEVNULL,
        )
        try:
            gen = cls(proc, {"url": "", "apiKey": "", "connectorUuid": ""})
            with trio.fail_after(startup_timeout):
                hello = await gen._line()
            gen.url, gen.api_key = hello["url"], hello["apiKey"]
            gen.connector_uuid = hello["connectorUuid"]
            yield gen
        finally:
            with trio.CancelScope(shield=True):
                if proc.returncode is None and proc.stdin is not None:
                    with trio.move_on_after(2):
                        await proc.stdin.aclose()  # EOF: the generator exits by itself
                        await proc.wait()
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    async def _line(self) -> dict[str, Any]:
        stdout = self.proc.stdout
        assert stdout is not None
        while b"\n" not in self._buffer:
            more = await stdout.receive_some(65536)
            if not more:
                raise RuntimeError(f"the load generator exited ({self.proc.poll()})")
            self._buffer += more
        line, self._buffer = self._buffer.split(b"\n", 1)
        return dict(json.loads(line))

    async def request(self, op: str, limit: float = 30.0, **fields: Any) -> dict[str, Any]:
        """Send one command and return its reply (within ``limit`` seconds)."""
        stdin = self.proc.stdin
        assert stdin is not None
        with trio.fail_after(limit):
            await stdin.send_all((json.dumps({"op": op, **fields}) + "\n").encode())
            return await self._line()

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], limit: float, what: str
    ) -> dict[str, Any]:
        """Poll ``status`` until ``predicate`` holds, at most ``limit`` seconds."""
        deadline = trio.current_time() + limit
        while True:
            status = await self.request("status")
            if predicate(status):
                return status
            if trio.current_time() > deadline:
                raise RuntimeError(f"timed out waiting for {what}: {status}")
            await trio.sleep(0.05)


if __name__ == "__main__":
    main()
