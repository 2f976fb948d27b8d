"""The switchboard's hands: the I/O side that feeds it events and carries out its actions.

The :class:`Exchange` knows the sockets (control connections by peer id) and the
simulated callers; the switchboard knows neither. Every event goes through
:meth:`Exchange.apply`, which also wakes whoever waits for the sandbox's state to change.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from .._enums import ChannelType, CloseReason
from ._audio import AudioSource
from ._caller import ConnectBehaviour, EndedBy, SimulatedCall
from ._clock import SandboxClock
from ._control import ControlConnection
from ._events import (
    Action,
    CallCreated,
    CallDelivered,
    CallEnded,
    CloseSession,
    EndCall,
    Event,
    PeerId,
    PlaceCall,
    Reply,
    Send,
    SessionEnded,
    WaAccepted,
    WaMessageIn,
)
from ._sessions import SessionRecord, WaOutbound
from ._switchboard import Switchboard

__all__ = ["Exchange"]

logger = logging.getLogger(__name__)


class Exchange:
    """Connects a :class:`Switchboard` to control connections and simulated callers.

    ``connect`` and ``frame_seconds`` are the defaults for every new simulated caller.
    """

    def __init__(
        self,
        switchboard: Switchboard,
        clock: SandboxClock,
        *,
        connect: ConnectBehaviour,
        frame_seconds: float,
    ) -> None:
        self.switchboard = switchboard
        self.clock = clock
        self.connect = connect
        self.frame_seconds = frame_seconds
        self.calls: dict[str, SimulatedCall] = {}
        self.wa_outbox: list[WaOutbound] = []
        self.changed: trio.Event = trio.Event()
        self._connections: dict[PeerId, ControlConnection] = {}
        self._records: dict[str, SessionRecord] = {}

    # ── what it holds ────────────────────────────────────────────────────────────────

    def attach(self, conn: ControlConnection) -> None:
        """A new control connection, before its handshake (frames may be sent to it
        as soon as it has told the switchboard it is connected)."""
        self._connections[conn.peer] = conn

    def detach(self, conn: ControlConnection) -> None:
        self._connections.pop(conn.peer, None)

    def connected(self) -> list[ControlConnection]:
        """Connections past their handshake and still up, in the order they connected."""
        return [self._connections[p] for p in self.switchboard.agents if p in self._connections]

    def record(self, session_id: str) -> SessionRecord:
        record = self._records.get(session_id)
        if record is None:
            record = SessionRecord(self.switchboard.sessions[session_id])
            self._records[session_id] = record
        return record

    def sessions(self) -> dict[str, SessionRecord]:
        return {session_id: self.record(session_id) for session_id in self.switchboard.sessions}

    # ── events ───────────────────────────────────────────────────────────────────────

    def apply(self, event: Event) -> list[Action]:
        """Hand ``event`` to the switchboard and carry out what it returns, in order."""
        actions = self.switchboard.handle(event)
        for action in actions:
            self._carry_out(action)
        self.changed.set()
        self.changed = trio.Event()
        return actions

    def place_call(
        self,
        *,
        caller: str,
        callee: str | None,
        audio: AudioSource | None,
        connect: ConnectBehaviour | None,
    ) -> SimulatedCall:
        actions = self.apply(PlaceCall(caller, callee))
        (ticket,) = [a.ticket for a in actions if isinstance(a, CallCreated)]
        call = self.calls[ticket.call_id]
        # Both are read only once the call is delivered, which takes an agent's frames.
        if connect is not None:
            call.connect_behaviour = connect
        if audio is not None:
            call.say(audio)
        return call

    def send_wa_message(
        self, remote_address: str, content: dict[str, Any], sender: str | None
    ) -> str:
        self.apply(WaMessageIn(remote_address, content, sender))
        session = self.switchboard.find_open(ChannelType.WA, remote_address)
        assert session is not None
        return session.id

    def close_session(self, session_id: str, reason: CloseReason) -> bool:
        """False if it was closed already."""
        actions = self.apply(CloseSession(session_id, reason))
        return any(isinstance(a, SessionEnded) for a in actions)

    def _call_ended(self, call: SimulatedCall, close_session: bool) -> None:
        self.apply(CallEnded(call.call_id, close_session))

    # ── actions ──────────────────────────────────────────────────────────────────────

    def _carry_out(self, action: Action) -> None:
        if isinstance(action, Send | Reply):
            conn = self._connections.get(action.peer)
            if conn is None:
                # Only between a connection's end and the switchboard hearing of it.
                logger.debug("no connection %s for a %s; dropped", action.peer, action.frame.TYPE)
            elif isinstance(action, Send):
                conn.send_frame(action.frame)
            else:
                conn.reply(action.request_type, action.frame)
        elif isinstance(action, CallCreated):
            ticket = action.ticket
            self.calls[ticket.call_id] = SimulatedCall(
                ticket,
                session=self.record(ticket.session_id),
                clock=self.clock,
                connect=self.connect,
                frame_seconds=self.frame_seconds,
                on_end=self._call_ended,
            )
        elif isinstance(action, CallDelivered):
            self.calls[action.call_id].mark_delivered(action.sample_rate, action.isolated)
        elif isinstance(action, EndCall):
            # Its session is closed already: the switchboard ignores the call's report.
            self.calls[action.call_id].end(EndedBy.SESSION_CLOSED, close_session=False)
        elif isinstance(action, SessionEnded):
            self.record(action.session_id).closed.set()
        elif isinstance(action, WaAccepted):
            frame = action.frame
            self.wa_outbox.append(
                WaOutbound(
                    time=self.clock.now(),
                    session_id=action.session_id,
                    remote_address=action.remote_address,
                    client_msg_id=frame.client_msg_id,
                    api_version=frame.api_version,
                    data=frame.data,
                    sm_ws_id=action.sm_ws_id,
                )
            )
