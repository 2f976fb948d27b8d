"""Configure the SDK's logging in your application (the library adds no handler)."""

import logging


def configure_logging() -> None:
    """INFO for the life of connections, sessions and calls; DEBUG for the audio layer."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Configure packages, not modules: module names are private and may change.
    logging.getLogger("telcoflow_trio").setLevel(logging.INFO)
    logging.getLogger("telcoflow_trio.audio").setLevel(logging.DEBUG)
    logging.getLogger("telcoflow_trio.sandbox").setLevel(logging.WARNING)


if __name__ == "__main__":
    configure_logging()
