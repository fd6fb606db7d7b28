"""Shared test settings, and the reference server of the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
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

# A suite started in the background of a non-interactive shell (`pytest &` in a script)
# inherits SIGINT ignored, and so would every c2ws it starts: Python installs its Ctrl-C
# handler only where SIGINT is not ignored, and the Ctrl-C tests then never end their
# child.  A handler of our own is reset to the default at exec, so children get theirs.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, made with openssl (skips where it is missing):
    the TLS tests' server certificate."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def _c2ws_children() -> set[int]:
    """This process's children that run c2ws's CLI (Linux /proc; none elsewhere)."""
    me = str(os.getpid())
    found = set()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[1] != me:  # the parent's pid
                continue
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if any(part.endswith(b"c2ws") for part in command[:3]) or b"c2ws" in command[1:3]:
            found.add(int(entry.name))
    return found


@pytest.fixture(autouse=True)
def _no_c2ws_left_running() -> Iterator[None]:
    """A test that fails (or times out) part way leaves no c2ws it started running: one
    left reconnecting for ever would load every later test and benchmark."""
    before = _c2ws_children()
    yield
    for pid in _c2ws_children() - before:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
