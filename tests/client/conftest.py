"""Client tests run against the sandbox over real WebSockets on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

import telcoflow_trio as tf
from telcoflow_trio.testing import Sandbox, open_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    # Ten times real time: the caller speaks and the sandbox pulls ten times faster.
    async with open_sandbox(time_scale=10) as sb:
        yield sb


@asynccontextmanager
async def claimed_call(sm: tf.SessionManager) -> AsyncIterator[tuple[tf.Session, tf.Call]]:
    """Claim the next notified session and wait for its call: the usual first steps."""
    note = await sm.session_notifications.receive()
    async with sm.open_session(note.session_id) as session:
        yield session, await session.incoming_call()
