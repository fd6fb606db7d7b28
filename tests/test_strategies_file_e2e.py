"""--strategies-file (issue 25): the real CLI against the reference server on 127.0.0.1.
Editing the file subscribes and unsubscribes on the running connection (the server sees
no new connection) with nothing lost on the streams that stay; SIGHUP re-reads it; a bad
line, or more than 1000 subscriptions, is reported with its line and the last good set
stays.  Every wait is for an event (a line, what the server saw), bounded."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_resilience_e2e import FAST, KEY, LineReader, order, outcome, start, wait_subscribed
from test_unattended_e2e import event_named, json_stderr

from c2ws import spec
from c2ws.exitcodes import ExitCode
from c2ws.server.app import ConnectionRecord
from c2ws.testing import TestServer

pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=(1, 2, 3),
                                           heartbeat_interval=0.5, heartbeat_grace=1.0,
                                           lifetime=120)
SIGNAL = spec.CHANNEL_SIGNAL
POSITIONS = spec.CHANNEL_POSITIONS


def replace_file(path: Path, text: str) -> None:
    """Save as an editor does: a new file renamed over the old one (never half written)."""
    new = path.with_suffix(".new")
    new.write_text(text)
    os.replace(new, path)


def subscribed_to(server: TestServer, wanted: set[tuple[int, str]]
                  ) -> Callable[[], list[ConnectionRecord] | None]:
    def check() -> list[ConnectionRecord] | None:
        records = server.connections(open_only=True)
        if set().union(*(r.subscriptions for r in records)) == wanted:
            return records
        return None
    return check


def signals_of(lines: list[dict[str, Any]], strategy_id: int) -> list[int]:
    return [line["seq_id"] for line in lines
            if line["msg_type"] == SIGNAL and line["payload"]["StrategyId"] == strategy_id]


def test_editing_the_file_subscribes_and_unsubscribes_on_the_running_connection(
    server: TestServer, tmp_path: Path,
) -> None:
    strategies = tmp_path / "strategies.txt"
    strategies.write_text("# the desk's strategies\n2:signal  # for now\n")
    process = start(server, "1", "-c", "signal", "--strategies-file", str(strategies),
                    "-o", "ndjson", "--log-format", "json", *FAST)
    out, err = LineReader(process), json_stderr(process)
    (connection,) = wait_subscribed(server, 1, 2)
    for n in range(3):
        server.publish(1, order(1, n))
        server.publish(2, order(2, n))
    out.wait_for(lambda lines: len(lines) == 6)

    # 2 out, 3 in on both channels (a line's channel is its own: -c is for bare ids);
    # strategy 1 publishes before, during and after.
    replace_file(strategies, "3:signal\n3:positions\n")
    server.publish(1, order(1, 3))
    server.wait_for(subscribed_to(server, {(1, SIGNAL), (3, SIGNAL), (3, POSITIONS)}),
                    timeout=30)
    server.publish(1, order(1, 4))
    server.publish(2, order(2, 3))  # no longer followed: never written
    server.publish(3, order(3, 0))
    server.publish(1, order(1, 5))
    out.wait_for(lambda lines: len(signals_of(lines, 1)) == 6 and signals_of(lines, 3))
    err.wait_for(event_named("subscriptions.changed"))

    # No reconnect: the one connection the run opened carried the change.
    assert [r.number for r in server.connections()] == [connection.number]
    process.send_signal(signal.SIGTERM)
    code, _ = outcome(process)
    assert code == ExitCode.TERMINATED
    assert signals_of(out.lines, 1) == [1, 2, 3, 4, 5, 6]  # nothing lost, nothing doubled
    assert signals_of(out.lines, 2) == [1, 2, 3]
    assert signals_of(out.lines, 3) == [1]
    (changed,) = [r for r in err.lines if r["event"] == "subscriptions.changed"]
    assert changed["detail"] == (
        f"subscriptions changed ({strategies}, changed): subscribing to {SIGNAL}:3, "
        f"{POSITIONS}:3; unsubscribing from {SIGNAL}:2; 3 in all on 1 connection(s)")


def test_sighup_rereads_the_file_and_a_bad_line_keeps_the_last_good_set(
    server: TestServer, tmp_path: Path,
) -> None:
    strategies = tmp_path / "strategies.txt"
    strategies.write_text("2:signal\n")
    process = start(server, "1", "-c", "signal", "--strategies-file", str(strategies),
                    "-o", "ndjson", "--log-format", "json", *FAST)
    out, err = LineReader(process), json_stderr(process)
    wait_subscribed(server, 1, 2)

    # SIGHUP re-reads the file (and does not end the run, as it does without one).
    process.send_signal(signal.SIGHUP)
    err.wait_for(event_named("strategies_file.unchanged"))
    assert [r["detail"] for r in err.lines if r["event"] == "strategies_file.unchanged"] == [
        f"{strategies} re-read (SIGHUP): no change (2 subscription(s))"]

    # A bad line: said with the file and line, and nothing changes.
    replace_file(strategies, "3:signal\n3:sigals\n")
    err.wait_for(event_named("strategies_file.error"))
    (bad,) = [r for r in err.lines if r["event"] == "strategies_file.error"]
    assert bad["level"] == "error"
    assert bad["detail"] == (f"{strategies}:2: 'sigals' is not a channel; use signal or "
                             "positions; still following the last good set (2 "
                             "subscription(s))")
    assert len(server.connections(open_only=True)) == 1
    server.publish(2, order(2, 0))  # still followed
    out.wait_for(lambda lines: signals_of(lines, 2) == [1])

    # Fixed in place, then given back the size and modification time it had: polling
    # sees its stat as it was, SIGHUP reads it.  (Should a poll fall between the write
    # and the utime, that poll applies the change and SIGHUP then finds none.)
    before = strategies.stat()
    strategies.write_text("3:signal\n2:signal\n")
    os.utime(strategies, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert strategies.stat().st_size == before.st_size
    process.send_signal(signal.SIGHUP)
    server.wait_for(subscribed_to(server, {(1, SIGNAL), (2, SIGNAL), (3, SIGNAL)}),
                    timeout=30)
    server.publish(3, order(3, 0))
    out.wait_for(lambda lines: signals_of(lines, 3) == [1])
    (changed,) = [r for r in err.lines if r["event"] == "subscriptions.changed"]
    if f"({strategies}, SIGHUP)" not in changed["detail"]:  # the poll came first
        err.wait_for(lambda records: len([
            r for r in records if r["event"] == "strategies_file.unchanged"]) == 2)
    assert changed["detail"].endswith(
        f": subscribing to {SIGNAL}:3; 3 in all on 1 connection(s)")
    assert len(server.connections()) == 1
    process.send_signal(signal.SIGTERM)
    code, _ = outcome(process)
    assert code == ExitCode.TERMINATED


def test_more_than_1000_subscriptions_are_refused_naming_the_line(
    server: TestServer, tmp_path: Path,
) -> None:
    strategies = tmp_path / "strategies.txt"
    strategies.write_text("2\n")
    process = start(server, "1", "-c", "signal", "--strategies-file", str(strategies),
                    "-o", "ndjson", "--log-format", "json", *FAST)
    err = json_stderr(process)
    wait_subscribed(server, 1, 2)
    # Strategy 1 on the command line and 1000 more: the file's line 1000 is one too many.
    replace_file(strategies, "".join(f"{sid}\n" for sid in range(2, 1002)))
    err.wait_for(event_named("strategies_file.error"))
    (refused,) = [r for r in err.lines if r["event"] == "strategies_file.error"]
    assert refused["detail"].startswith(
        f"{strategies}:1000: more than 1000 subscriptions in all")
    assert refused["detail"].endswith("still following the last good set (2 subscription(s))")
    assert len(server.connections()) == 1
    process.send_signal(signal.SIGTERM)
    code, _ = outcome(process)
    assert code == ExitCode.TERMINATED
    assert not [r for r in err.lines if r["event"] == "subscriptions.changed"]


def test_a_bad_file_at_the_start_is_a_usage_error_naming_its_line(
    server: TestServer, tmp_path: Path,
) -> None:
    strategies = tmp_path / "strategies.txt"
    strategies.write_text("2\n\n# fine so far\n12x\n")
    process = start(server, "1", "--strategies-file", str(strategies), "-o", "ndjson")
    code, err = outcome(process)
    assert code == ExitCode.USAGE
    assert f"{strategies}:4: '12x' is not a strategy id (a positive integer)" in err
    assert not server.connections()
