"""``telcoflow_trio.testing``: a faithful local Telcoflow server, the sandbox.

It speaks the control, REST and voice planes on one port, simulates callers that speak
and record, pulls agent audio at real-time pace, and injects faults::

    from telcoflow_trio.testing import open_sandbox, TestSignal

    async with open_sandbox(time_scale=10) as sandbox:
        config = sandbox.config()          # a SessionManagerConfig for this sandbox
        call = await sandbox.place_call(audio=TestSignal(seconds=2))
        ...
        await call.wait_terminated()
        assert call.heard == call.spoken

For pytest, ``pytest_plugins = ["telcoflow_trio.testing.pytest_plugin"]`` gives a
``sandbox`` fixture. Property-based tests of an agent: :func:`run_script` plays a
:class:`CallScript` against it and checks agent-level invariants; hypothesis strategies
are in :mod:`telcoflow_trio.testing.strategies` and a multi-call state machine in
:mod:`telcoflow_trio.testing.stateful` (both need ``hypothesis``; this package does not).
Unit tests of your own logic without sockets: :class:`MemoryConnector` is an in-memory
transport for ``SessionManager(connect=...)``, as ``trio.testing.memory_stream_pair`` is
for streams.
"""

from .._transport import MemoryConnector, MemorySocket, memory_socket_pair
from ._audio import (
    AudioSource,
    Pcm,
    Silence,
    TestSignal,
    Tone,
    WavFile,
    frame_bytes,
    read_wav,
    resample,
    write_wav,
)
from ._caller import (
    CallerState,
    CommandRecord,
    ConnectBehaviour,
    ConnectOutcome,
    EndedBy,
    HeardFrame,
    Interrupt,
    PullRecord,
    SimulatedCall,
)
from ._clock import SandboxClock
from ._faults import MALFORMED_CONTROL_FRAMES, MALFORMED_VOICE_FRAMES, Faults
from ._framelog import FrameLog, FrameRecord
from ._invariants import PlayedCall, QuietWhileInterrupted, Violation
from ._runner import RunOptions, ScriptFailure, play_script, run_script
from ._sandbox import Sandbox, open_sandbox
from ._script import (
    CallError,
    CallScript,
    DropControl,
    DropVoice,
    HangUp,
    Noise,
    Pause,
    SetConnect,
    Shutdown,
    SlowCommands,
    Speak,
    StallPulls,
)
from ._sessions import SessionRecord, WaOutbound

__all__ = [
    "MALFORMED_CONTROL_FRAMES",
    "MALFORMED_VOICE_FRAMES",
    "AudioSource",
    "CallError",
    "CallScript",
    "CallerState",
    "CommandRecord",
    "ConnectBehaviour",
    "ConnectOutcome",
    "DropControl",
    "DropVoice",
    "EndedBy",
    "Faults",
    "FrameLog",
    "FrameRecord",
    "HangUp",
    "HeardFrame",
    "Interrupt",
    "MemoryConnector",
    "MemorySocket",
    "Noise",
    "Pause",
    "Pcm",
    "PlayedCall",
    "PullRecord",
    "QuietWhileInterrupted",
    "RunOptions",
    "Sandbox",
    "SandboxClock",
    "ScriptFailure",
    "SessionRecord",
    "SetConnect",
    "Shutdown",
    "Silence",
    "SimulatedCall",
    "SlowCommands",
    "Speak",
    "StallPulls",
    "TestSignal",
    "Tone",
    "Violation",
    "WaOutbound",
    "WavFile",
    "frame_bytes",
    "memory_socket_pair",
    "open_sandbox",
    "play_script",
    "read_wav",
    "resample",
    "run_script",
    "write_wav",
]
