"""The driver of one call's lifecycle: what feeds its :class:`CallMachine` and carries out
what the machine decides (opening the voice plane, sending the close, ending the call on
the server without its voice socket, stopping its tasks).

The user-facing :class:`~telcoflow_trio.Call` owns one and delegates to it. It holds the
call's audio paths and events channel, to close them when the call ends, but nothing here
knows about commands other than the close, audio, or events other than ``call.terminated``.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Final, TypeAlias

import trio

from ._call_events import CallEvents
from ._enums import CloseReason
from ._errors import (
    WSSAuthenticationError,
    WSSCallClosedError,
    WSSCallStateError,
    WSSConnectionError,
    WSSError,
    WSSSessionBusy,
)
from ._results import CommandResult
from ._scope import TaskScope, cleanup_within
from ._validate import check_timeout
from ._voice_connection import VoiceConnection, VoicePlane
from .audio import IncomingAudio, SendAudioBuffer
from .protocol import handoff, voice
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
from .protocol.voice import CallEventFrame

__all__ = ["END_ON_SERVER_DEADLINE", "CallLifecycle", "EndOnServerHook"]

logger = logging.getLogger(__name__)

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


class CallLifecycle:
    """Feeds one call's :class:`CallMachine` what happens on the voice plane and carries
    out what it decides, so that however the call ends, the server has been told by the
    time its owning scope is left."""

    def __init__(
        self,
        doc: handoff.HandoffDocument,
        *,
        tls: ssl.SSLContext | None,
        nursery: TaskScope | None,
        end_on_server: EndOnServerHook | None,
        voice_plane: VoicePlane,
        buffer: SendAudioBuffer,
        incoming: IncomingAudio,
        events: CallEvents,
    ) -> None:
        self.call_id: str = doc.id
        self.machine: CallMachine = CallMachine()
        self.nursery = nursery
        """Where the voice socket and the end-on-server task run (set once)."""
        self._doc = doc
        self._tls = tls
        self._end_on_server_hook = end_on_server
        self._voice_plane = voice_plane
        self.buffer = buffer
        self.incoming = incoming
        self.events = events
        self._changed = trio.Event()
        self._ending_task = False
        self._open_lock = trio.Lock()
        self._voice: VoiceConnection | None = None
        self._voice_scope: trio.CancelScope | None = None
        self._terminated = trio.Event()

    # ── state ───────────────────────────────────────────────────────────────────────────

    @property
    def voice(self) -> VoiceConnection | None:
        """The voice connection once opening it began (None before)."""
        return self._voice

    @property
    def handed_off(self) -> bool:
        return self.machine.end_reason is CallEndReason.HANDED_OFF

    def phase(self) -> CallPhase:
        # A method, not the attribute: the phase changes across every await.
        return self.machine.phase

    def over(self) -> bool:
        return self.machine.over

    async def wait_terminated(self) -> None:
        await self._terminated.wait()

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def apply(self, actions: list[Action]) -> None:
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
        logger.info("call %s over (%s)", self.call_id, self.machine.end_reason)
        self._terminated.set()
        self.events.close()
        self.incoming.close()
        if self._voice is not None:
            self._voice.servicer.close()
        else:
            self.buffer.close()
        if self._voice_scope is not None:
            self._voice_scope.cancel()

    def _on_event(self, frame: CallEventFrame) -> None:
        if self.events.deliver(frame):  # call.terminated
            self.apply(self.machine.terminated())

    def server_closed_session(self, reason: CloseReason) -> None:
        # The server ends a session's call when it closes the session. A call on its voice
        # socket hears it there (call.terminated, or the socket closing) in order with
        # its last events; one that never opened it learns it only here.
        if self.phase() is not CallPhase.NEW:
            return
        why = (
            CallEndReason.TERMINATED
            if reason is CloseReason.CALL_TERMINATED
            else CallEndReason.SESSION_CLOSED
        )
        self.apply(self.machine.terminated(why))

    def abandon(self) -> None:
        """The scope is over and its cleanup deadline passed: stop the call's tasks."""
        if not self.over():
            self.apply(self.machine.give_up())

    # ── ending on the server ────────────────────────────────────────────────────────────

    def _spawn_end_on_server(self) -> None:
        if self._ending_task or self.nursery is None:
            return
        self._ending_task = True
        self.nursery.start_soon(self._end_on_server_task, name=f"end call {self.call_id}")

    async def _end_on_server_task(self) -> None:
        try:
            with trio.move_on_after(END_ON_SERVER_DEADLINE):
                await self._end_on_server()
        finally:
            self._ending_task = False
            if self.phase() is CallPhase.ENDING:
                self.machine.server_ended(ok=False)
                logger.warning("call %s: could not end the call on the server", self.call_id)
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
            logger.warning("call %s: ending it on the server failed: %s", self.call_id, exc)
        if ok:
            logger.info("call %s ended on the server", self.call_id)
        self.machine.server_ended(ok=ok)
        self._pulse()

    async def _leave_by_new_voice_socket(self) -> bool:
        """A hand-off call has no session to close: reopen its voice plane once, only to
        send the leave command."""
        assert self.nursery is not None
        connection = self._voice_plane.connection(
            self._doc.session_url,
            self._doc.session_token,
            self._tls,
            SendAudioBuffer(),
            lambda frame: None,
        )
        try:
            await self.nursery.start(connection.run)
        except WSSConnectionError as exc:
            return getattr(exc, "status_code", None) == _GONE  # over already  # noqa: ASYNC910 (private; opening the socket is its checkpoint)
        try:
            name = self.machine.leave_command()
            timeout_ms = voice.CommandName(name).default_timeout_ms
            result = await connection.command(name, timeout_ms)
            return bool(result) or result.error_code == "CALL_TERMINATED"
        except WSSCallClosedError:
            return False
        finally:
            await connection.aclose()

    # ── the voice plane ─────────────────────────────────────────────────────────────────

    def _over_error(self) -> Exception:
        if self.handed_off:
            return WSSCallStateError(f"call {self.call_id} was handed off to another node")
        return WSSCallClosedError(f"call {self.call_id} is over ({self.machine.end_reason})")

    async def live(self) -> VoiceConnection:
        """The open voice connection, opening it on first use."""
        machine = self.machine
        if self.phase() is CallPhase.LIVE and self._voice is not None:
            return self._voice  # noqa: ASYNC910 (fast path; every caller awaits I/O next)
        if self.over():
            raise self._over_error()
        if self.phase() is CallPhase.CLOSING:
            raise WSSCallClosedError(f"call {self.call_id} is being closed")
        async with self._open_lock:
            if self.phase() is CallPhase.NEW:
                if self.nursery is None:
                    raise WSSCallStateError(
                        "this call has no scope: use `async with Call.from_json(doc) as call:`"
                    )
                await self._open_voice(machine.open_voice())
        if self.phase() is CallPhase.LIVE and self._voice is not None:
            return self._voice
        if self.phase() is CallPhase.CLOSING:
            raise WSSCallClosedError(f"call {self.call_id} is being closed")
        raise self._over_error()

    async def _open_voice(self, actions: list[Action]) -> None:
        assert actions == [OpenVoice()] and self.nursery is not None
        connection = self._voice_plane.connection(
            self._doc.session_url,
            self._doc.session_token,
            self._tls,
            self.buffer,
            self._on_event,
            self.incoming,
        )
        self._voice = connection
        self._pulse()
        try:
            # Shielded (opening has its own deadline, the connect timeout): a caller
            # cancelled half way through would leave the server's call in a state we do
            # not know. A cancellation lands once it is open.
            with trio.CancelScope(shield=True):
                await self.nursery.start(self._run_voice, connection)
        except (WSSConnectionError, WSSAuthenticationError) as exc:
            status = getattr(exc, "status_code", None)
            actions = self.machine.voice_failed(status)
            await self._carry_out(actions)
            if status == _GONE:
                raise WSSCallClosedError(
                    f"call {self.call_id} ended before it was answered"
                ) from None
            if status == _CONFLICT:
                raise WSSSessionBusy(None) from None
            raise
        except BaseException:
            await self._carry_out(self.machine.voice_failed(None))
            raise
        self.machine.voice_opened()
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
                self._ending_task = True
                try:
                    await cleanup_within(END_ON_SERVER_DEADLINE, self._end_on_server)
                finally:
                    self._ending_task = False
                if self.phase() is CallPhase.ENDING:
                    self.machine.server_ended(ok=False)
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
        phase = self.phase()
        if phase is CallPhase.CLOSING:
            self._pulse()  # the close in flight reports its own outcome (its answer may be near)
        elif phase is not CallPhase.OPENING:  # a failed open is reported by the opener
            self.apply(self.machine.voice_lost())

    # ── leaving ─────────────────────────────────────────────────────────────────────────

    async def _send_close(self, command: str) -> CommandResult:
        """Send the close the machine asked for and report its outcome to it."""
        connection = self._voice
        assert connection is not None
        name = voice.CommandName(command)
        try:
            result = await connection.command(name, name.default_timeout_ms)
        except WSSCallClosedError:
            # The socket died before the answer: the server may not have heard us.
            self.machine.close_answered(ok=False)
            self.apply(self.machine.voice_lost())
            await self._settle_ending()
            return CommandResult(self.machine.server_done)
        self.apply(self.machine.close_answered(ok=result.success, error_code=result.error_code))
        if result.error_code == "CALL_TERMINATED":
            return CommandResult(True)
        return result

    async def _wait_while(self, phase: CallPhase, seconds: float) -> None:  # noqa: ASYNC910 (private wait loop)
        """Wait until the call leaves ``phase``, at most ``seconds``."""
        with trio.move_on_after(seconds):
            while self.phase() is phase:
                await self._changed.wait()

    async def _settle_ending(self) -> None:
        """Wait (bounded) for the end-on-server task of this call to finish."""
        await self._wait_while(CallPhase.ENDING, END_ON_SERVER_DEADLINE)

    async def leave(self, *, disconnect: bool, drain_timeout: float) -> CommandResult:
        """``call.close`` (or ``call.disconnect``); see :meth:`Call.close`."""
        drain = check_timeout("drain_timeout", drain_timeout)
        await trio.lowlevel.checkpoint()
        machine = self.machine
        if self.over():
            return CommandResult(True)
        if self.phase() is CallPhase.CLOSING:
            # An earlier close is waiting for its answer (or was cancelled while it did):
            # the server is ending the call; a second close would be refused.
            await self._wait_while(CallPhase.CLOSING, _LEAVE_WAIT)
            if self.over():
                return CommandResult(True)
            if self.phase() is CallPhase.CLOSING:
                return CommandResult(False, "TIMEOUT", "the earlier close got no answer")
        try:
            connection = await self.live()
        except WSSCallClosedError:
            return CommandResult(True)
        if drain:
            await connection.servicer.aclose(drain)
        if self.phase() is not CallPhase.LIVE:
            return CommandResult(self.over())
        (action,) = machine.close(disconnect=disconnect)
        assert isinstance(action, SendClose)
        self._pulse()
        return await self._send_close(action.command)

    async def settle(self) -> None:  # noqa: ASYNC910 (cleanup; no cancellation point before it acts)
        """The owning scope is ending: make sure the server's call is over.

        The owner bounds this with its cleanup deadline and shields it.
        """
        machine = self.machine
        close_sent = False
        try:
            while not machine.settled:
                phase = self.phase()
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
                        await self._wait_while(CallPhase.CLOSING, _SETTLE_CLOSE_WAIT)
                    if self.phase() in (CallPhase.LIVE, CallPhase.CLOSING):
                        await self._carry_out(machine.give_up())
                elif phase is CallPhase.ENDING and not self._ending_task:
                    await self._carry_out([EndOnServer()])
                else:  # OPENING, or ENDING with its task at work
                    await self._changed.wait()
        finally:
            if not self.over():
                self.apply(machine.give_up())
