"""pytest plugin (entry point ``pytest11``): the ``c2_server`` fixture.

``c2_server`` is a ``c2ws.testing.TestServer``, a fresh reference server for each test,
stopped when the test ends::

    import pytest

    @pytest.mark.c2_server_options(strategies=[12345678], heartbeat_interval=0.5)
    def test_my_bot(c2_server):
        ...  # run the bot against c2_server.url with c2_server.api_key

``@pytest.mark.c2_server_options(**options)`` passes options of ``c2ws.testing.server()``;
on a module (``pytestmark``) or class too, the marker nearest the test winning option by
option.  A test module or conftest may instead override the ``c2_server_options``
fixture to compute them.

pytest imports this module in every run of every project where c2ws is installed, so it
imports nothing but pytest: the server (and ``websockets``) only when a test asks for
``c2_server``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from c2ws.testing import TestServer

MARKER = "c2_server_options"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): options of the c2_server fixture (c2ws.testing.server)",
    )


@pytest.fixture
def c2_server_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The options ``c2_server`` starts its server with: the keyword arguments of the
    ``c2_server_options`` markers on the test, its class and its module (the nearest
    wins)."""
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        if marker.args:
            raise TypeError(
                f"@pytest.mark.{MARKER} takes keyword arguments only, got {marker.args!r}"
            )
        options.update(marker.kwargs)
    return options


@pytest.fixture
def c2_server(c2_server_options: dict[str, Any]) -> Iterator[TestServer]:
    """A reference server on 127.0.0.1 for this test (``c2ws.testing.server()``)."""
    from c2ws import testing  # here, not at the top: see the module docstring

    with testing.server(**c2_server_options) as running:
        yield running
