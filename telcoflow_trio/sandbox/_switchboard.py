"""The sandbox's switchboard, sans-IO: sessions, the claim race, ready gating and delivery.

It owns no socket, task or lock. The I/O layer tells it what happened, one event at a
time, and carries out the actions it returns (both in :mod:`._events`): control frames
for agent connections, named by opaque peer ids, and a few effects on calls and session
records. Events are handled in the order they arrived, so the first ``session.open`` to arrive
wins a claim and every later one gets ``SESSION_BUSY``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import attrs

from .._enums import ChannelType, CloseReason, SessionActivityType
from ..protocol import control
from ._events import (
    VOICE_PREFIX,
    Action,
    AgentConnected,
    AgentDisconnected,
    CallCreated,
    CallDelivered,
    CallEnded,
    CallTicket,
    CloseSession,
    EndCall,
    Event,
    PeerId,
    PlaceCall,
    Received,
    Reply,
    Send,
    SessionEnded,
    WaAccepted,
    WaMessageIn,
)

__all__ = ["Agent", "CallEntry", "SessionEntry", "Switchboard", "SwitchboardSettings"]

logger = logging.getLogger(__name__)


def _epoch() -> int:
    return int(time.time())


# ── state ───────────────────────────────────────────────────────────────────────────────


@attrs.frozen
class Agent:
    """A connected agent: its peer id, the id the server gave it, and its audio setup."""

    peer: PeerId
    sm_ws_id: str
    sample_rate: int
    isolated: bool


@attrs.define(eq=False)
class CallEntry:
    """A call as the switchboard sees it."""

    ticket: CallTicket
    sample_rate: int | None = None
    isolated: bool = False
    ended: bool = False


@attrs.define(eq=False)
class SessionEntry:
    """One session of the sandbox's connector. ``bound`` is the agent holding its claim."""

    id: str
    channel: ChannelType
    remote_address: str
    local_address: str
    initiator: str
    activity: SessionActivityType | str
    opened_at: int
    state: str = "OPEN"
    closed_at: int | None = None
    close_reason: CloseReason | None = None
    bound: Agent | None = None
    ready: bool = False
    ever_claimed: bool = False
    pending: list[control.WaMsgIn] = attrs.field(factory=list)
    call_id: str | None = None

    @property
    def is_open(self) -> bool:
        return self.state == "OPEN"

    def notify_frame(self, activity: SessionActivityType | str | None) -> control.SessionNotify:
        return control.SessionNotify(
            session_id=self.id,
            channel=self.channel,
            remote_address=self.remote_address,
            local_address=self.local_address,
            activity=self.activity if activity is None else activity,
            created_at=self.opened_at,
        )


@attrs.frozen
class SwitchboardSettings:
    """The parts of the sandbox's configuration the switchboard decides with."""

    channels: frozenset[ChannelType] = frozenset(ChannelType)
    max_open_sessions: int | None = None
    phone_number: str = "+15550100000"
    wa_number: str = "+15550100001"
    org_uuid: str = "org-sandbox"


def _ok(req_id: str, content: Any = None) -> control.Response:
    return control.Response(req_id, True, content)


def _error(req_id: str, code: str, content: Any = None) -> control.Response:
    return control.Response(req_id, False, None, code, content)


class Switchboard:
    """Every session, call and connected agent of one sandbox; :meth:`handle` is its only
    entry. ``voice_base_url`` prefixes the voice URL each ``call.in`` carries."""

    def __init__(
        self,
        settings: SwitchboardSettings | None = None,
        *,
        epoch: Callable[[], int] = _epoch,
    ) -> None:
        self.settings: SwitchboardSettings = SwitchboardSettings() if settings is None else settings
        self._epoch = epoch
        self.sessions: dict[str, SessionEntry] = {}
        self.calls: dict[str, CallEntry] = {}
        self.agents: dict[PeerId, Agent] = {}
        """Connected agents in the order they connected (the order broadcasts go out in)."""
        self.call_flows: list[control.CallFlowSetup] = []
        self.voice_base_url = ""

    def handle(self, event: Event) -> list[Action]:
        """Apply ``event``; returns what the I/O layer must do, in order."""
        out: list[Action] = []
        match event:
            case AgentConnected():
                self._connected(event, out)
            case AgentDisconnected(peer):
                self._disconnected(peer, out)
            case Received(peer, frame):
                self._received(peer, frame, out)
            case PlaceCall(caller, callee):
                session = self._new_session(
                    ChannelType.TELCO,
                    caller,
                    initiator="CONNECTOR",
                    activity=SessionActivityType.NEW_INCOMING_CALL,
                    local_address=callee,
                )
                self._new_call(session, caller, session.local_address, "inbound", out)
                self._notify(session, None, out)
            case CallEnded(call_id, close_session):
                self._call_ended(call_id, close_session, out)
            case WaMessageIn(remote_address, content, sender):
                self._wa_in(remote_address, content, sender, out)
            case CloseSession(session_id, reason):
                self._close(self.sessions[session_id], reason, out)
        return out

    def find_open(self, channel: ChannelType, remote_address: str) -> SessionEntry | None:
        for session in self.sessions.values():
            if (
                session.is_open
                and session.channel is channel
                and session.remote_address == remote_address
            ):
                return session
        return None

    # ── sessions ─────────────────────────────────────────────────────────────────────

    def _new_session(
        self,
        channel: ChannelType,
        remote_address: str,
        *,
        initiator: str,
        activity: SessionActivityType | str,
        local_address: str | None = None,
    ) -> SessionEntry:
        if local_address is None:
            settings = self.settings
            local_address = (
                settings.phone_number if channel is ChannelType.TELCO else settings.wa_number
            )
        session = SessionEntry(
            id="sess-" + secrets.token_hex(8),
            channel=channel,
            remote_address=remote_address,
            local_address=local_address,
            initiator=initiator,
            activity=activity,
            opened_at=self._epoch(),
        )
        self.sessions[session.id] = session
        return session

    def _new_call(
        self, session: SessionEntry, caller: str, callee: str, direction: str, out: list[Action]
    ) -> None:
        ticket = CallTicket(
            control.new_id(), session.id, caller, callee, direction, secrets.token_urlsafe(24)
        )
        self.calls[ticket.call_id] = CallEntry(ticket)
        session.call_id = ticket.call_id
        out.append(CallCreated(ticket))

    def _live_call(self, session: SessionEntry) -> CallEntry | None:
        call = None if session.call_id is None else self.calls[session.call_id]
        return None if call is None or call.ended else call

    def _needs_agent(self, session: SessionEntry) -> bool:
        if not session.is_open or session.bound is not None:
            return False
        if not session.ever_claimed:
            return session.initiator == "CONNECTOR"
        if session.call_id is not None:
            return self._live_call(session) is not None
        return bool(session.pending)

    def _notify(
        self, session: SessionEntry, activity: SessionActivityType | str | None, out: list[Action]
    ) -> None:
        frame = session.notify_frame(activity)
        out.extend(Send(peer, frame) for peer in self.agents)

    def _close(self, session: SessionEntry, reason: CloseReason, out: list[Action]) -> None:
        if not session.is_open:
            return
        session.state = "CLOSED"
        session.closed_at = self._epoch()
        session.close_reason = reason
        logger.info("session %s closed (%s)", session.id, reason.value)
        call = self._live_call(session)
        if call is not None:
            call.ended = True
            out.append(EndCall(call.ticket.call_id))
        if session.bound is not None:
            out.append(Send(session.bound.peer, control.SessionClosed(session.id, reason)))
        out.append(SessionEnded(session.id))

    def _call_ended(self, call_id: str, close_session: bool, out: list[Action]) -> None:
        call = self.calls[call_id]
        if call.ended:
            return
        call.ended = True
        if close_session:
            self._close(self.sessions[call.ticket.session_id], CloseReason.CALL_TERMINATED, out)

    def _wa_in(
        self, remote_address: str, content: dict[str, Any], sender: str | None, out: list[Action]
    ) -> None:
        session = self.find_open(ChannelType.WA, remote_address)
        message_sender = remote_address if sender is None else sender
        if session is None:
            session = self._new_session(
                ChannelType.WA,
                remote_address,
                initiator="CONNECTOR",
                activity=SessionActivityType.NEW_INCOMING_MESSAGE,
            )
            session.pending.append(control.WaMsgIn(session.id, message_sender, content))
            self._notify(session, None, out)
            return
        message = control.WaMsgIn(session.id, message_sender, content)
        if session.bound is not None and session.ready:
            out.append(Send(session.bound.peer, message))
            return
        was_waiting = self._needs_agent(session)
        session.pending.append(message)
        if session.bound is None and not was_waiting and session.ever_claimed:
            self._notify(session, SessionActivityType.NEW_INCOMING_MESSAGE, out)

    # ── agents ───────────────────────────────────────────────────────────────────────

    def _connected(self, event: AgentConnected, out: list[Action]) -> None:
        if event.peer in self.agents:
            logger.warning("agent %s connected twice; ignored", event.peer)
            return
        agent = Agent(event.peer, event.sm_ws_id, event.sample_rate, event.isolated)
        self.agents[agent.peer] = agent
        for session in self.sessions.values():
            if self._needs_agent(session):
                activity = SessionActivityType.RESUME if session.ever_claimed else None
                out.append(Send(agent.peer, session.notify_frame(activity)))

    def _disconnected(self, peer: PeerId, out: list[Action]) -> None:
        """Unbind its sessions; their calls go on, and the other agents are told."""
        if self.agents.pop(peer, None) is None:
            return
        for session in self.sessions.values():
            if session.bound is None or session.bound.peer != peer:
                continue
            session.bound = None
            session.ready = False
            if self._needs_agent(session):
                self._notify(session, SessionActivityType.RESUME, out)

    # ── requests ─────────────────────────────────────────────────────────────────────

    def _received(
        self,
        peer: PeerId,
        frame: control.ControlRequest | control.SessionReady,
        out: list[Action],
    ) -> None:
        agent = self.agents.get(peer)
        if agent is None:
            # The I/O layer only passes on frames of connections past their handshake.
            logger.warning("%s from %s, which is not connected; ignored", frame.TYPE, peer)
            return
        if isinstance(frame, control.SessionReady):
            self._ready(agent, frame.session_id, out)
            return
        if isinstance(frame, control.SessionOpen):
            response = self._open(agent, frame)
        elif isinstance(frame, control.SessionCreate):
            response = self._create(frame, out)
        elif isinstance(frame, control.CallFlowSetup):
            self.call_flows.append(frame)
            response = _ok(frame.req_id)
        else:
            response = self._wa_out(agent, frame, out)
        out.append(Reply(peer, frame.TYPE, response))

    def _open(self, agent: Agent, frame: control.SessionOpen) -> control.Response:
        session = self.sessions.get(frame.session_id)
        if session is None:
            return _error(frame.req_id, "SESSION_NOT_FOUND")
        if not session.is_open:
            return _error(frame.req_id, "SESSION_CLOSED")
        if session.bound is not None and session.bound.peer != agent.peer:
            return _error(frame.req_id, "SESSION_BUSY", {"boundSmWsId": session.bound.sm_ws_id})
        if session.bound is None:
            session.bound = agent
            session.ready = False
            session.ever_claimed = True
            logger.info("session %s claimed by %s", session.id, agent.sm_ws_id)
        opened = control.OpenedSession(
            session.id,
            session.channel,
            session.remote_address,
            session.local_address,
            session.opened_at,
        )
        return _ok(frame.req_id, opened.to_content())

    def _ready(self, agent: Agent, session_id: str, out: list[Action]) -> None:
        session = self.sessions.get(session_id)
        if (
            session is None
            or session.bound is None
            or session.bound.peer != agent.peer
            or not session.is_open
        ):
            logger.info("session.ready for a session %s does not hold; ignored", agent.sm_ws_id)
            return
        if session.ready:
            return
        session.ready = True
        call = self._live_call(session)
        if call is not None:
            self._deliver(agent, call, out)
        pending, session.pending = session.pending, []
        out.extend(Send(agent.peer, message) for message in pending)

    def _deliver(self, agent: Agent, call: CallEntry, out: list[Action]) -> None:
        # The first delivery fixes the call's audio; a later agent gets the same format.
        if call.sample_rate is None:
            call.sample_rate, call.isolated = agent.sample_rate, agent.isolated
        ticket = call.ticket
        out.append(CallDelivered(ticket.call_id, call.sample_rate, call.isolated))
        frame = control.CallIn(
            session_id=ticket.session_id,
            call_id=ticket.call_id,
            url=self.voice_base_url + VOICE_PREFIX + ticket.call_id,
            token=ticket.token,
            caller=ticket.caller,
            callee=ticket.callee,
            org_uuid=self.settings.org_uuid,
        )
        out.append(Send(agent.peer, frame))

    def _create(self, frame: control.SessionCreate, out: list[Action]) -> control.Response:
        if frame.channel not in self.settings.channels:
            return _error(frame.req_id, "CHANNEL_NOT_CONFIGURED")
        existing = self.find_open(frame.channel, frame.remote_address)
        if existing is not None:
            return _ok(frame.req_id, control.CreatedSession(existing.id, False).to_content())
        limit = self.settings.max_open_sessions
        if limit is not None and sum(s.is_open for s in self.sessions.values()) >= limit:
            return _error(frame.req_id, "QUOTA_EXCEEDED")
        session = self._new_session(
            frame.channel, frame.remote_address, initiator="SDK", activity="SDK_CREATE"
        )
        if frame.channel is ChannelType.TELCO:
            # An SDK-created TELCO session is an outbound call to the remote address; its
            # call.in comes after open and ready, like an inbound one.
            self._new_call(session, session.local_address, frame.remote_address, "outbound", out)
        return _ok(frame.req_id, control.CreatedSession(session.id, True).to_content())

    def _wa_out(self, agent: Agent, frame: control.WaMsgOut, out: list[Action]) -> control.Response:
        session = self.sessions.get(frame.session_id)
        if session is None:
            return _error(frame.req_id, "SESSION_NOT_FOUND")
        if session.channel is not ChannelType.WA:
            return _error(frame.req_id, "INVALID_CHANNEL")
        if not session.is_open or session.bound is None or session.bound.peer != agent.peer:
            return _error(frame.req_id, "SESSION_NOT_OPEN")
        if not frame.data:
            return _error(frame.req_id, "INVALID_PAYLOAD", {"message": "data must not be empty"})
        out.append(WaAccepted(session.id, session.remote_address, frame, agent.sm_ws_id))
        return _ok(
            frame.req_id,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": session.remote_address, "wa_id": session.remote_address}],
                "messages": [{"id": "wamid.sandbox-" + secrets.token_hex(8)}],
                "clientMsgId": frame.client_msg_id,
            },
        )
