"""A voice call: commands, audio both ways, events, interruption, hand-off.

The voice WebSocket opens lazily, on the first command or audio operation, in the nursery
of whoever owns the call: its session's scope, or the call's own ``async with`` for a call
received by hand-off (``async with Call.from_json(doc) as call:``).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import attrs
import trio

from ._scope import TaskScope
from ._validate import check_timeout
from .audio import AudioCounters, AudioStream, ClearResult, SendAudioBuffer
from .audio.incoming import IncomingAudio, IncomingReceiver, check_channel_id
from .config import CallAudioConfig, SessionManagerConfig
from .enums import CallEvent, CallState, CloseReason
from .errors import (
    WSSAuthenticationError,
    WSSCallClosedError,
    WSSCallStateError,
    WSSConnectionError,
    WSSError,
    WSSSessionBusy,
)
from .protocol import Unrecognised, control, handoff, voice
from .protocol.call_state import (
    Action,
    CallEndReason,
    CallMachine,
    CallPhase,
    EndOnServer,
    OpenVoice,
    SendClose,
    StopVoice,
)
from .results import CommandResult
from .voice_connection import VoiceConnection, VoicePlane

if TYPE_CHECKING:
    from .session import Session

__all__ = [
    "Call",
    "CallEndReason",
    "CallError",
    "CallOwner",
    "CallTerminated",
    "call_for_session",
]

logger = logging.getLogger(__name__)

EVENT_BUFFER: Final = 64
CLOSE_DEADLINE: Final = 15.0
"""How long leaving a hand-off call's scope may spend ending the call on the server."""
END_ON_SERVER_DEADLINE: Final = 10.0
"""How long ending a call without its voice socket (REST, or a fresh socket) may take."""
_LEAVE_WAIT: Final = voice.CommandName.CLOSE.default_timeout_ms / 1000 + voice.COMMAND_GRACE_SECONDS
_SETTLE_CLOSE_WAIT: Final = 5.0
"""How long leaving a scope waits for the answer to its close before ending the call
without the voice socket (the cleanup deadline must leave room for that)."""
_GONE: Final = 410
_CONFLICT: Final = 409

EndOnServerHook: TypeAlias = Callable[[], Awaitable[bool]]
"""How a call's owner ends it on the server without its voice socket; True on success."""

_PUBLIC_STATE: Final = {
    CallPhase.NEW: CallState.NEW,
    CallPhase.OPENING: CallState.OPENING,
    CallPhase.LIVE: CallState.LIVE,
    CallPhase.CLOSING: CallState.LIVE,
    CallPhase.ENDING: CallState.TERMINATED,
    CallPhase.ENDED: CallState.TERMINATED,
}


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
    """One call. Made by ``Session.incoming_call()`` or ``Call.from_json()``.

    Its lifecycle is a :class:`~telcoflow_trio.protocol.call_state.CallMachine`; this class
    feeds it what happens on the voice plane and carries out what it decides, so that
    however the call ends, the server has been told by the time its owning scope is left.
    """

    def __init__(
        self,
        doc: handoff.HandoffDocument,
        call_audio: CallAudioConfig | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        org_uuid: str = "",
        session: Session | None = None,
        nursery: TaskScope | None = None,
        end_on_server: EndOnServerHook | None = None,
        voice_plane: VoicePlane | None = None,
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
        self._end_on_server_hook = end_on_server
        self._voice_plane = VoicePlane() if voice_plane is None else voice_plane
        self._own_scope: TaskScope | None = None
        self._machine = CallMachine()
        self._changed = trio.Event()
        self._ending_task = False
        self._open_lock = trio.Lock()
        self._voice: VoiceConnection | None = None
        self._voice_scope: trio.CancelScope | None = None
        self._buffer = SendAudioBuffer.from_config(audio)
        self._incoming = IncomingAudio.from_config(audio, label=f"call {doc.id}")
        self._terminated = trio.Event()
        self._events_in, self.events = trio.open_memory_channel[CallTerminated | CallError](
            EVENT_BUFFER
        )
        self.events_dropped = 0

    def __repr__(self) -> str:
        return f"<Call {self.id} {self._phase().value}>"

    # ── state ───────────────────────────────────────────────────────────────────────────

    @property
    def state(self) -> CallState:
        """NEW → OPENING → LIVE → TERMINATED."""
        return _PUBLIC_STATE[self._phase()]

    @property
    def end_reason(self) -> CallEndReason | None:
        """Why the call ended (None while it is not over)."""
        return self._machine.end_reason if self._over() else None

    @property
    def handed_off(self) -> bool:
        """True once :meth:`to_json` gave this call to another node."""
        return self._machine.end_reason is CallEndReason.HANDED_OFF

    @property
    def session(self) -> Session | None:
        return self._session

    async def wait_terminated(self) -> None:
        """Wait until the call is over."""
        await self._terminated.wait()

    def _phase(self) -> CallPhase:
        # A method, not the attribute: the phase changes across every await.
        return self._machine.phase

    def _over(self) -> bool:
        return self._machine.over

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _apply(self, actions: list[Action]) -> None:
        """Carry out what needs no waiting; :class:`EndOnServer` runs as a task of the
        call's owner (the only actions a synchronous event can produce are these two)."""
        for action in actions:
            if isinstance(action, StopVoice):
                self._stop()
            elif isinstance(action, EndOnServer):
                self._spawn_end_on_server()
            else:  # pragma: no cover - the machine returns these only to async callers
                raise AssertionError(f"unexpected action {action!r} from a synchronous event")
        self._pulse()

    def _stop(self) -> None:
        logger.info("call %s over (%s)", self.id, self._machine.end_reason)
        self._terminated.set()
        self._events_in.close()
        self._incoming.close()
        if self._voice is not None:
            self._voice.servicer.close()
        else:
            self._buffer.close()
        if self._voice_scope is not None:
            self._voice_scope.cancel()

    def _spawn_end_on_server(self) -> None:
        if self._ending_task or self._nursery is None:
            return
        self._ending_task = True
        self._nursery.start_soon(self._end_on_server_task, name=f"end call {self.id}")

    async def _end_on_server_task(self) -> None:
        try:
            with trio.move_on_after(END_ON_SERVER_DEADLINE):
                await self._end_on_server()
        finally:
            self._ending_task = False
            if self._phase() is CallPhase.ENDING:
                self._machine.server_ended(ok=False)
                logger.warning("call %s: could not end the call on the server", self.id)
            self._pulse()

    async def _end_on_server(self) -> None:  # noqa: ASYNC910 (private; callers bound and shield it)
        """End the call on the server without its voice socket (see ``EndOnServer``)."""
        ok = False
        try:
            if self._end_on_server_hook is not None:
                ok = await self._end_on_server_hook()
            else:
                ok = await self._leave_by_new_voice_socket()
        except (WSSError, OSError) as exc:
            logger.warning("call %s: ending it on the server failed: %s", self.id, exc)
        if ok:
            logger.info("call %s ended on the server", self.id)
        self._machine.server_ended(ok=ok)
        self._pulse()

    async def _leave_by_new_voice_socket(self) -> bool:
        """A hand-off call has no session to close: reopen its voice plane once, only to
        send the leave command."""
        assert self._nursery is not None
        connection = self._voice_plane.connection(
            self._doc.session_url,
            self._doc.session_token,
            self._tls,
            SendAudioBuffer(),
            lambda frame: None,
        )
        try:
            await self._nursery.start(connection.run)
        except WSSConnectionError as exc:
            return getattr(exc, "status_code", None) == _GONE  # over already  # noqa: ASYNC910 (private; opening the socket is its checkpoint)
        try:
            name = self._machine.leave_command()
            timeout_ms = voice.CommandName(name).default_timeout_ms
            result = await connection.command(name, timeout_ms)
            return bool(result) or result.error_code == "CALL_TERMINATED"
        except WSSCallClosedError:
            return False
        finally:
            await connection.aclose()

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
            self._apply(self._machine.terminated())

    def _server_closed_session(self, reason: CloseReason) -> None:
        # The server ends a session's call when it closes the session. A call on its voice
        # socket hears it there (call.terminated, or the socket closing) in order with
        # its last events; one that never opened it learns it only here.
        if self._phase() is not CallPhase.NEW:
            return
        why = (
            CallEndReason.TERMINATED
            if reason is CloseReason.CALL_TERMINATED
            else CallEndReason.SESSION_CLOSED
        )
        self._apply(self._machine.terminated(why))

    # ── the voice plane ─────────────────────────────────────────────────────────────────

    def _over_error(self) -> Exception:
        if self.handed_off:
            return WSSCallStateError(f"call {self.id} was handed off to another node")
        return WSSCallClosedError(f"call {self.id} is over ({self._machine.end_reason})")

    async def _live(self) -> VoiceConnection:
        """The open voice connection, opening it on first use."""
        machine = self._machine
        if self._phase() is CallPhase.LIVE and self._voice is not None:
            return self._voice  # noqa: ASYNC910 (private fast path; every caller awaits I/O next)
        if self._over():
            raise self._over_error()
        if self._phase() is CallPhase.CLOSING:
            raise WSSCallClosedError(f"call {self.id} is being closed")
        async with self._open_lock:
            if self._phase() is CallPhase.NEW:
                if self._nursery is None:
                    raise WSSCallStateError(
                        "this call has no scope: use `async with Call.from_json(doc) as call:`"
                    )
                await self._open_voice(machine.open_voice())
        if self._phase() is CallPhase.LIVE and self._voice is not None:
            return self._voice
        if self._phase() is CallPhase.CLOSING:
            raise WSSCallClosedError(f"call {self.id} is being closed")
        raise self._over_error()

    async def _open_voice(self, actions: list[Action]) -> None:
        assert actions == [OpenVoice()] and self._nursery is not None
        connection = self._voice_plane.connection(
            self._doc.session_url,
            self._doc.session_token,
            self._tls,
            self._buffer,
            self._on_event,
            self._incoming,
        )
        self._voice = connection
        self._pulse()
        try:
            # Shielded (opening has its own deadline, the connect timeout): a caller
            # cancelled half way through would leave the server's call in a state we do
            # not know. A cancellation lands once it is open.
            with trio.CancelScope(shield=True):
                await self._nursery.start(self._run_voice, connection)
        except (WSSConnectionError, WSSAuthenticationError) as exc:
            status = getattr(exc, "status_code", None)
            actions = self._machine.voice_failed(status)
            await self._carry_out(actions)
            if status == _GONE:
                raise WSSCallClosedError(f"call {self.id} ended before it was answered") from None
            if status == _CONFLICT:
                raise WSSSessionBusy(None) from None
            raise
        except BaseException:
            await self._carry_out(self._machine.voice_failed(None))
            raise
        self._machine.voice_opened()
        self._pulse()
        if connection.closed:
            self._voice_ended()  # it died before we got here

    async def _carry_out(self, actions: list[Action]) -> None:  # noqa: ASYNC910 (private; no cancellation point may precede its actions)
        """Carry out actions in the calling task, telling the server before returning
        (bounded, and shielded: the call must not be left half-ended)."""
        for action in actions:
            if isinstance(action, StopVoice):
                self._stop()
            elif isinstance(action, EndOnServer):
                if self._ending_task:
                    continue  # a task is already at it
                with trio.CancelScope(
                    shield=True, deadline=trio.current_time() + END_ON_SERVER_DEADLINE
                ):
                    self._ending_task = True
                    try:
                        await self._end_on_server()
                    finally:
                        self._ending_task = False
                if self._phase() is CallPhase.ENDING:
                    self._machine.server_ended(ok=False)
            elif isinstance(action, SendClose):
                await self._send_close(action.command)
            elif isinstance(action, OpenVoice):
                # Leaving a call never opened: a refusal has ended it another way already.
                with contextlib.suppress(WSSError):
                    await self._open_voice([action])
            else:  # pragma: no cover
                raise AssertionError(f"unexpected action {action!r}")
        self._pulse()

    async def _run_voice(
        self,
        connection: VoiceConnection,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            with trio.CancelScope() as self._voice_scope:
                await connection.run(task_status=task_status)
        finally:
            self._voice_scope = None
            self._voice_ended()

    def _voice_ended(self) -> None:
        phase = self._phase()
        if phase is CallPhase.CLOSING:
            self._pulse()  # the close in flight reports its own outcome (its answer may be near)
        elif phase is not CallPhase.OPENING:  # a failed open is reported by the opener
            self._apply(self._machine.voice_lost())

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

    async def _send_close(self, command: str) -> CommandResult:
        """Send the close the machine asked for and report its outcome to it."""
        connection = self._voice
        assert connection is not None
        name = voice.CommandName(command)
        try:
            result = await connection.command(name, name.default_timeout_ms)
        except WSSCallClosedError:
            # The socket died before the answer: the server may not have heard us.
            self._machine.close_answered(ok=False)
            self._apply(self._machine.voice_lost())
            await self._settle_ending()
            return CommandResult(self._machine.server_done)
        self._apply(self._machine.close_answered(ok=result.success, error_code=result.error_code))
        if result.error_code == "CALL_TERMINATED":
            return CommandResult(True)
        return result

    async def _settle_ending(self) -> None:  # noqa: ASYNC910 (private wait loop)
        """Wait (bounded) for the end-on-server task of this call to finish."""
        with trio.move_on_after(END_ON_SERVER_DEADLINE):
            while self._phase() is CallPhase.ENDING:
                await self._changed.wait()

    # ── commands ────────────────────────────────────────────────────────────────────────

    async def answer(self) -> CommandResult:
        """Answer the call; truthy on success.

        Raises ``WSSCallClosedError`` if the caller hung up first, ``WSSSessionBusy`` if
        another agent's voice connection holds the call (it is left alone), and
        ``WSSConnectionError`` if the voice plane cannot be opened (the call is then ended
        on the server, so the caller is not left waiting).
        """
        result = await self._command(voice.CommandName.ANSWER)
        if result and self._phase() is CallPhase.LIVE:
            self._machine.answer_ok()
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
        result = await self._command(
            voice.CommandName.CONNECT,
            ring_time_seconds * 1000,
            {"ringTimeSeconds": ring_time_seconds},
        )
        if result and self._phase() is CallPhase.LIVE:
            self._machine.answer_ok()  # bridged: leaving it is call.close
        return result

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
        return await self._leave(disconnect=True, drain_timeout=0.0)

    async def close(self, *, drain_timeout: float = 0.0) -> CommandResult:
        """Leave the call; the call ends. Idempotent.

        After ``answer`` this sends ``call.close``; a call never answered is ended with
        ``call.disconnect`` instead. With ``drain_timeout`` > 0, queued audio is first
        given that long to be pulled, so the last word is not clipped.
        """
        return await self._leave(disconnect=False, drain_timeout=drain_timeout)

    async def _leave(self, *, disconnect: bool, drain_timeout: float) -> CommandResult:
        drain = check_timeout("drain_timeout", drain_timeout)
        await trio.lowlevel.checkpoint()
        machine = self._machine
        if self._over():
            return CommandResult(True)
        if self._phase() is CallPhase.CLOSING:
            # An earlier close is waiting for its answer (or was cancelled while it did):
            # the server is ending the call; a second close would be refused.
            with trio.move_on_after(_LEAVE_WAIT):
                while self._phase() is CallPhase.CLOSING:
                    await self._changed.wait()
            if self._over():
                return CommandResult(True)
            if self._phase() is CallPhase.CLOSING:
                return CommandResult(False, "TIMEOUT", "the earlier close got no answer")
        try:
            connection = await self._live()
        except WSSCallClosedError:
            return CommandResult(True)
        if drain:
            await connection.servicer.aclose(drain)
        if self._phase() is not CallPhase.LIVE:
            return CommandResult(self._over())
        (action,) = machine.close(disconnect=disconnect)
        assert isinstance(action, SendClose)
        self._pulse()
        return await self._send_close(action.command)

    async def _settle(self) -> None:  # noqa: ASYNC910 (private cleanup; no cancellation point before it acts)
        """The owning scope is ending: make sure the server's call is over.

        The owner bounds this with its cleanup deadline and shields it.
        """
        machine = self._machine
        close_sent = False
        try:
            while not machine.settled:
                phase = self._phase()
                if phase is CallPhase.NEW:
                    await self._carry_out(machine.scope_ended())
                elif phase is CallPhase.LIVE and not close_sent:
                    close_sent = True
                    with trio.move_on_after(_SETTLE_CLOSE_WAIT):
                        await self._carry_out(machine.scope_ended())
                elif phase in (CallPhase.LIVE, CallPhase.CLOSING):
                    # A close refused, unanswered, or cancelled while it waited (then its
                    # answer or the call's end may still come): past a short wait, end the
                    # call without its socket rather than spend the cleanup deadline on it.
                    if not close_sent:
                        close_sent = True
                        with trio.move_on_after(_SETTLE_CLOSE_WAIT):
                            while self._phase() is CallPhase.CLOSING:
                                await self._changed.wait()
                    if self._phase() in (CallPhase.LIVE, CallPhase.CLOSING):
                        await self._carry_out(machine.give_up())
                elif phase is CallPhase.ENDING and not self._ending_task:
                    await self._carry_out([EndOnServer()])
                else:  # OPENING, or ENDING with its task at work
                    await self._changed.wait()
        finally:
            if not self._over():
                self._apply(machine.give_up())

    # ── audio ───────────────────────────────────────────────────────────────────────────

    async def send_audio(self, pcm: bytes | bytearray | memoryview, *, wait: bool = False) -> None:
        """Queue PCM for the server to pull. Raises ``BufferFullError`` when it does not fit,
        or with ``wait=True`` waits for room. Once the call is over: ``WSSCallClosedError``
        (or ``BufferClosedError`` if it ended while this write waited for room)."""
        if self._phase() is not CallPhase.LIVE:
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
        if self._voice is None and self._buffer.size == 0:
            await trio.lowlevel.checkpoint()
            return
        connection = await self._live()
        await connection.servicer.wait_for_playout()

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
        return self._incoming.dropped_bytes

    @property
    def incoming_audio_unread_bytes(self) -> int:
        """Incoming audio dropped because nobody had opened a stream for its channel."""
        return self._incoming.unread_bytes

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

        async def open_channel() -> IncomingReceiver:
            await self._live()
            return self._incoming.stream(channel_id)

        return AudioStream(channel_id, open_channel)

    # ── hand-off ────────────────────────────────────────────────────────────────────────

    def to_json(self) -> str:
        """The hand-off document for another node; only a NEW call can be handed off.
        Afterwards this call object is inert: closing its session leaves the call alone."""
        if self._phase() is not CallPhase.NEW:
            raise WSSCallStateError(f"to_json() needs a NEW call; call {self.id} is {self.state}")
        self._apply(self._machine.hand_off())
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
                await self._settle()
            if cleanup.cancelled_caught:
                logger.warning(
                    "call %s: not ended on the server within %g s", self.id, CLOSE_DEADLINE
                )
        finally:
            await self._own_scope.close(exc)
        return None


class CallOwner:
    """The owning session's side of a call. Not for applications."""

    def __init__(self, call: Call) -> None:
        self.call = call

    @property
    def server_done(self) -> bool:
        """The server's call is over, or is not ours to end."""
        return self.call._machine.server_done

    async def settle(self) -> None:
        """The session's scope is ending: end the call on the server if it is not over."""
        await self.call._settle()

    async def open_voice(self) -> None:
        """Open the voice plane now (before a handler runs for a resumed call)."""
        await self.call._live()

    def server_closed(self, reason: CloseReason) -> None:
        """The server closed the call's session, which ends its call."""
        self.call._server_closed_session(reason)

    def abandon(self) -> None:
        """The scope is over and its cleanup deadline passed: stop the call's tasks."""
        call = self.call
        if not call._over():
            call._apply(call._machine.give_up())


def call_for_session(
    frame: control.CallIn,
    config: SessionManagerConfig,
    nursery: TaskScope,
    session: Session,
    end_on_server: EndOnServerHook,
    voice_plane: VoicePlane,
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
        end_on_server=end_on_server,
        voice_plane=voice_plane,
    )
    return call, CallOwner(call)
