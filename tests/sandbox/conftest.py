"""The sandbox fixture from the plugin users import, plus its marker."""

from telcoflow_trio.testing.pytest_plugin import pytest_configure, sandbox

__all__ = ["pytest_configure", "sandbox"]
