"""``python -m telcoflow_trio run MODULE:FUNCTION``: serve calls with an agent's handler.

The server and credentials come from the ``TELCOFLOW_*`` environment
(:meth:`~telcoflow_trio.SessionManagerConfig.from_env`). Bad input (a flag, a handler path
that does not resolve, a handler that is not ``async def``, a missing variable, a port in
use, credentials the server refuses) prints one line, ``telcoflow-trio run: error: ...``,
and exits with status 2.

Exit status: 0 after a drain (SIGTERM or SIGINT; the calls ended, or were closed at the
drain deadline or by a second signal); 2 for bad input; 1 when the server cannot be reached
at start, or (``--workers N``) when a worker did not exit cleanly; 130 for a Ctrl+C before
the signals are watched (while the process starts).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Final

from .._config import SessionManagerConfig
from .._errors import WSSAuthenticationError, WSSConnectionError
from ..runner._errors import RunConfigError
from ..runner._options import (
    DEFAULT_DRAIN_TIMEOUT,
    Handler,
    RunOptions,
    load_handler,
    parse_workers,
)

__all__ = ["register", "run", "worker_argv"]

logger = logging.getLogger(__name__)

USAGE_ERROR: Final = 2
SERVER_ERROR: Final = 1
_PREFIX: Final = "telcoflow-trio run: error: "


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` subcommand."""
    p = subparsers.add_parser(
        "run",
        help="serve calls with an agent's handler (production runner)",
        description=(
            "Serve calls with MODULE:FUNCTION, an 'async def handler(call)' "
            "(the current directory is importable). The server and credentials come from "
            "TELCOFLOW_API_KEY + TELCOFLOW_CONNECTOR_UUID (or TELCOFLOW_CERT_PATH + "
            "TELCOFLOW_KEY_PATH), TELCOFLOW_BASE_URL, TELCOFLOW_CA_BUNDLE, TELCOFLOW_TRANSPORT. "
            "The first SIGTERM or SIGINT stops claiming and lets live calls end (up to "
            "--drain-timeout), a second closes them at once; exit status 0 after a drain."
        ),
    )
    p.add_argument("handler", metavar="MODULE:FUNCTION", help="the call handler to serve with")
    p.add_argument(
        "--max-calls",
        type=int,
        default=None,
        metavar="N",
        help="live calls per process (default: no limit)",
    )
    p.add_argument(
        "--max-load",
        type=float,
        default=None,
        metavar="F",
        help=(
            "claim no call while the CPU load (a fraction of the CPUs this process may use, "
            "from its cgroup where there is one; 0 < F <= 1) is above F"
        ),
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=DEFAULT_DRAIN_TIMEOUT,
        metavar="S",
        help=f"seconds live calls get after the first signal (default {DEFAULT_DRAIN_TIMEOUT:g})",
    )
    p.add_argument(
        "--workers",
        default="1",
        metavar="N|auto",
        help="worker processes (auto: one per usable CPU; default 1)",
    )
    p.add_argument(
        "--http-host",
        default="127.0.0.1",
        metavar="H",
        help="address of /healthz and /metrics (default 127.0.0.1)",
    )
    p.add_argument(
        "--http-port",
        type=int,
        default=None,
        metavar="P",
        help="serve /healthz and /metrics on this port (default: no HTTP server)",
    )
    p.add_argument(
        "--log-level", default="INFO", metavar="LEVEL", help="logging level (default INFO)"
    )
    p.set_defaults(func=run)


def _fail(message: str, status: int = USAGE_ERROR) -> int:
    print(_PREFIX + message, file=sys.stderr, flush=True)
    return status


def _options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(
        handler=args.handler,
        max_calls=args.max_calls,
        max_load=args.max_load,
        drain_timeout=args.drain_timeout,
        workers=parse_workers(args.workers),
        http_host=args.http_host,
        http_port=args.http_port,
    )


def worker_argv(options: RunOptions, log_level: str) -> list[str]:
    """One worker's command line: the same ``run`` with ``--workers 1`` and no HTTP server
    (the supervisor serves ``/healthz`` and ``/metrics`` for all of them)."""
    argv = [sys.executable, "-m", "telcoflow_trio", "run", options.handler]
    if options.max_calls is not None:
        argv += ["--max-calls", str(options.max_calls)]
    if options.max_load is not None:
        argv += ["--max-load", repr(options.max_load)]
    argv += ["--drain-timeout", repr(options.drain_timeout), "--workers", "1"]
    argv += ["--log-level", log_level]
    return argv


def _worker_count(options: RunOptions) -> int:
    if options.workers != "auto":
        return options.workers
    from ..runner._cgroup import cpu_count

    return max(1, int(cpu_count()))


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run(args: argparse.Namespace) -> int:
    """Check the input, then serve in this process or under the worker supervisor."""
    level = str(args.log_level).upper()
    if not isinstance(logging.getLevelName(level), int):
        return _fail(f"--log-level must be DEBUG, INFO, WARNING or ERROR, got {args.log_level!r}")
    try:
        options = _options(args)
        try:
            config = SessionManagerConfig.from_env()
        except (ValueError, TypeError) as exc:
            raise RunConfigError(f"the TELCOFLOW_* environment: {exc}") from None
        handler = load_handler(options.handler)
        workers = _worker_count(options)
    except RunConfigError as exc:
        return _fail(str(exc))
    _configure_logging(level)
    if workers > 1:
        return _supervise(options, workers, level)
    return _serve_here(handler, config, options)


def _serve_here(handler: Handler, config: SessionManagerConfig, options: RunOptions) -> int:
    import trio

    from ..runner._app import serve

    try:
        return trio.run(serve, handler, config, options)
    except BaseException as exc:
        known = _known_error(exc)
        if isinstance(known, RunConfigError):
            return _fail(str(known))
        if isinstance(known, WSSAuthenticationError):
            return _fail(f"the server refused the credentials: {known}")
        if isinstance(known, WSSConnectionError):
            return _fail(f"cannot serve: {known}", SERVER_ERROR)
        raise


_KNOWN = (RunConfigError, WSSAuthenticationError, WSSConnectionError)


def _known_error(exc: BaseException) -> BaseException | None:
    """The error to report in one line: ``exc`` itself, or the first of a group (from a
    nursery) made only of such errors; None for anything else (a bug: a traceback)."""
    if isinstance(exc, BaseExceptionGroup):
        match, rest = exc.split(_KNOWN)
        if match is None or rest is not None:
            return None
        leaf: BaseException = match
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        return leaf
    return exc if isinstance(exc, _KNOWN) else None


def _supervise(options: RunOptions, workers: int, level: str) -> int:
    import trio

    from ..runner._app import supervise_workers

    logger.info("starting %d worker processes", workers)
    try:
        return trio.run(supervise_workers, worker_argv(options, level), options, workers)
    except BaseException as exc:
        known = _known_error(exc)
        if isinstance(known, RunConfigError):
            return _fail(str(known))
        raise
