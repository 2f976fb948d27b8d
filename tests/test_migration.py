"""docs/migration.rst states facts about this package's side of each row: they stay true.

(The ``telcoflow`` 1.0.0 side was checked against its source when the page was written; it
is a released package and does not change.)"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

import telcoflow_trio as tf

PAGE = (Path(__file__).resolve().parent.parent / "docs" / "migration.rst").read_text()


def test_session_notification_field_order_is_the_one_the_page_gives() -> None:
    names = [a.name for a in attrs.fields(tf.SessionNotification)]
    assert names == [
        "session_id",
        "channel",
        "remote_address",
        "local_address",
        "activity",
        "created_at",
    ]
    assert "SessionNotification(session_id, channel, remote_address" in PAGE


def test_session_info_has_the_eight_fields_the_page_gives() -> None:
    names = [a.name for a in attrs.fields(tf.SessionInfo)]
    assert ", ".join(names) in PAGE
    for gone in ("busy", "bound_sm_ws_id", "not_found", "session_closed"):
        assert gone not in names


def test_there_is_no_wss_message_error_here() -> None:
    assert not hasattr(tf, "WSSMessageError")
    assert "WSSMessageError`` has no counterpart" in PAGE


def test_the_environment_variables_the_page_names_are_read() -> None:
    env = {"TELCOFLOW_API_KEY": "sk-test-key", "TELCOFLOW_CONNECTOR_UUID": "c-1"}
    env["TELCOFLOW_BASE_URL"] = "ws://127.0.0.1:1"
    env["TELCOFLOW_TRANSPORT"] = "websockets"
    config = tf.SessionManagerConfig.from_env(env)
    assert (config.api_key, config.connector_uuid) == ("sk-test-key", "c-1")
    assert config.base_url == "ws://127.0.0.1:1"
    assert config.transport == "websockets"
    for name in (*env, "TELCOFLOW_CERT_PATH", "TELCOFLOW_KEY_PATH", "TELCOFLOW_CA_BUNDLE"):
        assert f"``{name}``" in PAGE
    # The old names do not work here: the page says to rename them.
    old = {"WSS_API_KEY": "sk-test-key", "WSS_CONNECTOR_UUID": "c-1"}
    with pytest.raises(ValueError, match="TELCOFLOW_API_KEY"):
        tf.SessionManagerConfig.from_env(old)
    assert "rename ``WSS_API_KEY`` to ``TELCOFLOW_API_KEY``" in PAGE
