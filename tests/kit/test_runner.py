"""The runner: every script step does what it says, every invariant can fail, and the
agent can be a handler or a whole program."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

import telcoflow_trio as tf
from telcoflow_trio.testing import (
    CallScript,
    DropControl,
    DropVoice,
    HangUp,
    Pause,
    PlayedCall,
    QuietWhileInterrupted,
    ScriptFailure,
    SendCallError,
    SetConnect,
    Shutdown,
    SlowCommands,
    Speak,
    StallPulls,
    commands_answered_within_deadline,
    no_stale_audio_after_interrupt,
    open_sandbox,
    play_script,
    run_script,
)

from .agents import BargeIn, echo, tone


def test_a_plain_call_echoes_and_ends_cleanly() -> None:
    played = run_script(CallScript([Speak(1.0), Pause(0.5), HangUp()]), echo)
    assert played.violations == []
    assert played.heard == played.spoken
    assert played.sim.ended_by == "CALLER_HANGUP"
    assert played.answered_at is not None
    assert [step for _, step in played.played_steps] == [
        "Speak(seconds=1.0)",
        "Pause(seconds=0.5)",
        "HangUp()",
    ]


def test_shutdown_makes_the_agent_close_the_call() -> None:
    played = run_script(CallScript([Speak(0.5), Shutdown()]), echo)
    assert played.sim.ended_by == "AGENT_CLOSE"


def test_stalled_pulls_ask_for_nothing_meanwhile() -> None:
    played = run_script(CallScript([Speak(0.5), StallPulls(1.0), Pause(2.0)]), echo)
    stall_at = next(t for t, what in played.played_steps if what.startswith("StallPulls"))
    during = [p for p in played.sim.pull_requests if stall_at < p.time < stall_at + 1.0]
    after = [p for p in played.sim.pull_requests if p.time > stall_at + 1.0]
    assert during == []
    assert after


def test_slow_commands_are_answered_late() -> None:
    played = run_script(CallScript([SlowCommands(2.0), Pause(3.0)]), echo)
    (ledger,) = played.ledgers
    answer = next(c for c in ledger.commands if c.name == "answer")
    assert answer.outcome == "ok"
    assert answer.ended is not None and answer.ended - answer.started > 1.99


async def connect_once(call: tf.Call) -> None:
    if await call.answer():
        result = await call.connect(ring_time_seconds=2)
        call.org_uuid = f"connect:{bool(result)}:{result.error_code}"  # read by the test
        await call.wait_terminated()


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("ANSWERED", "connect:True:None"),
        ("UNANSWERED", "connect:False:CALL_UNANSWERED"),
        ("FAILED", "connect:False:CONNECT_FAILED"),
    ],
)
def test_the_connect_outcome_is_the_scripts(outcome: str, expected: str) -> None:
    script = CallScript([SetConnect(outcome, answer_after=0.5), Pause(3.0)])  # type: ignore[arg-type]
    played = run_script(script, connect_once)
    (ledger,) = played.ledgers
    assert ledger.call.org_uuid == expected


def test_call_errors_reach_the_agent() -> None:
    seen: list[tf.CallError] = []

    async def watch(call: tf.Call) -> None:
        if await call.answer():
            async for event in call.events:
                if isinstance(event, tf.CallError):
                    seen.append(event)

    played = run_script(CallScript([Pause(0.2), SendCallError("MEDIA_ERROR", "boom")]), watch)
    assert played.violations == []
    assert [(e.error_code, e.error_message) for e in seen] == [("MEDIA_ERROR", "boom")]


def test_a_step_that_needs_a_voice_connection_is_skipped_without_one() -> None:
    async def never_answers(call: tf.Call) -> None:
        await call.wait_terminated()

    played = run_script(CallScript([SendCallError(), DropVoice()]), never_answers)
    assert all("skipped" in what for _, what in played.played_steps[:2])


def test_the_call_outlives_a_cut_control_connection() -> None:
    played = run_script(CallScript([Speak(0.5), DropControl(), Speak(1.0)]), echo)
    assert "1 connection(s) cut" in played.played_steps[1][1]
    assert played.heard == played.spoken
    assert len(played.spoken) == 1.5 * 32000


def test_a_cut_voice_connection_then_a_shutdown_leaves_no_live_call() -> None:
    run_script(CallScript([Pause(0.1), DropVoice(), Shutdown()]), echo)


def test_a_cut_control_connection_then_a_shutdown_leaves_no_live_call() -> None:
    run_script(CallScript([Pause(0.1), DropControl(), Pause(2.0), Shutdown()]), echo)


# ── invariants fail when they should ──────────────────────────────────────────────────


def test_a_handler_that_raises_is_flagged() -> None:
    async def crashes(call: tf.Call) -> None:
        await call.answer()
        raise RuntimeError("model crashed")

    with pytest.raises(ScriptFailure) as info:
        run_script(CallScript([Pause(0.5)]), crashes)
    (violation,) = info.value.violations
    assert violation.invariant == "no_undocumented_errors"
    assert "RuntimeError: model crashed" in violation.message


def test_closed_call_errors_are_allowed_once_the_call_is_over() -> None:
    async def keeps_sending(call: tf.Call) -> None:
        await call.answer()
        while True:
            await call.send_audio(bytes(640), wait=True)
            await trio.sleep(0.02)

    played = run_script(CallScript([Pause(0.5), HangUp()]), keeps_sending)
    (run,) = played.handler_runs
    assert isinstance(run.error, tf.BufferClosedError | tf.WSSCallClosedError)
    assert played.violations == []


def test_stale_audio_after_an_interrupt_is_flagged() -> None:
    script = CallScript([Pause(0.5), Speak(0.8, "tone"), Pause(1.0)])
    played = run_script(script, BargeIn(), invariants=[QuietWhileInterrupted()])
    assert played.sim.interrupts
    assert played.heard
    no_stale_audio_after_interrupt(played)
    # Pretend every write began before the first interruption: then what the caller heard
    # after it is stale, and the invariant must say so.
    (ledger,) = played.ledgers
    for write in ledger.writes:
        write.epoch = 0
    with pytest.raises(AssertionError, match="stale"):
        no_stale_audio_after_interrupt(played)


def test_a_late_command_is_flagged() -> None:
    played = run_script(CallScript([SlowCommands(3.0), Pause(4.0)]), echo)
    commands_answered_within_deadline(played)
    (ledger,) = played.ledgers
    ledger.commands[0].deadline = 0.5  # as if the SDK had promised an answer in 0.5 s
    with pytest.raises(AssertionError, match=r"answer took 3\.0 s"):
        commands_answered_within_deadline(played)


def test_a_leaked_task_is_flagged() -> None:
    async def leaks_a_task(call: tf.Call) -> None:
        await call.answer()
        trio.lowlevel.spawn_system_task(trio.sleep_forever, name="forgotten")

    with pytest.raises(ScriptFailure, match=r"tasks left running.*forgotten"):
        run_script(CallScript([Pause(0.2)]), leaks_a_task)


def test_a_leaked_socket_is_flagged() -> None:
    kept: list[socket.socket] = []

    async def leaks_a_socket(call: tf.Call) -> None:
        await call.answer()
        kept.append(socket.socket())

    try:
        with pytest.raises(ScriptFailure, match="1 socket"):
            run_script(CallScript([Pause(0.2)]), leaks_a_socket)
    finally:
        for sock in kept:
            sock.close()


# ── user invariants, programs, options ────────────────────────────────────────────────


def speaks_within_2_s(played: PlayedCall) -> None:
    """A user invariant: the agent says something within 2 s of answering."""
    answered = played.answered_at
    if answered is None or played.sim.ended_by is None:
        return
    if played.sim.terminated.is_set() and (played.ended_at or 0) < answered + 2:
        return
    assert played.audible_between(answered, answered + 2), "silent for 2 s after answering"


async def greeter(call: tf.Call) -> None:
    if await call.answer():
        await call.send_audio(tone(call.audio_config.sample_rate, 1.0))
        await call.wait_terminated()


def test_a_user_invariant_runs_with_the_built_in_ones() -> None:
    script = CallScript([Pause(3.0)])
    run_script(script, greeter, invariants=[speaks_within_2_s])
    with pytest.raises(ScriptFailure) as info:
        run_script(script, echo, invariants=[speaks_within_2_s])
    assert [v.invariant for v in info.value.violations] == ["speaks_within_2_s"]


def test_a_whole_program_is_an_agent_too() -> None:
    async def program(config: tf.SessionManagerConfig) -> None:
        async with tf.SessionManager(config) as sm:
            await sm.serve_calls(echo)

    played = run_script(CallScript([Speak(0.5), Shutdown()]), program=program)
    assert played.heard == played.spoken
    assert played.sim.ended_by == "AGENT_CLOSE"


def test_a_program_that_crashes_is_flagged() -> None:
    async def program(config: tf.SessionManagerConfig) -> None:
        async with tf.SessionManager(config):
            raise ValueError("bad settings")

    with pytest.raises(ScriptFailure, match="agent: the agent raised ValueError: bad settings"):
        run_script(CallScript([Pause(0.2)]), program=program)


def test_exactly_one_agent() -> None:
    with pytest.raises(TypeError):
        run_script(CallScript([]))

    async def program(config: tf.SessionManagerConfig) -> None:
        await trio.sleep_forever()

    with pytest.raises(TypeError):
        run_script(CallScript([]), echo, program=program)


def test_scripts_check_their_steps() -> None:
    with pytest.raises(ValueError, match="must be the last step"):
        CallScript([HangUp(), Pause(1.0)])
    with pytest.raises(TypeError):
        CallScript(["speak"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="sample_rate"):
        CallScript([], sample_rate=44100)


async def test_play_script_on_a_running_sandbox(autojump_clock: trio.testing.MockClock) -> None:
    async with open_sandbox() as sandbox:
        first = await play_script(CallScript([Speak(0.5)]), echo, sandbox=sandbox)
        second = await play_script(CallScript([Speak(0.3), Shutdown()]), echo, sandbox=sandbox)
    assert first.heard == first.spoken
    assert second.sim.ended_by == "AGENT_CLOSE"
    assert len(sandbox.calls) == 2
