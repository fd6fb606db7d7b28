"""What a person sees on a terminal: the real CLI in a pseudo-terminal, and the table
renderer on an emulated VT100 screen (pyte), at 80x24 and 120x40.

Assertions are about the screen and its scrollback as a user reads them after the run:
messages still there after many redraws, which columns show, numbers never cut short,
a last frame that tells the truth.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyte
import pytest
from rich.console import Console
from rich.text import Text

from c2ws import events, protocol
from c2ws.events import SubscriptionKey
from c2ws.render.table import TableRenderer
from c2ws.server.app import ReferenceServer, ServerConfig

REPO = Path(__file__).resolve().parent.parent
KEY = "terminal-test-key"
VISIBLE = 12345678
HIDDEN = 99999999
SIZES = [pytest.param(80, 24, id="80x24"), pytest.param(120, 40, id="120x40")]
# A digit followed by an ellipsis: a number that was cut short.
CUT_NUMBER = re.compile(r"\d…|…\d")


# --- the real CLI in a pseudo-terminal ------------------------------------------------------


@dataclass
class Seen:
    """The terminal after the run: scrollback and screen as text, and the raw bytes."""

    scrollback: list[str]
    screen: list[str]
    raw: bytes
    returncode: int

    @property
    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.scrollback + self.screen]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _row_text(row: Any, columns: int) -> str:
    return "".join(row[x].data for x in range(columns))


def run_in_terminal(
    args: list[str], *, columns: int, lines: int, env: dict[str, str] | None = None,
    stdout: Any = None, timeout: float = 60,
) -> Seen:
    """Run ``c2ws ARGS`` with stdin, stderr (and stdout, unless given) on a pseudo-terminal
    of the given size; return what that terminal shows once the process has exited."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("COLUMNS", "LINES", "C2_API_KEY", "C2WS_URL", "NO_COLOR")}
    environment.update({"TERM": "xterm-256color", "TZ": "UTC"}, **(env or {}))
    process = subprocess.Popen(
        [sys.executable, "-m", "c2ws", *args], stdin=slave,
        stdout=slave if stdout is None else stdout, stderr=slave, env=environment, cwd=REPO,
    )
    os.close(slave)
    raw = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the last writer closed the terminal
                    break
                if not chunk:
                    break
                raw.extend(chunk)
            elif process.poll() is not None:
                break
        else:
            process.kill()
            pytest.fail(f"c2ws {' '.join(args)} did not finish within {timeout} s")
        returncode = process.wait(timeout=timeout)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    screen = pyte.HistoryScreen(columns, lines, history=5000)
    pyte.ByteStream(screen).feed(bytes(raw))
    history = [_row_text(row, columns) for row in screen.history.top]
    return Seen(history, list(screen.display), bytes(raw), returncode)


@pytest.fixture
def restricted_server() -> Iterator[ReferenceServer]:
    """A busy synthetic feed of one strategy; subscribing to any other is FORBIDDEN."""
    config = ServerConfig(api_keys=(KEY,), strategies=(VISIBLE,), rate=40,
                          feed_waits_for_subscription=True, max_lifetime=120)
    with ReferenceServer(config) as running:
        yield running


@pytest.mark.parametrize(("columns", "lines"), SIZES)
def test_rejections_stay_visible_above_the_live_table(
    restricted_server: ReferenceServer, columns: int, lines: int
) -> None:
    seen = run_in_terminal(
        ["subscribe", str(VISIBLE), str(HIDDEN), "-n", "60"], columns=columns, lines=lines,
        env={"C2_API_KEY": KEY, "C2WS_URL": restricted_server.url},
    )
    assert seen.returncode == 0, seen.text
    # Sixty messages at 40 a second: dozens of redraws after the rejections came in.
    for channel in ("signal", "positions"):
        reason = f"c2ws: subscription strategy.{channel}:{HIDDEN} rejected: FORBIDDEN"
        found = [line for line in seen.lines if line.startswith(reason[:columns])]
        assert len(found) == 1, seen.text
    # Nothing glued onto the footer or the table.
    assert not [line for line in seen.lines if "c2ws:" in line and "|" in line]
    # The last frame is true after the run: no connection, no active subscription.
    footer = seen.screen[-1].strip() or [line for line in seen.screen if line.strip()][-1]
    assert "no (run ended)" in footer
    assert "0/4" in footer and "2 rejected" in footer
    assert any(line.startswith("Positions at ") and "run ended" in line for line in seen.lines)


@pytest.mark.parametrize(("columns", "lines"), SIZES)
def test_columns_a_trader_needs_at_each_width(columns: int, lines: int) -> None:
    seen = run_in_terminal(["demo", "-n", "40", "--rate", "50"], columns=columns, lines=lines)
    assert seen.returncode == 0, seen.text
    header = next(line for line in seen.lines if line.startswith("Time UTC "))
    needed = ["Strategy", "Side", "O/C", "Qty", "Symbol", "Type", "Limit/Stop", "Status"]
    assert all(name in header.split() for name in needed), header
    if columns >= 120:
        assert "Seq" in header and "TIF" in header and "Signal id" in header
    # Strategy names are abbreviated, never dropped; no number is ever cut short.
    rows = [line for line in seen.lines if re.match(r"\d\d:\d\d:\d\d ", line)]
    assert len(rows) >= 20
    assert all(line.split()[1] for line in rows)
    assert not [line for line in seen.lines if CUT_NUMBER.search(line)], seen.text
    assert all(len(line) <= columns for line in seen.lines)


def test_no_status_line_on_the_terminal_when_stdout_is_a_pipe() -> None:
    # `c2ws demo -o ndjson | jq`: jq writes to the same terminal; stderr must not draw.
    with subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL) as reader:
        seen = run_in_terminal(["demo", "-o", "ndjson", "-n", "20", "--rate", "50"],
                               columns=80, lines=24, stdout=reader.stdin)
        assert reader.stdin is not None
        reader.stdin.close()
    assert seen.returncode == 0, seen.text
    assert "subscriptions" not in seen.raw.decode(errors="replace")


@pytest.mark.parametrize("how", ["file", "--progress"])
def test_status_line_when_stdout_is_a_file_or_asked_for(how: str, tmp_path: Path) -> None:
    args = ["demo", "-o", "ndjson", "-n", "20", "--rate", "50"]
    with open(tmp_path / "out.ndjson", "wb") as out:
        if how == "--progress":
            with subprocess.Popen(["cat"], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL) as reader:
                seen = run_in_terminal([*args, "--progress"], columns=80, lines=24,
                                       stdout=reader.stdin)
                assert reader.stdin is not None
                reader.stdin.close()
        else:
            seen = run_in_terminal(args, columns=80, lines=24, stdout=out)
    assert seen.returncode == 0, seen.text
    assert "subscriptions" in seen.raw.decode(errors="replace")


@pytest.mark.parametrize("bell", [True, False])
def test_bell_rings_for_new_signals_only_when_asked(bell: bool) -> None:
    args = ["demo", "-n", "6", "--rate", "50"] + (["--bell"] if bell else [])
    seen = run_in_terminal(args, columns=80, lines=24)
    assert seen.returncode == 0, seen.text
    assert (b"\x07" in seen.raw) is bell


def test_piped_table_uses_the_width_of_the_terminal_watching_it() -> None:
    # `c2ws demo -o table | tee log` in a 120-column terminal: 120 columns, not 80.
    with subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as reader:
        assert reader.stdin is not None and reader.stdout is not None
        seen = run_in_terminal(["demo", "-o", "table", "-n", "10", "--rate", "50"],
                               columns=120, lines=40, stdout=reader.stdin)
        reader.stdin.close()
        piped = reader.stdout.read().decode()
    assert seen.returncode == 0, seen.text
    header = next(line for line in piped.splitlines() if line.startswith("Time UTC"))
    assert "Signal id" in header and "Seq" in header
    assert max(len(line) for line in piped.splitlines()) > 80


# --- the renderer on an emulated screen ----------------------------------------------------


class Screen:
    """A rich Console that draws on a pyte VT100 screen of the given size."""

    def __init__(self, columns: int, lines: int) -> None:
        self.columns = columns
        self.screen = pyte.HistoryScreen(columns, lines, history=5000)
        self.screen.set_mode(pyte.modes.LNM)  # a tty turns "\n" into "\r\n"
        self._stream = pyte.ByteStream(self.screen)
        self._lock = threading.Lock()
        self.console = Console(file=self, force_terminal=True, width=columns, height=lines,
                               color_system="standard", legacy_windows=False)

    # The file interface rich writes to.
    def write(self, text: str) -> int:
        with self._lock:
            self._stream.feed(text.encode())
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True

    @property
    def lines(self) -> list[str]:
        with self._lock:
            rows = [_row_text(row, self.columns) for row in self.screen.history.top]
            return [line.rstrip() for line in rows + list(self.screen.display)]

    def wait_for(self, seen: Callable[[list[str]], bool], timeout: float = 20) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines
            if seen(lines):
                return lines
            time.sleep(0.02)
        raise AssertionError("the screen never showed it:\n" + "\n".join(self.lines))

    def row_of(self, needle: str) -> int:
        """The screen row (not scrollback) showing ``needle``."""
        with self._lock:
            return next(i for i, line in enumerate(self.screen.display) if needle in line)

    def reverse_at(self, row: int) -> bool:
        with self._lock:
            return bool(self.screen.buffer[row][0].reverse)


STRATEGY = 12345678
SIGNALS = SubscriptionKey(STRATEGY, "strategy.signal")
POSITIONS = SubscriptionKey(STRATEGY, "strategy.positions")


def envelope(msg_type: str, payload: dict[str, Any] | None = None, **extra: Any) -> Any:
    message: dict[str, Any] = {"msg_type": msg_type, "id": "m", **extra}
    if payload is not None:
        message["payload"] = payload
    return protocol.decode(orjson.dumps(message))


def signal(seq_id: int, **overrides: Any) -> events.StreamMessage:
    payload = {"StrategyId": STRATEGY, "StrategyName": "Alpha Momentum", "Side": "1",
               "OpenClose": "O", "OrderQuantity": 2, "OrderType": "2", "Limit": 4312.25,
               "TIF": "1", "OrderStatus": "0", "SignalId": 150339500 + seq_id,
               "C2Symbol": {"FullSymbol": "@ESZ6"}, **overrides}
    return events.StreamMessage(SIGNALS, envelope("strategy.signal", payload, seq_id=seq_id))


def position(symbol: str, quantity: float, avg: float = 101.25) -> events.StreamMessage:
    payload = {"StrategyId": STRATEGY, "StrategyName": "Alpha Momentum", "Quantity": quantity,
               "AvgPx": avg, "C2Symbol": {"FullSymbol": symbol}, "Currency": "USD"}
    return events.StreamMessage(POSITIONS, envelope("strategy.positions", payload))


CONNECTED = events.Connected(envelope("connection.connected"))


@pytest.mark.parametrize(("columns", "lines"), SIZES)
def test_messages_survive_later_redraws(columns: int, lines: int) -> None:
    screen = Screen(columns, lines)
    renderer = TableRenderer(screen.console, highlight_seconds=0)
    renderer.handle(CONNECTED)
    renderer.print_message(Text("c2ws: subscription strategy.signal:99 rejected: FORBIDDEN"))
    for n in range(1, 31):
        renderer.handle(position(f"SYM{n % 7}", n))
        if n % 10 == 0:  # let the refresh thread redraw the region in between
            screen.wait_for(lambda lines, n=n: any(f"   {n} " in line for line in lines))
    renderer.close()
    found = [line for line in screen.lines if "rejected: FORBIDDEN" in line]
    assert found == ["c2ws: subscription strategy.signal:99 rejected: FORBIDDEN"]


@pytest.mark.parametrize(("columns", "lines"), SIZES)
def test_positions_table_leaves_room_for_new_signals(columns: int, lines: int) -> None:
    screen = Screen(columns, lines)
    with TableRenderer(screen.console, highlight_seconds=0) as renderer:
        renderer.handle(CONNECTED)
        for n in range(40):
            renderer.handle(position(f"SYM{n:02d}", n + 1))
        for seq in range(1, 6):
            renderer.handle(signal(seq))
    shown = screen.screen.display
    assert any("+" in line and "more positions" in line for line in shown)
    # The last signals are still on screen above the region, and the region is at most
    # half the terminal (with its few fixed lines).
    assert any("150339505" in line or ("@ESZ6" in line and "Buy" in line) for line in shown)
    position_rows = [line for line in shown if re.search(r"SYM\d\d", line)]
    assert 3 <= len(position_rows) <= lines // 2


def test_quantities_are_never_cut_at_60_columns() -> None:
    screen = Screen(60, 24)
    with TableRenderer(screen.console, highlight_seconds=0) as renderer:
        renderer.handle(CONNECTED)
        renderer.handle(position("EURUSD", -1600000, 1.0847573))
        renderer.handle(position("@ESZ6", 12, 6844.25))
    text = "\n".join(screen.screen.display)
    assert "-1600000" in text and "6844.25" in text
    assert not CUT_NUMBER.search(text)


def test_new_signal_is_highlighted_then_settles_in_the_scrollback() -> None:
    screen = Screen(80, 24)
    renderer = TableRenderer(screen.console, highlight_seconds=30)
    renderer.handle(CONNECTED)
    renderer.handle(signal(1))
    screen.wait_for(lambda lines: any("150339501" in line or "Alpha" in line for line in lines))
    row = screen.row_of("@ESZ6")
    assert screen.reverse_at(row), "a new signal is highlighted"
    renderer.close()
    row = screen.row_of("@ESZ6")
    assert not screen.reverse_at(row), "once it settles, the line is plain"


# --- the bell, and messages routed through the table ----------------------------------------


class BellConsole(Console):
    def __init__(self) -> None:
        super().__init__(file=open(os.devnull, "w"), force_terminal=True)  # noqa: SIM115
        self.rings = 0

    def bell(self) -> None:
        self.rings += 1


def test_a_burst_of_signals_rings_once_and_fills_only_rings_for_fills() -> None:
    from c2ws.render.alerts import Bell

    console = BellConsole()
    bell = Bell(console)
    for seq in range(1, 51):
        bell.handle(signal(seq))
    bell.handle(position("X", 1))
    bell.flush()
    bell.flush()
    assert console.rings == 1

    fills = BellConsole()
    only_fills = Bell(fills, fills_only=True)
    only_fills.handle(signal(1))  # Working
    only_fills.flush()
    assert fills.rings == 0
    only_fills.handle(signal(2, OrderStatus="2"))  # Filled
    only_fills.flush()
    only_fills.handle(signal(3, OrderStatus="1"))  # Partially filled
    only_fills.flush()
    assert fills.rings == 2


def test_diagnostics_print_through_the_table_when_given_its_printer() -> None:
    from c2ws.render.diagnostics import Diagnostics

    screen = Screen(80, 24)
    stderr = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the test
    renderer = TableRenderer(screen.console, highlight_seconds=0)
    diagnostics = Diagnostics(stderr, printer=renderer.print_message)
    rejected = events.SubscriptionRejected(
        SubscriptionKey(99, "strategy.signal"), "r-1",
        (protocol.ErrorDetail("FORBIDDEN", "no", "StrategyId"),), envelope("error"),
    )
    diagnostics.handle(rejected)
    renderer.handle(rejected)
    renderer.close()
    assert [line for line in screen.lines if line.startswith("c2ws:")] == [
        "c2ws: subscription strategy.signal:99 rejected: FORBIDDEN (StrategyId): no"
    ]
