"""How many generated scripts a kit test plays: a handful by default, hundreds when
``HYPOTHESIS_PROFILE=thorough``."""

from __future__ import annotations

from hypothesis import settings

THOROUGH = settings().max_examples >= 1000
SCRIPTS = 500 if THOROUGH else 6
"""Generated scripts per agent in a property test."""
