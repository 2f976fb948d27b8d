"""The public API, pinned (as trio's test_exports.py): adding or removing a public name is a
decision, made here on purpose, never an accident of an import."""

from __future__ import annotations

import importlib

import pytest

PUBLIC: dict[str, set[str]] = {
    "telcoflow_trio": {
        "AudioCounters",
        "AudioMode",
        "AudioModeName",
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
        "CallOutcome",
        "CallServer",
        "CallState",
        "CallTerminated",
        "ChannelType",
        "ClaimStats",
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
        "SampleRate",
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
        "run_main",
    },
    "telcoflow_trio.testing": {
        "AudioSource",
        "AudioWrite",
        "CallLedger",
        "CallScript",
        "ClearCall",
        "CommandCall",
        "DEFAULT_INVARIANTS",
        "DropControl",
        "DropVoice",
        "Handler",
        "HandlerRun",
        "HangUp",
        "Invariant",
        "MemoryConnector",
        "MemorySocket",
        "Noise",
        "Pause",
        "Pcm",
        "PlayedCall",
        "Program",
        "QuietWhileInterrupted",
        "RunOptions",
        "Sandbox",
        "ScriptFailure",
        "SendCallError",
        "SetConnect",
        "Shutdown",
        "Silence",
        "SimulatedCall",
        "SlowCommands",
        "Speak",
        "StallPulls",
        "Step",
        "TestSignal",
        "Tone",
        "Violation",
        "WavFile",
        "audible",
        "commands_answered_within_deadline",
        "ends_closed_on_both_sides",
        "memory_socket_pair",
        "no_stale_audio_after_interrupt",
        "no_undocumented_errors",
        "open_sandbox",
        "play_script",
        "run_script",
    },
    "telcoflow_trio.sandbox": {
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
        "MALFORMED_CONTROL_FRAMES",
        "MALFORMED_VOICE_FRAMES",
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
    "telcoflow_trio.runner": {
        "HandoffError",
        "HandoffFront",
        "Metrics",
        "RunConfigError",
        "RunOptions",
        "ShutdownSignals",
        "Supervisor",
        "cpu_count",
        "cpu_load",
        "hand_off",
        "healthy",
        "load_handler",
        "redis_client",
        "render_directory",
        "serve",
        "serve_handoffs",
        "serve_http",
    },
    "telcoflow_trio.audio": {
        "AudioCounters",
        "AudioStream",
        "BufferCounters",
        "ClearResult",
        "FrameWriter",
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


def test_the_runner_imports_without_its_optional_dependencies() -> None:
    """``import telcoflow_trio.runner`` (and the run command) must work without the ``run``
    and ``redis`` extras: their names are imported on first use."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('prometheus_client', 'hypercorn', 'coredis'):\n"
        "            raise ImportError('refused: ' + name)\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "import telcoflow_trio.runner as r\n"
        "assert callable(r.serve) and callable(r.Supervisor)\n"
        "try:\n"
        "    r.Metrics\n"
        "except ImportError as exc:\n"
        "    print('lazy:', exc)\n"
        "else:\n"
        "    raise SystemExit('Metrics imported without prometheus_client')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "prometheus_client" in out.stdout
