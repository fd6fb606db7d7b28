"""Left running for months (issue 25): the real CLI against the reference server on
127.0.0.1.  A reconnect is said once it has caught up, SIGUSR1 reports, --log-format json
lines parse; /metrics counts what was written, /healthz fails once heartbeats stop,
systemd's notifications arrive; --strict and -q.  Every wait is for an event (a line, a
datagram, an answer), bounded."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_resilience_e2e import FAST, KEY, LineReader, order, outcome, start, wait_subscribed
from test_rest_e2e import c2ws

from c2ws import spec
from c2ws.exitcodes import ExitCode
from c2ws.testing import TestServer

pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=(1, 2),
                                           heartbeat_interval=0.5, heartbeat_grace=1.0,
                                           lifetime=120)
LOG_KEYS = {"time", "level", "event", "connection", "strategy", "detail"}


def json_stderr(process: Any) -> LineReader:
    """stderr of a run with --log-format json, read as it comes: one object per line."""
    return LineReader(SimpleNamespace(stdout=process.stderr))  # type: ignore[arg-type]


def event_named(name: str) -> Any:
    return lambda records: any(record["event"] == name for record in records)


def test_a_reconnect_is_said_once_caught_up_and_sigusr1_reports_in_json(
    server: TestServer,
) -> None:
    process = start(server, "1", "-o", "ndjson", "--log-format", "json", *FAST)
    out, err = LineReader(process), json_stderr(process)
    wait_subscribed(server, 1, 2)
    server.publish(1, order(1, 0))
    out.wait_for(lambda lines: len(lines) == 1)
    # Away for a while: every upgrade is refused until the five signals are published, so
    # all five are replayed (before the positions' ack: the line counts them all).
    server.reject_next_connections(503, count=1000)
    server.drop_connections(0)
    for n in range(1, 6):
        server.publish(1, order(1, n))
    server.reject_next_connections(503, count=0)
    out.wait_for(lambda lines: len(lines) == 6)
    err.wait_for(event_named("connection.reconnected"))
    process.send_signal(signal.SIGUSR1)
    err.wait_for(event_named("status.output"))
    process.send_signal(signal.SIGHUP)
    code, _ = outcome(process)
    assert code == ExitCode.HANGUP
    records = err.lines
    assert all(set(record) == LOG_KEYS for record in records)
    (back,) = [r for r in records if r["event"] == "connection.reconnected"]
    assert back["connection"] == 1 and back["level"] == "info"
    assert back["detail"].startswith("connection 1 reconnected after ")
    assert back["detail"].endswith(": 2 subscription(s) renewed; 5 missed signal(s) replayed")
    last_reconnecting = max(i for i, r in enumerate(records)
                            if r["event"] == "connection.reconnecting")
    assert records.index(back) > last_reconnecting  # never a stale "reconnecting in" last
    status = {r["event"]: r["detail"] for r in records if r["event"].startswith("status")}
    assert "1/1 connection(s) up; subscriptions 2/2; 6 message(s) written" in status["status"]
    assert status["status.connection"].startswith("connection 1: up for ")
    assert "6 message(s) written" in status["status.output"]


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_count_what_was_written_healthz_fails_without_heartbeats_and_systemd_hears(
    server: TestServer, tmp_path: Path,
) -> None:
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(tmp_path / "notify"))
    systemd.settimeout(30)
    notified: list[str] = []

    def wait_for_notification(assignment: str) -> None:
        while not any(assignment in n.split("\n") for n in notified):
            notified.append(systemd.recv(4096).decode())

    process = start(server, "1", "2", "-c", "signal", "-o", "ndjson", "--log-format", "json",
                    "--metrics", "127.0.0.1:0", "--state", str(tmp_path / "state.json"), *FAST,
                    env={"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "3000000"})
    try:
        out, err = LineReader(process), json_stderr(process)
        err.wait_for(event_named("metrics"))
        (where,) = [r["detail"] for r in err.lines if r["event"] == "metrics"]
        base = where.split()[2].removesuffix("/metrics,")
        wait_for_notification("READY=1")
        for n in range(7):
            server.publish(1 + n % 2, order(1 + n % 2, n))
        out.wait_for(lambda lines: len(lines) == 7)
        wait_for_notification("WATCHDOG=1")
        assert any(n.startswith("STATUS=") or "\nSTATUS=" in n for n in notified)

        status, text = http_get(base + "/metrics")
        assert status == 200
        found = samples(text)
        written = {labels: value for (name, labels), value in found.items()
                   if name == "c2ws_messages_written_total"}
        assert written == {
            (("channel", spec.CHANNEL_SIGNAL), ("strategy_id", "1")): 4.0,
            (("channel", spec.CHANNEL_SIGNAL), ("strategy_id", "2")): 3.0,
        }
        assert sum(written.values()) == len(out.lines)
        assert found[("c2ws_connection_up", (("connection", "1"),))] == 1.0
        assert found[("c2ws_state_commits_total", ())] >= 1.0
        assert found[("c2ws_received_bytes_total", ())] > 0.0
        assert found[("c2ws_backlog_messages", ())] == 0.0
        assert found[("c2ws_messages_dropped_total", (("reason", "duplicate"),))] == 0.0
        assert found[("c2ws_subscriptions", (("state", "active"),))] == 2.0
        assert http_get(base + "/healthz") == (200, "ok\n")

        server.stop_heartbeats()
        deadline = time.monotonic() + 30
        while (answer := http_get(base + "/healthz"))[0] == 200:
            assert time.monotonic() < deadline, "/healthz never failed"
            time.sleep(0.05)  # polled: nothing announces the moment /healthz turns
        assert answer[0] == 503 and "no heartbeat on connection 1" in answer[1]
        process.send_signal(signal.SIGTERM)
        code, _ = outcome(process)
        assert code == ExitCode.TERMINATED
        wait_for_notification("STOPPING=1")
    finally:
        systemd.close()
        if process.poll() is None:
            process.kill()
    assert all(set(record) == LOG_KEYS for record in err.lines)


def test_strict_exits_7_when_one_of_the_subscriptions_is_rejected(server: TestServer) -> None:
    code, err = outcome(start(server, "1", "99", "-c", "signal", "-o", "ndjson", "--strict"))
    assert code == ExitCode.NOTHING_TO_STREAM
    assert "subscription strategy.signal:99 rejected" in err
    assert err.rstrip().endswith(
        "stopping (--strict): subscription strategy.signal:99 was rejected")


def test_quiet_leaves_stderr_to_errors(server: TestServer, tmp_path: Path) -> None:
    process = start(server, "1", "-c", "signal", "-o", "ndjson", "-n", "2", "-q", *FAST)
    out = LineReader(process)
    wait_subscribed(server, 1, 1)
    server.publish(1, order(1, 0))
    out.wait_for(lambda lines: len(lines) == 1)
    server.drop_connections(0)  # a reconnect line, then a reconnected one: not errors
    first = max(r.number for r in server.connections())
    wait_subscribed(server, 1, 1, after=first)
    server.publish(1, order(1, 1))
    code, err = outcome(process)
    assert (code, err) == (0, "")
    # Every command takes -q: REST retries are not said, nor is the config file written.
    server.fail_next_rest_requests(503, retry_after=0)
    positions = c2ws(server, "positions", "1", "-o", "ndjson", "-q", key=KEY)
    assert (positions.returncode, positions.stderr) == (0, "")
    config = tmp_path / "config.toml"
    written = subprocess.run([sys.executable, "-m", "c2ws", "config", "init", "-q"],
                             env={**os.environ, "C2WS_CONFIG": str(config)},
                             capture_output=True, text=True, timeout=60, check=False)
    assert (written.returncode, written.stderr, config.exists()) == (0, "", True)
    failed = start(server, "99", "-c", "signal", "-q")
    assert outcome(failed) == (ExitCode.NOTHING_TO_STREAM, "c2ws: subscription "
                               "strategy.signal:99 rejected: FORBIDDEN (StrategyId): Not "
                               "authorized to subscribe to Strategy\nc2ws: every subscription "
                               "was rejected; nothing to stream\n")
