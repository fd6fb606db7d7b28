"""Shared test settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from c2ws.testing import TestServer

# Two shared cores: wall-clock deadlines per example would make property tests flaky.
settings.register_profile(
    "c2ws", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("c2ws")


@pytest.fixture
def server(c2_server: TestServer) -> TestServer:
    """The c2_server fixture of c2ws's pytest plugin, by the name the end-to-end tests
    use: a fresh reference server for each test, set up by the c2_server_options markers
    of its module and of the test itself."""
    return c2_server
