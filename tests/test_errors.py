"""One mapping from server error codes to exception classes, for both planes."""

from __future__ import annotations

import pytest

import telcoflow_trio as tf
from telcoflow_trio._errors import SERVER_ERROR_CLASSES, error_from_code


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("CHANNEL_NOT_CONFIGURED", tf.WSSChannelNotConfigured),
        ("SESSION_CLOSED", tf.WSSSessionClosed),
        ("SESSION_NOT_FOUND", tf.WSSSessionNotFound),
        ("SESSION_NOT_OPEN", tf.WSSSessionNotOpen),
        ("QUOTA_EXCEEDED", tf.WSSQuotaExceeded),
        ("OUTBOUND_OVERFLOW", tf.WSSOutboundOverflow),
        ("UNAUTHORIZED", tf.WSSAuthenticationError),
        ("FORBIDDEN", tf.WSSForbidden),
        ("INVALID_REQUEST", tf.WSSInvalidRequest),
    ],
)
def test_codes_map_to_classes(code: str, cls: type[tf.WSSError]) -> None:
    err = error_from_code(code, "server says no")
    assert type(err) is cls
    assert err.error_code == code
    assert str(err) == f"[{code}] server says no"
    assert SERVER_ERROR_CLASSES[code] is cls


def test_session_busy_carries_the_bound_connection() -> None:
    err = error_from_code("SESSION_BUSY", None, content={"boundSmWsId": "sm-7"})
    assert isinstance(err, tf.WSSSessionBusy)
    assert isinstance(err, tf.WSSSessionError)
    assert err.bound_sm_ws_id == "sm-7"
    assert "sm-7" in str(err)
    odd = error_from_code("SESSION_BUSY", None, content=["not", "an", "object"])
    assert isinstance(odd, tf.WSSSessionBusy) and odd.bound_sm_ws_id is None


def test_unknown_and_missing_codes() -> None:
    err = error_from_code("BRAND_NEW_CODE", "hm")
    assert type(err) is tf.WSSError and err.error_code == "BRAND_NEW_CODE"
    missing = error_from_code(None)
    assert type(missing) is tf.WSSError and "[UNKNOWN]" in str(missing)


def test_hierarchy() -> None:
    classes: list[type[Exception]] = [
        tf.WSSConnectionError,
        tf.WSSAuthenticationError,
        tf.WSSCallError,
        tf.WSSCallStateError,
        tf.WSSSessionError,
        tf.WrongChannelError,
        tf.BufferFullError,
        tf.BufferClosedError,
        *SERVER_ERROR_CLASSES.values(),
    ]
    for cls in classes:
        assert issubclass(cls, tf.WSSError)
    for cls in (tf.WSSCallClosedError, tf.WSSCallCommandError, tf.WSSCallCommandTimeoutError):
        assert issubclass(cls, tf.WSSCallError)
    assert issubclass(tf.WSSSessionAlreadyExists, tf.WSSSessionError)
    err = tf.WSSCallCommandError("failed", error_code="CALL_UNANSWERED")
    assert (err.error_code, err.error_message) == ("CALL_UNANSWERED", "failed")
    assert str(tf.WSSCallClosedError()) == "call is already closed"


def test_results_are_falsy_on_failure() -> None:
    assert tf.CommandResult(True)
    assert not tf.CommandResult(False, "TIMEOUT")
    assert not tf.SendMessageResult(False, error_code="OVERFLOW")
    assert (
        tf.SendMessageResult(False, error_code="OVERFLOW").error_code
        is tf.MessageErrorCode.OVERFLOW
    )
    assert tf.SendMessageResult(False, error_code="NEWCODE").error_code == "NEWCODE"
