"""Start a command-line program, wait until it says it is up, and signal it, as Ctrl+C does."""

from __future__ import annotations

import os
import pathlib
import select
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO

import attrs

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Generous: it only bounds a broken run; nothing waits for it to pass.
DEADLINE = 60.0


@attrs.frozen
class Ended:
    """How the program ended, and what it printed after it was signalled."""

    returncode: int
    stdout: str
    stderr: str


@attrs.define
class Running:
    """A program started by :func:`running`."""

    proc: subprocess.Popen[bytes]

    def wait_for(self, stream: str, needle: str) -> str:
        """Read ``stream`` ("stdout" or "stderr") until ``needle`` shows; return what was read."""
        pipe: IO[bytes] | None = getattr(self.proc, stream)
        assert pipe is not None
        fd = pipe.fileno()
        seen = b""
        while needle.encode() not in seen:
            ready, _, _ = select.select([fd], [], [], DEADLINE)
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:  # end of stream (the program died) or nothing for DEADLINE seconds
                self.proc.kill()
                _, err = self.proc.communicate()
                raise AssertionError(
                    f"{needle!r} never came on {stream}; read {seen!r}; stderr: {err.decode()}"
                )
            seen += chunk
        return seen.decode()

    def signal(self, signum: int = signal.SIGINT) -> Ended:
        """Send ``signum`` and wait for the program to end."""
        self.proc.send_signal(signum)
        out, err = self.proc.communicate(timeout=DEADLINE)
        return Ended(self.proc.returncode, out.decode(), err.decode())


def _hear_ctrl_c() -> None:
    """In the child: SIGINT as a terminal's Ctrl+C finds it. A test run started in the
    background by a shell without job control inherits SIGINT ignored, and Python then
    installs no KeyboardInterrupt for it: the program would never hear the signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def running(args: Sequence[str], env: Mapping[str, str] | None = None) -> Iterator[Running]:
    """``python ARGS`` in the repository root, killed on the way out if still running.

    The program sees no ``TELCOFLOW_*`` variable of ours, only those in ``env``.
    """
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("TELCOFLOW_")}
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**inherited, **(env or {})},
        preexec_fn=_hear_ctrl_c,
    )
    try:
        yield Running(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
