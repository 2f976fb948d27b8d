"""Call scripts and the runner that plays them against an agent (no hypothesis needed).

::

    from telcoflow_trio.testing.scripts import CallScript, Speak, Pause, HangUp, run_script

    run_script(CallScript([Speak(1.0), Pause(0.5), HangUp()]), handle_call)

Generate scripts with :func:`telcoflow_trio.testing.strategies.call_scripts`; test many
calls at once with :class:`telcoflow_trio.testing.stateful.CallScenarios`.
"""

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
from ._runner import Handler, Program, RunOptions, ScriptFailure, play_script, run_script
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
    Step,
)

__all__ = [
    "DEFAULT_INVARIANTS",
    "AudioWrite",
    "CallError",
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
    "Noise",
    "Pause",
    "PlayedCall",
    "Program",
    "QuietWhileInterrupted",
    "RunOptions",
    "ScriptFailure",
    "SetConnect",
    "Shutdown",
    "SlowCommands",
    "Speak",
    "StallPulls",
    "Step",
    "Violation",
    "audible",
    "commands_answered_within_deadline",
    "ends_closed_on_both_sides",
    "no_stale_audio_after_interrupt",
    "no_undocumented_errors",
    "play_script",
    "run_script",
]
