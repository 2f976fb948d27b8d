"""The sandbox's switchboard: sessions, the claim race, ready gating and delivery.

Everything here is synchronous and runs in trio's single thread, so the order in which
frames arrive is the order in which claims are decided: the first ``session.open`` wins.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .._enums import ChannelType, CloseReason, SessionActivityType
from ..protocol import control
from ..protocol.rest import SessionInfo
from ._audio import AudioSource
from ._caller import ConnectBehaviour, EndedBy, SimulatedCall
from ._clock import SandboxClock

if TYPE_CHECKING:
    from ._control import ControlConnection

__all__ = ["Hub", "Outcome", "SessionRecord", "WaOutbound"]

logger = logging.getLogger(__name__)


def _epoch() -> int:
    return int(time.time())


def new_session_id() -> str:
    return "sess-" + secrets.token_hex(8)


@attrs.frozen
class Outcome:
    """How a control request is answered."""

    ok: bool
    content: Any = None
    error_code: str | None = None
    error_content: Any = None

    @classmethod
    def error(cls, code: str, content: Any = None) -> Outcome:
        return cls(False, None, code, content)


@attrs.frozen
class WaOutbound:
    """A ``wa.msg.out`` the sandbox accepted (the agent's message to the WA user)."""

    time: float
    session_id: str
    remote_address: str
    client_msg_id: str
    api_version: str
    data: dict[str, Any]
    sm_ws_id: str


@attrs.define(eq=False)
class SessionRecord:
    """One session of the sandbox's connector."""

    id: str
    channel: ChannelType
    remote_address: str
    local_address: str
    initiator: str
    activity: SessionActivityType | str
    opened_at: int
    created_at: int
    state: str = "OPEN"
    closed_at: int | None = None
    close_reason: CloseReason | None = None
    bound: ControlConnection | None = None
    ready: bool = False
    ever_claimed: bool = False
    pending: list[control.WaMsgIn] = attrs.field(factory=list)
    call: SimulatedCall | None = None
    closed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def is_open(self) -> bool:
        return self.state == "OPEN"

    @property
    def bound_sm_ws_id(self) -> str | None:
        return None if self.bound is None else self.bound.sm_ws_id

    def info(self) -> SessionInfo:
        return SessionInfo(
            id=self.id,
            channel=self.channel,
            initiator=self.initiator,
            state=self.state,
            remote_address=self.remote_address,
            local_address=self.local_address,
            opened_at=self.opened_at,
            closed_at=self.closed_at,
        )

    def opened(self) -> control.OpenedSession:
        return control.OpenedSession(
            self.id, self.channel, self.remote_address, self.local_address, self.opened_at
        )

    def notify_frame(
        self, activity: SessionActivityType | str | None = None
    ) -> control.SessionNotify:
        return control.SessionNotify(
            session_id=self.id,
            channel=self.channel,
            remote_address=self.remote_address,
            local_address=self.local_address,
            activity=self.activity if activity is None else activity,
            created_at=self.created_at,
        )


@attrs.frozen
class HubSettings:
    """The parts of the sandbox's configuration the switchboard needs."""

    channels: frozenset[ChannelType] = frozenset(ChannelType)
    max_open_sessions: int | None = None
    phone_number: str = "+15550100000"
    wa_number: str = "+15550100001"
    org_uuid: str = "org-sandbox"
    connect: ConnectBehaviour = attrs.field(factory=ConnectBehaviour)
    caller_frame_seconds: float = 0.02


class Hub:
    """All sessions, calls and live control connections of one sandbox."""

    def __init__(self, clock: SandboxClock, settings: HubSettings) -> None:
        self.clock = clock
        self.settings = settings
        self.sessions: dict[str, SessionRecord] = {}
        self.calls: dict[str, SimulatedCall] = {}
        self.connections: list[ControlConnection] = []
        self.call_flows: list[control.CallFlowSetup] = []
        self.wa_outbox: list[WaOutbound] = []
        self.voice_base_url = ""
        self.changed = trio.Event()

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    # ── sessions ─────────────────────────────────────────────────────────────────────

    def new_session(
        self,
        channel: ChannelType,
        remote_address: str,
        *,
        initiator: str,
        activity: SessionActivityType | str,
        local_address: str | None = None,
    ) -> SessionRecord:
        if local_address is None:
            local_address = (
                self.settings.phone_number
                if channel is ChannelType.TELCO
                else self.settings.wa_number
            )
        now = _epoch()
        session = SessionRecord(
            id=new_session_id(),
            channel=channel,
            remote_address=remote_address,
            local_address=local_address,
            initiator=initiator,
            activity=activity,
            opened_at=now,
            created_at=now,
        )
        self.sessions[session.id] = session
        self._changed()
        return session

    def find_open(self, channel: ChannelType, remote_address: str) -> SessionRecord | None:
        for session in self.sessions.values():
            if (
                session.is_open
                and session.channel is channel
                and session.remote_address == remote_address
            ):
                return session
        return None

    def _needs_agent(self, session: SessionRecord) -> bool:
        if not session.is_open or session.bound is not None:
            return False
        if not session.ever_claimed:
            return session.initiator == "CONNECTOR"
        if session.call is not None:
            return not session.call.terminated.is_set()
        return bool(session.pending)

    def notify(
        self, session: SessionRecord, activity: SessionActivityType | str | None = None
    ) -> None:
        """Broadcast ``session.notify`` to every live control connection."""
        frame = session.notify_frame(activity)
        for conn in list(self.connections):
            conn.send_frame(frame)

    def close_session(self, session: SessionRecord, reason: CloseReason) -> bool:
        """Close a session: tell its agent, end its call. False if it was already closed."""
        if not session.is_open:
            return False
        session.state = "CLOSED"
        session.closed_at = _epoch()
        session.close_reason = reason
        logger.info("session %s closed (%s)", session.id, reason.value)
        if session.call is not None:
            session.call.end(EndedBy.SESSION_CLOSED, close_session=False)
        if session.bound is not None:
            session.bound.send_frame(control.SessionClosed(session.id, reason))
        session.closed.set()
        self._changed()
        return True

    def call_ended(self, call: SimulatedCall) -> None:
        self.close_session(call.session, CloseReason.CALL_TERMINATED)

    # ── control connections ──────────────────────────────────────────────────────────

    def connection_ready(self, conn: ControlConnection) -> None:
        """A connection finished its handshake: it now hears broadcasts."""
        self.connections.append(conn)
        for session in list(self.sessions.values()):
            if self._needs_agent(session):
                activity = SessionActivityType.RESUME if session.ever_claimed else None
                conn.send_frame(session.notify_frame(activity))
        self._changed()

    def connection_lost(self, conn: ControlConnection) -> None:
        """Unbind its sessions; calls go on, and other agents are told about them."""
        if conn in self.connections:
            self.connections.remove(conn)
        for session in list(self.sessions.values()):
            if session.bound is not conn:
                continue
            session.bound = None
            session.ready = False
            if self._needs_agent(session):
                self.notify(session, SessionActivityType.RESUME)
        self._changed()

    # ── requests ─────────────────────────────────────────────────────────────────────

    def open_session(self, conn: ControlConnection, session_id: str) -> Outcome:
        session = self.sessions.get(session_id)
        if session is None:
            return Outcome.error("SESSION_NOT_FOUND")
        if not session.is_open:
            return Outcome.error("SESSION_CLOSED")
        if session.bound is not None and session.bound is not conn:
            return Outcome.error("SESSION_BUSY", {"boundSmWsId": session.bound.sm_ws_id})
        if session.bound is None:
            session.bound = conn
            session.ready = False
            session.ever_claimed = True
            logger.info("session %s claimed by %s", session.id, conn.sm_ws_id)
            self._changed()
        return Outcome(True, session.opened().to_content())

    def session_ready(self, conn: ControlConnection, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is None or session.bound is not conn or not session.is_open:
            logger.info("session.ready for a session %s does not hold; ignored", conn.sm_ws_id)
            return
        if session.ready:
            return
        session.ready = True
        if session.call is not None and not session.call.terminated.is_set():
            self._deliver_call(conn, session.call)
        pending, session.pending = session.pending, []
        for message in pending:
            conn.send_frame(message)
        self._changed()

    def _deliver_call(self, conn: ControlConnection, call: SimulatedCall) -> None:
        setup = conn.setup
        assert setup is not None
        if call.sample_rate is None:
            call.mark_delivered(setup.sample_rate, setup.audio_mode.value == "isolated")
        else:
            call.mark_delivered(call.sample_rate, call.isolated)
        conn.send_frame(
            control.CallIn(
                session_id=call.session_id,
                call_id=call.call_id,
                url=self.voice_base_url + call.voice_path,
                token=call.token,
                caller=call.caller,
                callee=call.callee,
                org_uuid=self.settings.org_uuid,
            )
        )

    def create_session(self, frame: control.SessionCreate) -> Outcome:
        if frame.channel not in self.settings.channels:
            return Outcome.error("CHANNEL_NOT_CONFIGURED")
        existing = self.find_open(frame.channel, frame.remote_address)
        if existing is not None:
            return Outcome(True, control.CreatedSession(existing.id, False).to_content())
        limit = self.settings.max_open_sessions
        if limit is not None and sum(s.is_open for s in self.sessions.values()) >= limit:
            return Outcome.error("QUOTA_EXCEEDED")
        session = self.new_session(
            frame.channel, frame.remote_address, initiator="SDK", activity="SDK_CREATE"
        )
        if frame.channel is ChannelType.TELCO:
            # An SDK-created TELCO session is an outbound call to the remote address; its
            # call.in comes after open and ready, like an inbound one.
            self.new_call(
                session,
                caller=session.local_address,
                callee=frame.remote_address,
                audio=None,
                direction="outbound",
            )
        return Outcome(True, control.CreatedSession(session.id, True).to_content())

    def wa_out(self, conn: ControlConnection, frame: control.WaMsgOut) -> Outcome:
        session = self.sessions.get(frame.session_id)
        if session is None:
            return Outcome.error("SESSION_NOT_FOUND")
        if session.channel is not ChannelType.WA:
            return Outcome.error("INVALID_CHANNEL")
        if not session.is_open or session.bound is not conn:
            return Outcome.error("SESSION_NOT_OPEN")
        if not frame.data:
            return Outcome.error("INVALID_PAYLOAD", {"message": "data must not be empty"})
        self.wa_outbox.append(
            WaOutbound(
                time=self.clock.now(),
                session_id=session.id,
                remote_address=session.remote_address,
                client_msg_id=frame.client_msg_id,
                api_version=frame.api_version,
                data=frame.data,
                sm_ws_id=conn.sm_ws_id,
            )
        )
        self._changed()
        return Outcome(
            True,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": session.remote_address, "wa_id": session.remote_address}],
                "messages": [{"id": "wamid.sandbox-" + secrets.token_hex(8)}],
                "clientMsgId": frame.client_msg_id,
            },
        )

    # ── what the sandbox drives ──────────────────────────────────────────────────────

    def new_call(
        self,
        session: SessionRecord,
        *,
        caller: str,
        callee: str,
        audio: AudioSource | None,
        direction: str = "inbound",
        connect: ConnectBehaviour | None = None,
    ) -> SimulatedCall:
        call = SimulatedCall(
            hub=self,
            clock=self.clock,
            session=session,
            caller=caller,
            callee=callee,
            audio=audio,
            connect=self.settings.connect if connect is None else connect,
            direction=direction,
            frame_seconds=self.settings.caller_frame_seconds,
        )
        session.call = call
        self.calls[call.call_id] = call
        self._changed()
        return call

    def place_call(
        self,
        *,
        caller: str,
        callee: str | None,
        audio: AudioSource | None,
        connect: ConnectBehaviour | None,
    ) -> SimulatedCall:
        session = self.new_session(
            ChannelType.TELCO,
            caller,
            initiator="CONNECTOR",
            activity=SessionActivityType.NEW_INCOMING_CALL,
            local_address=callee,
        )
        call = self.new_call(
            session, caller=caller, callee=session.local_address, audio=audio, connect=connect
        )
        self.notify(session)
        return call

    def send_wa_message(
        self, remote_address: str, content: dict[str, Any], sender: str | None
    ) -> SessionRecord:
        session = self.find_open(ChannelType.WA, remote_address)
        message_sender = remote_address if sender is None else sender
        if session is None:
            session = self.new_session(
                ChannelType.WA,
                remote_address,
                initiator="CONNECTOR",
                activity=SessionActivityType.NEW_INCOMING_MESSAGE,
            )
            session.pending.append(control.WaMsgIn(session.id, message_sender, content))
            self.notify(session)
            return session
        message = control.WaMsgIn(session.id, message_sender, content)
        if session.bound is not None and session.ready:
            session.bound.send_frame(message)
        else:
            was_waiting = self._needs_agent(session)
            session.pending.append(message)
            if session.bound is None and not was_waiting and session.ever_claimed:
                self.notify(session, SessionActivityType.NEW_INCOMING_MESSAGE)
        return session
