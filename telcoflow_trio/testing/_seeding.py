"""Seeded scheduling for :func:`run_script`: the same script, the same task order.

Trio picks the order in which runnable tasks run from a private random generator. Under
hypothesis's ``@given`` that generator is seeded (to 0) for every example and trio sorts
each batch of runnable tasks before shuffling it, so a failing example replays; outside
``@given`` it is seeded from the OS and a racy agent's verdict can change from run to run.
:func:`seeded_scheduling` does what ``@given`` does, for one block: it seeds trio's
generator and Python's global :mod:`random`, switches trio to its sorted-then-shuffled
order, and puts all three back afterwards.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Final

from trio._core import _run as trio_run  # private: trio's scheduler generator lives here

__all__ = ["check_seed", "seeded_scheduling"]

_FLAG: Final = "_ALLOW_DETERMINISTIC_SCHEDULING"


def check_seed(seed: object) -> int | None:
    """``seed`` if it is ``None`` or an int in [0, 2**32); otherwise a clear error."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return seed


@contextlib.contextmanager
def seeded_scheduling(seed: int | None) -> Iterator[None]:
    """Seed trio's scheduler (and :mod:`random`) with ``seed`` for the block; ``None``
    changes nothing. Not thread-safe: the generator and the switch are process-wide."""
    if seed is None:
        yield
        return
    scheduler_rng: random.Random = trio_run._r
    saved_scheduler = scheduler_rng.getstate()
    saved_global = random.getstate()
    saved_flag = bool(getattr(trio_run, _FLAG))
    scheduler_rng.seed(seed)
    random.seed(seed)
    # Sorting each batch by spawn order before the seeded shuffle makes the order
    # independent of how the batch was filled (I/O readiness order, ids of cancel scopes).
    setattr(trio_run, _FLAG, True)
    try:
        yield
    finally:
        setattr(trio_run, _FLAG, saved_flag)
        random.setstate(saved_global)
        scheduler_rng.setstate(saved_scheduler)
