"""The sandbox's switchboard under random event sequences: a state machine drives it and
checks every action it returns against a model that follows only the events and the
actions (who holds which session, who sent ``session.ready``, which calls are up)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from telcoflow_trio import ChannelType, SessionActivityType
from telcoflow_trio.protocol import control
from telcoflow_trio.sandbox._events import (
    Action,
    AgentConnected,
    AgentDisconnected,
    CallCreated,
    CallEnded,
    CloseSession,
    EndCall,
    Event,
    PeerId,
    PlaceCall,
    Received,
    Reply,
    Send,
    SessionEnded,
    WaMessageIn,
)
from telcoflow_trio.sandbox._switchboard import Switchboard


def sent(actions: list[Action], peer: PeerId | None = None) -> list[Any]:
    """The frames of ``Send`` actions (to ``peer`` only, if given)."""
    return [a.frame for a in actions if isinstance(a, Send) and peer in (None, a.peer)]


PEERS = [PeerId(f"p{i}") for i in range(3)]
REMOTES = ["+4401", "+4402"]
picks = st.integers(0, 9)  # one of the three newest sessions, mostly; 9 one that does not exist
whos = st.integers(0, 7)  # a connected agent, mostly; 7 one that is not connected


class SwitchboardMachine(RuleBasedStateMachine):
    """Drives a switchboard with random events and checks every action against a model
    that follows only the events and the actions: who holds which session, who sent
    ``session.ready``, which calls are still up."""

    def __init__(self) -> None:
        super().__init__()
        self.board = Switchboard(epoch=lambda: 0)
        self.sm_ids = (f"smws-{n}" for n in itertools.count())
        self.connected: dict[PeerId, str] = {}
        self.holder: dict[str, PeerId] = {}  # session -> peer whose claim stands
        self.offered: set[str] = set()  # sessions offered unasked: placed calls, claimed once
        self.readied: set[str] = set()  # sessions whose holder sent ready since claiming
        self.calls: dict[str, str] = {}  # session -> its call
        self.ended: set[str] = set()  # calls that are over
        self.closed: set[str] = set()  # sessions closed (SessionEnded seen)
        self.told_closed: set[str] = set()

    def session(self, pick: int) -> str:
        # Mostly the newest sessions, so that agents meet on the same one.
        ids = list(self.board.sessions)
        if not ids or pick == 9:
            return "sess-missing"
        return ids[-1 - pick % min(3, len(ids))]

    def agent(self, who: int) -> PeerId:
        # Mostly connected agents, so that their frames meet on the same sessions.
        connected = list(self.connected)
        if connected and who < 7:
            return connected[who % len(connected)]
        return next((p for p in PEERS if p not in self.connected), PEERS[0])

    def live_call(self, session_id: str) -> bool:
        call = self.calls.get(session_id)
        return session_id not in self.closed and call is not None and call not in self.ended

    def waiting(self) -> set[str]:
        """Sessions with a live call that no agent holds, and that agents are offered."""
        return {
            s
            for s in self.board.sessions
            if s in self.offered and s not in self.holder and self.live_call(s)
        }

    def step(self, event: Event) -> list[Action]:
        actions = self.board.handle(event)
        offered: set[str] = set()
        for action in actions:
            if isinstance(action, Send | Reply):
                assert action.peer in self.connected, f"{action} to a peer not connected"
            if isinstance(action, Send):
                self.check_send(action)
                if isinstance(action.frame, control.SessionNotify):
                    offered.add(action.frame.session_id)
            elif isinstance(action, CallCreated):
                assert action.ticket.session_id not in self.calls
                self.calls[action.ticket.session_id] = action.ticket.call_id
            elif isinstance(action, EndCall):
                assert action.call_id not in self.ended
                self.ended.add(action.call_id)
            elif isinstance(action, SessionEnded):
                assert action.session_id not in self.closed
                self.closed.add(action.session_id)
        assert not offered & self.closed, "a closed session was offered"
        return actions

    def check_send(self, action: Send) -> None:
        frame, peer = action.frame, action.peer
        if isinstance(frame, control.SessionNotify):
            assert frame.session_id not in self.closed and frame.session_id not in self.holder
        elif isinstance(frame, control.CallIn):
            assert self.holder.get(frame.session_id) == peer
            assert self.live_call(frame.session_id)
        elif isinstance(frame, control.WaMsgIn):
            assert self.holder.get(frame.session_id) == peer
            assert frame.session_id in self.readied
        else:
            assert self.holder.get(frame.session_id) == peer
            assert frame.session_id not in self.told_closed
            self.told_closed.add(frame.session_id)

    def reply_to(self, peer: PeerId, frame: control.ControlRequest) -> control.Response | None:
        actions = self.step(Received(peer, frame))
        replies = [a for a in actions if isinstance(a, Reply)]
        if peer not in self.connected:
            assert actions == []
            return None
        (reply,) = replies
        assert reply.peer == peer and reply.frame.req_id == frame.req_id
        return reply.frame

    # ── agents ───────────────────────────────────────────────────────────────────────

    @initialize()
    def two_agents(self) -> None:
        self.connect(PEERS[0], 16000)
        self.connect(PEERS[1], 24000)

    @rule(peer=st.sampled_from(PEERS), rate=st.sampled_from([8000, 16000, 24000]))
    def connect(self, peer: PeerId, rate: int) -> None:
        if peer in self.connected:
            assert self.step(AgentConnected(peer, "smws-dup", rate)) == []
            return
        self.connected[peer] = sm_ws_id = next(self.sm_ids)
        actions = self.step(AgentConnected(peer, sm_ws_id, rate))
        offered = {f.session_id for f in sent(actions, peer)}
        assert self.waiting() <= offered, "a call nobody holds was not offered to a new agent"

    @rule(who=st.integers(0, 5))
    def disconnect(self, who: int) -> None:
        # Half the time a peer that is not connected (as rare as connecting, on average).
        peer = PEERS[who] if who < len(PEERS) else self.agent(who)
        self.connected.pop(peer, None)
        dropped = {s for s, p in self.holder.items() if p == peer}
        for session_id in dropped:
            del self.holder[session_id]
            self.readied.discard(session_id)
        actions = self.step(AgentDisconnected(peer))
        for other in self.connected:
            offered = {f.session_id for f in sent(actions, other)}
            assert {s for s in dropped if self.live_call(s)} <= offered
            assert all(f.activity is SessionActivityType.RESUME for f in sent(actions, other))

    # ── the agents' frames ───────────────────────────────────────────────────────────

    @rule(who=whos, pick=picks)
    def open_session(self, who: int, pick: int) -> None:
        peer, session_id = self.agent(who), self.session(pick)
        reply = self.reply_to(peer, control.SessionOpen(session_id))
        if reply is None:
            return
        holder = self.holder.get(session_id)
        if reply.ok:
            assert holder in (None, peer), "two agents hold one session"
            assert session_id not in self.closed
            if holder is None:
                self.holder[session_id] = peer
                self.offered.add(session_id)
                self.readied.discard(session_id)
        elif reply.error_code == "SESSION_BUSY":
            assert holder is not None and holder != peer
            assert reply.error_content == {"boundSmWsId": self.connected[holder]}
        else:
            assert reply.error_code in ("SESSION_CLOSED", "SESSION_NOT_FOUND")

    @rule(who=whos, pick=picks)
    def session_ready(self, who: int, pick: int) -> None:
        peer, session_id = self.agent(who), self.session(pick)
        accepted = (
            self.holder.get(session_id) == peer
            and session_id not in self.closed
            and session_id not in self.readied
        )
        call_due = accepted and self.live_call(session_id)
        if accepted:
            self.readied.add(session_id)  # before: the messages it releases are checked
        actions = self.step(Received(peer, control.SessionReady(session_id)))
        call_ins = [f for f in sent(actions) if isinstance(f, control.CallIn)]
        assert len(call_ins) == int(call_due), "call.in without ready, or ready without it"
        if not accepted:
            assert actions == []

    @rule(who=whos, pick=picks)
    def claim_and_ready(self, who: int, pick: int) -> None:
        self.open_session(who, pick)
        self.session_ready(who, pick)

    @rule(who=whos, telco=st.booleans(), remote=st.sampled_from(REMOTES))
    def create_session(self, who: int, telco: bool, remote: str) -> None:
        peer = self.agent(who)
        channel = ChannelType.TELCO if telco else ChannelType.WA
        reply = self.reply_to(peer, control.SessionCreate(channel, remote))
        assert reply is None or reply.ok

    @rule(who=whos, pick=picks, empty=st.booleans())
    def wa_out(self, who: int, pick: int, empty: bool) -> None:
        peer, session_id = self.agent(who), self.session(pick)
        reply = self.reply_to(peer, control.WaMsgOut(session_id, "v1", {} if empty else {"x": 1}))
        if reply is not None and reply.ok:
            assert self.holder.get(session_id) == peer and session_id not in self.closed

    # ── the world ────────────────────────────────────────────────────────────────────

    @rule()
    def place_call(self) -> None:
        actions = self.step(PlaceCall("+4400"))
        (created,) = [a for a in actions if isinstance(a, CallCreated)]
        self.offered.add(created.ticket.session_id)
        assert {f.session_id for f in sent(actions)} <= {created.ticket.session_id}
        assert [a.peer for a in actions if isinstance(a, Send)] == list(self.connected)

    @rule(remote=st.sampled_from(REMOTES))
    def wa_in(self, remote: str) -> None:
        self.step(WaMessageIn(remote, {"text": "hi"}))

    @rule(pick=picks, close_session=st.booleans())
    def call_ended(self, pick: int, close_session: bool) -> None:
        session_id = self.session(pick)
        call_id = self.calls.get(session_id)
        if call_id is None:
            return
        already = call_id in self.ended
        actions = self.step(CallEnded(call_id, close_session))
        if already or not close_session:
            assert actions == []
        self.ended.add(call_id)
        assert not any(isinstance(a, EndCall) for a in actions)

    @rule(pick=picks)
    def close(self, pick: int) -> None:
        session_id = self.session(pick)
        if session_id in self.board.sessions:
            self.step(CloseSession(session_id))

    # ── the state, whole ─────────────────────────────────────────────────────────────

    @invariant()
    def claims_match_the_model(self) -> None:
        assert list(self.board.agents) == list(self.connected)
        for session_id, entry in self.board.sessions.items():
            bound = None if entry.bound is None else entry.bound.peer
            assert bound == self.holder.get(session_id)
            assert entry.ready == (session_id in self.readied)
            assert entry.is_open == (session_id not in self.closed)


SwitchboardMachine.TestCase.settings = settings(stateful_step_count=40)
TestSwitchboard = SwitchboardMachine.TestCase
