"""Ctrl+C at the top of a program: one line and status 130, not a traceback.

::

    if __name__ == "__main__":
        raise SystemExit(run_main(main))
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Final

__all__ = ["INTERRUPTED_STATUS", "is_interrupt", "run_main"]

logger = logging.getLogger(__name__)

#: What shells report for a program ended by SIGINT (128 + 2).
INTERRUPTED_STATUS: Final = 130


def is_interrupt(exc: BaseException) -> bool:
    """True for a ``KeyboardInterrupt``, bare or anywhere inside an exception group.

    Under trio a Ctrl+C that lands in a nursery's body leaves ``trio.run`` wrapped in a
    ``BaseExceptionGroup`` (possibly nested), so the bare ``except KeyboardInterrupt``
    misses it.
    """
    if isinstance(exc, BaseExceptionGroup):
        interrupts, _ = exc.split(KeyboardInterrupt)
        return interrupts is not None
    return isinstance(exc, KeyboardInterrupt)


def run_main(main: Callable[[], int]) -> int:
    """Call ``main`` and return its exit status; Ctrl+C returns 130 after one line on stderr.

    Any other exception propagates unchanged. Errors that arrive in the same group as the
    interrupt (tasks failing as they are torn down) are logged at DEBUG, not printed: the
    user asked the program to stop.
    """
    try:
        return main()
    except BaseException as exc:
        if not is_interrupt(exc):
            raise
        if isinstance(exc, BaseExceptionGroup):
            _, rest = exc.split(KeyboardInterrupt)
            if rest is not None:
                logger.debug("errors beside the interrupt", exc_info=rest)
        print("interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED_STATUS
