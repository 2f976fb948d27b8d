"""Version strings sent on the wire."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("telcoflow-trio")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

WIRE_SDK_VERSION = "1.0.0"
"""The ``x-sdk-version`` we announce: the official client release whose wire protocol we
speak byte for byte. Servers gate features on it, so it names the protocol, not this package;
our own version travels in ``user-agent``."""

USER_AGENT = f"telcoflow-trio/{__version__}"
