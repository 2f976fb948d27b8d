"""Result values returned (not raised) by operations that can fail in the ordinary course."""

from __future__ import annotations

from typing import Any

import attrs

from ._enums import MessageErrorCode

__all__ = ["CommandResult", "SendMessageResult"]


@attrs.frozen
class CommandResult:
    """Outcome of a call command. Falsy when the server refused it or did not answer in
    time, so ``if await call.answer(): ...`` reads naturally."""

    success: bool
    error_code: str | None = None
    error_message: str | None = None
    payload: Any = None

    def __bool__(self) -> bool:
        return self.success


def _message_code(value: object) -> MessageErrorCode | str | None:
    if value is None or isinstance(value, MessageErrorCode):
        return value
    try:
        return MessageErrorCode(str(value))
    except ValueError:
        return str(value)


@attrs.frozen
class SendMessageResult:
    """Outcome of ``session.send_message``; falsy on failure. Unknown codes stay strings."""

    success: bool
    response_content: Any = None
    error_code: MessageErrorCode | str | None = attrs.field(default=None, converter=_message_code)
    error_content: Any = None

    def __bool__(self) -> bool:
        return self.success
