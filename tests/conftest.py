"""Test-wide settings: hypothesis profiles.

The default profile keeps the suite fast; ``HYPOTHESIS_PROFILE=thorough`` runs many more
examples (``nox -s thorough``).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=150, deadline=None)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
