"""A call's events as the application reads them: ``async for event in call.events``.

The voice socket reports ``call.terminated`` and ``call.error``; :class:`CallEvents` turns
each into a :class:`CallTerminated` or :class:`CallError` value on a bounded channel that
the socket reader never waits on (a full channel drops, counts and logs, see
:mod:`._channels`). Unknown events are logged and ignored.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import attrs
import trio

from ._channels import DroppingSender, open_dropping_channel
from ._enums import CallEvent
from .protocol import voice

__all__ = ["EVENT_BUFFER", "CallError", "CallEvents", "CallTerminated"]

logger = logging.getLogger(__name__)

EVENT_BUFFER: Final = 64


@attrs.frozen
class CallTerminated:
    """The call is over (``call.terminated``)."""

    payload: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class CallError:
    """The server reported an error on the call (``call.error``), e.g. ``TTS_SESSION_ERROR``."""

    error_code: str | None
    error_message: str | None
    payload: dict[str, Any] = attrs.field(factory=dict)


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class CallEvents:
    """One call's events channel; ``label`` (e.g. ``call <id>``) starts its log lines."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._send: DroppingSender[CallTerminated | CallError]
        self.receive: trio.MemoryReceiveChannel[CallTerminated | CallError]
        """The application's end (``call.events``)."""
        self._send, self.receive = open_dropping_channel(EVENT_BUFFER, logger, f"{label}: events")

    @property
    def dropped(self) -> int:
        """Events dropped because the channel was full."""
        return self._send.dropped

    def deliver(self, frame: voice.CallEventFrame) -> bool:
        """Queue the event a frame reports (never waits); True if it ends the call."""
        event: CallTerminated | CallError
        if frame.event == CallEvent.CALL_ERROR:
            event = CallError(
                _opt_str(frame.payload.get("error_code")),
                _opt_str(frame.payload.get("error_message")),
                frame.payload,
            )
        elif frame.event == CallEvent.CALL_TERMINATED:
            event = CallTerminated(frame.payload)
        else:
            logger.debug("%s: unknown call event %r ignored", self._label, frame.event)
            return False
        self._send.offer(event, "%s", frame.event)
        return isinstance(event, CallTerminated)

    def close(self) -> None:
        """The call is over: the application's ``async for`` ends after what is queued."""
        self._send.close()
