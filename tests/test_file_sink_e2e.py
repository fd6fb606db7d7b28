"""Issue 23, files exactly once for real: the real CLI, with --state and stdout appended
to a file, killed with SIGKILL at random points while it writes a 20 MB backlog, in
NDJSON, CSV and --fields; every signal is in the file exactly once, in order.  And what
--state says at start for an output that cannot keep the promise."""

from __future__ import annotations

import csv
import io
import json
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_resilience_e2e import FAST, KEY, outcome, start, wait_subscribed

from c2ws.exitcodes import ExitCode
from c2ws.testing import TestServer

STRATEGIES = tuple(range(1, 41))
PER_STRATEGY = 500  # below the replay limit: every restart can be served in full
NOTE = "n" * 880  # ~1 KB a signal: 40 x 500 of them are 20 MB

pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=STRATEGIES,
                                           heartbeat_interval=0.5, heartbeat_grace=1.0,
                                           lifetime=240)

FORMATS = {
    "ndjson": ("-o", "ndjson"),
    "csv": ("-o", "csv"),
    "fields": ("-o", "ndjson", "--fields", "seq,strategy_id,symbol"),
}


def signal_payload(strategy_id: int, n: int) -> dict[str, Any]:
    return {"StrategyId": strategy_id, "Side": "1" if n % 2 else "2", "OrderType": "1",
            "OrderQuantity": 1 + n % 5, "C2Symbol": {"FullSymbol": "@ESZ6"}, "Note": NOTE}


def written(data: bytes, fmt: str) -> list[tuple[int, int]]:
    """(strategy_id, seq) of every signal in the output, in order."""
    if fmt == "csv":
        rows = csv.reader(io.StringIO(data.decode()))
        return [(int(row[1]), int(row[3])) for row in rows if row and row[0] != "time"]
    found = []
    for line in data.splitlines():
        item = json.loads(line)
        if fmt == "fields":
            found.append((item["strategy_id"], item["seq"]))
        elif item.get("msg_type") == "strategy.signal":
            found.append((item["payload"]["StrategyId"], item["seq_id"]))
    return found


@pytest.mark.timeout(200)  # its own waits end first, with c2ws's stderr
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_kill_9_while_writing_a_20_mb_backlog_leaves_every_signal_exactly_once(
    server: TestServer, tmp_path: Path, fmt: str,
) -> None:
    output, state = tmp_path / f"signals.{fmt}", tmp_path / "state.json"
    rng = random.Random(f"23-{fmt}")
    ids = list(map(str, STRATEGIES))

    log = tmp_path / "stderr.log"

    def run(*extra: str) -> subprocess.Popen[bytes]:
        # stderr to a file, not an undrained pipe: a loaded machine's reconnect lines
        # could fill a pipe and block c2ws for good.
        with output.open("ab") as sink, log.open("ab") as errors:
            return start(server, *ids, "-c", "signal", *FORMATS[fmt], "--state", str(state),
                         *FAST, *extra, stdout=sink, stderr=errors)

    def ended(process: subprocess.Popen[bytes]) -> tuple[int, str]:
        try:
            code = process.wait(45)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(
                f"c2ws did not end within 45 s: {log.read_text()[-2000:]}") from None
        return code, log.read_text()

    # A first run writes seq 1 of every strategy: the state file has a cursor of each, so
    # the next runs resume and the server replays the backlog at once, in bursts.
    first = run("-n", str(len(STRATEGIES)))
    wait_subscribed(server, 1, len(STRATEGIES))
    for strategy in STRATEGIES:
        server.publish(strategy, signal_payload(strategy, 0))
    code, err = ended(first)
    assert code == 0, err
    for n in range(1, PER_STRATEGY):  # 20 MB waiting at the server
        for strategy in STRATEGIES:
            server.publish(strategy, signal_payload(strategy, n))
    total = len(STRATEGIES) * PER_STRATEGY

    def lines() -> int:
        return output.read_bytes().count(b"\n")

    for _ in range(3):  # killed somewhere in the next 1,000 to 5,000 lines
        before = max(r.number for r in server.connections())
        target = min(lines() + rng.randint(1000, 5000), total - 500)
        process = run()
        server.wait_for(lambda process=process, target=target: (
            lines() >= target or process.poll() is not None), timeout=60)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        assert max(r.number for r in server.connections()) > before  # it did connect
    expected = [(strategy, seq) for strategy in STRATEGIES for seq in range(1, PER_STRATEGY + 1)]
    before = max(r.number for r in server.connections())
    last = run()
    # Connected, so past its start (signal handlers in place): the killed runs may have
    # written every line already, and a SIGTERM during Python's start is no clean close.
    server.wait_for(lambda: max(r.number for r in server.connections()) > before
                    or last.poll() is not None, timeout=60)

    def complete() -> bool:
        # Parsed only once there can be enough lines: parsing 20 MB every 10 ms would
        # take a core from the c2ws under test.
        data = output.read_bytes()
        return (data.count(b"\n") >= len(expected) and data.endswith(b"\n")
                and len(written(data, fmt)) >= len(expected))

    try:
        server.wait_for(lambda: complete() or last.poll() is not None, timeout=90)
    except TimeoutError:
        last.kill()
        last.wait()
        raise AssertionError(f"{lines()} of {len(expected)} lines; c2ws's stderr: "
                             f"{log.read_text()[-3000:]}") from None
    assert last.poll() is None, log.read_text()[-3000:]
    last.send_signal(signal.SIGTERM)
    code, err = ended(last)
    assert code == ExitCode.TERMINATED, err
    found = written(output.read_bytes(), fmt)
    assert sorted(found) == expected  # every signal exactly once
    for strategy in STRATEGIES:  # in order
        seqs = [seq for sid, seq in found if sid == strategy]
        assert seqs == list(range(1, PER_STRATEGY + 1)), strategy
    assert "gap" not in err.lower()


def test_state_with_a_json_array_appended_to_a_file_is_refused(
    server: TestServer, tmp_path: Path,
) -> None:
    """-o json is one array per run: a file appended to across runs cannot hold it, so
    --state cannot promise anything there; refused before the state file is touched."""
    output, state = tmp_path / "out.json", tmp_path / "state.json"
    with output.open("ab") as sink:
        process = start(server, "1", "-o", "json", "--state", str(state), stdout=sink)
    code, err = outcome(process)
    assert code == ExitCode.USAGE, err
    assert "--state with stdout: -o json writes one JSON array per run" in err
    assert not state.exists() and output.read_bytes() == b""


def test_state_with_a_pipe_says_it_is_at_least_once(server: TestServer, tmp_path: Path) -> None:
    process = start(server, "1", "-o", "ndjson", "--state", str(tmp_path / "s.json"),
                    "--timeout", "0.5")
    code, err = outcome(process)
    assert code == 0, err
    assert ("--state with stdout: at least once, not exactly once: stdout is a pipe, which "
            "cannot be read back") in err
    assert "(>> FILE)" in err
