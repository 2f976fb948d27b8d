"""``telcoflow_trio.testing``: test your agent, as :mod:`trio.testing` tests trio programs.

- **Call scripts**: :func:`run_script` plays a :class:`CallScript` (steps such as
  :class:`Speak`, :class:`Pause`, :class:`HangUp`, :class:`DropVoice`) against your
  handler through a local sandbox server and checks agent-level invariants
  (:data:`DEFAULT_INVARIANTS`); a failure raises :class:`ScriptFailure` with a replayable
  script::

      from telcoflow_trio.testing import CallScript, HangUp, Pause, Speak, run_script

      run_script(CallScript([Speak(1.0), Pause(0.5), HangUp()]), handle_call)

  Tasks ready at the same moment run in an order fixed by ``seed=`` (0 by default, as
  inside hypothesis's ``@given``), so a script replays with the same task order every
  time (what real loopback sockets may still vary is said in :func:`run_script`).

- **Property tests**: hypothesis strategies in :mod:`telcoflow_trio.testing.strategies`
  and a many-calls state machine in :mod:`telcoflow_trio.testing.stateful` (both need
  ``hypothesis``; this package does not).
- **A pytest fixture**, ``sandbox``, registered when the package is installed (nothing
  to add to ``pytest_plugins``, which would make pytest refuse to start); it needs
  pytest-trio with ``trio_mode = true`` in the pytest configuration, or
  ``@pytest.mark.trio`` on each test. The server itself is :mod:`telcoflow_trio.sandbox`,
  whose :func:`open_sandbox`, :class:`Sandbox` and audio sources are re-exported here.
- **Unit tests without sockets**: :class:`MemoryConnector` is an in-memory transport for
  ``SessionManager(connect=...)``, as :func:`trio.testing.memory_stream_pair` is for
  streams.

The kit observes calls through the SDK's trace hook; it patches nothing.
"""

# The kit's own modules: _script (steps), _record (what the agent did, via the SDK's trace
# hook), _invariants, _runner; strategies and stateful need hypothesis and stay submodules.
from .._transport import MemoryConnector, MemorySocket, memory_socket_pair
from ..sandbox import (
    AudioSource,
    Pcm,
    Sandbox,
    Silence,
    SimulatedCall,
    TestSignal,
    Tone,
    WavFile,
    open_sandbox,
)
from ._agent import Handler, Program
from ._invariants import (
    DEFAULT_INVARIANTS,
    Invariant,
    PlayedCall,
    QuietWhileInterrupted,
    Violation,
    audible,
    commands_answered_within_deadline,
    ends_closed_on_both_sides,
    no_stale_audio_after_interrupt,
    no_undocumented_errors,
)
from ._record import AudioWrite, CallLedger, ClearCall, CommandCall, HandlerRun
from ._runner import RunOptions, ScriptFailure, play_script, run_script
from ._script import (
    CallScript,
    DropControl,
    DropVoice,
    HangUp,
    Noise,
    Pause,
    SendCallError,
    SetConnect,
    Shutdown,
    SlowCommands,
    Speak,
    StallPulls,
    Step,
)

__all__ = [
    "DEFAULT_INVARIANTS",
    "AudioSource",
    "AudioWrite",
    "CallLedger",
    "CallScript",
    "ClearCall",
    "CommandCall",
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
]
