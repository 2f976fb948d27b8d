"""Values the session layer hands to the application: notifications and WhatsApp messages."""

from __future__ import annotations

from typing import Any

import attrs

from ._enums import ChannelType, SessionActivityType
from ._validate import check_non_empty_str, check_type
from .protocol import control

__all__ = ["IncomingMessage", "SendWAMessage", "SessionNotification"]


@attrs.frozen
class SessionNotification:
    """A session waiting for an agent (``session.notify``); claim it with ``open_session``.

    ``channel`` is a :class:`ChannelType` when known and the server's string otherwise.
    """

    session_id: str
    channel: ChannelType | str
    remote_address: str = ""
    local_address: str = ""
    activity: SessionActivityType | str = SessionActivityType.NEW_INCOMING_CALL
    created_at: int = 0

    @classmethod
    def from_frame(cls, frame: control.SessionNotify) -> SessionNotification:
        return cls(
            frame.session_id,
            frame.channel,
            frame.remote_address,
            frame.local_address,
            frame.activity,
            frame.created_at,
        )


@attrs.frozen
class IncomingMessage:
    """An inbound WhatsApp message."""

    sender: str
    content: dict[str, Any]


def _api_version(_inst: object, _attr: attrs.Attribute[str], value: object) -> None:
    check_non_empty_str("api_version", value, TypeError)


def _data(_inst: object, _attr: attrs.Attribute[dict[str, Any]], value: object) -> None:
    check_type("data", value, dict, "a dict")


@attrs.frozen
class SendWAMessage:
    """An outbound WhatsApp message: the connector's ``api_version`` and its raw ``data``."""

    api_version: str = attrs.field(validator=_api_version)
    data: dict[str, Any] = attrs.field(validator=_data)
