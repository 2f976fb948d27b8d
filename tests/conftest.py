"""Test-wide settings: hypothesis profiles, and the secret scan every test runs under.

``TELCOFLOW_TEST_TRANSPORT=websockets`` runs the suite over the second WebSocket engine
(``tests/transport_choice.py``): every config a test builds without a ``transport`` of its
own uses it.

The default profile keeps the suite fast; ``HYPOTHESIS_PROFILE=thorough`` runs many more
examples (``nox -s thorough``).

Every test runs with DEBUG logging on the root logger captured (guarantee 7 of the design):
at its teardown the test fails if an API key, a voice bearer token or private-key material
it used appears in any log record (message, exception text, stack) or SDK exception message.
See ``tests/reliability/_secret_watch.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from hypothesis import HealthCheck, settings

from telcoflow_trio._config import SessionManagerConfig
from tests.reliability._secret_watch import SecretWatch
from tests.transport_choice import TRANSPORT

settings.register_profile("default", max_examples=150, deadline=None)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SECRET_WATCH = SecretWatch()


def pytest_configure(config: pytest.Config) -> None:
    SECRET_WATCH.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    SECRET_WATCH.uninstall()


def pytest_report_header(config: pytest.Config) -> str:
    return f"telcoflow_trio transport: {TRANSPORT}"


@pytest.fixture(autouse=True)
def _transport_under_test(monkeypatch: pytest.MonkeyPatch) -> None:
    if TRANSPORT == "trio-websocket":
        return
    create = SessionManagerConfig.create.__func__  # type: ignore[attr-defined]

    def create_on_the_chosen_transport(
        cls: type[SessionManagerConfig], *args: Any, **kwargs: Any
    ) -> SessionManagerConfig:
        if kwargs.get("transport") is None:
            kwargs["transport"] = TRANSPORT
        return create(cls, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(SessionManagerConfig, "create", classmethod(create_on_the_chosen_transport))


@pytest.fixture(autouse=True)
def _secrets_stay_out_of_logs() -> Iterator[None]:
    # Autouse and sync, so it is set up first and torn down last: the sandbox fixture's
    # shutdown logging is inside the scan.
    with SECRET_WATCH.test_scope():
        yield
        leaks = SECRET_WATCH.leaks()
        if leaks:
            pytest.fail("secret material leaked:\n" + "\n".join(leaks), pytrace=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A certificate authority for the TLS tests of a module (servers' certificates, trust)."""
    return trustme.CA()
