"""A progress display for the command line: a live status line on a terminal, plain lines
otherwise (logs, pipes, CI), and nothing at all when asked to be quiet."""

from __future__ import annotations

import time
from typing import Final, Literal, TextIO

__all__ = ["Progress", "ProgressMode", "bar"]

ProgressMode = Literal["auto", "live", "lines", "none"]
PROGRESS_MODES: Final = ("auto", "live", "lines", "none")


def bar(fraction: float, width: int = 24) -> str:
    """``[#####.....]`` for a fraction in 0..1 (clamped); ASCII so any terminal shows it."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class Progress:
    """Where a command reports how it is getting on.

    ``update`` replaces the status line on a terminal (``\\r``); elsewhere it prints a plain
    line at most every ``interval`` seconds (or at once with ``force``). ``line`` prints a
    permanent line in either mode.
    """

    def __init__(self, stream: TextIO, mode: ProgressMode = "auto", interval: float = 1.0) -> None:
        if mode not in PROGRESS_MODES:
            raise ValueError(f"mode must be one of {PROGRESS_MODES}, got {mode!r}")
        isatty = getattr(stream, "isatty", None)
        self.stream = stream
        self.live = mode == "live" or (mode == "auto" and bool(isatty and isatty()))
        self.quiet = mode == "none"
        self.interval = interval
        self._shown = 0
        self._last_plain = -float("inf")
        self._last_text = ""

    def update(self, text: str, *, force: bool = False) -> None:
        """Show the current status."""
        if self.quiet:
            return
        if self.live:
            pad = " " * max(0, self._shown - len(text))
            self.stream.write("\r" + text + pad)
            self.stream.flush()
            self._shown = len(text)
            return
        now = time.monotonic()
        if text != self._last_text and (force or now - self._last_plain >= self.interval):
            self._last_plain = now
            self._last_text = text
            print(text, file=self.stream, flush=True)

    def line(self, text: str) -> None:
        """Print a line that stays (the status line, if any, is cleared first)."""
        if self.quiet:
            return
        self.clear()
        print(text, file=self.stream, flush=True)

    def clear(self) -> None:
        """Remove the live status line."""
        if self.live and self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
            self._shown = 0
