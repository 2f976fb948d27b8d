"""Lifecycle holes found by attacking the policies (issue 13): each test fails before its fix."""

from __future__ import annotations

import pytest
import trio

import telcoflow_trio as tf
from telcoflow_trio._scope import TaskScope
from telcoflow_trio.protocol import control
from telcoflow_trio.protocol.session_state import SessionPhase
from telcoflow_trio.testing import Sandbox


async def test_a_session_close_cancelled_half_way_is_finished_by_the_scope(
    sandbox: Sandbox,
) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            await sandbox.place_call()
            note = await sm.session_notifications.receive()
            async with sm.open_session(note.session_id) as session:
                with trio.CancelScope() as cancelled:

                    async def cancel_once_closing() -> None:
                        while session._machine.phase is not SessionPhase.CLOSING:
                            await trio.lowlevel.checkpoint()
                        cancelled.cancel()

                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(cancel_once_closing)
                        await session.close()
                assert cancelled.cancelled_caught
            # Left with its REST close cut short: the scope's end must close it again.
            assert not sandbox.sessions[note.session_id].is_open


async def test_a_claim_cancelled_as_its_answer_arrives_is_released(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.fail_after(30):
        async with tf.SessionManager(sandbox.config()) as sm:
            claims = trio.CancelScope()
            request = sm._control.request

            async def answered_then_cancelled(frame: control.ControlRequest) -> control.Response:
                response = await request(frame)
                if isinstance(frame, control.SessionOpen):
                    # The caller's deadline fires in the same batch as the answer.
                    claims.cancel()
                return response

            monkeypatch.setattr(sm._control, "request", answered_then_cancelled)
            sim = await sandbox.place_call()
            note = await sm.session_notifications.receive()
            with claims:
                async with sm.open_session(note.session_id):
                    pytest.fail("the claim's caller was cancelled")
            record = sandbox.sessions[sim.session_id]
            with trio.move_on_after(5):
                await record.closed.wait()
            assert not record.is_open


def test_an_internal_task_failure_is_not_turned_into_a_stray_cancelled() -> None:
    # Its own trio.run: a stray Cancelled escapes it as itself, whatever runs the tests.
    async def fails() -> None:
        await trio.sleep(0.01)
        raise RuntimeError("internal bug")

    async def block_waiting_while_a_task_fails() -> None:
        scope = TaskScope("test", shield=False)
        await scope.open()
        scope.start_soon(fails)
        body: BaseException | None = None
        try:
            await trio.sleep(10)
        except BaseException as exc:
            body = exc
            raise
        finally:
            await scope.close(body)

    with pytest.raises(BaseExceptionGroup) as info:
        trio.run(block_waiting_while_a_task_fails)
    assert info.group_contains(RuntimeError)
