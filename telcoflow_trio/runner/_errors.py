"""The runner's one error type: bad input that stops the runner before it serves."""

from __future__ import annotations

__all__ = ["RunConfigError"]


class RunConfigError(Exception):
    """Bad runner input (a handler path, a flag, a port in use, a Redis URL...).

    The message is one line that names what was wrong and why; the command line prints it and
    exits with status 2. It never carries a secret.
    """
