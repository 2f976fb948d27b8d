"""The simulated caller: one call's state on the sandbox side, and the handle tests drive.

A :class:`SimulatedCall` speaks PCM to the agent once the call is live (answered or
connected), records what the agent sends back with timestamps, and can hang up, inject a
``call.error`` or lose its voice connection on request.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..protocol import voice
from ..protocol.pull import PullLedger
from ._audio import AudioSource, Silence, as_source
from ._clock import SandboxClock
from ._events import VOICE_PREFIX, CallTicket
from ._faults import MALFORMED_VOICE_FRAMES
from ._pcm import frame_bytes
from ._sessions import SessionRecord

if TYPE_CHECKING:
    import os

    from ._link import Link

__all__ = [
    "CallerState",
    "CommandRecord",
    "ConnectBehaviour",
    "ConnectOutcome",
    "EndedBy",
    "HeardFrame",
    "Interrupt",
    "PullRecord",
    "SimulatedCall",
]

logger = logging.getLogger(__name__)


class CallerState(StrEnum):
    """Where a simulated call is: offered to agents, delivered to one, live, or ended."""

    OFFERED = "OFFERED"
    DELIVERED = "DELIVERED"
    LIVE = "LIVE"
    ENDED = "ENDED"


class EndedBy(StrEnum):
    """Who or what ended a simulated call."""

    CALLER_HANGUP = "CALLER_HANGUP"
    AGENT_DISCONNECT = "AGENT_DISCONNECT"
    AGENT_CLOSE = "AGENT_CLOSE"
    SESSION_CLOSED = "SESSION_CLOSED"


class ConnectOutcome(StrEnum):
    """What happens when the agent sends ``call.connect``."""

    ANSWERED = "ANSWERED"
    UNANSWERED = "UNANSWERED"
    FAILED = "FAILED"


@attrs.frozen
class ConnectBehaviour:
    """How the destination of ``call.connect`` behaves.

    ``ANSWERED``: picks up after ``answer_after`` simulated seconds (capped by the ring
    time). ``UNANSWERED``: rings for the whole ring time, then ``CALL_UNANSWERED``.
    ``FAILED``: refused at once with ``error_code``.
    """

    outcome: ConnectOutcome = attrs.field(default=ConnectOutcome.ANSWERED, converter=ConnectOutcome)
    answer_after: float = 1.0
    error_code: str = "CONNECT_FAILED"
    error_message: str = "the destination could not be reached"


@attrs.frozen
class HeardFrame:
    """Agent audio as the caller received it: simulated ``time``, ``channel`` and ``pcm``."""

    time: float
    channel: int
    pcm: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")


@attrs.frozen
class Interrupt:
    """An ``agent.interrupt``: when, and how many bytes had been heard before it."""

    time: float
    heard_bytes: int


@attrs.frozen
class CommandRecord:
    """A voice command the agent sent, and how the sandbox answered it."""

    time: float
    command: str
    data: Any
    success: bool | None = None
    error_code: str | None = None


@attrs.frozen
class PullRecord:
    """A ``buffer_request`` the sandbox sent: when, and for how many bytes."""

    time: float
    requested_bytes: int


class SimulatedCall:
    """A call into the sandbox, and the simulated caller on its far end.

    Created by :meth:`Sandbox.place_call`. Audio is recorded as it arrives; ``heard`` is
    the agent's audio on channel 0, ``spoken`` what the caller sent on channel 0.
    ``on_end(call, close_session)`` hears of the call's end (see :meth:`end`).
    """

    def __init__(
        self,
        ticket: CallTicket,
        *,
        session: SessionRecord,
        clock: SandboxClock,
        audio: AudioSource | None = None,
        connect: ConnectBehaviour | None = None,
        frame_seconds: float = 0.02,
        on_end: Callable[[SimulatedCall, bool], object] | None = None,
    ) -> None:
        self._clock = clock
        self._on_end = on_end
        self.session = session
        self.call_id: str = ticket.call_id
        self.caller: str = ticket.caller
        self.callee: str = ticket.callee
        self.direction: str = ticket.direction
        self.connect_behaviour: ConnectBehaviour = connect or ConnectBehaviour()
        self.frame_seconds = frame_seconds
        self._token = ticket.token
        self.state: CallerState = CallerState.OFFERED
        self.sample_rate: int | None = None
        self.isolated: bool = False
        self.answered = False
        self.bridged = False
        self.agent_mode: str | None = None
        self.ended_by: EndedBy | None = None
        self.heard_frames: list[HeardFrame] = []
        self._heard = bytearray()
        self.spoken: bytearray = bytearray()
        self.spoken_marks: list[tuple[float, int]] = []
        """``(simulated time, byte offset)`` of each frame the caller sent on channel 0."""
        self.interrupts: list[Interrupt] = []
        self.commands: list[CommandRecord] = []
        self.pull_requests: list[PullRecord] = []
        self.pull_ledger: PullLedger = PullLedger()
        """The books of what the sandbox pulled and what the agent sent on channel 0."""
        self.voice_connections = 0
        self.voice_link: Link | None = None
        self.pulls_stalled_until: float = 0.0
        """Simulated time before which the sandbox sends no ``buffer_request`` (see
        :meth:`stall_pulls`)."""
        self.line_silence: bool = False
        self._pending_sources: list[AudioSource] = []
        self._speech = bytearray()
        self._speech_changed = trio.Event()
        self._heard_changed = trio.Event()
        self.delivered: trio.Event = trio.Event()
        self.voice_connected: trio.Event = trio.Event()
        self.live: trio.Event = trio.Event()
        self.terminated: trio.Event = trio.Event()
        self.say(audio)

    def __repr__(self) -> str:
        return f"<SimulatedCall {self.call_id} {self.state.value} from {self.caller!r}>"

    # ── what the test reads ──────────────────────────────────────────────────────────

    @property
    def session_id(self) -> str:
        return self.session.id

    @property
    def heard(self) -> bytes:
        """Everything the agent sent on channel 0, in order of arrival."""
        return bytes(self._heard)

    def heard_since(self, time: float) -> bytes:
        """Channel-0 audio that arrived at or after simulated ``time``."""
        return b"".join(f.pcm for f in self.heard_frames if f.channel == 0 and f.time >= time)

    def heard_after(self, interrupt: Interrupt) -> bytes:
        """Channel-0 audio that arrived after ``interrupt`` was received."""
        return bytes(self._heard[interrupt.heard_bytes :])

    @property
    def token(self) -> str:
        """The voice-plane bearer token (a credential: keep it out of logs)."""
        return self._token

    @property
    def voice_path(self) -> str:
        return VOICE_PREFIX + self.call_id

    @property
    def bytes_requested(self) -> int:
        """Agent audio the sandbox has pulled (``buffer_request`` frames sent), in bytes."""
        return self.pull_ledger.requested_bytes

    @property
    def excess_bytes(self) -> int:
        """Channel-0 bytes the agent sent beyond what was pulled (0 for a correct agent)."""
        return self.pull_ledger.unrequested_bytes

    @property
    def overpulls(self) -> int:
        """Channel-0 frames of the agent that carried more than was owed."""
        return self.pull_ledger.overpulls

    def bytes_per_second(self) -> int:
        return frame_bytes(self.sample_rate or 16000, 1.0)

    # ── waiting ──────────────────────────────────────────────────────────────────────

    async def wait_delivered(self) -> None:
        """Until ``call.in`` has gone to an agent."""
        await self.delivered.wait()

    async def wait_voice_connected(self) -> None:
        """Until the agent has opened the call's voice WebSocket."""
        await self.voice_connected.wait()

    async def wait_answered(self) -> None:
        """Until the call is live (answered, or connected to a destination)."""
        await self.live.wait()

    async def wait_terminated(self) -> None:
        """Until the call has ended, for whatever reason (see ``ended_by``)."""
        await self.terminated.wait()

    async def wait_heard(self, nbytes: int) -> bytes:
        """Until at least ``nbytes`` of channel-0 agent audio has arrived; returns it all."""
        await trio.lowlevel.checkpoint()  # also when it has arrived already
        while len(self._heard) < nbytes:
            await self._heard_changed.wait()
        return self.heard

    async def wait_spoken(self) -> None:
        """Until everything the caller was given to say has been sent."""
        await trio.lowlevel.checkpoint()  # also when it has been sent already
        while not self.terminated.is_set() and (
            self._speech or self._pending_sources or not self.live.is_set()
        ):
            await self._speech_changed.wait()

    # ── driving the caller ───────────────────────────────────────────────────────────

    def say(self, audio: AudioSource | bytes | str | os.PathLike[str] | None) -> None:
        """Queue more speech; it is sent after what is already queued, once the call is live.
        ``Silence(math.inf)`` instead sets ``line_silence``: until the call ends, every pause
        is then sent as silence in whole frames, as a phone line carries it."""
        source = as_source(audio)
        if isinstance(source, Silence) and source.seconds == float("inf"):
            self.line_silence = True
        elif source is not None:
            self._pending_sources.append(source)
        self._render_pending()

    async def hang_up(self) -> None:
        """The caller hangs up: ``call.terminated``, then ``session.closed`` (CALL_TERMINATED)."""
        self.end(EndedBy.CALLER_HANGUP)
        await trio.lowlevel.checkpoint()

    async def inject_error(
        self, error_code: str = "TTS_SESSION_ERROR", error_message: str = "simulated error"
    ) -> None:
        """Send a ``call.error`` event on the voice plane; the call stays up."""
        frame = voice.CallEventFrame(
            "call.error", {"error_code": error_code, "error_message": error_message}
        )
        self._require_link().send(voice.encode_frame(frame))
        await trio.lowlevel.checkpoint()

    def stall_pulls(self, seconds: float) -> None:
        """The server pulls no agent audio for ``seconds`` of simulated time, then resumes
        at its normal pace (a slow or overloaded media server)."""
        self.pulls_stalled_until = max(self.pulls_stalled_until, self._clock.now() + seconds)

    async def drop_voice(self) -> None:
        """Cut the voice connection without a close frame; the call itself stays up."""
        if self.voice_link is not None:
            await self.voice_link.abort()
        else:
            await trio.lowlevel.checkpoint()

    async def send_malformed(self, kinds: Iterable[str] | None = None) -> list[str]:
        """Send malformed voice frames (all kinds by default); returns the kinds sent."""
        link = self._require_link()
        chosen = list(MALFORMED_VOICE_FRAMES) if kinds is None else list(kinds)
        for kind in chosen:
            link.send(MALFORMED_VOICE_FRAMES[kind])
        await trio.lowlevel.checkpoint()
        return chosen

    async def send_raw(self, data: str | bytes) -> None:
        """Send any frame on the voice connection, as is."""
        self._require_link().send(data)
        await trio.lowlevel.checkpoint()

    def _require_link(self) -> Link:
        link = self.voice_link
        if link is None or not link.is_open:
            raise RuntimeError(f"call {self.call_id} has no open voice connection")
        return link

    # ── used by the sandbox ──────────────────────────────────────────────────────────

    def check_token(self, token: str) -> bool:
        return secrets.compare_digest(token.encode(), self._token.encode())

    def mark_delivered(self, sample_rate: int, isolated: bool) -> None:
        self.sample_rate = sample_rate
        self.isolated = isolated
        if self.state is CallerState.OFFERED:
            self.state = CallerState.DELIVERED
        self.delivered.set()
        self._render_pending()

    def go_live(self) -> None:
        if self.state is CallerState.ENDED:
            return
        self.state = CallerState.LIVE
        self.live.set()
        self._changed_speech()

    def _render_pending(self) -> None:
        if self.sample_rate is None:
            return
        for source in self._pending_sources:
            self._speech += source.render(self.sample_rate)
        self._pending_sources.clear()
        self._changed_speech()

    def _changed_speech(self) -> None:
        self._speech_changed.set()
        self._speech_changed = trio.Event()

    def take_speech(self, nbytes: int) -> bytes:
        chunk = bytes(self._speech[:nbytes])
        del self._speech[:nbytes]
        if len(chunk) < nbytes and self.line_silence and self.state is CallerState.LIVE:
            chunk += bytes(nbytes - len(chunk))
        if chunk:
            self.spoken_marks.append((self._clock.now(), len(self.spoken)))
        self.spoken += chunk
        if not self._speech:
            self._changed_speech()
        return chunk

    async def wait_speech(self) -> None:
        """Until the caller has something to say (once per burst of speech, not per frame)."""
        await trio.lowlevel.checkpoint()
        while not (self._speech or (self.line_silence and self.state is CallerState.LIVE)):
            await self._speech_changed.wait()

    def record_heard(self, channel: int, pcm: bytes) -> None:
        self.heard_frames.append(HeardFrame(self._clock.now(), channel, pcm))
        if channel != 0:
            return
        owed = self.pull_ledger.owed
        if pcm and self.pull_ledger.receive(len(pcm)):
            logger.warning(
                "call %s: agent sent %d bytes when %d were owed", self.call_id, len(pcm), owed
            )
        self._heard += pcm
        self._heard_changed.set()
        self._heard_changed = trio.Event()

    def record_pull(self, nbytes: int) -> None:
        # The sandbox's own requests: always channel 0; the floor does not matter here.
        self.pull_ledger.on_request(voice.BufferRequest(nbytes))
        self.pull_requests.append(PullRecord(self._clock.now(), nbytes))

    def record_interrupt(self) -> Interrupt:
        interrupt = Interrupt(self._clock.now(), len(self._heard))
        self.interrupts.append(interrupt)
        return interrupt

    def end(self, by: EndedBy, *, close_session: bool = True) -> None:
        """End the call: ``call.terminated`` on the voice plane, then close its session
        (unless ``close_session`` is false: a server slow to close it)."""
        if self.state is CallerState.ENDED:
            return
        self.state = CallerState.ENDED
        self.ended_by = by
        logger.info("call %s ended (%s)", self.call_id, by.value)
        link = self.voice_link
        if link is not None:
            link.send(voice.encode_frame(voice.CallEventFrame("call.terminated")))
            link.close()
        self.terminated.set()
        self._changed_speech()
        if self._on_end is not None:
            self._on_end(self, close_session)

    def status(self, *, with_audio: bool = False) -> dict[str, Any]:
        """A JSON-ready summary (the admin endpoint serves it)."""
        out: dict[str, Any] = {
            "callId": self.call_id,
            "sessionId": self.session_id,
            "caller": self.caller,
            "callee": self.callee,
            "direction": self.direction,
            "state": self.state.value,
            "sampleRate": self.sample_rate,
            "answered": self.answered,
            "bridged": self.bridged,
            "agentMode": self.agent_mode,
            "endedBy": None if self.ended_by is None else self.ended_by.value,
            "heardBytes": len(self._heard),
            "spokenBytes": len(self.spoken),
            "bytesRequested": self.bytes_requested,
            "excessBytes": self.excess_bytes,
            "overpulls": self.overpulls,
            "voiceConnections": self.voice_connections,
            "interrupts": [attrs.asdict(i) for i in self.interrupts],
            "commands": [_command_json(c) for c in self.commands],
        }
        if with_audio:
            out["heard"] = base64.b64encode(bytes(self._heard)).decode("ascii")
            out["spoken"] = base64.b64encode(bytes(self.spoken)).decode("ascii")
        return out


def _command_json(c: CommandRecord) -> dict[str, Any]:
    return {"time": c.time, "command": c.command, "success": c.success, "errorCode": c.error_code}
