"""``python -m telcoflow_trio``: the command line (see :mod:`telcoflow_trio._cli`)."""

import sys

from . import run_main
from ._cli import main

if __name__ == "__main__":
    sys.exit(run_main(main))
