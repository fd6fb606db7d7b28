"""The REST side end to end (issue 24): the real CLI against the reference server on
127.0.0.1: positions, orders (every page), the REST exit codes, --snapshot and
--heal-gaps.  Every wait is for an event; every child has a deadline."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from c2ws.exitcodes import ExitCode
from c2ws.testing import TestServer

KEY = "rest-e2e-key-0001"
REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=(11, 22, 7))


def c2ws(server: TestServer, *args: str, key: str = KEY, timeout: float = 45
         ) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("C2_API_KEY", "C2WS_URL", "C2WS_REST_URL", "C2WS_PROFILE")}
    environment.update(C2_API_KEY=key, C2WS_URL=server.url, C2WS_CONFIG=os.devnull)
    return subprocess.run([sys.executable, "-m", "c2ws", *args], env=environment, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, check=False)


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_positions_equal_the_servers_book(server: TestServer) -> None:
    for _ in range(60):
        server.publish(11)
        server.publish(22)
    result = c2ws(server, "positions", "11", "22", "-o", "ndjson")
    assert result.returncode == 0, result.stderr
    snapshots = lines(result.stdout)
    assert [s["msg_type"] for s in snapshots] == ["positions.snapshot"] * 2
    assert {s["strategy_id"]: s["payload"] for s in snapshots} == {
        11: server.open_positions(11), 22: server.open_positions(22)}
    assert server.open_positions(11)  # the feed did open some
    csv = c2ws(server, "positions", "11", "-o", "csv")
    rows = csv.stdout.splitlines()
    assert rows[0] == "strategy_id,strategy,symbol,qty,avg_price,currency,opened"
    assert len(rows) == 1 + len(server.open_positions(11))


def test_orders_since_walks_every_page(server: TestServer) -> None:
    for n in range(23):
        server.publish(22, {"StrategyId": 22, "SignalId": 500 + n, "Side": "1",
                            "OrderType": "1", "OrderQuantity": 1, "OrderStatus": "2",
                            "C2Symbol": {"FullSymbol": "@ESZ6"}})
    result = c2ws(server, "orders", "22", "--since", "1h", "--page-limit", "5", "-o", "ndjson")
    assert result.returncode == 0, result.stderr
    orders = lines(result.stdout)
    assert [o["payload"]["SignalId"] for o in orders] == list(range(500, 523))
    assert {o["msg_type"] for o in orders} == {"order"}
    history = [r for r in server.rest_requests()
               if r.path.endswith("GetStrategyHistoricalOrders")]
    assert len(history) == math.ceil(23 / 5)
    assert all(r.params["Limit"] == "5" for r in history)
    active = c2ws(server, "orders", "22", "--active", "-o", "json")
    assert active.returncode == 0 and json.loads(active.stdout) == []


def test_a_rest_401_exits_3_and_a_403_exits_7(server: TestServer) -> None:
    wrong = c2ws(server, "positions", "11", key="wrong-key-0000000")
    assert wrong.returncode == ExitCode.AUTH_FAILED, wrong.stderr
    assert "401" in wrong.stderr and "wrong-key-0000000" not in wrong.stderr
    forbidden = c2ws(server, "orders", "99", "--since", "2d")
    assert forbidden.returncode == ExitCode.NOTHING_TO_STREAM, forbidden.stderr
    assert "not authorized for strategy 99" in forbidden.stderr


def test_a_429_and_a_500_are_retried_and_said_on_stderr(server: TestServer) -> None:
    server.publish(11)
    server.fail_next_rest_requests(429, 500, retry_after=0)
    result = c2ws(server, "positions", "11", "-o", "ndjson")
    assert result.returncode == 0, result.stderr
    assert "HTTP 429" in result.stderr and "HTTP 500" in result.stderr
    assert "retrying in" in result.stderr


def test_bad_times_and_option_mixes_are_usage_errors(server: TestServer) -> None:
    assert c2ws(server, "orders", "11", "--since", "soon").returncode == ExitCode.USAGE
    assert c2ws(server, "orders", "11").returncode == ExitCode.USAGE
    assert c2ws(server, "orders", "11", "--active", "--since", "1h").returncode == ExitCode.USAGE
    assert c2ws(server, "positions", "11", "--rest-url", "ftp://x").returncode == ExitCode.USAGE


# --- subscribe --heal-gaps and --snapshot -------------------------------------------------


def order_payload(strategy_id: int, n: int) -> dict[str, Any]:
    return {"StrategyId": strategy_id, "SignalId": 9000 + n, "Side": "1" if n % 2 else "2",
            "OrderType": "1", "OrderQuantity": 1 + n % 3, "OrderStatus": "2",
            "C2Symbol": {"FullSymbol": "@ESZ6"}}


def subscribe(server: TestServer, *args: str, stdout: Any, **extra_env: str
              ) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("C2_API_KEY", "C2WS_URL", "C2WS_REST_URL", "C2WS_PROFILE")}
    environment.update(C2_API_KEY=KEY, C2WS_URL=server.url, C2WS_CONFIG=os.devnull,
                       **extra_env)
    return subprocess.Popen([sys.executable, "-m", "c2ws", "subscribe", *args], env=environment,
                            cwd=REPO, stdout=stdout, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen[str], timeout: float = 50) -> str:
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"c2ws did not end within {timeout} s") from None
    assert process.returncode == 0, err
    return err


def test_3000_missed_signals_come_back_as_1000_replayed_a_gap_and_2000_backfilled(
    server: TestServer, tmp_path: Path,
) -> None:
    """A client comes back (--state) after 3,000 missed signals: the server replays 1000
    and says gap; --heal-gaps writes the other 2,000 from the REST history, exactly once
    (none the stream delivered, in this run or the last), in order, right after the gap
    and before the first signal after the hole, across a 429 and a 500."""
    state, output = tmp_path / "state.json", tmp_path / "signals.ndjson"
    common = ("7", "-c", "signal", "-o", "ndjson", "--state", str(state), "--timeout", "45")
    with output.open("ab") as out:
        first = subscribe(server, *common, "-n", "5", stdout=out)
        server.wait_for_subscribers(1, strategy_id=7)
        for n in range(5):
            server.publish(7, order_payload(7, n))
        finished(first)
    for n in range(5, 3005):  # missed: 1000 replayable, 2000 beyond the replay limit
        server.publish(7, order_payload(7, n))
    server.fail_next_rest_requests(429, 500, retry_after=0)
    with output.open("ab") as out:
        second = subscribe(server, *common, "--heal-gaps", "-n", "1001", stdout=out)
        server.wait_for_subscribers(1, strategy_id=7)
        server.publish(7, order_payload(7, 3005))  # the first signal after the hole
        err = finished(second)
    written = lines(output.read_text())
    kinds = [line["msg_type"] for line in written]
    assert kinds == (["strategy.signal"] * 1005 + ["gap"] + ["backfill.order"] * 2000
                     + ["strategy.signal"])
    signals = [line for line in written if line["msg_type"] == "strategy.signal"]
    assert [line["seq_id"] for line in signals] == [*range(1, 1006), 3006]
    backfill = [line for line in written if line["msg_type"] == "backfill.order"]
    assert [line["payload"]["SignalId"] for line in backfill] == [9000 + n for n in
                                                                  range(1005, 3005)]
    every_id = [line["payload"]["SignalId"] for line in signals + backfill]
    assert sorted(every_id) == [9000 + n for n in range(3006)]  # each exactly once
    gap = written[1005]
    assert (gap["missing"]["after_seq_id"], gap["missing"]["before_seq_id"]) == (1005, 3006)
    assert backfill[0]["gap"] == gap["missing"] and backfill[0]["strategy_id"] == 7
    assert backfill[0]["window"]["margin_seconds"] == 60
    statuses = [r.status for r in server.rest_requests()
                if r.path.endswith("GetStrategyHistoricalOrders")]
    assert statuses[:2] == [429, 500] and statuses[-1] == 200
    assert "backfilled the gap on strategy.signal:7 between seq 1005 and 3006: 2000" in err
    assert "widened by 60" in err


def test_snapshot_lines_precede_the_live_stream(server: TestServer) -> None:
    for _ in range(40):
        server.publish(11)
    book = server.open_positions(11)
    process = subscribe(server, "11", "-o", "ndjson", "--snapshot", "-n", "2",
                        "--timeout", "45", stdout=subprocess.PIPE)
    server.wait_for_subscribers(1, strategy_id=11, channel="positions")
    # Published once the snapshot was taken: it holds the book as it was.
    server.wait_for(lambda: [r for r in server.rest_requests()
                             if r.path.endswith("GetStrategyOpenPositions")])
    server.publish(11, order_payload(11, 1))
    server.publish_position(11, {"StrategyId": 11, "Quantity": 3, "AvgPx": 1.5,
                                 "C2Symbol": {"FullSymbol": "@ESZ6"}})
    out, err = process.communicate(timeout=50)
    assert process.returncode == 0, err
    written = lines(out)
    assert [line["msg_type"] for line in written] == [
        "positions.snapshot", "strategy.signal", "strategy.positions"]
    assert written[0]["strategy_id"] == 11 and written[0]["payload"] == book
    # Without --snapshot, NDJSON has none.
    plain = subscribe(server, "11", "-o", "ndjson", "-n", "1", "--timeout", "45",
                      stdout=subprocess.PIPE)
    server.wait_for_subscribers(1, strategy_id=11, channel="signal")
    server.publish(11, order_payload(11, 2))
    out, err = plain.communicate(timeout=50)
    assert plain.returncode == 0, err
    assert [line["msg_type"] for line in lines(out)] == ["strategy.signal"]


@pytest.mark.c2_server_options(strategies=(7,), replay_limit=5)
@pytest.mark.parametrize("healed", [True, False])
def test_fail_on_gap_fails_only_for_a_gap_that_was_not_healed(
    server: TestServer, tmp_path: Path, healed: bool,
) -> None:
    state = tmp_path / "state.json"
    common = ("7", "-c", "signal", "-o", "ndjson", "--state", str(state), "--timeout", "45")
    with (tmp_path / "out.ndjson").open("ab") as out:
        first = subscribe(server, *common, "-n", "1", stdout=out)
        server.wait_for_subscribers(1, strategy_id=7)
        server.publish(7, order_payload(7, 0))
        finished(first)
    for n in range(1, 12):
        server.publish(7, order_payload(7, n))
    if not healed:  # every try of the backfill fails: retries, then backfill.failed
        server.fail_next_rest_requests(*[503] * 12, retry_after=0)
    process = subscribe(server, *common, "--heal-gaps", "--fail-on-gap",
                        stdout=subprocess.PIPE)
    server.wait_for_subscribers(1, strategy_id=7)
    server.publish(7, order_payload(7, 12))
    out, err = process.communicate(timeout=50) if not healed else ("", "")
    if healed:
        reader = process
        assert reader.stdout is not None
        got = [json.loads(reader.stdout.readline()) for _ in range(5 + 1 + 6 + 1)]
        reader.terminate()
        _, err = reader.communicate(timeout=30)
        assert [g["msg_type"] for g in got] == (["strategy.signal"] * 5 + ["gap"]
                                               + ["backfill.order"] * 6 + ["strategy.signal"])
        assert reader.returncode == ExitCode.TERMINATED
    else:
        assert process.returncode == ExitCode.GAP, err
        kinds = [line["msg_type"] for line in lines(out)]
        assert kinds == ["strategy.signal"] * 5 + ["gap", "backfill.failed", "strategy.signal"]
        assert "BACKFILL FAILED" in err and "--fail-on-gap" in err


def test_a_table_snapshot_never_makes_the_live_stream_wait(server: TestServer) -> None:
    """snapshot="reconnect" (the table's): the REST API answering slowly must not hold
    back the live stream; the snapshot comes to on_event once it is taken."""
    import c2ws
    from c2ws import events as ev

    server.slow_rest_requests(30)  # far longer than this test waits for its signal
    seen: list[ev.Event] = []
    with c2ws.stream([11], ["signal"], api_key=KEY, url=server.url, snapshot="reconnect",
                     on_event=seen.append, timeout=25) as stream:
        server.wait_for_subscribers(1)
        server.publish(11)
        first = next(iter(stream))
        assert first.seq_id == 1
        # The snapshot is still being answered: it was not waited for.
        assert not any(isinstance(e, (ev.PositionsSnapshot, ev.SnapshotFailed)) for e in seen)


def test_a_closed_stream_leaves_no_snapshot_thread_running(server: TestServer,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """close() waits for the table's snapshot thread (bounded by
    spec.SNAPSHOT_STOP_WAIT_SECONDS): a daemon thread still importing httpx or building
    its TLS context when the interpreter exits crashed a CLI run with SIGSEGV."""
    import threading

    import c2ws
    from c2ws import spec

    monkeypatch.setattr(spec, "SNAPSHOT_STOP_WAIT_SECONDS", 45.0)  # any machine's pace
    server.slow_rest_requests(0.5)  # the snapshot is still being taken at close()
    with c2ws.stream([11], ["signal"], api_key=KEY, url=server.url, snapshot="reconnect",
                     timeout=25) as stream:
        server.wait_for_subscribers(1)
        server.publish(11)
        assert next(iter(stream)).seq_id == 1
        assert any(t.name == "c2ws-snapshot" for t in threading.enumerate())
    assert not [t for t in threading.enumerate() if t.name == "c2ws-snapshot"]


FINALIZED = "c2ws-test: the interpreter finalized"


def test_a_table_run_that_leaves_its_snapshot_request_in_flight_ends_without_finalizing(
        server: TestServer, tmp_path: Path) -> None:
    """A REST server slower than spec.SNAPSHOT_STOP_WAIT_SECONDS leaves the table's
    positions snapshot in flight on its daemon thread when the run ends.  The run then
    leaves by os._exit, its output written and its status kept, so the interpreter's
    finalization (OpenSSL's clean-up among it) never runs under a thread inside a
    request.  A sitecustomize's exit hook shows whether finalization ran; the same run
    with a prompt REST server shows it does otherwise."""
    (tmp_path / "sitecustomize.py").write_text(
        f"import atexit, sys\natexit.register(lambda: sys.stderr.write({FINALIZED!r} + '\\n'))\n")

    def table_run(slow: bool) -> tuple[str, str]:
        received = server.rest_requests_received()
        server.slow_rest_requests(120 if slow else 0)
        output = tmp_path / "table.out"
        with output.open("w") as stdout:
            process = subscribe(server, "11", "-o", "table", "-n", "1", "--timeout", "45",
                                stdout=stdout,
                                PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
            # The snapshot request has come in (and, when slow, is held) before the
            # signal that ends the run is published.
            server.wait_for(lambda: server.rest_requests_received() > received)
            server.wait_for_subscribers(1, strategy_id=11, channel="signal")
            server.publish(11, order_payload(11, 1))
            err = finished(process)
        return output.read_text(), err

    try:
        out, err = table_run(slow=True)
        assert "@ESZ6" in out, out  # the signal's row: the output was written
        assert FINALIZED not in err, err
        out, err = table_run(slow=False)
        assert "@ESZ6" in out, out
        assert FINALIZED in err, err
    finally:
        server.slow_rest_requests(0)
