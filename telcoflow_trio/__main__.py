"""``python -m telcoflow_trio <command>``: the package's command line.

Each subcommand lives in its own module and registers itself here with a
``register(subparsers)`` function that sets ``func`` (returning an exit code).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .testing import _cli as sandbox_cli
from .testing import _demo as demo_cli
from .testing import _phone as phone_cli
from .testing.entrypoint import run_main

# (module-level register functions, in the order they appear in --help)
COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    demo_cli.register,
    phone_cli.register,
    sandbox_cli.register,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m telcoflow_trio",
        description="telcoflow_trio tools: a local Telcoflow sandbox server, and more.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(run_main(main))
