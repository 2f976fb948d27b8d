"""The call and session state machines alone: every event in every phase either moves the
machine as the lifecycle says or is refused without changing it (as h2's state tests do),
and the promises the SDK builds on hold for any sequence of events."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telcoflow_trio._enums import CloseReason
from telcoflow_trio.protocol.call_state import (
    CallEndReason,
    CallMachine,
    CallPhase,
    CallStateError,
    EndOnServer,
    OpenVoice,
    SendClose,
    StopVoice,
)
from telcoflow_trio.protocol.session_state import (
    CloseOverRest,
    EndCall,
    Reclaim,
    SendReady,
    SessionMachine,
    SessionPhase,
    SessionStateError,
)

CallEvent = Callable[[CallMachine], list[object]]

CALL_EVENTS: dict[str, CallEvent] = {
    "open_voice": lambda m: list(m.open_voice()),
    "voice_opened": lambda m: list(m.voice_opened()),
    "voice_failed_503": lambda m: list(m.voice_failed(503)),
    "voice_failed_409": lambda m: list(m.voice_failed(409)),
    "voice_failed_410": lambda m: list(m.voice_failed(410)),
    "voice_failed_none": lambda m: list(m.voice_failed(None)),
    "voice_lost": lambda m: list(m.voice_lost()),
    "terminated": lambda m: list(m.terminated()),
    "session_closed": lambda m: list(m.terminated(CallEndReason.SESSION_CLOSED)),
    "close": lambda m: list(m.close()),
    "disconnect": lambda m: list(m.close(disconnect=True)),
    "close_ok": lambda m: list(m.close_answered(ok=True)),
    "close_refused": lambda m: list(m.close_answered(ok=False, error_code="CALL_NOT_ANSWERED")),
    "close_terminated": lambda m: list(m.close_answered(ok=False, error_code="CALL_TERMINATED")),
    "close_timeout": lambda m: list(m.close_answered(ok=False)),
    "answer_ok": lambda m: list(m.answer_ok()),
    "server_ended_ok": lambda m: list(m.server_ended(ok=True)),
    "server_ended_failed": lambda m: list(m.server_ended(ok=False)),
    "hand_off": lambda m: list(m.hand_off()),
    "scope_ended": lambda m: list(m.scope_ended()),
    "give_up": lambda m: list(m.give_up()),
}


def _snapshot(machine: object) -> object:
    return copy.deepcopy(machine)


@given(st.lists(st.sampled_from(sorted(CALL_EVENTS)), max_size=30))
def test_call_machine_moves_or_refuses_without_change(events: list[str]) -> None:
    machine = CallMachine()
    ended_by_server_once = False
    stop_voice_sent = 0
    for name in events:
        before = _snapshot(machine)
        was_over = machine.over
        try:
            actions = CALL_EVENTS[name](machine)
        except CallStateError as exc:
            refused_in = exc.phase
            assert machine == before, f"{name} was refused but changed the machine"
            assert refused_in is machine.phase
            continue
        stop_voice_sent += sum(isinstance(a, StopVoice) for a in actions)
        # Once over, a call never comes back.
        if was_over:
            assert machine.over
            assert not any(isinstance(a, OpenVoice | SendClose) for a in actions)
        # Asking the server to end it happens only when it is not known to be over.
        if any(isinstance(a, EndOnServer) for a in actions):
            assert machine.phase is CallPhase.ENDING and not machine.server_done
        if machine.server_done:
            ended_by_server_once = True
        if ended_by_server_once:
            assert machine.server_done, "the server's call cannot come back to life"
        if machine.over:
            assert machine.end_reason is not None
    # The voice tasks are stopped exactly once, when the call becomes over.
    assert stop_voice_sent == (1 if machine.over else 0)


@given(st.lists(st.sampled_from(sorted(CALL_EVENTS)), max_size=30))
def test_leaving_a_scope_always_settles_the_call(events: list[str]) -> None:
    """Whatever happened before, the owner's loop (scope_ended, answering what it asks,
    give_up at the deadline) ends with the server told or the failure recorded."""
    machine = CallMachine()
    for name in events:
        with contextlib.suppress(CallStateError):
            CALL_EVENTS[name](machine)
    for _ in range(6):
        if machine.phase is CallPhase.ENDED:
            break
        actions = machine.scope_ended() or machine.give_up()
        for action in actions:
            if isinstance(action, OpenVoice):
                machine.voice_opened()
            elif isinstance(action, SendClose):
                machine.close_answered(ok=True)
            elif isinstance(action, EndOnServer):
                machine.server_ended(ok=True)
        if not actions and machine.phase is CallPhase.ENDING:
            machine.server_ended(ok=True)
    assert machine.phase is CallPhase.ENDED
    assert machine.end_reason is not None


def test_a_lost_voice_socket_ends_the_call_on_the_server() -> None:
    machine = CallMachine()
    assert machine.open_voice() == [OpenVoice()]
    machine.voice_opened()
    machine.answer_ok()
    assert machine.voice_lost() == [StopVoice(), EndOnServer()]
    assert (machine.phase, machine.server_done) == (CallPhase.ENDING, False)
    assert machine.end_reason is CallEndReason.VOICE_LOST
    machine.server_ended(ok=True)
    assert (machine.phase, machine.server_done) == (CallPhase.ENDED, True)


@pytest.mark.parametrize(
    ("status", "reason", "told"),
    [
        (410, CallEndReason.TERMINATED, True),
        (409, CallEndReason.HELD_ELSEWHERE, True),
        (503, CallEndReason.VOICE_REFUSED, False),
        (None, CallEndReason.VOICE_REFUSED, False),
    ],
)
def test_a_refused_voice_upgrade(status: int | None, reason: CallEndReason, told: bool) -> None:
    machine = CallMachine()
    machine.open_voice()
    actions = machine.voice_failed(status)
    assert machine.end_reason is reason
    assert (EndOnServer() in actions) is not told
    assert machine.server_done is told


def test_leaving_an_answered_call_is_close_and_an_unanswered_one_disconnect() -> None:
    answered = CallMachine()
    answered.open_voice()
    answered.voice_opened()
    answered.answer_ok()
    assert answered.scope_ended() == [SendClose("call.close")]
    answered.close_answered(ok=True)
    assert answered.end_reason is CallEndReason.CLOSED

    unanswered = CallMachine()
    assert unanswered.scope_ended() == [OpenVoice()]
    unanswered.voice_opened()
    assert unanswered.scope_ended() == [SendClose("call.disconnect")]
    unanswered.close_answered(ok=True)
    assert unanswered.end_reason is CallEndReason.DISCONNECTED


def test_an_unanswered_close_goes_back_to_live_and_give_up_ends_it_without_the_socket() -> None:
    machine = CallMachine()
    machine.open_voice()
    machine.voice_opened()
    machine.close()
    assert machine.close_answered(ok=False) == []
    assert machine.phase is CallPhase.LIVE
    assert machine.give_up() == [StopVoice(), EndOnServer()]


def test_hand_off_only_from_new() -> None:
    machine = CallMachine()
    machine.open_voice()
    with pytest.raises(CallStateError, match="hand_off is not allowed in phase OPENING"):
        machine.hand_off()
    fresh = CallMachine()
    assert fresh.hand_off() == [StopVoice()]
    assert fresh.server_done and fresh.end_reason is CallEndReason.HANDED_OFF
    assert fresh.scope_ended() == []


# ── sessions ─────────────────────────────────────────────────────────────────────────────

SessionEvent = Callable[[SessionMachine], list[object]]

SESSION_EVENTS: dict[str, SessionEvent] = {
    "ready": lambda m: list(m.ready()),
    "call_in": lambda m: list(m.call_in()),
    "server_closed": lambda m: list(m.server_closed(CloseReason.CALL_TERMINATED)),
    "force_closed": lambda m: list(m.server_closed(CloseReason.FORCE_CLOSE)),
    "control_lost": lambda m: list(m.control_lost()),
    "control_back": lambda m: list(m.control_back()),
    "reclaim_ok": lambda m: list(m.reclaim_answered(ok=True)),
    "reclaim_busy": lambda m: list(m.reclaim_answered(ok=False, error_code="SESSION_BUSY")),
    "reclaim_gone": lambda m: list(m.reclaim_answered(ok=False, error_code="SESSION_CLOSED")),
    "reclaim_other": lambda m: list(m.reclaim_answered(ok=False, error_code="INTERNAL")),
    "scope_ended": lambda m: list(m.scope_ended()),
    "rest_closed": lambda m: list(m.rest_closed()),
    "call_settled": lambda m: list(m.call_settled(server_done=True)),
}


@given(st.lists(st.sampled_from(sorted(SESSION_EVENTS)), max_size=30))
def test_session_machine_moves_or_refuses_without_change(events: list[str]) -> None:
    machine = SessionMachine()
    for name in events:
        before = _snapshot(machine)
        was_closed = machine.closed
        try:
            actions = SESSION_EVENTS[name](machine)
        except SessionStateError:
            assert machine == before, f"{name} was refused but changed the machine"
            continue
        if was_closed:
            assert machine.closed and actions == [], f"{name} acted on a closed session"
        # A session is told ready, or re-claimed, only while it is not closed.
        if any(isinstance(a, SendReady | Reclaim) for a in actions):
            assert not machine.closed
        # Another agent's session is never closed by us.
        if any(isinstance(a, CloseOverRest) for a in actions):
            assert machine.ours
        if machine.closed:
            assert machine.close_reason is not None
        if not machine.ours:
            assert machine.closed or machine.has_call


def test_a_blip_before_the_call_reclaims_and_makes_it_ready_again() -> None:
    machine = SessionMachine()
    machine.control_lost()
    assert machine.ready() == []  # not sent while unbound
    assert machine.control_back() == [Reclaim()]
    assert machine.reclaim_answered(ok=True) == [SendReady()]
    assert machine.call_in() == []
    assert machine.phase is SessionPhase.CALL


def test_a_session_won_by_another_agent_before_its_call_is_theirs() -> None:
    machine = SessionMachine()
    machine.ready()
    machine.control_lost()
    machine.control_back()
    assert machine.reclaim_answered(ok=False, error_code="SESSION_BUSY") == []
    assert machine.closed and not machine.ours
    assert machine.scope_ended() == []  # not closed over REST: it is not ours


def test_a_live_call_stays_ours_when_another_agent_wins_the_reclaim() -> None:
    machine = SessionMachine()
    machine.ready()
    machine.call_in()
    machine.control_lost()
    machine.control_back()
    machine.reclaim_answered(ok=False, error_code="SESSION_BUSY")
    assert not machine.closed
    assert machine.scope_ended() == [EndCall()]
    machine.call_settled(server_done=True)
    assert machine.close_reason is CloseReason.CALL_TERMINATED


def test_a_session_left_before_its_call_is_closed_over_rest() -> None:
    machine = SessionMachine()
    machine.ready()
    assert machine.scope_ended() == [CloseOverRest()]
    machine.rest_closed()
    assert machine.closed and machine.close_reason is CloseReason.SDK_REQUEST


def test_a_close_cut_short_is_done_again_when_the_scope_ends() -> None:
    # session.close() cancelled while its REST close (or its call's end) was in flight.
    waiting = SessionMachine()
    waiting.ready()
    assert waiting.close_requested() == [CloseOverRest()]
    assert waiting.scope_ended() == [CloseOverRest()]
    with_call = SessionMachine()
    with_call.call_in()
    assert with_call.close_requested() == [EndCall()]
    assert with_call.scope_ended() == [EndCall()]


def test_a_call_that_ends_while_its_voice_socket_opens_stays_ended() -> None:
    # call.terminated read before the opener resumes, or a refusal after the owner gave up.
    opened = CallMachine()
    opened.open_voice()
    opened.terminated()
    assert opened.voice_opened() == []
    assert opened.phase is CallPhase.ENDED
    refused = CallMachine()
    refused.open_voice()
    refused.give_up()
    assert refused.voice_failed(503) == []
    assert refused.phase is CallPhase.ENDING
