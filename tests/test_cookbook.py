"""The cookbook of docs/library.md, run as written: each example is taken from the
markdown, run as a program against a test server (c2ws.testing), fed, observed and
stopped with Ctrl-C, so the documentation cannot drift from what works."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from c2ws import spec
from c2ws.testing import TestServer

REPO = Path(__file__).resolve().parent.parent
STRATEGY = 12345678
WORKING = {"StrategyId": STRATEGY, "SignalId": 150000001, "Side": "1", "OrderType": "2",
           "Limit": 5010.25, "OrderQuantity": 2, "OrderStatus": "0", "TIF": "0",
           "C2Symbol": {"FullSymbol": "@ESZ6"}}
FILLED = {**WORKING, "OrderStatus": "2", "FilledQuantity": 2, "AvgFillPrice": 5010.25}
SOLD = {"StrategyId": STRATEGY, "SignalId": 150000002, "Side": "2", "OrderType": "1",
        "OrderQuantity": 100, "FilledQuantity": 100, "OrderStatus": "2",
        "AvgFillPrice": 232.15, "C2Symbol": {"FullSymbol": "AAPL"}}

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.c2_server_options(heartbeat_interval=5, lifetime=120)]


def cookbook() -> dict[str, str]:
    text = (REPO / "docs" / "library.md").read_text()
    return dict(re.findall(r"<!-- cookbook: (\S+) -->\n```python\n(.*?)```", text, re.DOTALL))


def test_the_cookbook_has_its_four_examples() -> None:
    assert sorted(cookbook()) == ["fill_status.py", "forward_signals.py", "journal.py",
                                  "print_fills.py"], "docs/library.md lost an example"


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    for name, source in cookbook().items():
        (tmp_path / name).write_text(source)
    return tmp_path


class Example:
    """One example running as a program: its key and URL from the environment, as a user
    would have them, its working directory the test's."""

    def __init__(self, directory: Path, server: TestServer, name: str, *args: str) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("C2_", "C2WS_")) and not k.lower().endswith("_proxy")}
        env.update({"C2_API_KEY": server.api_key, "C2WS_URL": server.url,
                    "C2WS_CONFIG": os.devnull})
        self.process = subprocess.Popen([sys.executable, name, *args], cwd=directory, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)

    def line(self) -> str:
        """The next line it prints (it ending instead fails the test, with its stderr)."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            _, err = self.process.communicate(timeout=30)
            pytest.fail(f"the example ended ({self.process.returncode}): {err}")
        return line

    def interrupt(self) -> tuple[int, str, str]:
        """Ctrl-C; its exit status and what it still printed."""
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err

    def kill(self) -> str:
        """kill -9; what it printed before."""
        self.process.kill()
        out, _ = self.process.communicate(timeout=30)
        return out


@pytest.fixture
def started(examples: Path, server: TestServer) -> Iterator[list[Example]]:
    """Examples started by the test, killed at its end whatever happened."""
    running: list[Example] = []
    yield running
    for example in running:
        if example.process.poll() is None:
            example.kill()


def start(started: list[Example], examples: Path, server: TestServer, name: str,
          *args: str) -> Example:
    example = Example(examples, server, name, *args)
    started.append(example)
    return example


def closed_cleanly(server: TestServer) -> bool:
    record = server.wait_for(lambda: (r := server.connections()[-1]) and not r.open and r)
    return record.client_close_code == spec.CLOSE_NORMAL


def test_print_fills(server: TestServer, examples: Path, started: list[Example]) -> None:
    bot = start(started, examples, server, "print_fills.py", str(STRATEGY))
    server.wait_for_subscribers(1, strategy_id=STRATEGY, channel="signal")
    server.publish(STRATEGY, WORKING)
    server.publish(STRATEGY, FILLED)
    server.publish(STRATEGY, SOLD)
    assert bot.line() == "@ESZ6 BUY 2 @ 5010.25\n"
    assert bot.line() == "AAPL SELL 100 @ 232.15\n"
    assert bot.interrupt() == (0, "", "")
    assert closed_cleanly(server)


def test_forward_signals_to_a_webhook(server: TestServer, examples: Path,
                                      started: list[Example]) -> None:
    received: list[dict[str, Any]] = []

    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server calls it by this name
            length = int(self.headers["Content-Length"])
            received.append({"path": self.path, "type": self.headers["Content-Type"],
                             "body": json.loads(self.rfile.read(length))})
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    webhook = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{webhook.server_address[1]}/c2"
        bot = start(started, examples, server, "forward_signals.py", url, str(STRATEGY))
        server.wait_for_subscribers(1, strategy_id=STRATEGY, channel="signal")
        sent = [server.publish(STRATEGY, payload) for payload in (WORKING, FILLED, SOLD)]
        server.wait_for(lambda: len(received) >= 3)
        assert bot.interrupt() == (0, "", "")
    finally:
        webhook.shutdown()
        webhook.server_close()
    assert [post["path"] for post in received] == ["/c2"] * 3
    assert {post["type"] for post in received} == {"application/json"}
    bodies = [post["body"] for post in received]
    assert [body["seq_id"] for body in bodies] == [envelope["seq_id"] for envelope in sent]
    assert bodies[0] == {
        "seq_id": 1, "strategy_id": STRATEGY, "signal_id": 150000001, "symbol": "@ESZ6",
        "side": "BUY", "order_type": "LIMIT", "quantity": "2", "limit": "5010.25",
        "status": "WORKING", "time": bodies[0]["time"]}
    assert bodies[0]["time"].endswith("+00:00")
    assert [(b["symbol"], b["side"], b["quantity"], b["status"]) for b in bodies[1:]] == [
        ("@ESZ6", "BUY", "2", "FILLED"), ("AAPL", "SELL", "100", "FILLED")]
    # What the webhook took is acknowledged: a restart would go on after it.
    assert (examples / "forward_signals.state").exists()


def test_the_journal_survives_kill_9_with_nothing_lost_or_doubled(
    server: TestServer, examples: Path, started: list[Example]
) -> None:
    """Killed with SIGKILL at a random point while the server publishes, then started
    again: every signal is in the table exactly once.  The feed stays WINDOW messages
    ahead of what the journal printed, so the kill always lands mid-stream."""
    total, window = 200, 40
    kill_after = random.randint(1, total - window - 1)  # journaled lines seen before the kill
    published = 0
    journaled: list[int] = []

    def feed() -> None:
        nonlocal published
        while published < min(total, len(journaled) + window):
            server.publish(STRATEGY, {**WORKING, "SignalId": 1000 + published})
            published += 1

    def seq_ids(text: str) -> list[int]:
        return [int(line.split()[2]) for line in text.splitlines()]

    first = start(started, examples, server, "journal.py", str(STRATEGY))
    server.wait_for_subscribers(1, strategy_id=STRATEGY, channel="signal")
    while len(journaled) < kill_after:
        feed()
        journaled += seq_ids(first.line())
    journaled += seq_ids(first.kill())
    db = examples / "journal.db"
    (before,) = sqlite3.connect(db).execute("SELECT COUNT(*) FROM signals").fetchone()
    assert kill_after <= before < total, (kill_after, before)  # killed mid-stream

    second = start(started, examples, server, "journal.py", str(STRATEGY))
    while not journaled or journaled[-1] < total:
        feed()
        journaled += seq_ids(second.line())
    assert second.interrupt()[0] == 0
    rows = sqlite3.connect(db).execute(
        "SELECT seq_id, line FROM signals ORDER BY rowid").fetchall()
    assert [seq for seq, _ in rows] == list(range(1, total + 1)), kill_after
    assert [json.loads(line)["payload"]["SignalId"] for _, line in rows] == [
        1000 + n for n in range(total)]


def ask(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        return conn.makefile().read()


def test_an_asyncio_program_keeps_its_loop_running(server: TestServer, examples: Path,
                                                  started: list[Example]) -> None:
    bot = start(started, examples, server, "fill_status.py", str(STRATEGY), "0")
    port = int(bot.line().split()[-1])
    server.wait_for_subscribers(1, strategy_id=STRATEGY, channel="signal")
    assert ask(port) == "0 signals, 0 fills\n"  # answered while the stream waits
    server.publish(STRATEGY, WORKING)
    server.publish(STRATEGY, FILLED)
    assert bot.line() == "filled: BUY 2 @ESZ6\n"
    assert ask(port) == "2 signals, 1 fills\n"
    assert bot.interrupt() == (0, "", "")
    assert closed_cleanly(server)
