"""A voice call: commands, audio both ways, events, interruption, hand-off.

The voice WebSocket opens lazily, on the first command or audio operation, in the nursery
of whoever owns the call: its session's scope, or the call's own ``async with`` for a call
received by hand-off (``async with Call.from_json(doc) as call:``). The lifecycle itself
(opening, closing, ending on the server) is driven by
:class:`~telcoflow_trio._call_lifecycle.CallLifecycle`, which holds the call's audio paths
and its events (:mod:`._call_events`); a call's session drives it through the
:class:`CallOwner` made with the call by :func:`call_for_session`.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final

import trio

from . import _trace
from ._call_events import CallError, CallEvents, CallTerminated
from ._call_lifecycle import CallLifecycle, EndOnServerHook
from ._config import CallAudioConfig, SessionManagerConfig, Transport
from ._connectors import connector_for
from ._enums import CallState, CloseReason
from ._errors import WSSCallStateError
from ._results import CommandResult
from ._scope import TaskScope, cleanup_within
from ._validate import check_channel_id, check_int, check_type
from ._voice_connection import VoicePlane
from .audio import (
    AudioCounters,
    AudioStream,
    ClearResult,
    IncomingAudio,
    IncomingReceiver,
    SendAudioBuffer,
)
from .protocol import Unrecognised, control, handoff, voice
from .protocol.call_state import CallEndReason, CallPhase

__all__ = ["Call", "CallEndReason", "CallOwner", "call_for_session"]

logger = logging.getLogger(__name__)

CLOSE_DEADLINE: Final = 15.0
"""How long leaving a hand-off call's scope may spend ending the call on the server."""

_PUBLIC_STATE: Final = {
    CallPhase.NEW: CallState.NEW,
    CallPhase.OPENING: CallState.OPENING,
    CallPhase.LIVE: CallState.LIVE,
    CallPhase.CLOSING: CallState.LIVE,
    CallPhase.ENDING: CallState.TERMINATED,
    CallPhase.ENDED: CallState.TERMINATED,
}

_GRACE: Final = voice.COMMAND_GRACE_SECONDS
_TIMEOUT: Final = voice.CommandName.ANSWER.default_timeout_ms / 1000
_DEADLINE: Final = _TIMEOUT + _GRACE
"""How long a command method may take (reported to an observer, see :mod:`._trace`)."""


class Call:
    """One call. Made by ``Session.incoming_call()`` or ``Call.from_json()``.

    Its lifecycle is a :class:`~telcoflow_trio.protocol.call_state.CallMachine`, driven by a
    ``CallLifecycle`` (private) that feeds it what happens on the voice plane and carries
    out what it decides, so that however the call ends, the server
    has been told by the time its owning scope is left.
    """

    def __init__(
        self,
        doc: handoff.HandoffDocument,
        audio: CallAudioConfig,
        lifecycle: CallLifecycle,
        *,
        org_uuid: str = "",
    ) -> None:
        self._doc = doc
        self.id: str = doc.id
        self.caller_number: str = doc.caller
        self.callee_number: str = doc.callee
        self.org_uuid = org_uuid
        self.audio_config = audio
        self._own_scope: TaskScope | None = None
        self._life = lifecycle
        self._buffer = lifecycle.buffer
        self._incoming = lifecycle.incoming
        self._events = lifecycle.events
        self.events: trio.MemoryReceiveChannel[CallTerminated | CallError] = (
            lifecycle.events.receive
        )

    def __repr__(self) -> str:
        return f"<Call {self.id} {self._life.phase().value}>"

    # ── state ───────────────────────────────────────────────────────────────────────────

    @property
    def state(self) -> CallState:
        """NEW → OPENING → LIVE → TERMINATED."""
        return _PUBLIC_STATE[self._life.phase()]

    @property
    def end_reason(self) -> CallEndReason | None:
        """Why the call ended (None while it is not over)."""
        return self._life.machine.end_reason if self._life.over() else None

    @property
    def handed_off(self) -> bool:
        """True once :meth:`to_json` gave this call to another node."""
        return self._life.handed_off

    async def wait_terminated(self) -> None:
        """Wait until the call is over."""
        await self._life.wait_terminated()

    @property
    def events_dropped(self) -> int:
        """Events dropped because ``events`` was full."""
        return self._events.dropped

    # ── commands ────────────────────────────────────────────────────────────────────────

    async def _command(
        self,
        name: voice.CommandName,
        timeout_ms: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> CommandResult:
        connection = await self._life.live()
        return await connection.command(
            name, name.default_timeout_ms if timeout_ms is None else timeout_ms, data
        )

    async def answer(self) -> CommandResult:
        """Answer the call; truthy on success.

        Raises ``WSSCallClosedError`` if the caller hung up first, ``WSSSessionBusy`` if
        another agent's voice connection holds the call (it is left alone), and
        ``WSSConnectionError`` if the voice plane cannot be opened (the call is then ended
        on the server, so the caller is not left waiting).
        """
        return await _trace.command(self, "answer", _DEADLINE, self._answer)

    async def _answer(self) -> CommandResult:
        result = await self._command(voice.CommandName.ANSWER)
        if result and self._life.phase() is CallPhase.LIVE:
            self._life.machine.answer_ok()
        return result

    async def connect(self, ring_time_seconds: int = 60) -> CommandResult:
        """Ring a human (1–120 s). Falsy with ``error_code == "CALL_UNANSWERED"`` when nobody
        picks up; the call stays up."""
        ring = float(ring_time_seconds) if isinstance(ring_time_seconds, int) else _TIMEOUT
        return await _trace.command(
            self, "connect", ring + _GRACE, self._connect, ring_time_seconds
        )

    async def _connect(self, ring_time_seconds: int) -> CommandResult:
        check_int("ring_time_seconds", ring_time_seconds, low=1, high=120)
        result = await self._command(
            voice.CommandName.CONNECT,
            ring_time_seconds * 1000,
            {"ringTimeSeconds": ring_time_seconds},
        )
        if result and self._life.phase() is CallPhase.LIVE:
            self._life.machine.answer_ok()  # bridged: leaving it is call.close
        return result

    async def whisper(self) -> CommandResult:
        """Speak to the connected human only (after ``connect``)."""
        return await _trace.command(
            self, "whisper", _DEADLINE, self._command, voice.CommandName.WHISPER
        )

    async def barge(self) -> CommandResult:
        """Speak to everyone on the call (after ``connect``)."""
        return await _trace.command(
            self, "barge", _DEADLINE, self._command, voice.CommandName.BARGE
        )

    async def spy(self) -> CommandResult:
        """Listen only (after ``connect``)."""
        return await _trace.command(self, "spy", _DEADLINE, self._command, voice.CommandName.SPY)

    async def disconnect(self) -> CommandResult:
        """End the call for everyone."""
        return await _trace.command(
            self, "disconnect", _DEADLINE, self._life.leave, disconnect=True, drain_timeout=0.0
        )

    async def close(self, *, drain_timeout: float = 0.0) -> CommandResult:
        """Leave the call; the call ends. Idempotent.

        After ``answer`` this sends ``call.close``; a call never answered is ended with
        ``call.disconnect`` instead. With ``drain_timeout`` > 0, queued audio is first
        given that long to be pulled, so the last word is not clipped.
        """
        drain = float(drain_timeout) if isinstance(drain_timeout, int | float) else 0.0
        return await _trace.command(
            self,
            "close",
            _DEADLINE + drain,
            self._life.leave,
            disconnect=False,
            drain_timeout=drain_timeout,
        )

    # ── audio ───────────────────────────────────────────────────────────────────────────

    async def send_audio(self, pcm: bytes | bytearray | memoryview, *, wait: bool = False) -> None:
        """Queue PCM for the server to pull. Raises ``BufferFullError`` when it does not fit,
        or with ``wait=True`` waits for room. Once the call is over: ``WSSCallClosedError``
        (or ``BufferClosedError`` if it ended while this write waited for room)."""
        observer = _trace.OBSERVER.get()
        if observer is not None:
            await _trace.audio(observer, self, pcm, self._send_audio, pcm, wait)
            return
        # The body of _send_audio, inlined: the unobserved path is the hot one.
        if self._life.phase() is not CallPhase.LIVE:
            await self._life.live()
        await self._buffer.send_audio(pcm, wait=wait)

    async def _send_audio(self, pcm: bytes | bytearray | memoryview, wait: bool) -> None:
        if self._life.phase() is not CallPhase.LIVE:
            await self._life.live()
        await self._buffer.send_audio(pcm, wait=wait)

    async def clear_send_audio_buffer(self) -> int:
        """Drop everything queued and send ``agent.interrupt``; returns the bytes dropped.
        Afterwards no byte queued before the call is ever sent. Details in :attr:`last_clear`."""
        return await _trace.command(
            self, "clear_send_audio_buffer", _DEADLINE, self._clear_send_audio_buffer
        )

    async def _clear_send_audio_buffer(self) -> int:
        connection = await self._life.live()
        result = await connection.servicer.clear()
        return result.discarded_bytes

    @property
    def last_clear(self) -> ClearResult | None:
        """The most recent clear: bytes dropped, heard position, the interrupt's result."""
        return None if self._life.voice is None else self._life.voice.servicer.last_clear

    async def get_send_audio_buffer_size(self) -> int:
        """Bytes queued and not yet pulled."""
        await trio.lowlevel.checkpoint()
        return self._buffer.size

    async def wait_for_playout(self) -> None:
        """Return once everything queued has been handed to the server (the tail flushed).
        Raises ``WSSCallClosedError`` if the call ends first."""
        if self._life.voice is None and self._buffer.size == 0:
            await trio.lowlevel.checkpoint()
            return
        connection = await self._life.live()
        await connection.servicer.wait_for_playout()

    @property
    def heard_position(self) -> int:
        """Bytes of our audio handed to the server so far."""
        return 0 if self._life.voice is None else self._life.voice.servicer.heard_position

    @property
    def audio_counters(self) -> AudioCounters | None:
        """Outgoing-audio counters (queued, sent, discarded, underruns, ...)."""
        return None if self._life.voice is None else self._life.voice.servicer.counters()

    @property
    def incoming_audio_dropped_bytes(self) -> int:
        """Incoming audio dropped because ``audio_stream`` was read too slowly."""
        return self._incoming.dropped_bytes

    @property
    def incoming_audio_unread_bytes(self) -> int:
        """Incoming audio dropped because nobody had opened a stream for its channel."""
        return self._incoming.unread_bytes

    @property
    def command_rtts(self) -> Sequence[float]:
        """Round-trip times (s) of recent commands."""
        return () if self._life.voice is None else tuple(self._life.voice.command_rtts)

    @property
    def pull_fill_times(self) -> Sequence[float]:
        """Seconds from recent pull requests (those that found audio queued) to the frame
        that completed each, as handed to the socket; an empty buffer is an underrun."""
        return () if self._life.voice is None else tuple(self._life.voice.servicer.fill_times)

    def audio_stream(self, channel_id: int = 0) -> AudioStream:
        """The caller's audio on a channel (0 = mixed): ``async for chunk in call.audio_stream()``.

        A trio receive channel of PCM chunks that ends when the call ends. The voice plane
        opens on the first receive; ``await call.audio_stream()`` opens it at once.
        """
        channel_id = check_channel_id(channel_id)

        async def open_channel() -> IncomingReceiver:
            await self._life.live()
            return self._incoming.stream(channel_id)

        return AudioStream(channel_id, open_channel)

    # ── hand-off ────────────────────────────────────────────────────────────────────────

    def to_json(self) -> str:
        """The hand-off document for another node; only a NEW call can be handed off.
        Afterwards this call object is inert: closing its session leaves the call alone."""
        if self._life.phase() is not CallPhase.NEW:
            raise WSSCallStateError(f"to_json() needs a NEW call; call {self.id} is {self.state}")
        self._life.apply(self._life.machine.hand_off())
        return handoff.encode_handoff(self._doc)

    @classmethod
    def from_json(
        cls,
        document: str | bytes,
        audio_config: CallAudioConfig | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        transport: Transport = "trio-websocket",
    ) -> Call:
        """A call handed over by another node; use it as ``async with Call.from_json(d) as call``.

        The audio settings are this node's own; ``transport`` picks the WebSocket engine, as
        ``SessionManagerConfig.transport`` does. Raises ``ValueError`` naming what is wrong.
        """
        check_type("document", document, (str, bytes), "str or bytes")
        audio = CallAudioConfig() if audio_config is None else audio_config
        check_type("audio_config", audio, CallAudioConfig, "a CallAudioConfig")
        check_type("transport", transport, str, "a str")
        plane = VoicePlane(connector_for(transport))
        doc = handoff.decode_handoff(document)
        if isinstance(doc, Unrecognised):
            raise ValueError(f"not a call hand-off document: {doc.reason}")
        return cls(doc, audio, _lifecycle(doc, audio, ssl_context, voice_plane=plane))

    async def __aenter__(self) -> Call:
        if self._life.nursery is not None:
            raise WSSCallStateError("this call already has a scope (its session's)")
        self._own_scope = TaskScope(f"call {self.id}")
        self._life.nursery = await self._own_scope.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._own_scope is not None
        try:
            if not await cleanup_within(CLOSE_DEADLINE, self._life.settle):
                logger.warning(
                    "call %s: not ended on the server within %g s", self.id, CLOSE_DEADLINE
                )
        finally:
            await self._own_scope.close(exc)
        return None


class CallOwner:
    """The owning session's side of a call. Not for applications."""

    def __init__(self, lifecycle: CallLifecycle) -> None:
        self._life = lifecycle

    @property
    def server_done(self) -> bool:
        """The server's call is over, or is not ours to end."""
        return self._life.machine.server_done

    async def settle(self) -> None:
        """The session's scope is ending: end the call on the server if it is not over."""
        await self._life.settle()

    async def open_voice(self) -> None:
        """Open the voice plane now (before a handler runs for a resumed call)."""
        await self._life.live()

    def server_closed(self, reason: CloseReason) -> None:
        """The server closed the call's session, which ends its call."""
        self._life.server_closed_session(reason)

    def abandon(self) -> None:
        """The scope is over and its cleanup deadline passed: stop the call's tasks."""
        self._life.abandon()


def call_for_session(
    frame: control.CallIn,
    config: SessionManagerConfig,
    nursery: TaskScope,
    end_on_server: EndOnServerHook,
    voice_plane: VoicePlane,
) -> tuple[Call, CallOwner]:
    """The call a ``call.in`` announced, living in its session's nursery, and its owner handle."""
    doc = handoff.HandoffDocument(frame.call_id, frame.url, frame.token, frame.caller, frame.callee)
    tls = config.tls_context() if frame.url.startswith("wss://") else None
    audio = config.call_audio
    life = _lifecycle(doc, audio, tls, nursery, end_on_server, voice_plane)
    return Call(doc, audio, life, org_uuid=frame.org_uuid), CallOwner(life)


def _lifecycle(
    doc: handoff.HandoffDocument,
    audio: CallAudioConfig,
    tls: ssl.SSLContext | None,
    nursery: TaskScope | None = None,
    end_on_server: EndOnServerHook | None = None,
    voice_plane: VoicePlane | None = None,
) -> CallLifecycle:
    """A call's lifecycle driver, with the audio paths and events channel it holds."""
    label = f"call {doc.id}"
    return CallLifecycle(
        doc,
        tls=tls,
        nursery=nursery,
        end_on_server=end_on_server,
        voice_plane=VoicePlane() if voice_plane is None else voice_plane,
        buffer=SendAudioBuffer.from_config(audio),
        incoming=IncomingAudio.from_config(audio, label=label),
        events=CallEvents(label),
    )
