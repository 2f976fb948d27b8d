"""What a command prints: a progress display (a live status line on a terminal, plain lines
otherwise (logs, pipes, CI), nothing at all when asked to be quiet), and the output options
the commands share (``--progress``, ``--json``, ``--log-level``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Final, Literal, TextIO

__all__ = ["Progress", "ProgressMode", "add_output_options", "bar", "start_output"]

ProgressMode = Literal["auto", "live", "lines", "none"]
PROGRESS_MODES: Final = ("auto", "live", "lines", "none")


def add_output_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--progress``, ``--json`` (``what`` as one JSON line) and ``--log-level``."""
    parser.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="auto",
        help="live status line, plain lines, or none (default: live on a terminal)",
    )
    parser.add_argument("--json", action="store_true", help=f"print {what} as one JSON line")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")


def start_output(args: argparse.Namespace, stream: TextIO | None) -> tuple[TextIO, Progress]:
    """Logging to stderr at ``--log-level``; the stream to print on and its progress display
    (none with ``--json``, which keeps stdout for the one JSON line)."""
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    out = sys.stdout if stream is None else stream
    mode: ProgressMode = "none" if args.json else args.progress
    return out, Progress(out, mode)


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
