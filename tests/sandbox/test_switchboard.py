"""The sandbox's switchboard without sockets: events in, actions out.

The claim race, ready gating, re-notifying agents of sessions nobody holds and restoring
sessions after a control reconnect, each as a worked case. ``test_switchboard_machine.py``
drives random event sequences and checks the same rules on every action.
"""

from __future__ import annotations

from typing import Any

import pytest

from telcoflow_trio import ChannelType, CloseReason, SessionActivityType
from telcoflow_trio.protocol import control
from telcoflow_trio.sandbox._events import (
    Action,
    AgentConnected,
    AgentDisconnected,
    CallCreated,
    CallDelivered,
    CallEnded,
    CloseSession,
    EndCall,
    PeerId,
    PlaceCall,
    Received,
    Reply,
    Send,
    SessionEnded,
    WaAccepted,
    WaMessageIn,
)
from telcoflow_trio.sandbox._switchboard import Switchboard, SwitchboardSettings

A, B, C = PeerId("a"), PeerId("b"), PeerId("c")
VOICE_URL = "ws://voice.example"


def make_board(**settings: Any) -> Switchboard:
    board = Switchboard(SwitchboardSettings(**settings), epoch=lambda: 1_700_000_000)
    board.voice_base_url = VOICE_URL
    return board


def connect(board: Switchboard, peer: PeerId, rate: int = 16000) -> list[Action]:
    return board.handle(AgentConnected(peer, f"smws-{peer}", rate))


def sent(actions: list[Action], peer: PeerId | None = None) -> list[Any]:
    """The frames of ``Send`` actions (to ``peer`` only, if given)."""
    return [a.frame for a in actions if isinstance(a, Send) and peer in (None, a.peer)]


def request(board: Switchboard, peer: PeerId, frame: control.ControlRequest) -> control.Response:
    actions = board.handle(Received(peer, frame))
    (reply,) = [a for a in actions if isinstance(a, Reply)]
    assert reply.peer == peer and reply.request_type == frame.TYPE
    assert reply.frame.req_id == frame.req_id
    return reply.frame


def claim(board: Switchboard, peer: PeerId, session_id: str) -> control.Response:
    return request(board, peer, control.SessionOpen(session_id))


def ready(board: Switchboard, peer: PeerId, session_id: str) -> list[Action]:
    return board.handle(Received(peer, control.SessionReady(session_id)))


def place(board: Switchboard) -> tuple[str, str, list[Action]]:
    actions = board.handle(PlaceCall("+15557654321"))
    (created,) = [a for a in actions if isinstance(a, CallCreated)]
    return created.ticket.session_id, created.ticket.call_id, actions


# ── the claim race ──────────────────────────────────────────────────────────────────────


def test_a_new_call_is_offered_to_every_agent_in_connection_order() -> None:
    board = make_board()
    assert connect(board, A) == [] and connect(board, B) == []
    session_id, call_id, actions = place(board)
    assert isinstance(actions[0], CallCreated) and actions[0].ticket.direction == "inbound"
    assert [a.peer for a in actions if isinstance(a, Send)] == [A, B]
    for note in sent(actions):
        assert isinstance(note, control.SessionNotify)
        assert note.session_id == session_id
        assert note.activity is SessionActivityType.NEW_INCOMING_CALL
        assert note.channel is ChannelType.TELCO
    assert board.sessions[session_id].call_id == call_id


@pytest.mark.parametrize(("first", "second"), [(A, B), (B, A)])
def test_the_first_claim_wins_and_the_other_is_busy(first: PeerId, second: PeerId) -> None:
    board = make_board()
    connect(board, A)
    connect(board, B)
    session_id, _, _ = place(board)
    won = claim(board, first, session_id)
    assert won.ok and won.content["session"]["id"] == session_id
    lost = claim(board, second, session_id)
    assert not lost.ok
    assert lost.error_code == "SESSION_BUSY"
    assert lost.error_content == {"boundSmWsId": f"smws-{first}"}
    bound = board.sessions[session_id].bound
    assert bound is not None and bound.peer == first
    # The winner claiming again changes nothing; the loser's ready is ignored.
    assert claim(board, first, session_id).ok
    assert ready(board, second, session_id) == []


def test_claims_of_missing_and_closed_sessions_fail() -> None:
    board = make_board()
    connect(board, A)
    assert claim(board, A, "sess-nope").error_code == "SESSION_NOT_FOUND"
    session_id, _, _ = place(board)
    board.handle(CloseSession(session_id))
    assert claim(board, A, session_id).error_code == "SESSION_CLOSED"


# ── ready gating ────────────────────────────────────────────────────────────────────────


def test_call_in_waits_for_session_ready_from_the_holder() -> None:
    board = make_board()
    connect(board, A, rate=24000)
    session_id, call_id, _ = place(board)
    assert ready(board, A, session_id) == []  # not claimed yet
    assert claim(board, A, session_id).ok
    actions = ready(board, A, session_id)
    assert actions[0] == CallDelivered(call_id, 24000, False)
    (call_in,) = sent(actions, A)
    assert isinstance(call_in, control.CallIn)
    assert call_in.call_id == call_id and call_in.session_id == session_id
    assert call_in.url == f"{VOICE_URL}/v1/voice/{call_id}"
    assert call_in.token == board.calls[call_id].ticket.token
    assert board.sessions[session_id].ready
    assert ready(board, A, session_id) == []  # once per claim


def test_whatsapp_messages_wait_for_session_ready() -> None:
    board = make_board()
    connect(board, A)
    actions = board.handle(WaMessageIn("+4477", {"text": "hi"}))
    (note,) = sent(actions, A)
    assert note.activity is SessionActivityType.NEW_INCOMING_MESSAGE
    session_id = note.session_id
    assert claim(board, A, session_id).ok
    assert sent(board.handle(WaMessageIn("+4477", {"text": "again"}))) == []
    flushed = sent(ready(board, A, session_id), A)
    assert [m.content["text"] for m in flushed] == ["hi", "again"]
    assert [m.sender for m in flushed] == ["+4477", "+4477"]
    (direct,) = sent(board.handle(WaMessageIn("+4477", {"text": "now"}, sender="bot")), A)
    assert direct.sender == "bot"


# ── re-notify ───────────────────────────────────────────────────────────────────────────


def test_a_dropped_agents_live_call_is_offered_to_the_others_again() -> None:
    board = make_board()
    connect(board, A)
    connect(board, B)
    session_id, call_id, _ = place(board)
    claim(board, A, session_id)
    ready(board, A, session_id)
    actions = board.handle(AgentDisconnected(A))
    (note,) = sent(actions, B)
    assert len(sent(actions)) == 1  # nothing for the agent that left
    assert note.session_id == session_id and note.activity is SessionActivityType.RESUME
    entry = board.sessions[session_id]
    assert entry.bound is None and not entry.ready and entry.is_open
    assert not board.calls[call_id].ended
    # An agent connecting later is offered it too.
    (late,) = sent(connect(board, C), C)
    assert late.session_id == session_id and late.activity is SessionActivityType.RESUME


def test_an_unclaimed_call_is_offered_to_late_agents_as_new() -> None:
    board = make_board()
    session_id, _, actions = place(board)
    assert sent(actions) == []  # nobody to tell
    (note,) = sent(connect(board, A), A)
    assert note.session_id == session_id
    assert note.activity is SessionActivityType.NEW_INCOMING_CALL


def test_sessions_that_need_no_agent_are_not_offered_again() -> None:
    board = make_board()
    connect(board, A)
    connect(board, B)
    hung_up, hung_up_call, _ = place(board)
    closed, _, _ = place(board)
    for session_id in (hung_up, closed):
        claim(board, A, session_id)
    board.handle(CallEnded(hung_up_call, close_session=False))  # session left open
    board.handle(CloseSession(closed))
    assert board.sessions[hung_up].is_open
    assert board.handle(AgentDisconnected(A)) == []
    assert connect(board, C) == []


def test_a_message_to_a_session_its_agent_left_is_offered_again() -> None:
    board = make_board()
    connect(board, A)
    connect(board, B)
    (note, _) = sent(board.handle(WaMessageIn("+4477", {"n": 1})))
    claim(board, A, note.session_id)
    ready(board, A, note.session_id)
    assert board.handle(AgentDisconnected(A)) == []  # nothing pending: nobody needed
    notes = sent(board.handle(WaMessageIn("+4477", {"n": 2})), B)
    assert [n.activity for n in notes] == [SessionActivityType.NEW_INCOMING_MESSAGE]
    # A second message while it waits is queued, not announced again.
    assert sent(board.handle(WaMessageIn("+4477", {"n": 3}))) == []
    claim(board, B, note.session_id)
    assert [m.content["n"] for m in sent(ready(board, B, note.session_id))] == [2, 3]


# ── restore after a control reconnect ───────────────────────────────────────────────────


def test_a_reconnected_agent_restores_its_call_with_the_same_audio_format() -> None:
    board = make_board()
    connect(board, A, rate=16000)
    session_id, call_id, _ = place(board)
    claim(board, A, session_id)
    (first,) = sent(ready(board, A, session_id))
    board.handle(AgentDisconnected(A))
    # The same process reconnects on a new connection, with a different setup.
    again = PeerId("a-again")
    (note,) = sent(connect(board, again, rate=24000), again)
    assert note.activity is SessionActivityType.RESUME
    assert claim(board, again, session_id).ok
    actions = ready(board, again, session_id)
    assert CallDelivered(call_id, 16000, False) in actions  # fixed at the first delivery
    (second,) = sent(actions, again)
    assert second == first  # the same call, url and token
    bound = board.sessions[session_id].bound
    assert bound is not None and bound.sm_ws_id == "smws-a-again"


def test_a_restore_loses_to_an_agent_that_claimed_first() -> None:
    board = make_board()
    connect(board, A)
    connect(board, B)
    session_id, _, _ = place(board)
    claim(board, A, session_id)
    board.handle(AgentDisconnected(A))
    assert claim(board, B, session_id).ok
    again = PeerId("a-again")
    assert connect(board, again) == []  # held again: not offered
    lost = claim(board, again, session_id)
    assert lost.error_code == "SESSION_BUSY" and lost.error_content == {"boundSmWsId": "smws-b"}


def test_a_whatsapp_session_is_claimed_again_after_a_reconnect() -> None:
    board = make_board()
    connect(board, A)
    (note,) = sent(board.handle(WaMessageIn("+4477", {"n": 1})))
    claim(board, A, note.session_id)
    ready(board, A, note.session_id)
    board.handle(AgentDisconnected(A))
    again = PeerId("a-again")
    connect(board, again)
    assert claim(board, again, note.session_id).ok
    assert ready(board, again, note.session_id) == []
    (message,) = sent(board.handle(WaMessageIn("+4477", {"n": 2})), again)
    assert message.content == {"n": 2}


# ── closing, creating, sending ──────────────────────────────────────────────────────────


def test_closing_a_session_ends_its_call_and_tells_its_holder_once() -> None:
    board = make_board()
    connect(board, A)
    connect(board, B)
    session_id, call_id, _ = place(board)
    claim(board, A, session_id)
    actions = board.handle(CloseSession(session_id, CloseReason.SDK_REQUEST))
    assert actions == [
        EndCall(call_id),
        Send(A, control.SessionClosed(session_id, CloseReason.SDK_REQUEST)),
        SessionEnded(session_id),
    ]
    assert board.handle(CloseSession(session_id)) == []
    assert board.handle(CallEnded(call_id)) == []


def test_a_call_that_ends_closes_its_session() -> None:
    board = make_board()
    connect(board, A)
    session_id, call_id, _ = place(board)
    claim(board, A, session_id)
    actions = board.handle(CallEnded(call_id))
    assert actions == [
        Send(A, control.SessionClosed(session_id, CloseReason.CALL_TERMINATED)),
        SessionEnded(session_id),
    ]
    assert board.sessions[session_id].close_reason is CloseReason.CALL_TERMINATED


def test_session_create() -> None:
    board = make_board(channels=frozenset({ChannelType.TELCO}), max_open_sessions=1)
    connect(board, A)
    create = control.SessionCreate(ChannelType.TELCO, "+4479")
    actions = board.handle(Received(A, create))
    assert isinstance(actions[0], CallCreated)
    ticket = actions[0].ticket
    assert (ticket.direction, ticket.callee) == ("outbound", "+4479")
    reply = actions[1]
    assert isinstance(reply, Reply) and reply.frame.content["created"] is True
    assert board.sessions[ticket.session_id].initiator == "SDK"
    again = request(board, A, control.SessionCreate(ChannelType.TELCO, "+4479"))
    assert again.content == {"sessionId": ticket.session_id, "created": False}
    full = request(board, A, control.SessionCreate(ChannelType.TELCO, "+4480"))
    assert full.error_code == "QUOTA_EXCEEDED"
    wa = request(board, A, control.SessionCreate(ChannelType.WA, "+4480"))
    assert wa.error_code == "CHANNEL_NOT_CONFIGURED"


def test_wa_msg_out_needs_an_open_whatsapp_session_held_by_the_sender() -> None:
    board = make_board()
    connect(board, A)
    connect(board, B)
    (note, _) = sent(board.handle(WaMessageIn("+4477", {})))
    telco, _, _ = place(board)

    def out(peer: PeerId, session_id: str, data: Any) -> list[Action]:
        return board.handle(Received(peer, control.WaMsgOut(session_id, "v1", data)))

    def code(actions: list[Action]) -> str | None:
        (reply,) = [a for a in actions if isinstance(a, Reply)]
        return reply.frame.error_code

    assert code(out(A, "sess-nope", {"x": 1})) == "SESSION_NOT_FOUND"
    assert code(out(A, telco, {"x": 1})) == "INVALID_CHANNEL"
    assert code(out(A, note.session_id, {"x": 1})) == "SESSION_NOT_OPEN"
    claim(board, A, note.session_id)
    assert code(out(B, note.session_id, {"x": 1})) == "SESSION_NOT_OPEN"
    assert code(out(A, note.session_id, {})) == "INVALID_PAYLOAD"
    accepted, reply = out(A, note.session_id, {"x": 1})
    assert isinstance(accepted, WaAccepted) and accepted.sm_ws_id == "smws-a"
    assert isinstance(reply, Reply) and reply.frame.ok


def test_frames_from_a_peer_that_is_not_connected_are_ignored() -> None:
    board = make_board()
    session_id, _, _ = place(board)
    assert board.handle(Received(A, control.SessionOpen(session_id))) == []
    assert board.handle(AgentDisconnected(A)) == []
    connect(board, A)
    assert connect(board, A) == []  # twice: ignored
    assert list(board.agents) == [A]
