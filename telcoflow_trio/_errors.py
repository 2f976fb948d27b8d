"""The exception hierarchy, and the one mapping from server error codes to classes.

Both the control plane (``response`` frames with ``errorCode``) and the REST plane
(``{"code": ..., "message": ...}`` bodies) turn a server error into an exception
through :func:`error_from_code`, so the same code always raises the same class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = [
    "SERVER_ERROR_CLASSES",
    "BufferClosedError",
    "BufferFullError",
    "WSSAuthenticationError",
    "WSSCallClosedError",
    "WSSCallCommandError",
    "WSSCallCommandTimeoutError",
    "WSSCallError",
    "WSSCallStateError",
    "WSSChannelNotConfigured",
    "WSSConnectionError",
    "WSSError",
    "WSSForbidden",
    "WSSInvalidRequest",
    "WSSOutboundOverflow",
    "WSSQuotaExceeded",
    "WSSSessionAlreadyExists",
    "WSSSessionBusy",
    "WSSSessionClosed",
    "WSSSessionError",
    "WSSSessionNotFound",
    "WSSSessionNotOpen",
    "WrongChannelError",
    "error_from_code",
]


class WSSError(Exception):
    """Base class of every error this SDK raises on purpose.

    ``error_code`` is the server's error code when the error came from the server.
    """

    def __init__(self, message: str = "", *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


class WSSConnectionError(WSSError):
    """A connection could not be made, was lost, or a request got no answer in time.

    ``status_code`` is the HTTP status when the server refused the WebSocket upgrade.
    """

    def __init__(
        self, message: str = "", *, error_code: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.status_code = status_code


class WSSAuthenticationError(WSSError):
    """The server refused our credentials (API key, connector UUID or client certificate).

    ``status_code`` is the HTTP status (401 or 403) when it refused the WebSocket upgrade.
    """

    def __init__(
        self, message: str = "", *, error_code: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.status_code = status_code


class WSSCallError(WSSError):
    """An operation on a call failed."""


class WSSCallClosedError(WSSCallError):
    """The call is over; nothing more can be done with it."""

    def __init__(self, message: str = "call is already closed") -> None:
        super().__init__(message)


class WSSCallCommandError(WSSCallError):
    """The server answered a call command with ``success: false``."""

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.error_message: str = error_message if error_message is not None else message


class WSSCallCommandTimeoutError(WSSCallError):
    """A call command got no answer before its deadline, or the server said ``TIMEOUT``."""


class WSSCallStateError(WSSError):
    """The call is not in a state that allows this operation (e.g. hand-off after NEW)."""


class WSSSessionError(WSSError):
    """A session could not be opened or used."""


class WSSSessionBusy(WSSSessionError):
    """``SESSION_BUSY``: another control connection claimed this session first."""

    def __init__(self, bound_sm_ws_id: str | None) -> None:
        shown = bound_sm_ws_id if bound_sm_ws_id else "another connection"
        super().__init__(f"[SESSION_BUSY] session is bound to {shown}", error_code="SESSION_BUSY")
        self.bound_sm_ws_id = bound_sm_ws_id


class WSSSessionAlreadyExists(WSSSessionError):
    """``session.create`` answered ``created: false``: a session for that address exists."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"[SESSION_ALREADY_EXISTS] session {session_id!r} already exists")
        self.session_id = session_id


class WrongChannelError(WSSError):
    """A channel-specific operation was used on a session of the other channel."""


class WSSChannelNotConfigured(WSSError):
    """``CHANNEL_NOT_CONFIGURED``: the connector has no such channel."""


class WSSSessionClosed(WSSError):
    """``SESSION_CLOSED``: the session is no longer open and cannot be resumed."""


class WSSSessionNotFound(WSSError):
    """``SESSION_NOT_FOUND``: no session has that id."""


class WSSSessionNotOpen(WSSError):
    """``SESSION_NOT_OPEN``: the session exists but is not open."""


class WSSQuotaExceeded(WSSError):
    """``QUOTA_EXCEEDED``: the connector's session quota is used up."""


class WSSOutboundOverflow(WSSError):
    """``OUTBOUND_OVERFLOW``: too many outbound messages in flight."""


class WSSForbidden(WSSError):
    """``FORBIDDEN``: the credentials are valid but not allowed to do this."""


class WSSInvalidRequest(WSSError):
    """``INVALID_REQUEST``: the server found the request malformed."""


class BufferFullError(WSSError):
    """The outgoing audio buffer has no room for these bytes."""


class BufferClosedError(WSSError):
    """The outgoing audio buffer is closed because its call is over."""


SERVER_ERROR_CLASSES: Final[Mapping[str, type[WSSError]]] = {
    "CHANNEL_NOT_CONFIGURED": WSSChannelNotConfigured,
    "SESSION_CLOSED": WSSSessionClosed,
    "SESSION_NOT_FOUND": WSSSessionNotFound,
    "SESSION_NOT_OPEN": WSSSessionNotOpen,
    "QUOTA_EXCEEDED": WSSQuotaExceeded,
    "OUTBOUND_OVERFLOW": WSSOutboundOverflow,
    "UNAUTHORIZED": WSSAuthenticationError,
    "FORBIDDEN": WSSForbidden,
    "INVALID_REQUEST": WSSInvalidRequest,
}


def error_from_code(
    code: str | None, message: str | None = None, *, content: object = None
) -> WSSError:
    """Build the exception for a server error code (control ``response`` or REST body).

    ``content`` is the control plane's ``errorContent``; it supplies ``boundSmWsId``
    for ``SESSION_BUSY``. Unknown codes give a plain :class:`WSSError` carrying the code.
    """
    if code == "SESSION_BUSY":
        bound = content.get("boundSmWsId") if isinstance(content, Mapping) else None
        return WSSSessionBusy(bound if isinstance(bound, str) else None)
    shown_code = code if code else "UNKNOWN"
    text = f"[{shown_code}] {message}" if message else f"[{shown_code}] server returned an error"
    cls = SERVER_ERROR_CLASSES.get(code or "", WSSError)
    return cls(text, error_code=code)
