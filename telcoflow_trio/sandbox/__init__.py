"""``telcoflow_trio.sandbox``: a faithful local Telcoflow server.

It speaks the control, REST and voice planes on one port, simulates callers that speak
and record, pulls agent audio at real-time pace, and injects faults::

    from telcoflow_trio.sandbox import open_sandbox, TestSignal

    async with open_sandbox(time_scale=10) as sandbox:
        config = sandbox.config()          # a SessionManagerConfig for this sandbox
        call = await sandbox.place_call(audio=TestSignal(seconds=2))
        ...
        await call.wait_terminated()
        assert call.heard == call.spoken

The claim race and session rules are decided by a sans-IO switchboard; the sockets around
it carry its frames. ``python -m telcoflow_trio sandbox`` runs one from the command line.
"""

from ._audio import (
    AudioSource,
    Pcm,
    Silence,
    TestSignal,
    Tone,
    WavFile,
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
from ._pcm import frame_bytes, resample
from ._sandbox import Sandbox, open_sandbox
from ._sessions import SessionRecord, WaOutbound
from ._wav import WavFormatError, WavInfo, inspect_wav, read_wav, write_wav

__all__ = [
    "MALFORMED_CONTROL_FRAMES",
    "MALFORMED_VOICE_FRAMES",
    "AudioSource",
    "CallerState",
    "CommandRecord",
    "ConnectBehaviour",
    "ConnectOutcome",
    "EndedBy",
    "Faults",
    "FrameLog",
    "FrameRecord",
    "HeardFrame",
    "Interrupt",
    "Pcm",
    "PullRecord",
    "Sandbox",
    "SandboxClock",
    "SessionRecord",
    "Silence",
    "SimulatedCall",
    "TestSignal",
    "Tone",
    "WaOutbound",
    "WavFile",
    "WavFormatError",
    "WavInfo",
    "frame_bytes",
    "inspect_wav",
    "open_sandbox",
    "read_wav",
    "resample",
    "write_wav",
]
