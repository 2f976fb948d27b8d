"""The public API, pinned (as trio's test_exports.py): adding or removing a public name is a
decision, made here on purpose, never an accident of an import."""

from __future__ import annotations

import importlib

import pytest

PUBLIC: dict[str, set[str]] = {
    "telcoflow_trio": {
        "AudioCounters",
        "AudioMode",
        "AudioStream",
        "BufferClosedError",
        "BufferFullError",
        "CALL_ERROR",
        "CALL_TERMINATED",
        "Call",
        "CallAudioConfig",
        "CallEndReason",
        "CallError",
        "CallErrorCode",
        "CallEvent",
        "CallFlowBuilder",
        "CallFlowConfig",
        "CallState",
        "CallTerminated",
        "ChannelType",
        "ClearResult",
        "CloseReason",
        "CloseResult",
        "CommandResult",
        "ConnectionState",
        "DEFAULT_BUFFER_SIZE",
        "InboundCallMode",
        "IncomingMessage",
        "MessageErrorCode",
        "PRODUCTION_BASE_URL",
        "SendMessageResult",
        "SendWAMessage",
        "Session",
        "SessionActivityType",
        "SessionInfo",
        "SessionManager",
        "SessionManagerConfig",
        "SessionNotification",
        "WSSAuthenticationError",
        "WSSCallClosedError",
        "WSSCallCommandError",
        "WSSCallCommandTimeoutError",
        "WSSCallError",
        "WSSCallStateError",
        "WSSChannelNotConfigured",
        "WSSConnectionError",
        "WSSError",
        "WSSForbidden",
        "WSSInvalidRequest",
        "WSSOutboundOverflow",
        "WSSQuotaExceeded",
        "WSSSessionAlreadyExists",
        "WSSSessionBusy",
        "WSSSessionClosed",
        "WSSSessionError",
        "WSSSessionNotFound",
        "WSSSessionNotOpen",
        "WrongChannelError",
        "__version__",
    },
    "telcoflow_trio.testing": {
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
        "MALFORMED_CONTROL_FRAMES",
        "MALFORMED_VOICE_FRAMES",
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
    },
    "telcoflow_trio.protocol": {
        "BACKOFF_FACTOR",
        "BACKOFF_FIRST_DELAY",
        "BACKOFF_JITTER",
        "BACKOFF_MAX_DELAY",
        "Backoff",
        "PING_INTERVAL",
        "PING_TIMEOUT",
        "PullLedger",
        "PullOutcome",
        "READY_WARNING_DELAY",
        "REQUEST_TIMEOUT",
        "SESSION_CLOSE_WAIT",
        "SETUP_TIMEOUT",
        "Unrecognised",
        "call_state",
        "control",
        "handoff",
        "pull",
        "rest",
        "session_state",
        "voice",
    },
    "telcoflow_trio.audio": {
        "AudioCounters",
        "AudioStream",
        "BufferCounters",
        "ClearResult",
        "IncomingAudio",
        "IncomingCounters",
        "IncomingReceiver",
        "MAX_REQUEST_RUNS",
        "PullServicer",
        "SendAudioBuffer",
        "SendFrame",
        "SendInterrupt",
    },
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_public_names_are_exactly_these(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    assert len(module.__all__) == len(set(module.__all__)), "a name is listed twice"


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_every_public_name_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_no_public_name_leaks_from_the_package_without_being_listed() -> None:
    import telcoflow_trio as tf

    # Submodules are reachable as attributes; anything else public must be in __all__.
    unlisted = {
        name
        for name, value in vars(tf).items()
        if not name.startswith("_") and name not in tf.__all__ and type(value).__name__ != "module"
    }
    assert unlisted == set()
