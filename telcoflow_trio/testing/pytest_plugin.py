"""A pytest plugin with a ``sandbox`` fixture (needs pytest-trio, with ``trio_mode = true``
or ``@pytest.mark.trio`` on the tests).

Installing the package registers it (a ``pytest11`` entry point): there is nothing to add
to ``conftest.py``, and adding it to ``pytest_plugins`` as well makes pytest refuse to start.
Tune the sandbox per test with ``@pytest.mark.sandbox(time_scale=10, ...)``: the marker's
keyword arguments are passed to :func:`open_sandbox`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ..sandbox import Sandbox, open_sandbox

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
