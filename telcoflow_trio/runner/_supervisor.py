"""Worker processes under one supervisor: ``--workers N`` runs N copies of a command, restarts one
that dies (with backoff), forwards SIGTERM/SIGINT to them all and waits for them to drain.

The supervisor is generic over the child command (``argv_for(index)``), so it is tested with
small scripts; the command line gives it the same ``run`` command with ``--workers 1``.

Each worker gets, in its environment, its index (``TELCOFLOW_WORKER_INDEX``, 0 to N-1; a
restarted worker keeps its index) and one ``PROMETHEUS_MULTIPROC_DIR`` shared by all, so that
``prometheus_client``'s multiprocess mode sums their metrics; a dead worker's live gauges are
removed from it (``mark_process_dead``).

Signals, as the workers understand them (one process: first SIGTERM/SIGINT drains, second closes
the calls at once):

- first SIGTERM or SIGINT to the supervisor: SIGTERM to every live worker, and no more restarts;
- second: SIGTERM to every live worker again;
- last resort: a worker still alive ``kill_after`` seconds after the first signal (by default the
  default drain timeout, 600 s, plus a minute), or ``close_grace`` seconds after the second, is
  killed (SIGKILL), and counts as failed.

The workers run in their own process group, so a Ctrl-C in a terminal reaches only the
supervisor, which forwards it once, instead of every worker getting it twice (straight from the
terminal, then forwarded) and taking it for the second signal.

If :meth:`Supervisor.run` is cancelled, every worker is stopped (SIGTERM twice, SIGKILL after
``cancel_grace`` seconds) and reaped before the cancellation goes on: no zombie, no orphan. A
SIGKILL to the supervisor itself cannot be caught, so each worker also gets a lifeline: the
read end of a pipe whose write end only the supervisor holds (its number in
``TELCOFLOW_SUPERVISOR_FD``). However the supervisor dies, the kernel closes the write end, the
worker reads the end of the pipe and drains as on a first SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import trio

from ._cgroup import cpu_count, cpu_load
from ._errors import RunConfigError

__all__ = [
    "LIFELINE_ENV",
    "MULTIPROC_DIR_ENV",
    "WORKER_INDEX_ENV",
    "Backoff",
    "Supervisor",
    "cpu_count",
    "cpu_load",
]

logger = logging.getLogger(__name__)

WORKER_INDEX_ENV = "TELCOFLOW_WORKER_INDEX"
LIFELINE_ENV = "TELCOFLOW_SUPERVISOR_FD"
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

# A forwarded second SIGTERM sent right after the first could be merged with it by the
# worker's signal handling (trio keeps one pending signal of each kind); this gap lets the
# first one be taken first when the supervisor itself sends both (cancellation, close()).
_SIGNAL_GAP = 0.1


def _nonnegative(value: float, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


class Backoff:
    """Restart delays for one worker: ``initial`` seconds, doubling after each death up to
    ``maximum``; back to ``initial`` when the worker had lived ``reset_after`` seconds or more.

    A worker that crashes at once is thus restarted ever more slowly (never in a hot loop), and
    one that crashes after a day of work is restarted quickly.
    """

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, reset_after: float = 60.0):
        self.initial = _nonnegative(initial, "backoff")
        if self.initial == 0:
            raise ValueError("backoff must be > 0 seconds (0 would restart in a hot loop)")
        self.maximum = _nonnegative(maximum, "max_backoff")
        if self.maximum < self.initial:
            raise ValueError(f"max_backoff ({maximum}) must be >= backoff ({initial})")
        self.reset_after = _nonnegative(reset_after, "backoff_reset")
        self._next = self.initial

    def after_exit(self, lived: float) -> float:
        """The delay before restarting a worker that died after ``lived`` seconds."""
        if lived >= self.reset_after:
            self._next = self.initial
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay


def describe_status(returncode: int | None) -> str:
    """A worker's exit status in words: ``exit 3``, ``killed by SIGKILL``, ``never started``."""
    if returncode is None:
        return "never started"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit {returncode}"


class Supervisor:
    """Runs ``workers`` processes (``"auto"``: :func:`cpu_count`), ``argv_for(index)`` each,
    restarting any that dies, until SIGTERM/SIGINT drains them: ``await
    Supervisor(...).run()`` returns the exit status (0 when every worker exited 0 after the
    drain, else 1). See the module for the signals. :meth:`drain` and :meth:`close` do what
    the first and second signal do, from your own code (for example with
    ``handle_signals=False``); ``pids``, ``draining`` and ``metrics_dir`` are the live state.

    ``backoff``, ``max_backoff``, ``backoff_reset``: see :class:`Backoff`. ``kill_after``: seconds
    from the first signal after which a worker still alive is killed (None: never; give the
    workers' drain timeout plus a margin). ``close_grace``: the same from the second signal.
    ``cancel_grace``: how long a cancelled supervisor waits for a worker before killing it.
    ``handle_signals``: receive SIGTERM/SIGINT (the main thread only); without it, only
    cancellation, :meth:`drain` or :meth:`close` end the run.

    ``env`` is the workers' whole environment (default: this process's), to which the index and
    ``PROMETHEUS_MULTIPROC_DIR`` are added. The metrics directory is ``metrics_dir`` if given,
    else ``env``'s ``PROMETHEUS_MULTIPROC_DIR`` if set, else a temporary directory made by
    :meth:`run` and removed when it returns.
    """

    def __init__(
        self,
        argv_for: Callable[[int], Sequence[str]],
        workers: int | Literal["auto"],
        *,
        env: Mapping[str, str] | None = None,
        metrics_dir: str | None = None,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        backoff_reset: float = 60.0,
        kill_after: float | None = 660.0,
        close_grace: float = 30.0,
        cancel_grace: float = 5.0,
        handle_signals: bool = True,
    ) -> None:
        if workers == "auto":
            workers = cpu_count()
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer or 'auto', got {workers!r}")
        if not callable(argv_for):
            raise TypeError(f"argv_for must be a function of the worker index, got {argv_for!r}")
        Backoff(backoff, max_backoff, backoff_reset)  # checks the three of them
        self.workers: int = workers
        self._argv_for = argv_for
        self._env = dict(os.environ if env is None else env)
        self._given_dir = metrics_dir or self._env.get(MULTIPROC_DIR_ENV) or None
        if self._given_dir is not None and not os.path.isdir(self._given_dir):
            raise RunConfigError(f"metrics directory {self._given_dir!r} is not a directory")
        self._backoff = (backoff, max_backoff, backoff_reset)
        self._kill_after = None if kill_after is None else _nonnegative(kill_after, "kill_after")
        self._close_grace = _nonnegative(close_grace, "close_grace")
        self._cancel_grace = _nonnegative(cancel_grace, "cancel_grace")
        self._handle_signals = handle_signals
        self._live: dict[int, trio.Process] = {}
        # Each live worker's lifeline: the write end, held only here (see the module docs).
        self._lifelines: dict[int, int] = {}
        self._status: dict[int, int] = {}  # the last exit status of each worker index
        self._draining = False
        self._closing = False
        self._killing = False
        self._drain_started = trio.Event()
        self._kill_scope = trio.CancelScope()
        self._dir: str | None = None
        self._error: RunConfigError | ValueError | None = None
        self._ran = False

    @property
    def draining(self) -> bool:
        """True from the first signal (or :meth:`drain`) on: no worker is restarted any more."""
        return self._draining

    @property
    def pids(self) -> dict[int, int]:
        """The live workers' process ids, by worker index."""
        return {index: proc.pid for index, proc in self._live.items()}

    @property
    def metrics_dir(self) -> str | None:
        """The workers' ``PROMETHEUS_MULTIPROC_DIR`` while :meth:`run` runs, else None."""
        return self._dir

    def drain(self) -> None:
        """What the first signal does: no more restarts, SIGTERM to every live worker, and the
        ``kill_after`` deadline set. Idempotent; call it from within the trio run."""
        if self._draining:
            return
        self._draining = True
        self._drain_started.set()
        logger.info("draining: SIGTERM to %d workers, no more restarts", len(self._live))
        self._signal_all(signal.SIGTERM)
        if self._kill_after is not None:
            self._kill_scope.deadline = trio.current_time() + self._kill_after

    def close(self) -> None:
        """What the second signal does: SIGTERM to every live worker again (their calls are
        closed at once), and the kill deadline brought to ``close_grace`` seconds from now.
        Implies :meth:`drain`; idempotent."""
        if self._closing:
            return
        if not self._draining:
            # Not the usual path: two SIGTERMs back to back could be merged into one.
            self.drain()
        self._closing = True
        logger.info("closing: SIGTERM again to %d workers", len(self._live))
        self._signal_all(signal.SIGTERM)
        deadline = trio.current_time() + self._close_grace
        self._kill_scope.deadline = min(self._kill_scope.deadline, deadline)

    def _signal_all(self, signum: signal.Signals) -> None:
        for proc in self._live.values():
            self._send(proc, signum)

    @staticmethod
    def _send(proc: trio.Process, signum: signal.Signals) -> None:
        # A worker that already exited is not reaped yet, so its pid cannot be anyone else's.
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    async def run(self) -> int:
        """Start the workers and keep them running until they are drained (by signals when
        ``handle_signals``, else by :meth:`drain`), then return the exit status: 0 when every
        worker exited 0 after the drain, else 1 (the failed ones are logged, by index). A worker
        that was dead, waiting for its restart, when the drain began counts with the status it
        died with.

        :raises RunConfigError: a worker's command could not be started at all (the workers
            already started are stopped first, as on cancellation).
        :raises ValueError: ``argv_for`` returned an empty command.
        :raises RuntimeError: ``handle_signals`` outside the main thread, or a second run.
        """
        if self._ran:
            raise RuntimeError("a Supervisor runs once; make a new one")
        if self._handle_signals and threading.current_thread() is not threading.main_thread():
            raise RuntimeError("handle_signals=True needs the main thread (signals go there)")
        self._ran = True
        own_dir = None
        if self._given_dir is None:
            own_dir = tempfile.mkdtemp(prefix="telcoflow-metrics-")
        self._dir = self._given_dir or own_dir
        try:
            async with trio.open_nursery() as nursery:
                if self._handle_signals:
                    await nursery.start(self._forward_signals)
                nursery.start_soon(self._kill_when_due)
                async with trio.open_nursery() as workers:
                    for index in range(self.workers):
                        workers.start_soon(self._keep, index, nursery.cancel_scope)
                nursery.cancel_scope.cancel()
        finally:
            # Every worker was reaped (closing its lifeline); any left would now drain.
            for held in self._lifelines.values():
                os.close(held)
            self._lifelines.clear()
            self._dir = None
            if own_dir is not None:
                shutil.rmtree(own_dir, ignore_errors=True)
        if self._error is not None:
            raise self._error
        failed = {
            index: status
            for index in range(self.workers)
            if (status := self._status.get(index)) != 0
        }
        if failed:
            logger.error(
                "%d of %d workers did not exit cleanly: %s",
                len(failed),
                self.workers,
                ", ".join(f"worker {i} ({describe_status(s)})" for i, s in failed.items()),
            )
            return 1
        logger.info("all %d workers drained and exited 0", self.workers)
        return 0

    async def _forward_signals(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            task_status.started()
            async for signum in signals:
                logger.info("supervisor got %s", signal.Signals(signum).name)
                if self._draining:
                    self.close()
                else:
                    self.drain()

    async def _kill_when_due(self) -> None:
        with self._kill_scope:
            await trio.sleep_forever()
        self._killing = True
        for index, proc in self._live.items():
            logger.error(
                "worker %d (pid %d) still alive at the drain's deadline: killing it",
                index,
                proc.pid,
            )
            self._send(proc, signal.SIGKILL)

    async def _keep(self, index: int, cancel_all: trio.CancelScope) -> None:
        """Keep worker ``index`` running until the drain."""
        await trio.lowlevel.checkpoint()
        backoff = Backoff(*self._backoff)
        while not self._drain_started.is_set():
            started = trio.current_time()
            try:
                proc = await self._spawn(index)
            except (RunConfigError, ValueError) as exc:
                # Raised from run() as it is, not inside the nursery's exception group.
                self._error = self._error or exc
                cancel_all.cancel()
                return
            if proc is None:
                delay = backoff.after_exit(0.0)
            else:
                status = await self._wait(index, proc)
                self._status[index] = status
                if self._drain_started.is_set():
                    log = logger.info if status == 0 else logger.warning
                    log("worker %d (pid %d) %s", index, proc.pid, describe_status(status))
                    return
                delay = backoff.after_exit(trio.current_time() - started)
                logger.warning(
                    "worker %d (pid %d) died (%s); restarting it in %.2f s",
                    index,
                    proc.pid,
                    describe_status(status),
                    delay,
                )
            with trio.move_on_after(delay):
                await self._drain_started.wait()

    async def _spawn(self, index: int) -> trio.Process | None:
        argv = list(self._argv_for(index))
        if not argv:
            raise ValueError(f"argv_for({index}) returned an empty command")
        assert self._dir is not None
        lifeline, held = os.pipe()  # neither is inherited but as pass_fds says
        env = {
            **self._env,
            WORKER_INDEX_ENV: str(index),
            MULTIPROC_DIR_ENV: self._dir,
            LIFELINE_ENV: str(lifeline),
        }
        try:
            # process_group=0: see the module docstring (a terminal's Ctrl-C).
            proc = await trio.lowlevel.open_process(
                argv, env=env, process_group=0, pass_fds=(lifeline,)
            )
        except BaseException as exc:
            os.close(held)
            if not isinstance(exc, OSError):
                raise
            reason = exc.strerror or str(exc)
            if index not in self._status:
                raise RunConfigError(
                    f"worker {index}: cannot start {argv[0]!r}: {reason}"
                ) from None
            logger.error("worker %d: cannot restart %r: %s", index, argv[0], reason)
            await trio.lowlevel.checkpoint()
            return None
        finally:
            os.close(lifeline)
        self._live[index] = proc
        self._lifelines[index] = held
        logger.info("worker %d started (pid %d)", index, proc.pid)
        # A worker started while the signals went out has not had them.
        if self._killing:
            self._send(proc, signal.SIGKILL)
        elif self._draining:
            self._send(proc, signal.SIGTERM)
        return proc

    async def _wait(self, index: int, proc: trio.Process) -> int:
        try:
            return await proc.wait()
        finally:
            if proc.returncode is None:  # cancelled
                with trio.CancelScope(shield=True):
                    await self._stop(index, proc)
            del self._live[index]
            os.close(self._lifelines.pop(index))
            self._mark_dead(proc.pid)

    async def _stop(self, index: int, proc: trio.Process) -> None:
        """Stop a worker now and reap it, within about twice ``cancel_grace`` seconds."""
        logger.warning(
            "worker %d (pid %d): stopping it (the supervisor was cancelled)", index, proc.pid
        )
        self._send(proc, signal.SIGTERM)
        with trio.move_on_after(_SIGNAL_GAP):
            await proc.wait()
        self._send(proc, signal.SIGTERM)
        with trio.move_on_after(self._cancel_grace):
            await proc.wait()
        if proc.returncode is None:
            logger.error("worker %d (pid %d): killing it", index, proc.pid)
            self._send(proc, signal.SIGKILL)
            # SIGKILL cannot be ignored; the bound is only against a process stuck in the kernel.
            with trio.move_on_after(max(self._cancel_grace, 1.0)):
                await proc.wait()

    def _mark_dead(self, pid: int) -> None:
        try:
            from prometheus_client import multiprocess
        except ImportError:  # the `run` extra is not installed: no metrics to tidy
            return
        try:
            mark_dead: Callable[[int, str | None], None] = multiprocess.mark_process_dead
            mark_dead(pid, self._dir)
        except OSError as exc:
            logger.debug("could not remove worker pid %d's live gauges: %s", pid, exc)
