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
import shlex
import shutil
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


@pytest.fixture
def busy_server() -> Iterator[ReferenceServer]:
    """A fast synthetic feed of the default strategies, from seq_id 1 for each client."""
    config = ServerConfig(api_keys=(KEY,), rate=50, feed_waits_for_subscription=True,
                          max_lifetime=120)
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


EVERY_COLUMN = ["Time UTC", "Strategy", "Seq", "Side", "O/C", "Qty", "Symbol", "Type",
                "Limit/Stop", "TIF", "Status", "Signal id"]
# Time, side, quantity, symbol, price and status first; the strategy name is abbreviated,
# then left out, before any of them goes.
COLUMNS_AT_WIDTH = {
    40: ["Time UTC", "Side", "Qty", "Symbol", "Limit/Stop"],
    60: ["Time UTC", "Strategy", "Side", "Qty", "Symbol", "Limit/Stop", "Status"],
    80: ["Time UTC", "Strategy", "Side", "O/C", "Qty", "Symbol", "Type", "Limit/Stop", "TIF",
         "Status"],
    120: EVERY_COLUMN,
    200: EVERY_COLUMN,
}
TIME = re.compile(r"\d\d:\d\d:\d\d ")


@pytest.mark.parametrize(("columns", "lines"), [
    pytest.param(40, 24, id="40x24"), pytest.param(60, 24, id="60x24"),
    pytest.param(80, 24, id="80x24"), pytest.param(120, 40, id="120x40"),
    pytest.param(200, 40, id="200x40"),
])
def test_columns_a_trader_needs_at_each_width(columns: int, lines: int) -> None:
    seen = run_in_terminal(["demo", "-n", "40", "--rate", "50"], columns=columns, lines=lines)
    assert seen.returncode == 0, seen.text
    header = next(line for line in seen.lines if line.startswith("Time UTC "))
    assert [name for name in EVERY_COLUMN if name in header] == COLUMNS_AT_WIDTH[columns], header
    rows = [line for line in seen.lines if TIME.match(line)]
    assert len(rows) >= 20
    if "Strategy" in header:  # abbreviated, never dropped while it is in the header
        assert all(line.split()[1] for line in rows)
    # No number is ever cut short: not in the rows, the positions or the footer (which
    # wraps between its items when it does not fit).
    assert not [line for line in seen.lines if CUT_NUMBER.search(line)], seen.text
    # The footer counts the 40 messages -n counted, not the control frames around them.
    footer = next(i for i, line in enumerate(seen.lines) if "no (run ended) |" in line)
    assert re.search(r"\b(msgs|messages:) 40\b", " ".join(seen.lines[footer:])), seen.text


def test_positions_only_use_the_whole_height(busy_server: ReferenceServer) -> None:
    strategies = [str(strategy) for strategy in busy_server.config.strategies]
    seen = run_in_terminal(
        ["subscribe", *strategies, "-c", "positions", "-n", "60"], columns=80, lines=16,
        env={"C2_API_KEY": KEY, "C2WS_URL": busy_server.url, "C2WS_CONFIG": os.devnull},
    )
    assert seen.returncode == 0, seen.text
    screen = [line.rstrip() for line in seen.screen]
    title = next(i for i, line in enumerate(screen) if line.startswith("Positions at "))
    footer = next(i for i, line in enumerate(screen) if line.startswith("conn no (run ended)"))
    rows = [line for line in screen[title:footer] if re.search(r"\d\d:\d\d:\d\d$", line)]
    note = re.fullmatch(r"\+(\d+) more positions? \(the (\d+) most recently updated are shown\)",
                        screen[footer - 1])
    assert note is not None, seen.text
    hidden, shown = int(note.group(1)), int(note.group(2))
    assert note.group(0).startswith(f"+{hidden} more position{'' if hidden == 1 else 's'} (")
    # 16 lines: the region's title, table header and rule, note and footer, and one line
    # kept above it (here: nothing, the screen starts with the region); all the rest rows.
    assert shown == len(rows) == 16 - 1 - 5, seen.text
    assert title <= 1, seen.text


def test_no_status_line_on_the_terminal_when_stdout_is_a_pipe() -> None:
    # `c2ws demo -o ndjson | jq`: jq writes to the same terminal; stderr must not draw.
    with subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL) as reader:
        seen = run_in_terminal(["demo", "-o", "ndjson", "-n", "20", "--rate", "50"],
                               columns=80, lines=24, stdout=reader.stdin)
        assert reader.stdin is not None
        reader.stdin.close()
    assert seen.returncode == 0, seen.text
    assert "subs " not in seen.raw.decode(errors="replace")


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
    assert "subs " in seen.raw.decode(errors="replace")


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


# --- resizing -------------------------------------------------------------------------------

# A signal line that shows its seq (100 columns and more): the strategy (abbreviated as the
# width requires: the demo's names differ in their first five letters) and the seq.
SEQ_LINE = re.compile(r"\d\d:\d\d:\d\d (?P<strategy>\S.{4}).*? (?P<seq>\d+) (?:Buy|Sell) ")


def seqs_by_strategy(lines: list[str]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = {}
    for line in lines:
        match = SEQ_LINE.match(line)
        if match:
            seqs.setdefault(match["strategy"], []).append(int(match["seq"]))
    return seqs


def assert_each_signal_once(lines: list[str], *, all_shown: bool) -> None:
    """Every signal line with a seq is there once, in order; ``all_shown``: none is missing
    (every line showed its seq), else only up to the last one shown."""
    seqs = seqs_by_strategy(lines)
    assert seqs, "\n".join(lines)
    for strategy, seen in seqs.items():
        assert seen == list(range(seen[0], seen[-1] + 1)), (strategy, seen, "\n".join(lines))
        if all_shown:
            assert seen[0] == 1, (strategy, seen)


class Tmux:
    """A tmux server of its own (socket in a temporary directory) running one command in
    a window of the given size; the pane stays after the command ends, to be read."""

    def __init__(self, directory: Path, command: list[str], columns: int, lines: int) -> None:
        self._socket = directory / "tmux.sock"
        # Written by the shell when the command ends (tmux may be slow to see it die).
        self._status = directory / "status"
        shell = f"{shlex.join(command)}; echo $? > {shlex.quote(str(self._status))}"
        config = directory / "tmux.conf"
        config.write_text("set -g remain-on-exit on\nset -g history-limit 10000\n"
                          "set -g status off\n")
        environment = {k: v for k, v in os.environ.items()
                       if k not in ("COLUMNS", "LINES", "C2_API_KEY", "C2WS_URL", "NO_COLOR",
                                    "TMUX", "XTERM_VERSION")}
        environment["TZ"] = "UTC"
        self._tmux(["-f", str(config), "new-session", "-d", "-s", "c2ws", "-x", str(columns),
                    "-y", str(lines), "-c", str(REPO), "sh", "-c", shell], env=environment)

    def _tmux(self, args: list[str], env: dict[str, str] | None = None) -> str:
        return subprocess.run(["tmux", "-S", str(self._socket), *args], check=True,
                              stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=20, env=env).stdout

    def screen(self) -> str:
        return self._tmux(["capture-pane", "-p", "-t", "c2ws"])

    def everything(self) -> list[str]:
        """Scrollback and screen, rewrapped lines joined again (as they were printed)."""
        text = self._tmux(["capture-pane", "-p", "-J", "-S", "-", "-E", "-", "-t", "c2ws"])
        return [line.rstrip() for line in text.splitlines()]

    def resize(self, columns: int, lines: int) -> None:
        self._tmux(["resize-window", "-t", "c2ws", "-x", str(columns), "-y", str(lines)])

    def exit_status(self) -> int | None:
        """The command's exit status once it has ended, else None."""
        text = self._status.read_text() if self._status.exists() else ""
        return int(text) if text.endswith("\n") else None

    def wait_for(self, seen: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = seen()
            if result is not None and result is not False:
                return result
            time.sleep(0.05)
        raise AssertionError("tmux never showed it:\n" + "\n".join(self.everything()))

    def close(self) -> None:
        subprocess.run(["tmux", "-S", str(self._socket), "kill-server"], capture_output=True,
                       timeout=20, check=False)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (a terminal that rewraps)")
@pytest.mark.parametrize("narrower", [80, 100])
def test_resizing_a_rewrapping_terminal_prints_no_line_twice(
    tmp_path: Path, narrower: int
) -> None:
    # tmux, like most terminals, rewraps its lines when made narrower: the live region's
    # lines (new signals, the footer) then take more rows than were drawn.
    tmux = Tmux(tmp_path, [sys.executable, "-m", "c2ws", "demo", "--rate", "8", "-n", "70"],
                columns=120, lines=40)
    try:
        def live_region_with_new_signals() -> bool:
            screen = tmux.screen()
            return ("connected: yes" in screen and "Positions (" in screen
                    and len(seqs_by_strategy(screen.splitlines())) == 3)

        tmux.wait_for(live_region_with_new_signals)
        tmux.resize(narrower, 40)
        # The region redrawn at the new width (its footer, compact, is no wider than that).
        tmux.wait_for(lambda: "conn yes | subs 6/6" in tmux.screen())
        status = tmux.wait_for(tmux.exit_status, timeout=30)
        lines = tmux.everything()
    finally:
        tmux.close()
    assert status == 0, "\n".join(lines)
    # No line twice: neither a signal nor a leftover of the live region.
    assert_each_signal_once(lines, all_shown=narrower >= 100)
    assert not [line for line in lines if line.startswith("Positions (")], "\n".join(lines)
    assert not [line for line in lines if "yes |" in line], "\n".join(lines)
    assert len([line for line in lines if line.startswith("Positions at ")]) == 1


def test_resizing_a_terminal_that_cuts_lines_loses_no_line() -> None:
    # xterm and pyte do not rewrap: the region's old lines keep their rows, and nothing
    # above the region may be erased.
    screen = Screen(120, 40)
    renderer = TableRenderer(screen.console, highlight_seconds=30, rewraps=False)
    renderer.expect_subscriptions([SIGNALS, POSITIONS])
    renderer.handle(CONNECTED)
    renderer.handle(position("@ESZ6", 2))
    for seq in range(1, 6):
        renderer.handle(signal(seq))
    # The newest signals are highlighted in the region, as wide as the terminal.
    screen.wait_for(lambda lines: any("150339505" in line for line in lines))
    with renderer._lock:  # between two redraws
        screen.resize(100)
    for seq in range(6, 11):
        renderer.handle(signal(seq))
    screen.wait_for(lambda lines: any("150339510" in line for line in lines))
    renderer.close()
    assert_each_signal_once(screen.lines, all_shown=True)
    assert seqs_by_strategy(screen.lines) == {"Alpha": list(range(1, 11))}


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

    def resize(self, columns: int) -> None:
        """The terminal made ``columns`` wide (pyte cuts its lines: it does not rewrap)."""
        with self._lock:
            self.screen.resize(self.screen.lines, columns)
            self.columns = columns
            self.console.width = columns

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


@pytest.mark.parametrize(("count", "rows", "note"), [
    (11, 11, None),  # title, table header and rule, 11 rows, footer: 15 lines of 16
    (14, 10, "+4 more positions (the 10 most recently updated are shown)"),
])
def test_positions_only_fill_the_height_but_a_line(count: int, rows: int, note: str | None) -> None:
    screen = Screen(80, 16)
    renderer = TableRenderer(screen.console, highlight_seconds=0)
    renderer.expect_subscriptions([POSITIONS])
    renderer.handle(CONNECTED)
    for n in range(count):
        renderer.handle(position(f"SYM{n:02d}", n + 1))
    renderer.close()
    shown = screen.screen.display
    assert len([line for line in shown if re.search(r"SYM\d\d", line)]) == rows
    assert [line.rstrip() for line in shown if "more position" in line] == ([note] if note else [])


def test_one_position_not_shown_is_one_more_position() -> None:
    screen = Screen(80, 10)  # half of it is less than the 3 rows always shown
    renderer = TableRenderer(screen.console, highlight_seconds=0)
    renderer.expect_subscriptions([SIGNALS, POSITIONS])
    renderer.handle(CONNECTED)
    for n in range(4):
        renderer.handle(position(f"SYM{n:02d}", n + 1))
    renderer.close()
    assert "+1 more position (the 3 most recently updated are shown)" in screen.lines


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
