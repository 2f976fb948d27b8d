"""``python -m telcoflow_trio <command>`` and the ``telcoflow-trio`` console script.

Each subcommand lives in its own module and registers itself here with a
``register(subparsers)`` function that sets ``func`` (returning an exit code).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .._entry import run_main
from . import _demo as demo_cli
from . import _phone as phone_cli
from . import _run as run_cli
from . import _sandbox_cmd as sandbox_cli

# (module-level register functions, in the order they appear in --help)
COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    demo_cli.register,
    phone_cli.register,
    run_cli.register,
    sandbox_cli.register,
]


def build_parser(prog: str = "python -m telcoflow_trio") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="telcoflow_trio tools: a local Telcoflow sandbox server, and more.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m telcoflow_trio") -> int:
    """Run one command; returns its exit status."""
    args = build_parser(prog).parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


def console_main() -> None:
    """The ``telcoflow-trio`` console script: :func:`main`, with Ctrl+C as status 130."""
    sys.exit(run_main(lambda: main(prog="telcoflow-trio")))
