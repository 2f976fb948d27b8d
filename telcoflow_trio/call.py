"""A voice call: commands, audio both ways, events, interruption, hand-off.

The voice WebSocket opens lazily, on the first command or audio operation, in the nursery
of whoever owns the call: its session's scope, or the call's own ``async with`` for a call
received by hand-off (``async with Call.from_json(doc) as call:``).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from ._scope import TaskScope
from .audio import AudioCounters, AudioStream, ClearResult, SendAudioBuffer
from .audio.incoming import check_channel_id
from .config import CallAudioConfig, SessionManagerConfig
from .enums import CallEvent, CallState
from .errors import WSSCallClosedError, WSSCallStateError
from .protocol import Unrecognised, control, handoff, voice
from .results import CommandResult
from .voice_connection import VoiceConnection

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Call", "CallError", "CallOwner", "CallTerminated", "call_for_session"]

logger = logging.getLogger(__name__)

EVENT_BUFFER: Final = 64
CLOSE_DEADLINE: Final = 15.0


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


class Call:
    """One call. Made by ``Session.incoming_call()`` or ``Call.from_json()``."""

    def __init__(
        self,
        doc: handoff.HandoffDocument,
        call_audio: CallAudioConfig | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        org_uuid: str = "",
        session: Session | None = None,
        nursery: trio.Nursery | None = None,
    ) -> None:
        audio = CallAudioConfig() if call_audio is None else call_audio
        if not isinstance(audio, CallAudioConfig):
            raise TypeError(f"call_audio must be a CallAudioConfig, got {type(audio).__name__}")
        self._doc = doc
        self.id = doc.id
        self.caller_number = doc.caller
        self.callee_number = doc.callee
        self.org_uuid = org_uuid
        self.audio_config = audio
        self._tls = ssl_context
        self._session = session
        self._nursery = nursery
        self._own_scope: TaskScope | None = None
        self._state = CallState.NEW
        self._handed_off = False
        self._answered = False
        self._close_in_flight = False
        self._open_lock = trio.Lock()
        self._voice: VoiceConnection | None = None
        self._voice_scope: trio.CancelScope | None = None
        self._buffer = SendAudioBuffer.from_config(audio)
        self._terminated = trio.Event()
        self._events_in, self.events = trio.open_memory_channel[CallTerminated | CallError](
            EVENT_BUFFER
        )
        self.events_dropped = 0

    def __repr__(self) -> str:
        return f"<Call {self.id} {self._state}>"

    # ── state ───────────────────────────────────────────────────────────────────────────

    @property
    def state(self) -> CallState:
        """NEW → OPENING → LIVE → TERMINATED."""
        return self._state

    @property
    def handed_off(self) -> bool:
        """True once :meth:`to_json` gave this call to another node."""
        return self._handed_off

    @property
    def session(self) -> Session | None:
        return self._session

    async def wait_terminated(self) -> None:
        """Wait until the call is over."""
        await self._terminated.wait()

    def _terminate(self, why: str) -> None:
        if self._state is CallState.TERMINATED:
            return
        logger.info("call %s terminated (%s)", self.id, why)
        self._state = CallState.TERMINATED
        self._terminated.set()
        self._events_in.close()
        if self._voice is not None:
            self._voice.servicer.close()
        if self._voice_scope is not None:
            self._voice_scope.cancel()

    def _on_event(self, frame: voice.CallEventFrame) -> None:
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
            logger.debug("call %s: unknown call event %r ignored", self.id, frame.event)
            return
        try:
            self._events_in.send_nowait(event)
        except trio.WouldBlock:
            self.events_dropped += 1
            logger.warning("call %s: events channel full, dropped %s", self.id, frame.event)
        except trio.ClosedResourceError:
            pass
        if isinstance(event, CallTerminated):
            self._terminate("call.terminated")

    # ── the voice plane ─────────────────────────────────────────────────────────────────

    async def _live(self) -> VoiceConnection:
        """The open voice connection, opening it on first use."""
        if self._state is CallState.TERMINATED:
            raise WSSCallClosedError()
        if self._handed_off:
            raise WSSCallStateError(f"call {self.id} was handed off to another node")
        if self._voice is not None and self._state is CallState.LIVE:
            return self._voice
        async with self._open_lock:
            if self._voice is None:
                if self._nursery is None:
                    raise WSSCallStateError(
                        "this call has no scope: use `async with Call.from_json(doc) as call:`"
                    )
                self._state = CallState.OPENING
                self._voice = VoiceConnection(
                    self._doc.session_url,
                    self._doc.session_token,
                    self._tls,
                    self._buffer,
                    self._on_event,
                )
                try:
                    # Shielded (opening has its own deadline, the connect timeout): a caller
                    # cancelled half way through would leave a call that is over for us but
                    # live on the server, never told. A cancellation lands once it is open.
                    with trio.CancelScope(shield=True):
                        await self._nursery.start(self._run_voice, self._voice)
                except BaseException:
                    self._terminate("voice plane could not be opened")
                    raise
                if self._state is CallState.OPENING:
                    self._state = CallState.LIVE
        if self._state is CallState.TERMINATED:
            raise WSSCallClosedError()
        return self._voice

    async def _run_voice(
        self,
        connection: VoiceConnection,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            # Shielded for the same reason as the control connection: the owner's cleanup
            # must still be able to send call.close; _terminate() cancels this scope.
            with trio.CancelScope(shield=True) as self._voice_scope:
                await connection.run(task_status=task_status)
        finally:
            self._terminate("voice plane closed")

    async def _command(
        self,
        name: voice.CommandName,
        timeout_ms: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> CommandResult:
        connection = await self._live()
        return await connection.command(
            name, name.default_timeout_ms if timeout_ms is None else timeout_ms, data
        )

    # ── commands ────────────────────────────────────────────────────────────────────────

    async def answer(self) -> CommandResult:
        """Answer the call; truthy on success."""
        result = await self._command(voice.CommandName.ANSWER)
        if result:
            self._answered = True
        return result

    async def connect(self, ring_time_seconds: int = 60) -> CommandResult:
        """Ring a human (1–120 s). Falsy with ``error_code == "CALL_UNANSWERED"`` when nobody
        picks up; the call stays up."""
        if isinstance(ring_time_seconds, bool) or not isinstance(ring_time_seconds, int):
            raise TypeError(
                f"ring_time_seconds must be an int, got {type(ring_time_seconds).__name__}"
            )
        if not 1 <= ring_time_seconds <= 120:
            raise ValueError(
                f"ring_time_seconds must be between 1 and 120, got {ring_time_seconds}"
            )
        return await self._command(
            voice.CommandName.CONNECT,
            ring_time_seconds * 1000,
            {"ringTimeSeconds": ring_time_seconds},
        )

    async def whisper(self) -> CommandResult:
        """Speak to the connected human only (after ``connect``)."""
        return await self._command(voice.CommandName.WHISPER)

    async def barge(self) -> CommandResult:
        """Speak to everyone on the call (after ``connect``)."""
        return await self._command(voice.CommandName.BARGE)

    async def spy(self) -> CommandResult:
        """Listen only (after ``connect``)."""
        return await self._command(voice.CommandName.SPY)

    async def disconnect(self) -> CommandResult:
        """End the call for everyone."""
        if self._state is CallState.TERMINATED:
            return CommandResult(True)
        result = await self._command(voice.CommandName.DISCONNECT)
        if result:
            self._terminate("disconnected")
        return result

    async def close(self, *, drain_timeout: float = 0.0) -> CommandResult:
        """Leave the call; the call ends. Idempotent.

        After ``answer`` this sends ``call.close``; a call never answered is ended with
        ``call.disconnect`` instead. With ``drain_timeout`` > 0, queued audio is first
        given that long to be pulled, so the last word is not clipped.
        """
        if self._state is CallState.TERMINATED or self._handed_off:
            return CommandResult(True)
        if drain_timeout and self._voice is not None:
            await self._voice.servicer.aclose(drain_timeout)
        name = voice.CommandName.CLOSE if self._answered else voice.CommandName.DISCONNECT
        if self._close_in_flight:
            # An earlier close was cancelled while waiting for its answer (typically the
            # scope's cleanup follows it): let the server finish ending the call rather
            # than sending a second close it would refuse as CALL_TERMINATED.
            with trio.move_on_after(name.default_timeout_ms / 1000 + voice.COMMAND_GRACE_SECONDS):
                await self._terminated.wait()
            if self._terminated.is_set():
                return CommandResult(True)
        self._close_in_flight = True
        try:
            result = await self._command(name)
        except WSSCallClosedError:
            return CommandResult(True)
        # Left set if we were cancelled waiting: a later close then waits for this one.
        self._close_in_flight = False
        if result:
            self._terminate("closed by the agent")
        return result

    # ── audio ───────────────────────────────────────────────────────────────────────────

    async def send_audio(self, pcm: bytes | bytearray | memoryview, *, wait: bool = False) -> None:
        """Queue PCM for the server to pull. Raises ``BufferFullError`` when it does not fit,
        or with ``wait=True`` waits for room. Once the call is over: ``WSSCallClosedError``
        (or ``BufferClosedError`` if it ended while this write waited for room)."""
        if self._state is not CallState.LIVE:
            await self._live()
        await self._buffer.send_audio(pcm, wait=wait)

    async def clear_send_audio_buffer(self) -> int:
        """Drop everything queued and send ``agent.interrupt``; returns the bytes dropped.
        Afterwards no byte queued before the call is ever sent. Details in :attr:`last_clear`."""
        connection = await self._live()
        result = await connection.servicer.clear()
        return result.discarded_bytes

    @property
    def last_clear(self) -> ClearResult | None:
        """The most recent clear: bytes dropped, heard position, the interrupt's result."""
        return None if self._voice is None else self._voice.servicer.last_clear

    async def get_send_audio_buffer_size(self) -> int:
        """Bytes queued and not yet pulled."""
        await trio.lowlevel.checkpoint()
        return self._buffer.size

    async def wait_for_playout(self) -> None:
        """Return once everything queued has been handed to the server (the tail flushed).
        Raises ``WSSCallClosedError`` if the call ends first."""
        if self._voice is None:
            if self._buffer.size == 0:
                await trio.lowlevel.checkpoint()
                return
            await self._live()
        assert self._voice is not None
        await self._voice.servicer.wait_for_playout()

    @property
    def heard_position(self) -> int:
        """Bytes of our audio handed to the server so far."""
        return 0 if self._voice is None else self._voice.servicer.heard_position

    @property
    def audio_counters(self) -> AudioCounters | None:
        """Outgoing-audio counters (queued, sent, discarded, underruns, ...)."""
        return None if self._voice is None else self._voice.servicer.counters()

    @property
    def incoming_audio_dropped_bytes(self) -> int:
        """Incoming audio dropped because ``audio_stream`` was read too slowly."""
        return 0 if self._voice is None else self._voice.audio_dropped_bytes

    @property
    def command_rtts(self) -> Sequence[float]:
        """Round-trip times (s) of recent commands."""
        return () if self._voice is None else tuple(self._voice.command_rtts)

    def audio_stream(self, channel_id: int = 0) -> AudioStream:
        """The caller's audio on a channel (0 = mixed): ``async for chunk in call.audio_stream()``.

        A trio receive channel of PCM chunks that ends when the call ends. The voice plane
        opens on the first receive; ``await call.audio_stream()`` opens it at once.
        """
        channel_id = check_channel_id(channel_id)

        async def open_channel() -> trio.MemoryReceiveChannel[bytes]:
            connection = await self._live()
            return connection.audio_stream(channel_id)

        return AudioStream(channel_id, open_channel)

    # ── hand-off ────────────────────────────────────────────────────────────────────────

    def to_json(self) -> str:
        """The hand-off document for another node; only a NEW call can be handed off.
        Afterwards this call object is inert: closing its session leaves the call alone."""
        if self._state is not CallState.NEW or self._handed_off:
            raise WSSCallStateError(f"to_json() needs a NEW call; call {self.id} is {self._state}")
        self._handed_off = True
        return handoff.encode_handoff(self._doc)

    @classmethod
    def from_json(
        cls,
        document: str | bytes,
        audio_config: CallAudioConfig | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Call:
        """A call handed over by another node; use it as ``async with Call.from_json(d) as call``.

        The audio settings are this node's own. Raises ``ValueError`` naming what is wrong.
        """
        if not isinstance(document, str | bytes):
            raise TypeError(f"document must be str or bytes, got {type(document).__name__}")
        doc = handoff.decode_handoff(document)
        if isinstance(doc, Unrecognised):
            raise ValueError(f"not a call hand-off document: {doc.reason}")
        return cls(doc, audio_config, ssl_context=ssl_context)

    async def __aenter__(self) -> Call:
        if self._nursery is not None:
            raise WSSCallStateError("this call already has a scope (its session's)")
        self._own_scope = TaskScope(f"call {self.id}")
        self._nursery = await self._own_scope.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._own_scope is not None
        try:
            with trio.move_on_after(CLOSE_DEADLINE) as cleanup:
                cleanup.shield = True
                try:
                    await self.close()
                except Exception as close_exc:
                    logger.warning("call %s: close failed: %s", self.id, close_exc)
            self._terminate("scope exited")
        finally:
            await self._own_scope.close(exc)
        return None


class CallOwner:
    """The owning session's side of a call: ending it when the session's scope ends.
    Not for applications."""

    def __init__(self, call: Call) -> None:
        self.call = call

    def terminate(self, why: str) -> None:
        self.call._terminate(why)


def call_for_session(
    frame: control.CallIn,
    config: SessionManagerConfig,
    nursery: trio.Nursery,
    session: Session,
) -> tuple[Call, CallOwner]:
    """The call a ``call.in`` announced, living in its session's nursery, and its owner handle."""
    doc = handoff.HandoffDocument(frame.call_id, frame.url, frame.token, frame.caller, frame.callee)
    tls = config.tls_context() if frame.url.startswith("wss://") else None
    call = Call(
        doc,
        config.call_audio,
        ssl_context=tls,
        org_uuid=frame.org_uuid,
        session=session,
        nursery=nursery,
    )
    return call, CallOwner(call)
