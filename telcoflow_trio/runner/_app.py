"""One runner process: a :class:`~telcoflow_trio.SessionManager` and a
:class:`~telcoflow_trio.CallServer` serving calls with the handler, drained by SIGTERM or
SIGINT, with ``/healthz`` and ``/metrics`` when asked for; and ``--workers N`` as N such
processes under the supervisor, with ``/healthz`` and ``/metrics`` for all of them.

``--max-load F``: the CPU load of what this process may use (its cgroup's, where there is
one) is sampled every second, and while the latest figure is above F the server claims
nothing (``CallServer(admit=...)``): notifications are held as at capacity, and claimed in
order once the load is back at or below F.

``python -m telcoflow_trio run`` calls :func:`serve` in each worker process; so can a program
that runs its own ``trio.run``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Final

import trio

from .. import CallServer, ConnectionState, SessionManager, SessionManagerConfig
from ._errors import RunConfigError
from ._options import Handler, RunOptions
from ._signals import ShutdownSignals

if TYPE_CHECKING:
    from ._metrics import Metrics

__all__ = ["KILL_MARGIN", "LOAD_INTERVAL", "LoadGate", "serve", "supervise_workers"]

logger = logging.getLogger(__name__)

KILL_MARGIN: Final = 60.0
"""Seconds past the drain timeout after which the supervisor kills a worker still alive."""
LOAD_INTERVAL: Final = 1.0
"""Seconds between two CPU-load samples for ``--max-load``."""


class LoadGate:
    """``--max-load``: :meth:`admit` says yes while the latest CPU-load sample is at or
    below ``threshold``; :meth:`watch` takes a sample every ``interval`` seconds.

    ``sample`` returns the load since its previous call, a fraction of the usable CPUs
    (default: the cgroup-aware :func:`~telcoflow_trio.runner._cgroup.cpu_load`). Until the
    first full interval has been measured the gate is open.
    """

    def __init__(
        self,
        threshold: float,
        sample: Callable[[], float] | None = None,
        interval: float = LOAD_INTERVAL,
    ) -> None:
        if sample is None:
            from ._cgroup import cpu_load

            sample = cpu_load
        self.threshold = threshold
        self.load = 0.0
        """The latest sample (0.0 before the first interval)."""
        self._sample = sample
        self._interval = interval

    def admit(self) -> bool:
        """Whether a call may be claimed now (quick: compares the latest sample)."""
        return self.load <= self.threshold

    async def watch(self) -> None:
        """Sample the load every interval until cancelled, logging each crossing."""
        self._sample()  # the baseline: the next sample covers one full interval
        while True:
            await trio.sleep(self._interval)
            was_open = self.admit()
            self.load = self._sample()
            if was_open and not self.admit():
                logger.warning(
                    "CPU load %.2f above --max-load %g: not claiming calls",
                    self.load,
                    self.threshold,
                )
            elif not was_open and self.admit():
                logger.info(
                    "CPU load %.2f at or below --max-load %g: claiming again",
                    self.load,
                    self.threshold,
                )


class _Health:
    """``/healthz``: the control connection is up and the process is not draining."""

    def __init__(self) -> None:
        self.manager: SessionManager | None = None
        self.server: CallServer | None = None

    def healthy(self) -> bool:
        manager, server = self.manager, self.server
        if manager is None or server is None:
            return False
        return manager.connection_state is ConnectionState.CONNECTED and not server.draining


def _open_metrics(options: RunOptions) -> Metrics | None:
    """Metrics when they are served here (``--http-port``) or by a supervisor (the workers
    share its ``PROMETHEUS_MULTIPROC_DIR``)."""
    if options.http_port is None and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    try:
        from ._metrics import Metrics
    except ImportError as exc:
        raise RunConfigError(
            f"metrics need the 'run' extra (pip install 'telcoflow-trio[run]'): {exc}"
        ) from None
    return Metrics()


async def serve(handler: Handler, config: SessionManagerConfig, options: RunOptions) -> int:
    """Serve calls in this process until a signal drains it; returns the exit status.

    The first SIGTERM or SIGINT stops claiming and lets the live calls end, up to
    ``options.drain_timeout`` seconds, then closes those left (their queued audio drained);
    a second one closes them at once. Either way the status is 0 once every call is closed
    on the server. A signal before the control connection is up stops at once (status 0).
    ``options.workers`` is not looked at: :func:`serve` is one process.

    :raises RunConfigError: the HTTP port is in use, or metrics were asked for without the
        ``run`` extra installed.
    """
    metrics = _open_metrics(options)
    lifeline = _lifeline()
    health = _Health()
    startup = trio.CancelScope()
    signals = ShutdownSignals(options.drain_timeout, startup.cancel)
    async with trio.open_nursery() as nursery:
        await nursery.start(signals.watch)
        if lifeline is not None:
            nursery.start_soon(_watch_lifeline, lifeline, signals)
        if options.http_port is not None:
            assert metrics is not None
            from ._http import serve_http

            port = await nursery.start(
                partial(
                    serve_http,
                    options.http_host,
                    options.http_port,
                    healthy=health.healthy,
                    metrics=metrics.render,
                )
            )
            logger.info("/healthz and /metrics on http://%s:%d", options.http_host, port)
        with startup:
            await _serve_calls(handler, config, options, signals, health, metrics)
        nursery.cancel_scope.cancel()
    return 0


def _lifeline() -> int | None:
    """The pipe end a supervisor gave this worker (see ``_supervisor``), taken out of the
    environment so that nothing this process starts inherits the setting."""
    from ._supervisor import LIFELINE_ENV

    text = os.environ.pop(LIFELINE_ENV, None)
    if text is None:
        return None
    try:
        fd = int(text)
        os.fstat(fd)
    except (ValueError, OSError):
        raise RunConfigError(
            f"{LIFELINE_ENV} must be the number of an open pipe from the supervisor, got {text!r}"
        ) from None
    return fd


async def _watch_lifeline(fd: int, signals: ShutdownSignals) -> None:
    """Drain once the supervisor is gone: its end of the pipe closes however it dies."""
    try:
        await trio.lowlevel.wait_readable(fd)
        logger.warning("the supervisor is gone: this worker drains and exits")
        signals.supervisor_gone()
    finally:
        os.close(fd)


async def _serve_calls(  # noqa: ASYNC910 (private; SessionManager's entry checkpoints)
    handler: Handler,
    config: SessionManagerConfig,
    options: RunOptions,
    signals: ShutdownSignals,
    health: _Health,
    metrics: Metrics | None,
) -> None:
    gate = None if options.max_load is None else LoadGate(options.max_load)
    async with SessionManager(config) as manager:
        server = CallServer(
            manager,
            handler,
            max_calls=options.max_calls,
            on_call_end=None if metrics is None else metrics.call_ended,
            admit=None if gate is None else gate.admit,
        )
        health.manager, health.server = manager, server
        async with trio.open_nursery() as tasks:
            if metrics is not None:
                tasks.start_soon(metrics.watch, manager, server)
            if gate is not None:
                tasks.start_soon(gate.watch)
            signals.serving(server)
            logger.info(
                "serving calls with %s (max calls %s, max load %s)",
                options.handler,
                "unlimited" if options.max_calls is None else options.max_calls,
                "none" if options.max_load is None else options.max_load,
            )
            await server.run()
            signals.stopping()
            tasks.cancel_scope.cancel()
        logger.info("drained: %s", server.claim_stats)


async def supervise_workers(argv: Sequence[str], options: RunOptions, workers: int) -> int:
    """``--workers N`` (N > 1): N processes running ``argv`` (the same ``run`` command with
    ``--workers 1``) under the supervisor, which restarts a dead one and forwards the
    signals; returns its exit status (0 when every worker drained and exited 0).

    The workers write their metrics to one multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``
    if set, else a temporary one removed at the end); with ``--http-port`` this process serves
    ``/metrics`` summed over them, and ``/healthz`` (200 while not draining and at least one
    worker reports itself healthy).

    :raises RunConfigError: the HTTP port is in use, or a worker cannot be started at all.
    """
    from ._supervisor import MULTIPROC_DIR_ENV, Supervisor

    given = os.environ.get(MULTIPROC_DIR_ENV) or None
    directory = given or tempfile.mkdtemp(prefix="telcoflow-metrics-")
    supervisor = Supervisor(
        lambda index: list(argv),
        workers,
        env=dict(os.environ),
        metrics_dir=directory,
        kill_after=options.drain_timeout + KILL_MARGIN,
    )
    try:
        async with trio.open_nursery() as nursery:
            if options.http_port is not None:
                from ._http import serve_http
                from ._metrics import render_directory, worker_health

                def healthy() -> bool:
                    return not supervisor.draining and any(worker_health(directory).values())

                port = await nursery.start(
                    partial(
                        serve_http,
                        options.http_host,
                        options.http_port,
                        healthy=healthy,
                        metrics=partial(render_directory, directory),
                    )
                )
                logger.info("/healthz and /metrics on http://%s:%d", options.http_host, port)
            status = await supervisor.run()
            nursery.cancel_scope.cancel()
    finally:
        if given is None:
            shutil.rmtree(directory, ignore_errors=True)
    return status
