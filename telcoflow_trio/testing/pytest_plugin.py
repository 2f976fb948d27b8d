"""A pytest plugin with a ``sandbox`` fixture: a running sandbox for each test.

Installing the package registers it (a ``pytest11`` entry point named ``telcoflow_trio``):
there is nothing to add to ``conftest.py``. Do not also name it in ``pytest_plugins``:
pytest would try to register it a second time and refuse to start ("Plugin already
registered under a different name").

The fixture is async, so the tests that use it must run under pytest-trio
(``pip install pytest-trio``): either switch trio mode on for the whole project,

.. code-block:: ini

    # pytest.ini (or [tool.pytest.ini_options] in pyproject.toml)
    [pytest]
    trio_mode = true

or mark each such test with ``@pytest.mark.trio``. Without either, pytest stops with
"requested an async fixture 'sandbox', with no plugin or hook that handled it".

Tune the sandbox per test with ``@pytest.mark.sandbox(time_scale=10, ...)``: the marker's
keyword arguments are passed to :func:`~telcoflow_trio.sandbox.open_sandbox`::

    import pytest

    import telcoflow_trio as tf

    @pytest.mark.sandbox(time_scale=10)
    async def test_my_agent(sandbox):
        async with tf.SessionManager(sandbox.config()) as sm:
            ...
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
    """A running sandbox on 127.0.0.1 and a free port, closed after the test (needs
    pytest-trio's ``trio_mode = true`` or ``@pytest.mark.trio``)."""
    marker = request.node.get_closest_marker("sandbox")
    options = dict(marker.kwargs) if marker is not None else {}
    async with open_sandbox(**options) as running:
        yield running
