"""The ``sandbox`` fixture, with ``open_sandbox`` options from the marker (docs/guide/testing.rst).

Needs pytest-trio's ``trio_mode = true``."""

import pytest

import telcoflow_trio as tf
from telcoflow_trio.sandbox import ConnectBehaviour
from telcoflow_trio.testing import Sandbox


@pytest.mark.sandbox(time_scale=10, connect=ConnectBehaviour("UNANSWERED"))
async def test_unanswered_connect(sandbox: Sandbox) -> None:
    async with tf.SessionManager(sandbox.config()) as sm:
        sim = await sandbox.place_call()
        note = await sm.session_notifications.receive()
        async with sm.open_session(note.session_id) as session:
            call = await session.incoming_call()
            assert await call.answer()
            result = await call.connect(ring_time_seconds=5)
            assert not result
            assert result.error_code == "CALL_UNANSWERED"
            assert call.state is tf.CallState.LIVE  # an unanswered connect leaves the call up
            await sim.hang_up()
