"""What tests read about the sandbox's sessions: :class:`SessionRecord` (a live view of
the switchboard's state, plus an event to wait on) and :class:`WaOutbound`."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from .._enums import ChannelType, CloseReason, SessionActivityType
from ..protocol.rest import SessionInfo
from ._switchboard import Agent, SessionEntry

__all__ = ["SessionRecord", "WaOutbound"]


@attrs.frozen
class WaOutbound:
    """A ``wa.msg.out`` the sandbox accepted (the agent's message to the WA user)."""

    time: float
    session_id: str
    remote_address: str
    client_msg_id: str
    api_version: str
    data: dict[str, Any]
    sm_ws_id: str


class SessionRecord:
    """One session of the sandbox's connector, as it is now. ``closed`` is set once the
    session is closed; ``bound`` is the agent connection holding its claim, if any."""

    def __init__(self, entry: SessionEntry) -> None:
        self._entry = entry
        self.closed: trio.Event = trio.Event()
        if not entry.is_open:
            self.closed.set()

    def __repr__(self) -> str:
        return f"<SessionRecord {self.id} {self.channel.value} {self.state}>"

    @property
    def id(self) -> str:
        return self._entry.id

    @property
    def channel(self) -> ChannelType:
        return self._entry.channel

    @property
    def remote_address(self) -> str:
        return self._entry.remote_address

    @property
    def local_address(self) -> str:
        return self._entry.local_address

    @property
    def initiator(self) -> str:
        """``CONNECTOR`` (a caller or WA user reached out) or ``SDK`` (``session.create``)."""
        return self._entry.initiator

    @property
    def activity(self) -> SessionActivityType | str:
        return self._entry.activity

    @property
    def opened_at(self) -> int:
        return self._entry.opened_at

    @property
    def created_at(self) -> int:
        return self._entry.opened_at

    @property
    def state(self) -> str:
        """``OPEN`` or ``CLOSED``."""
        return self._entry.state

    @property
    def is_open(self) -> bool:
        return self._entry.is_open

    @property
    def closed_at(self) -> int | None:
        return self._entry.closed_at

    @property
    def close_reason(self) -> CloseReason | None:
        return self._entry.close_reason

    @property
    def bound(self) -> Agent | None:
        return self._entry.bound

    @property
    def bound_sm_ws_id(self) -> str | None:
        bound = self._entry.bound
        return None if bound is None else bound.sm_ws_id

    @property
    def ready(self) -> bool:
        """Whether the agent holding the claim has sent ``session.ready``."""
        return self._entry.ready

    @property
    def ever_claimed(self) -> bool:
        return self._entry.ever_claimed

    @property
    def call_id(self) -> str | None:
        """The session's call (TELCO sessions), whether or not it is still up."""
        return self._entry.call_id

    def info(self) -> SessionInfo:
        """The session as the REST plane lists it."""
        entry = self._entry
        return SessionInfo(
            id=entry.id,
            channel=entry.channel,
            initiator=entry.initiator,
            state=entry.state,
            remote_address=entry.remote_address,
            local_address=entry.local_address,
            opened_at=entry.opened_at,
            closed_at=entry.closed_at,
        )
