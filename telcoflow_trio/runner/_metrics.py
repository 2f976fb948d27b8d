"""Prometheus metrics for a runner process, summed across worker processes.

:class:`Metrics` owns the ``telcoflow_*`` metrics of one process in a registry of its own
(never prometheus_client's global one). Two feeds fill them:

- :meth:`Metrics.call_ended`, the ``CallServer``'s ``on_call_end``: the call's outcome, and
  what the call object reports at its end (underruns, dropped bytes, command round trips,
  pull fill times);
- :meth:`Metrics.watch`, a task that polls the manager (and the server) every second: active
  calls, held notifications, claims (as deltas of ``claim_stats``), control reconnects (as
  deltas of ``reconnects``) and health.

**Multiprocess mode.** When ``PROMETHEUS_MULTIPROC_DIR`` is set (the supervisor sets it for its
workers), every value is written to a file per process in that directory and
:meth:`Metrics.render` (or :func:`render_directory`, for a process that keeps no metrics of
its own) sums them with prometheus_client's ``MultiProcessCollector``. Gauges say how to sum:
the active calls and held notifications add up over the live processes (``livesum``); health
is one series per live process (``liveall``, labelled ``pid``), so the supervisor can tell
which worker is healthy (:func:`worker_health`). A dead worker's live gauges stay in the
directory until the supervisor calls ``prometheus_client.multiprocess.mark_process_dead(pid,
directory)``; its counters and histograms stay on purpose (they count what happened).

prometheus_client picks how it stores values (in memory, or in that directory) once, from the
environment, when ``prometheus_client.values`` is first imported. A process that imported it
before the variable was set (or removed the variable after) would quietly get the wrong storage, so
:class:`Metrics` builds its metrics, every labelled child included, with the storage the
environment asks for *now*, then puts prometheus_client's default back.

Samples the call object keeps are bounded (the latest 256 command round trips and pull fill
times of each call), so a very long call contributes its latest samples, not all of them.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Final, Protocol

import trio

from .. import Call, ClaimStats, ConnectionState, SessionManager
from ._errors import RunConfigError

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
        values,
    )
    from prometheus_client.metrics_core import Metric
    from prometheus_client.multiprocess import MultiProcessCollector
except ImportError as exc:  # pragma: no cover - the extra is part of the test install
    raise ImportError(
        "telcoflow_trio.runner's metrics need prometheus_client: pip install 'telcoflow-trio[run]'"
    ) from exc

__all__ = [
    "COMMAND_RTT_BUCKETS",
    "MULTIPROC_ENV",
    "OUTCOMES",
    "PULL_FILL_BUCKETS",
    "Metrics",
    "ServerState",
    "healthy",
    "render_directory",
    "worker_health",
]

logger = logging.getLogger(__name__)

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
"""The environment variable that turns multiprocess mode on (prometheus_client's own)."""
OUTCOMES: Final = ("completed", "failed", "hung_up", "closed")
"""The ``outcome`` label values of ``telcoflow_calls_total`` (``CallServer``'s outcomes)."""
CLAIM_RESULTS: Final = ("won", "lost", "skipped_at_capacity", "expired")
COMMAND_RTT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds; commands answer in milliseconds, their deadlines reach tens of seconds."""
PULL_FILL_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Seconds; a pull that found audio queued is answered well within one 20 ms frame."""
HEALTH_METRIC: Final = "telcoflow_healthy"


class ServerState(Protocol):
    """What :meth:`Metrics.watch` and :func:`healthy` read of a ``CallServer``."""

    @property
    def draining(self) -> bool: ...

    @property
    def claim_stats(self) -> ClaimStats: ...


def healthy(manager: SessionManager, server: ServerState | None = None) -> bool:
    """True while the control connection is up and the server (if any) is not draining:
    what ``/healthz`` answers."""
    if manager.connection_state is not ConnectionState.CONNECTED:
        return False
    return server is None or not server.draining


def render_directory(directory: str | os.PathLike[str]) -> tuple[bytes, str]:
    """Every process's metrics in a multiprocess directory, summed: (body, content type).

    For a process that serves ``/metrics`` without keeping metrics of its own (the
    supervisor). Raises :class:`RunConfigError` when ``directory`` is not a directory.
    """
    registry = CollectorRegistry()
    registry.register(_collector(directory))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def worker_health(directory: str | os.PathLike[str]) -> dict[int, bool]:
    """Health by process id, as the processes writing to a multiprocess directory last
    reported it (a process never seen, or marked dead, is absent). Raises
    :class:`RunConfigError` when ``directory`` is not a directory."""
    health: dict[int, bool] = {}
    families: Iterable[Metric] = _collector(directory).collect()  # type: ignore[no-untyped-call]
    for family in families:
        if family.name == HEALTH_METRIC:
            for sample in family.samples:
                health[int(sample.labels["pid"])] = sample.value >= 1
    return health


def _collector(directory: str | os.PathLike[str]) -> MultiProcessCollector:
    path = os.fspath(directory)
    if not os.path.isdir(path):
        raise RunConfigError(f"{MULTIPROC_ENV}={path}: not a directory")
    # prometheus_client leaves the collector's constructor untyped.
    return MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]


# One mmap-backed value class per process: two would open the same per-process files twice.
_multiprocess_values: type | None = None


@contextmanager
def _storage(multiprocess: bool) -> Iterator[None]:
    """Metrics made inside store their values as ``multiprocess`` says, whatever
    prometheus_client chose at import."""
    global _multiprocess_values
    default = values.ValueClass
    if getattr(default, "_multiprocess", False) == multiprocess:
        yield
        return
    if not multiprocess:
        chosen: type = values.MutexValue
    else:
        if _multiprocess_values is None:
            _multiprocess_values = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        chosen = _multiprocess_values
    values.ValueClass = chosen
    try:
        yield
    finally:
        values.ValueClass = default


class Metrics:
    """This process's ``telcoflow_*`` metrics; see the module docstring for the feeds and the
    multiprocess mode (on when ``PROMETHEUS_MULTIPROC_DIR`` is set when this is made).

    ``telcoflow_active_calls`` and ``telcoflow_held_notifications`` (gauges),
    ``telcoflow_healthy`` (gauge, 1 or 0), ``telcoflow_calls_total{outcome}``,
    ``telcoflow_claims_total{result}`` (``won``, ``lost``, ``skipped_at_capacity``,
    ``expired``), ``telcoflow_control_reconnects_total``, ``telcoflow_audio_underruns_total``
    (pull requests that found the outgoing buffer empty),
    ``telcoflow_audio_dropped_bytes_total{direction}`` (``outgoing``: audio never sent because
    the call ended; ``incoming``: the caller's audio dropped because the handler read it too
    slowly; audio cleared on purpose by an interruption is not counted), and the histograms
    ``telcoflow_command_rtt_seconds`` and ``telcoflow_pull_fill_seconds``.

    Raises :class:`RunConfigError` when ``PROMETHEUS_MULTIPROC_DIR`` names no directory.
    """

    def __init__(self) -> None:
        directory = os.environ.get(MULTIPROC_ENV) or None
        if directory is not None and not os.path.isdir(directory):
            raise RunConfigError(f"{MULTIPROC_ENV}={directory}: not a directory")
        self._directory = directory
        self._registry = CollectorRegistry(auto_describe=True)
        self._seen: dict[str, int] = {}
        with _storage(directory is not None):
            self._build()

    def _build(self) -> None:
        reg = self._registry
        self._active = Gauge(
            "telcoflow_active_calls",
            "Calls claimed and not yet over.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._held = Gauge(
            "telcoflow_held_notifications",
            "Notifications held while at capacity, waiting for a slot.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._health = Gauge(
            HEALTH_METRIC,
            "1 while the control connection is up and the process is not draining, else 0.",
            registry=reg,
            multiprocess_mode="liveall",
        )
        calls = Counter(
            "telcoflow_calls", "Calls served, by how they ended.", ["outcome"], registry=reg
        )
        self._outcomes = {outcome: calls.labels(outcome) for outcome in OUTCOMES}
        claims = Counter(
            "telcoflow_claims",
            "Session notifications, by what became of them.",
            ["result"],
            registry=reg,
        )
        self._claims = {result: claims.labels(result) for result in CLAIM_RESULTS}
        self._reconnects = Counter(
            "telcoflow_control_reconnects",
            "Times the control connection was re-established.",
            registry=reg,
        )
        self._underruns = Counter(
            "telcoflow_audio_underruns",
            "Pull requests that found the outgoing audio buffer empty.",
            registry=reg,
        )
        dropped = Counter(
            "telcoflow_audio_dropped_bytes",
            "Audio bytes lost: outgoing never sent (the call ended), incoming read too slowly.",
            ["direction"],
            registry=reg,
        )
        self._dropped_out = dropped.labels("outgoing")
        self._dropped_in = dropped.labels("incoming")
        self._rtt = Histogram(
            "telcoflow_command_rtt_seconds",
            "Round-trip times of call commands.",
            registry=reg,
            buckets=COMMAND_RTT_BUCKETS,
        )
        self._fill = Histogram(
            "telcoflow_pull_fill_seconds",
            "From a pull request that found audio queued to the frame that completed it.",
            registry=reg,
            buckets=PULL_FILL_BUCKETS,
        )

    def __repr__(self) -> str:
        mode = "single process" if self._directory is None else "multiprocess"
        return f"<Metrics {mode}>"

    @property
    def multiprocess_dir(self) -> str | None:
        """The multiprocess directory, or None in single-process mode."""
        return self._directory

    # ── feeds ───────────────────────────────────────────────────────────────────────────

    def call_ended(self, call: Call, outcome: str) -> None:
        """Count a served call at its end (``CallServer``'s ``on_call_end``). Never raises:
        a failure is logged."""
        try:
            self._call_ended(call, outcome)
        except Exception:
            logger.exception("metrics: could not record the end of call %s", call.id)

    def _call_ended(self, call: Call, outcome: str) -> None:
        counter = self._outcomes.get(outcome)
        if counter is None:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        counter.inc()
        audio = call.audio_counters
        if audio is not None:
            self._underruns.inc(audio.underruns)
            self._dropped_out.inc(audio.dropped_bytes)
        self._dropped_in.inc(call.incoming_audio_dropped_bytes)
        _observe_all(self._rtt, call.command_rtts)
        _observe_all(self._fill, call.pull_fill_times)

    def poll(self, manager: SessionManager, server: ServerState | None = None) -> None:
        """Read the manager's (and the server's) state into the metrics once; what
        :meth:`watch` does every second."""
        stats = manager.claim_stats if server is None else server.claim_stats
        self._active.set(stats.active_calls)
        self._held.set(stats.held)
        for result, value in zip(
            CLAIM_RESULTS,
            (stats.won, stats.lost, stats.skipped_at_capacity, stats.expired),
            strict=True,
        ):
            self._claims[result].inc(self._delta(result, value))
        self._reconnects.inc(self._delta("reconnects", manager.reconnects))
        self._health.set(1 if healthy(manager, server) else 0)

    def _delta(self, key: str, value: int) -> int:
        """What a monotonic count grew by since the last poll (all of it when it went
        backwards: a new manager or server)."""
        last = self._seen.get(key, 0)
        self._seen[key] = value
        return value - last if value >= last else value

    async def watch(
        self,
        manager: SessionManager,
        server: ServerState | None = None,
        *,
        interval: float = 1.0,
    ) -> None:
        """Poll every ``interval`` seconds until cancelled; then report this process
        unhealthy and without calls (it is going away). A poll that raises is logged (the
        first of a run of failures with its traceback) and the next one tried: metrics never
        take the process down."""
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise TypeError(f"interval must be a number, got {type(interval).__name__}")
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError(f"interval must be a finite number > 0, got {interval!r}")
        failing = False
        try:
            while True:
                try:
                    self.poll(manager, server)
                    failing = False
                except Exception:
                    if not failing:
                        logger.exception("metrics: polling the manager failed; trying on")
                    failing = True
                await trio.sleep(interval)
        finally:
            self._health.set(0)
            self._active.set(0)
            self._held.set(0)

    # ── output ──────────────────────────────────────────────────────────────────────────

    def render(self) -> tuple[bytes, str]:
        """The metrics in the Prometheus text format: (body, content type). In multiprocess
        mode, every process's metrics in the directory, summed."""
        if self._directory is not None:
            return render_directory(self._directory)
        return generate_latest(self._registry), CONTENT_TYPE_LATEST


def _observe_all(histogram: Histogram, samples: Sequence[float]) -> None:
    for sample in samples:
        histogram.observe(sample)
