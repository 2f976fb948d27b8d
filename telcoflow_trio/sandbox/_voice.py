"""The voice plane: one call's WebSocket, with the caller's paced audio, pull requests
at real-time pace, and every command answered as the protocol says."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import trio

from ..protocol import Unrecognised, voice
from ..protocol.voice import CommandName
from ._caller import CommandRecord, ConnectOutcome, EndedBy, SimulatedCall
from ._clock import SandboxClock
from ._faults import Faults
from ._link import Link
from ._pcm import frame_bytes

__all__ = ["VoiceConnection", "VoiceSettings"]

logger = logging.getLogger(__name__)

_AGENT_MODES = frozenset({CommandName.WHISPER, CommandName.BARGE, CommandName.SPY})


@attrs.frozen
class VoiceSettings:
    """Pull pacing: every ``pull_interval`` simulated seconds the sandbox asks for that
    much audio; ``prefer_audio_frame_bytes`` None means 20 ms at the call's rate. The first
    pull comes ``pull_delay`` simulated seconds after the call goes live (a playout lead)."""

    pull_interval: float = 0.1
    prefer_audio_frame_bytes: int | None = None
    pull_delay: float = 0.0

    def __attrs_post_init__(self) -> None:
        if not self.pull_interval > 0:
            raise ValueError(f"pull_interval must be positive, got {self.pull_interval}")
        pref = self.prefer_audio_frame_bytes
        if pref is not None and pref < 0:
            raise ValueError(f"prefer_audio_frame_bytes must be >= 0, got {pref}")
        if not self.pull_delay >= 0:
            raise ValueError(f"pull_delay must be >= 0, got {self.pull_delay}")


@attrs.frozen
class _Result:
    success: bool
    error_code: str | None = None
    error_message: str | None = None
    result: Any = None


class VoiceConnection:
    """Serves one voice WebSocket of a :class:`SimulatedCall`."""

    def __init__(
        self,
        link: Link,
        call: SimulatedCall,
        *,
        settings: VoiceSettings,
        faults: Faults,
        clock: SandboxClock,
    ) -> None:
        self.link = link
        self.call = call
        self.settings = settings
        self.faults = faults
        self.clock = clock
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        call = self.call
        call.voice_link = self.link
        call.voice_connections += 1
        call.voice_connected.set()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self.link.run_writer)
                nursery.start_soon(self._pull)
                nursery.start_soon(self._speak)
                while (data := await self.link.receive()) is not None:
                    self._handle(data)
                nursery.cancel_scope.cancel()
        finally:
            if call.voice_link is self.link:
                call.voice_link = None
            logger.info("voice connection of call %s ended", call.call_id)

    # ── audio ────────────────────────────────────────────────────────────────────────

    async def _speak(self) -> None:
        """Send the caller's speech in 20 ms frames at real-time pace."""
        call = self.call
        await call.live.wait()
        rate = call.sample_rate or 16000
        size = frame_bytes(rate, call.frame_seconds)
        bytes_per_second = frame_bytes(rate, 1.0)
        while True:
            await call.wait_speech()
            # Pacing restarts when speech resumes after a pause, as a person's would.
            due = self.clock.now()
            while True:
                await self.clock.sleep_until(due)
                chunk = call.take_speech(size)
                if not chunk:
                    break
                self.link.send(voice.encode_audio(voice.AudioFrame(0, chunk)))
                if call.isolated:
                    self.link.send(voice.encode_audio(voice.AudioFrame(1, chunk)))
                    self.link.send(voice.encode_audio(voice.AudioFrame(2, bytes(len(chunk)))))
                due += len(chunk) / bytes_per_second

    async def _pull(self) -> None:
        """Ask for the agent's audio, one interval's worth per interval, without drift."""
        call = self.call
        await call.live.wait()
        rate = call.sample_rate or 16000
        interval = self.settings.pull_interval
        pref = self.settings.prefer_audio_frame_bytes
        prefer = frame_bytes(rate, 0.02) if pref is None else pref
        start = self.clock.now() + self.settings.pull_delay
        total = 0
        base = 0
        tick = 0
        while True:
            await self.clock.sleep_until(start + tick * interval)
            if call.pulls_stalled_until > self.clock.now():
                # A stall: nothing is asked for meanwhile, and the pace restarts after it.
                await self.clock.sleep_until(call.pulls_stalled_until)
                start, tick, base = self.clock.now(), 0, total
                continue
            tick += 1
            # Sizes come from the running total, so rounding never accumulates.
            want = frame_bytes(rate, tick * interval) - (total - base)
            if want > 0:
                total += want
                call.record_pull(want)
                self.link.send(voice.encode_frame(voice.BufferRequest(want, prefer, 0)))

    # ── frames from the agent ────────────────────────────────────────────────────────

    def _handle(self, data: str | bytes) -> None:
        frame = voice.decode_client_frame(data)
        if isinstance(frame, Unrecognised):
            logger.warning(
                "call %s: ignoring a malformed voice frame: %s", self.call.call_id, frame.reason
            )
            return
        if isinstance(frame, voice.AudioFrame):
            if frame.channel_id != 0:
                logger.warning(
                    "call %s: agent audio on channel %d (clients send on 0 only)",
                    self.call.call_id,
                    frame.channel_id,
                )
            self.call.record_heard(frame.channel_id, frame.pcm)
            return
        self._command(frame)

    def _command(self, cmd: voice.Command) -> None:
        call = self.call
        name = cmd.command
        if call.terminated.is_set():
            self._finish(cmd, _Result(False, "CALL_TERMINATED", "the call is over"))
            return
        if name == CommandName.CONNECT:
            ring = (cmd.data or {}).get("ringTimeSeconds", 60)
            if isinstance(ring, bool) or not isinstance(ring, int | float) or not 1 <= ring <= 120:
                self._finish(
                    cmd, _Result(False, "INVALID_REQUEST", "ringTimeSeconds must be 1-120")
                )
                return
            assert self._nursery is not None
            self._nursery.start_soon(self._connect, cmd, float(ring))
            return
        self._finish(cmd, self._apply(name))
        # The response goes out before the call ends, so the agent learns its command worked.
        if name == CommandName.DISCONNECT:
            call.end(EndedBy.AGENT_DISCONNECT)
        elif name == CommandName.CLOSE and (call.answered or call.bridged):
            call.end(EndedBy.AGENT_CLOSE)

    def _apply(self, name: str) -> _Result:
        call = self.call
        if name == CommandName.ANSWER:
            call.answered = True
            call.go_live()
            return _Result(True)
        if name in _AGENT_MODES:
            if not call.bridged:
                return _Result(
                    False,
                    "CALL_NOT_CONNECTED",
                    f"{name} needs a connected call: call.connect first",
                )
            call.agent_mode = name
            return _Result(True)
        if name == CommandName.DISCONNECT:
            return _Result(True)
        if name == CommandName.CLOSE:
            if not (call.answered or call.bridged):
                return _Result(False, "CALL_NOT_ANSWERED", "call.close needs an answered call")
            return _Result(True)
        if name == CommandName.INTERRUPT:
            interrupt = call.record_interrupt()
            return _Result(True, result={"heardBytes": interrupt.heard_bytes})
        return _Result(False, "UNKNOWN_COMMAND", f"unknown command {name!r}")

    async def _connect(self, cmd: voice.Command, ring: float) -> None:
        call = self.call
        behaviour = call.connect_behaviour
        timeout = cmd.timeout_ms / 1000
        if behaviour.outcome is ConnectOutcome.FAILED:
            self._finish(cmd, _Result(False, behaviour.error_code, behaviour.error_message))
            await trio.lowlevel.checkpoint()
            return
        if behaviour.outcome is ConnectOutcome.ANSWERED:
            wait = min(behaviour.answer_after, ring)
        else:
            wait = ring
        real_wait = self.clock.to_real(wait)
        if real_wait > timeout:
            await trio.sleep(timeout)
            self._finish(cmd, _Result(False, "TIMEOUT", "no outcome before timeout_ms"))
            return
        with trio.CancelScope() as scope:
            # A call that ends while ringing gets no connect outcome.
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._cancel_on_end, scope)
                await trio.sleep(real_wait)
                nursery.cancel_scope.cancel()
        if scope.cancelled_caught:
            return
        if behaviour.outcome is ConnectOutcome.ANSWERED:
            call.bridged = True
            call.go_live()
            self._finish(cmd, _Result(True))
        else:
            self._finish(
                cmd,
                _Result(False, "CALL_UNANSWERED", f"no answer after {ring:g} s of ringing"),
            )

    async def _cancel_on_end(self, scope: trio.CancelScope) -> None:
        await self.call.terminated.wait()
        scope.cancel()

    def _finish(self, cmd: voice.Command, result: _Result) -> None:
        call = self.call
        call.commands.append(
            CommandRecord(
                self.clock.now(), cmd.command, cmd.data, result.success, result.error_code
            )
        )
        if self.faults.withholds_command(cmd.command):
            logger.info("call %s: withholding the %s response (fault)", call.call_id, cmd.command)
            return
        response = voice.CommandResponse(
            cmd.command_id, result.success, result.result, result.error_code, result.error_message
        )
        delay = self.faults.command_response_delay
        if delay > 0 and self._nursery is not None:
            self._nursery.start_soon(self._send_later, delay, cmd, response)
        else:
            self.link.send(voice.encode_frame(response))

    async def _send_later(
        self, delay: float, cmd: voice.Command, response: voice.CommandResponse
    ) -> None:
        timeout = cmd.timeout_ms / 1000
        if delay > timeout:
            # The server answers before the client's deadline, as the protocol promises.
            await trio.sleep(timeout)
            response = voice.CommandResponse(
                cmd.command_id, False, None, "TIMEOUT", "command timed out"
            )
        else:
            await trio.sleep(delay)
        self.link.send(voice.encode_frame(response))
