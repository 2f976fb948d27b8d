"""A pytest plugin with a ``sandbox`` fixture (needs pytest-trio).

Enable it in a ``conftest.py`` with ``pytest_plugins = ["telcoflow_trio.testing.pytest_plugin"]``.
Tune the sandbox per test with ``@pytest.mark.sandbox(time_scale=10, ...)``: the marker's
keyword arguments are passed to :func:`open_sandbox`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._sandbox import Sandbox, open_sandbox

__all__ = ["sandbox"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sandbox(**options): keyword arguments for the sandbox fixture's open_sandbox"
    )


@pytest.fixture
async def sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    """A running sandbox on 127.0.0.1 and a free port, closed after the test."""
    marker = request.node.get_closest_marker("sandbox")
    options = dict(marker.kwargs) if marker is not None else {}
    async with open_sandbox(**options) as running:
        yield running
