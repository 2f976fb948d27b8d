"""Client tests run against the sandbox over real WebSockets on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from telcoflow_trio.testing import Sandbox, open_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    # Ten times real time: the caller speaks and the sandbox pulls ten times faster.
    async with open_sandbox(time_scale=10) as sb:
        yield sb
