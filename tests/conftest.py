"""Shared test settings, and the reference server of the end-to-end tests."""

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


def pytest_configure(config: pytest.Config) -> None:
    # c2_server comes from the plugin c2ws registers (entry point pytest11), which a
    # checkout installed before the entry point existed, or PYTEST_DISABLE_PLUGIN_AUTOLOAD,
    # leaves unloaded.  (tests/test_testing.py proves the entry point on its own.)
    if not config.pluginmanager.has_plugin("c2ws"):
        config.pluginmanager.import_plugin("c2ws.pytest_plugin")


@pytest.fixture
def server(c2_server: TestServer) -> TestServer:
    """The c2_server fixture of c2ws's pytest plugin, by the name the end-to-end tests
    use: a fresh reference server for each test, set up by the c2_server_options markers
    of its module and of the test itself."""
    return c2_server
