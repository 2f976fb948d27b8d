"""Configure logging in the application (docs/guide/logging.rst)."""

import logging


def configure_logging() -> None:
    # [config]
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("telcoflow_trio.audio").setLevel(logging.DEBUG)
    # [/config]
