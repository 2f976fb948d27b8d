"""Counting what a block leaves behind: trio tasks and file descriptors.

Tasks are counted by walking the task tree from ``trio.lowlevel.current_root_task()``;
file descriptors by listing ``/proc/self/fd``. Both are compared after everything the
block opened (sandbox included) has been closed.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

__all__ = ["LeakReport", "all_tasks", "fd_kinds", "no_leaks", "sdk_tasks"]

_FD_DIR = "/proc/self/fd"
SETTLE_SECONDS = 2.0


def all_tasks() -> list[trio.lowlevel.Task]:
    """Every task of this trio run."""
    found: list[trio.lowlevel.Task] = []

    def walk(task: trio.lowlevel.Task) -> None:
        found.append(task)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return found


def sdk_tasks() -> list[str]:
    """Names of running tasks that belong to the SDK (not the sandbox, not the test)."""
    return [
        t.name
        for t in all_tasks()
        if t.name.startswith("telcoflow_trio.") and ".testing." not in t.name
    ]


def fd_kinds() -> Counter[str]:
    """Open file descriptors by kind (``socket``, ``pipe``, ``anon_inode:[eventpoll]``, a path)."""
    kinds: Counter[str] = Counter()
    for name in os.listdir(_FD_DIR):
        try:
            target = os.readlink(f"{_FD_DIR}/{name}")
        except OSError:  # the directory's own descriptor, gone once listed
            continue
        kinds[target.split(":[", 1)[0] if target.startswith(("socket:", "pipe:")) else target] += 1
    return kinds


@attrs.define
class LeakReport:
    """What a :func:`no_leaks` block saw; filled in when it exits."""

    fds_before: int = 0
    fds_after: int = 0
    sockets_before: int = 0
    sockets_after: int = 0
    tasks_before: int = 0
    tasks_after: int = 0
    new_fds: dict[str, int] = attrs.field(factory=dict)
    new_tasks: list[str] = attrs.field(factory=list)


@asynccontextmanager
async def no_leaks() -> AsyncIterator[LeakReport]:
    """Assert that the block leaves no task and no file descriptor behind.

    Descriptors are compared by kind, after a bounded wait for sockets closed by the block
    to be released (a closing socket can outlive its ``aclose`` by a scheduling round).
    """
    report = LeakReport()
    before_fds = fd_kinds()
    before_tasks = set(all_tasks())
    report.fds_before = sum(before_fds.values())
    report.sockets_before = before_fds["socket"]
    report.tasks_before = len(before_tasks)
    yield report
    with trio.move_on_after(SETTLE_SECONDS):
        while True:
            after_fds = fd_kinds()
            new_tasks = [t for t in all_tasks() if t not in before_tasks]
            if not (after_fds - before_fds) and not new_tasks:
                break
            await trio.sleep(0.01)
    after_fds = fd_kinds()
    after_tasks = all_tasks()
    report.fds_after = sum(after_fds.values())
    report.sockets_after = after_fds["socket"]
    report.tasks_after = len(after_tasks)
    report.new_fds = dict(after_fds - before_fds)
    report.new_tasks = [t.name for t in after_tasks if t not in before_tasks]
    assert report.new_fds == {}, f"file descriptors left open: {report.new_fds}"
    assert report.new_tasks == [], f"tasks left running: {report.new_tasks}"
