"""The sandbox server as one object: :func:`open_sandbox` and :class:`Sandbox`."""

from __future__ import annotations

import logging
import os
import secrets
import ssl
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
from trio_websocket import WebSocketRequest

from .._config import AudioModeName, CallAudioConfig, SampleRate, SessionManagerConfig
from .._enums import AudioMode, ChannelType, CloseReason
from ..protocol.control import CONTROL_PATH
from ._audio import AudioSource, as_source
from ._caller import ConnectBehaviour, SimulatedCall
from ._clock import SandboxClock
from ._control import ControlConnection
from ._events import VOICE_PREFIX
from ._exchange import Exchange
from ._faults import MALFORMED_CONTROL_FRAMES, Faults
from ._framelog import FrameLog
from ._link import Link
from ._rest import RestApi
from ._server import Credentials, Peer, serve_connection
from ._sessions import SessionRecord, WaOutbound
from ._switchboard import Switchboard, SwitchboardSettings
from ._voice import VoiceConnection, VoiceSettings

__all__ = ["Sandbox", "open_sandbox"]

logger = logging.getLogger(__name__)


class Sandbox:
    """A running local Telcoflow server. Get one from :func:`open_sandbox`.

    ``url`` is the ``base_url`` for clients (``ws://127.0.0.1:PORT``, or ``wss://`` with
    TLS); REST and admin endpoints are on the same port. ``frames`` logs every WebSocket
    message; ``faults`` can be changed at any time.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        connector_uuid: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        time_scale: float = 1.0,
        pull_interval: float = 0.1,
        prefer_audio_frame_bytes: int | None = None,
        caller_frame_seconds: float = 0.02,
        connect: ConnectBehaviour | None = None,
        channels: Iterable[ChannelType | str] = (ChannelType.TELCO, ChannelType.WA),
        max_open_sessions: int | None = None,
        frame_log_limit: int = 100_000,
    ) -> None:
        self.credentials: Credentials = Credentials(
            api_key if api_key is not None else "sk-sandbox-" + secrets.token_urlsafe(18),
            connector_uuid if connector_uuid is not None else str(uuid.uuid4()),
        )
        self.ssl_context = ssl_context
        self.clock: SandboxClock = SandboxClock(time_scale)
        self.faults: Faults = Faults()
        self.frames: FrameLog = FrameLog(frame_log_limit)
        self.voice_settings: VoiceSettings = VoiceSettings(pull_interval, prefer_audio_frame_bytes)
        self.switchboard: Switchboard = Switchboard(
            SwitchboardSettings(
                channels=frozenset(ChannelType(c) for c in channels),
                max_open_sessions=max_open_sessions,
            )
        )
        """The sans-IO switchboard: every session rule is decided there."""
        self.exchange: Exchange = Exchange(
            self.switchboard,
            self.clock,
            connect=ConnectBehaviour() if connect is None else connect,
            frame_seconds=caller_frame_seconds,
        )
        self.host = "127.0.0.1"
        self.port = 0
        self._rest = RestApi(self)
        self._links: set[Link] = set()
        self._connection_count = 0

    def __repr__(self) -> str:
        return f"<Sandbox {self.url or 'not started'}>"

    # ── addresses and credentials ────────────────────────────────────────────────────

    @property
    def url(self) -> str:
        """The ``base_url`` clients connect to."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}" if self.port else ""

    @property
    def rest_url(self) -> str:
        """The REST plane's base URL (same host and port, http(s))."""
        return ("https" if self.ssl_context is not None else "http") + self.url[
            self.url.index(":") :
        ]

    @property
    def control_url(self) -> str:
        return self.url + CONTROL_PATH

    @property
    def api_key(self) -> str:
        return self.credentials.api_key

    @property
    def connector_uuid(self) -> str:
        return self.credentials.connector_uuid

    def issued_secrets(self) -> dict[str, str]:
        """Every credential this sandbox accepts or handed out (its API key, each call's
        voice token), mapped to what it is: for tests that check nothing leaks them."""
        found = {self.api_key: "sandbox API key"}
        for call in self.exchange.calls.values():
            found[call.token] = f"voice bearer token of call {call.call_id}"
        return found

    @property
    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate with API key (control, REST and admin)."""
        return {"x-api-key": self.api_key, "x-connector-uuid": self.connector_uuid}

    def config(
        self,
        *,
        sample_rate: SampleRate = 16000,
        audio_mode: AudioMode | AudioModeName = "mixed",
        **kwargs: Any,
    ) -> SessionManagerConfig:
        """A :class:`SessionManagerConfig` for this sandbox, API-key authenticated.

        Other keyword arguments go to ``SessionManagerConfig.create`` (``ca_bundle`` for a
        TLS sandbox, ``call_audio`` to override the audio settings entirely).
        """
        kwargs.setdefault("call_audio", CallAudioConfig(sample_rate, audio_mode))
        kwargs.setdefault("api_key", self.api_key)
        kwargs.setdefault("connector_uuid", self.connector_uuid)
        return SessionManagerConfig.create(base_url=self.url, **kwargs)

    # ── state ────────────────────────────────────────────────────────────────────────

    @property
    def sessions(self) -> dict[str, SessionRecord]:
        """Every session, open or closed, by id (a fresh dict of live records)."""
        return self.exchange.sessions()

    @property
    def calls(self) -> dict[str, SimulatedCall]:
        return self.exchange.calls

    @property
    def wa_outbox(self) -> list[WaOutbound]:
        """Every ``wa.msg.out`` the sandbox accepted, oldest first."""
        return self.exchange.wa_outbox

    @property
    def control_connections(self) -> list[ControlConnection]:
        """Control connections that completed the handshake and are still up."""
        return self.exchange.connected()

    # ── driving it ───────────────────────────────────────────────────────────────────

    async def place_call(
        self,
        caller: str = "+15557654321",
        callee: str | None = None,
        *,
        audio: AudioSource | bytes | str | os.PathLike[str] | None = None,
        connect: ConnectBehaviour | None = None,
    ) -> SimulatedCall:
        """A new inbound call: a TELCO session is notified to every agent connection.

        ``audio`` is what the caller says once the call is live (PCM bytes at the call's
        rate, a WAV path, or an :class:`AudioSource`); ``connect`` overrides how the
        destination of ``call.connect`` behaves for this call.
        """
        call = self.exchange.place_call(
            caller=caller, callee=callee, audio=as_source(audio), connect=connect
        )
        await trio.lowlevel.checkpoint()
        return call

    async def send_wa_message(
        self, remote_address: str, content: dict[str, Any], *, sender: str | None = None
    ) -> str:
        """A WhatsApp user writes: the message reaches the agent holding the session
        (after ``session.ready``), or a new session is notified. Returns the session id."""
        session_id = self.exchange.send_wa_message(remote_address, content, sender)
        await trio.lowlevel.checkpoint()
        return session_id

    async def close_session(
        self, session_id: str, reason: CloseReason = CloseReason.FORCE_CLOSE
    ) -> bool:
        """Close a session from the server side (``FORCE_CLOSE`` by default)."""
        closed = self.exchange.close_session(session_id, reason)
        await trio.lowlevel.checkpoint()
        return closed

    async def wait_for(self, predicate: Any) -> None:
        """Wait until ``predicate()`` is true; it is re-checked after every state change."""
        await trio.lowlevel.checkpoint()  # also when it is true already
        while not predicate():
            await self.exchange.changed.wait()

    async def wait_control_connections(self, count: int) -> None:
        """Until at least ``count`` control connections have finished their handshake."""
        await self.wait_for(lambda: len(self.switchboard.agents) >= count)

    async def wait_wa_out(self, count: int = 1) -> list[WaOutbound]:
        """Until at least ``count`` ``wa.msg.out`` messages have been accepted."""
        await self.wait_for(lambda: len(self.wa_outbox) >= count)
        return list(self.wa_outbox)

    # ── faults ───────────────────────────────────────────────────────────────────────

    async def drop_control_connections(self, sm_ws_id: str | None = None) -> int:
        """Cut control connections without a close frame, as a network failure would:
        all of them, or the one with ``sm_ws_id``. Returns how many were cut."""
        await trio.lowlevel.checkpoint()  # before choosing: there may be none to cut
        conns = [c for c in self.control_connections if sm_ws_id is None or c.sm_ws_id == sm_ws_id]
        links = {c.link for c in conns}
        if sm_ws_id is None:
            # Connections still in their handshake go too.
            links |= {link for link in self._links if link.plane == "control"}
        for link in links:
            await link.abort()
        return len(links)

    async def send_malformed_control(self, kinds: Iterable[str] | None = None) -> list[str]:
        """Send malformed frames (all kinds by default) to every live control connection."""
        chosen = list(MALFORMED_CONTROL_FRAMES) if kinds is None else list(kinds)
        for conn in self.control_connections:
            for kind in chosen:
                conn.link.send(MALFORMED_CONTROL_FRAMES[kind])
        await trio.lowlevel.checkpoint()
        return chosen

    async def send_control_raw(self, data: str | bytes) -> None:
        """Send any frame, as is, to every live control connection."""
        for conn in self.control_connections:
            conn.link.send(data)
        await trio.lowlevel.checkpoint()

    # ── serving ──────────────────────────────────────────────────────────────────────

    async def _serve_tcp(self, stream: trio.SocketStream) -> None:
        await serve_connection(
            stream,
            ssl_context=self.ssl_context,
            on_http=self._rest,
            on_websocket=self._on_websocket,
            drop_pongs=lambda: self.faults.withhold_pongs,
        )

    def _name(self, plane: str) -> str:
        self._connection_count += 1
        return f"{plane}-{self._connection_count}"

    async def _on_websocket(
        self, request: WebSocketRequest, transport: trio.abc.Stream, peer: Peer
    ) -> None:
        path = request.path.split("?", 1)[0]
        if path == CONTROL_PATH:
            await self._serve_control(request, transport, peer)
        elif path.startswith(VOICE_PREFIX):
            await self._serve_voice(request, transport, path[len(VOICE_PREFIX) :])
        else:
            await _reject(request, 404, "no WebSocket endpoint at this path")

    async def _serve_control(
        self, request: WebSocketRequest, transport: trio.abc.Stream, peer: Peer
    ) -> None:
        if self.faults.take_refusal("control"):
            await _reject(request, self.faults.refuse_status, "connection refused (sandbox fault)")
            return
        reason = self.credentials.check(request.headers, peer.cert_verified)
        if reason is not None:
            logger.info("control upgrade refused: %s", reason)
            await _reject(request, 401, f"Unauthorized: {reason}")
            return
        if self.faults.take_count("abort_control_upgrades"):
            logger.info("control upgrade cut before the reply (fault injection)")
            await trio.aclose_forcefully(transport)
            return
        ws = await request.accept()
        link = Link(
            ws,
            transport,
            plane="control",
            name=self._name("control"),
            log=self.frames,
            clock=self.clock,
        )
        self._links.add(link)
        conn = ControlConnection(link, self.faults, self.exchange.apply)
        self.exchange.attach(conn)
        try:
            await conn.run()
        finally:
            self.exchange.detach(conn)
            self._links.discard(link)
            link.finished.set()

    async def _serve_voice(
        self, request: WebSocketRequest, transport: trio.abc.Stream, call_id: str
    ) -> None:
        call = self.exchange.calls.get(call_id)
        headers = {k.lower(): v for k, v in request.headers}
        auth = headers.get(b"authorization", b"").decode("latin-1")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if call is None or not token or not call.check_token(token):
            await _reject(request, 401, "Unauthorized: invalid voice token for this call")
            return
        if call.terminated.is_set():
            await _reject(request, 410, "Gone: the call is over")
            return
        if call.voice_link is not None and call.voice_link.is_open:
            await _reject(request, 409, "Conflict: the call already has a voice connection")
            return
        if self.faults.take_refusal("voice"):
            await _reject(request, self.faults.refuse_status, "connection refused (sandbox fault)")
            return
        ws = await request.accept()
        link = Link(
            ws,
            transport,
            plane="voice",
            name=f"voice-{call.call_id}",
            log=self.frames,
            clock=self.clock,
        )
        self._links.add(link)
        try:
            await VoiceConnection(
                link, call, settings=self.voice_settings, faults=self.faults, clock=self.clock
            ).run()
        finally:
            self._links.discard(link)
            link.finished.set()

    async def _shutdown(self) -> None:
        for link in list(self._links):
            link.close()
        with trio.move_on_after(1):
            for link in list(self._links):
                await link.finished.wait()
        await trio.lowlevel.checkpoint()  # there may have been no link to wait for


async def _reject(request: WebSocketRequest, status: int, message: str) -> None:
    await request.reject(
        status,
        extra_headers=[(b"content-type", b"text/plain; charset=utf-8")],
        body=message.encode() + b"\n",
    )


@asynccontextmanager
async def open_sandbox(
    *, host: str = "127.0.0.1", port: int = 0, **options: Any
) -> AsyncIterator[Sandbox]:
    """Run a sandbox for the duration of the block; every task it starts ends with it.

    Listens on ``host`` (loopback by default) and ``port`` (0: any free port). Keyword
    options are those of :class:`Sandbox`: ``api_key``, ``connector_uuid``,
    ``ssl_context`` (a server context; set ``verify_mode`` and load a CA for mTLS),
    ``time_scale``, ``pull_interval``, ``prefer_audio_frame_bytes``, ``connect``,
    ``channels``, ``max_open_sessions``, ``frame_log_limit``.
    """
    sandbox = Sandbox(**options)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, sandbox._serve_tcp, port, host=host, handler_nursery=nursery)
        )
        sockname = listeners[0].socket.getsockname()
        sandbox.host = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        sandbox.port = sockname[1]
        sandbox.switchboard.voice_base_url = sandbox.url
        logger.info("sandbox listening on %s", sandbox.url)
        try:
            yield sandbox
        finally:
            with trio.CancelScope(shield=True):
                await sandbox._shutdown()
            nursery.cancel_scope.cancel()
