"""Shared test settings."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Two shared cores: wall-clock deadlines per example would make property tests flaky.
settings.register_profile(
    "c2ws", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("c2ws")
