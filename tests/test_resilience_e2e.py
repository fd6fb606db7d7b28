"""Never lose a signal: the real CLI against the reference server over 127.0.0.1, with
drops, silences, restarts, kill -9, slow readers and gaps.  Every wait is for an event
(a line on stdout, a connection record), bounded by a generous deadline."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from c2ws import spec
from c2ws.exitcodes import ExitCode
from c2ws.server.app import ReferenceServer, ServerConfig
from c2ws.testing import ConnectionEnd, ConnectionRecord, TestServer

KEY = "resilience-key-5678"
REPO = Path(__file__).resolve().parent.parent
FAST = ("--max-backoff", "0.1", "--silence-timeout", "2")

# Sixty strategies (two connections' worth with both channels), quick heartbeats.
pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=tuple(range(1, 61)),
                                           heartbeat_interval=0.5, heartbeat_grace=1.0,
                                           lifetime=240)


def order(strategy_id: int, n: int) -> dict[str, Any]:
    return {"StrategyId": strategy_id, "Side": "1" if n % 2 else "2", "OrderType": "1",
            "OrderQuantity": 1 + n % 5, "C2Symbol": {"FullSymbol": "@ESZ6"}}


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def start(server: TestServer | ReferenceServer, *args: str,
          env: Mapping[str, str] | None = None, **popen: Any) -> subprocess.Popen[bytes]:
    """c2ws subscribe against ``server``, with no proxy settings but those in ``env``."""
    unwanted = {"C2_API_KEY", "C2WS_URL", *PROXY_VARIABLES, *map(str.upper, PROXY_VARIABLES)}
    environment = {k: v for k, v in os.environ.items() if k not in unwanted}
    environment.update(C2_API_KEY=KEY, C2WS_URL=server.url, **(env or {}))
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "c2ws", "subscribe", *args],
                            env=environment, cwd=REPO, **popen)


def outcome(process: subprocess.Popen[bytes], timeout: float = 45) -> tuple[int, str]:
    """The exit code and stderr of a run that must end by itself: killed if it does not,
    before pytest's own 60 s timeout could leave it running."""
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"c2ws did not end within {timeout} s") from None
    return process.returncode, err.decode()


class LineReader:
    """Reads a process's stdout continuously (a reader that keeps up), or not (paused).
    A last line without its newline (the process was killed in the middle of a write) is
    kept apart, in ``torn``."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.stream = process.stdout
        self.lines: list[dict[str, Any]] = []
        self.torn = b""
        self.running = threading.Event()
        self.running.set()
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for raw in self.stream:
            self.running.wait()
            with self.changed:
                if not raw.endswith(b"\n"):
                    self.torn = raw  # the end of the stream: nothing follows
                else:
                    try:
                        self.lines.append(json.loads(raw))
                    except ValueError:  # kept, so that a failure shows it
                        self.lines.append({"not json": raw.decode("utf-8", "replace")})
                self.changed.notify_all()

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool],
                 timeout: float = 40) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self.lines), timeout):
                raise AssertionError(f"the output never satisfied the condition "
                                     f"({len(self.lines)} lines, the last: {self.lines[-3:]})")


def seqs_by_strategy(lines: list[dict[str, Any]]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = defaultdict(list)
    for line in lines:
        if line["msg_type"] == spec.CHANNEL_SIGNAL:
            found[line["payload"]["StrategyId"]].append(line["seq_id"])
    return dict(found)


def wait_subscribed(server: TestServer, connections: int, subscriptions: int,
                    after: int = 0) -> list[ConnectionRecord]:
    """Wait until ``connections`` open connections numbered above ``after`` hold
    ``subscriptions`` subscriptions between them."""
    def ready() -> list[ConnectionRecord] | None:
        records = [r for r in server.connections(open_only=True) if r.number > after]
        if len(records) == connections and sum(len(r.subscriptions) for r in records) == (
            subscriptions
        ):
            return records
        return None
    return server.wait_for(ready, timeout=30)


def test_a_dropped_connection_is_resumed_with_nothing_lost_or_doubled(
    server: TestServer,
) -> None:
    process = start(server, "1", "-c", "signal", "-o", "ndjson", "-n", "20", *FAST)
    (first,) = wait_subscribed(server, 1, 1)
    for n in range(10):
        server.publish(1, order(1, n))
    server.drop_connections(0)
    for n in range(10, 20):  # published while c2ws is away: replayed on resume
        server.publish(1, order(1, n))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert [json.loads(line)["seq_id"] for line in out.splitlines()] == list(range(1, 21))
    assert b"reconnecting in" in err and b"attempt 1" in err
    resumed = [m for r in server.connections() if r.number > first.number for m in r.received
               if m.get("msg_type") == "subscription.request"]
    assert resumed and all(m["payload"]["resume_from"] == "10" for m in resumed[:1])


def test_chaos_every_signal_exactly_once_in_order(server: TestServer) -> None:
    """>= 5,000 signals over 3 strategies on 2 connections (120 subscriptions), published in
    25 bursts; between bursts the server drops connections at random points (every fourth
    time right inside the resubscription and replay), goes silent once, stops its
    heartbeats once and restarts once.  The output is every signal, once, in order."""
    rng = random.Random(20261125)
    strategies = (1, 2, 45)  # 1 and 2 on the first connection, 45 on the second
    rounds, per_round = 25, 210
    process = start(server, *map(str, range(1, 61)), "-o", "ndjson", *FAST)
    reader = LineReader(process)
    wait_subscribed(server, 2, 120)
    published: dict[int, int] = defaultdict(int)
    n = 0

    def publish(count: int) -> None:
        nonlocal n
        for _ in range(count):
            strategy = strategies[n % 3]
            server.publish(strategy, order(strategy, n))
            published[strategy] += 1
            n += 1

    faults: list[str] = []
    for index in range(rounds):
        newest = max(r.number for r in wait_subscribed(server, 2, 120))
        if index % 4 == 1:
            # Drop now; the two new connections drop again 4 frames in: inside the replay
            # of what is published meanwhile.
            server.drop_next_connections(4, connections=2)
            server.drop_connections(0)
            publish(60)
            wait_subscribed(server, 2, 120, after=newest + 2)
            publish(per_round - 60)
            faults.append("drop-in-replay")
        else:
            server.drop_connections(rng.randint(1, per_round))  # somewhere in the burst
            publish(per_round)
            faults.append("drop")
        if index == 8:
            server.stall()  # silence: c2ws must notice on its own and reconnect
            faults.append("silence")
            stalled = max(r.number for r in server.connections())
            publish(30)
            wait_subscribed(server, 2, 120, after=stalled)
            server.unstall()
        if index == 12:
            server.stop_heartbeats()
            faults.append("no-heartbeats")
        if index == 14:
            server.resume_heartbeats()
        if index == 16:
            server.restart()
            faults.append("restart")
    expected = sum(published.values())
    assert expected >= 5000
    # -n counts every message: stop after exactly what was published.
    reader.wait_for(lambda lines: len(lines) >= expected, timeout=120)
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    err = process.stderr.read().decode() if process.stderr else ""
    assert len(faults) >= 24 and "restart" in faults and "silence" in faults, faults
    by_strategy = seqs_by_strategy(reader.lines)
    assert set(by_strategy) == set(strategies)
    for strategy, seqs in by_strategy.items():
        assert seqs == list(range(1, published[strategy] + 1)), strategy  # none lost/doubled
    assert "GAP" not in err and "Traceback" not in err
    records = server.connections()
    ends = [r.end for r in records]
    assert ends.count(ConnectionEnd.DROPPED) >= 20 and ConnectionEnd.HEARTBEAT_TIMEOUT not in ends
    resumed_then_dropped = [
        r for r in records if r.end is ConnectionEnd.DROPPED and r.messages_sent == 4
        and any(m.get("payload", {}).get("resume_from") for m in r.received)
    ]
    assert resumed_then_dropped  # at least one drop came in the middle of a replay


def test_kill_9_three_times_with_state_and_appended_output_is_exactly_once(
    server: TestServer, tmp_path: Path,
) -> None:
    output, state = tmp_path / "signals.ndjson", tmp_path / "state.json"
    rng = random.Random(9)
    total = 1500
    stop_publishing = threading.Event()
    published = {1: 0, 45: 0}

    def publish() -> None:
        for n in range(total):
            strategy = 1 if n % 2 else 45
            server.publish(strategy, order(strategy, n))
            published[strategy] += 1
            time.sleep(0.002)
        stop_publishing.set()

    def run() -> subprocess.Popen[bytes]:
        with output.open("ab") as sink:
            return start(server, "1", "45", "-c", "signal", "-o", "ndjson", "--state",
                         str(state), *FAST, stdout=sink)

    def lines_now() -> int:
        return output.read_bytes().count(b"\n") if output.exists() else 0

    process = run()
    wait_subscribed(server, 1, 2)
    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    for _ in range(3):
        target = lines_now() + rng.randint(50, 300)
        server.wait_for(lambda target=target: lines_now() >= target, timeout=60)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        before = max(r.number for r in server.connections())
        process = run()
        wait_subscribed(server, 1, 2, after=before)
    publisher.join(120)
    assert stop_publishing.is_set()
    server.wait_for(lambda: lines_now() >= total, timeout=120)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == ExitCode.TERMINATED
    data = output.read_bytes()
    assert data.endswith(b"\n")  # no torn line
    lines = [json.loads(line) for line in data.splitlines()]
    by_strategy = seqs_by_strategy(lines)
    for strategy, count in published.items():
        assert by_strategy[strategy] == list(range(1, count + 1)), strategy
    # One more start appends nothing: the output file's tail and the state agree on
    # where the output stopped, even though SIGTERM may come between write and commit.
    with output.open("ab") as sink:
        again = start(server, "1", "45", "-c", "signal", "-o", "ndjson", "--state", str(state),
                      "--timeout", "1", stdout=sink)
    assert again.wait(30) == 0
    assert output.read_bytes() == data


def test_kill_9_with_state_to_a_pipe_repeats_at_most_the_uncommitted_messages(
    server: TestServer, tmp_path: Path,
) -> None:
    """--state with stdout a pipe: killed with SIGKILL three times at random points while
    it streams, and started again on a new pipe each time.  The reader sees every seq_id
    at least once; what each restart writes again is what the killed run wrote after its
    last group commit, never more than the documented bound; a stop by SIGTERM commits
    first, so the run after it repeats nothing."""
    state = tmp_path / "state.json"
    rng = random.Random(22)
    total = 1500
    published = {1: 0, 45: 0}
    stop_publishing = threading.Event()

    def publish() -> None:
        for n in range(total):
            strategy = 1 if n % 2 else 45
            server.publish(strategy, order(strategy, n))
            published[strategy] += 1
            time.sleep(0.002)
        stop_publishing.set()

    def run(*extra: str) -> tuple[subprocess.Popen[bytes], LineReader]:
        process = start(server, "1", "45", "-c", "signal", "-o", "ndjson", "--state",
                        str(state), *FAST, *extra)
        return process, LineReader(process)

    process, reader = run()
    wait_subscribed(server, 1, 2)
    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    runs: list[list[dict[str, Any]]] = []
    for _ in range(3):
        target = rng.randint(50, 300)
        reader.wait_for(lambda lines, target=target: len(lines) >= target)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        reader.thread.join(30)  # the pipe's end: every whole line the killed run wrote
        runs.append(reader.lines)
        before = max(r.number for r in server.connections())
        process, reader = run()
        wait_subscribed(server, 1, 2, after=before)
    publisher.join(120)
    assert stop_publishing.is_set()
    reader.wait_for(lambda lines: all(
        seqs and seqs[-1] == published[strategy]
        for strategy, seqs in seqs_by_strategy(lines).items()) and len(
            seqs_by_strategy(lines)) == 2, timeout=120)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == ExitCode.TERMINATED
    reader.thread.join(30)
    runs.append(reader.lines)
    seen: dict[int, set[int]] = defaultdict(set)
    for lines in runs:
        for strategy, seqs in seqs_by_strategy(lines).items():
            assert seqs == sorted(set(seqs)), strategy  # within a run: once, in order
            seen[strategy].update(seqs)
    for strategy, count in published.items():
        assert seen[strategy] == set(range(1, count + 1)), strategy  # at least once
    repeats = []
    for killed, restarted in itertools.pairwise(runs):
        last = {strategy: seqs[-1] for strategy, seqs in seqs_by_strategy(killed).items()}
        repeats.append(sum(1 for strategy, seqs in seqs_by_strategy(restarted).items()
                           for seq in seqs if seq <= last.get(strategy, 0)))
    assert max(repeats) <= spec.COMMIT_GROUP_MAX_MESSAGES, repeats
    # SIGTERM committed what was written: the next run has nothing to write again.
    process, reader = run("--timeout", "1")
    assert process.wait(30) == 0
    reader.thread.join(30)
    assert reader.lines == [] and reader.torn == b""


@pytest.mark.parametrize("unbuffered", [True, False], ids=["PYTHONUNBUFFERED", "buffered"])
def test_a_write_cut_short_by_a_full_disk_is_never_acknowledged(
    server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unbuffered: bool,
) -> None:
    """A file size limit (RLIMIT_FSIZE; Python ignores SIGXFSZ, so a write past it is
    short, then fails with EFBIG) stops stdout in the middle of the third line, as a
    nearly full disk does: exit 9 naming where the output ends, the cursor not past it,
    and the next run with the same --state and file delivers every signal exactly once."""
    import resource

    output, state = tmp_path / "signals.ndjson", tmp_path / "state.json"
    if unbuffered:
        monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    else:
        monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    # Lines of about 1,100 bytes: a limit of 2,500 falls inside the third.
    limit, padding = 2500, "x" * 900
    with output.open("ab") as sink:
        process = start(server, "1", "-c", "signal", "-o", "ndjson", "-n", "5", "--state",
                        str(state), *FAST, stdout=sink)
    # Set before anything is published: nothing reaches the output file before that.
    resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (limit, limit))
    wait_subscribed(server, 1, 1)
    for n in range(5):
        server.publish(1, {**order(1, n), "Note": padding})
    _, err = process.communicate(timeout=60)
    assert process.returncode == ExitCode.OUTPUT_FAILED, err
    # The third, cut short, and what had arrived after it when the run stopped.
    assert re.fullmatch(rb"c2ws: cannot write to stdout: File too large; output ends at "
                        rb"strategy\.signal:1 seq 2; [1-3] more received message\(s\) were not "
                        rb"written\n", err), err
    data = output.read_bytes()
    assert len(data) == limit and data.count(b"\n") == 2  # cut inside the third line

    with output.open("ab") as sink:  # the server replays 3 to 5 from resume_from 2
        again = start(server, "1", "-c", "signal", "-o", "ndjson", "-n", "3", "--state",
                      str(state), *FAST, stdout=sink)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert b"removed a torn last line" in err
    assert [json.loads(line)["seq_id"] for line in output.read_bytes().splitlines()] == [
        1, 2, 3, 4, 5]


def test_a_server_that_restarts_its_numbering_is_followed_after_a_sequence_reset(
    server: TestServer, tmp_path: Path,
) -> None:
    """The server restarts and loses its numbering while c2ws runs with --state and
    appends to a file: c2ws resumes from seq 5, gets 1, 2, 3 of the new numbering, and
    once the replay window is over writes a sequence.reset line and those three (said on
    stderr).  A second run resumes in the new numbering: nothing lost or doubled.
    Strategy 2's last line is older than strategy 1's reset, so reading the file's tail
    passes strategy 1's old, higher seq_ids on the way."""
    output, state = tmp_path / "signals.ndjson", tmp_path / "state.json"

    def run() -> subprocess.Popen[bytes]:
        with output.open("ab") as sink:
            return start(server, "1", "2", "-c", "signal", "-o", "ndjson", "--state",
                         str(state), *FAST, stdout=sink)

    def written() -> list[tuple[int, int | None]]:
        lines = [json.loads(line) for line in output.read_bytes().splitlines()]
        return [(line["payload"]["StrategyId"], line["seq_id"]) if "payload" in line
                else (line["reset"]["strategy_id"], None) for line in lines]

    process = run()
    wait_subscribed(server, 1, 2)
    server.publish(2, order(2, 0))
    for n in range(5):
        server.publish(1, order(1, n))
    server.wait_for(lambda: len(written()) == 6, timeout=60)
    before = max(r.number for r in server.connections())
    server.restart(renumber=True)
    wait_subscribed(server, 1, 2, after=before)  # resumed from 5 (and 1): nothing to replay
    for n in range(5, 8):
        server.publish(1, order(1, n))
    new_numbering = [(2, 1)] + [(1, n) for n in range(1, 6)] + [(1, None)] + [
        (1, n) for n in range(1, 4)]
    server.wait_for(lambda: written() == new_numbering, timeout=60)  # after the window
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == ExitCode.TERMINATED
    err = process.stderr.read().decode() if process.stderr else ""
    assert "SEQUENCE RESET on strategy.signal:1: seq 1 came after 5" in err
    reset = json.loads(output.read_bytes().splitlines()[6])
    assert reset == {"msg_type": "sequence.reset", "reset": {
        "strategy_id": 1, "channel": "strategy.signal", "after_seq_id": 5,
        "after_timestamp": reset["reset"]["after_timestamp"], "first_seq_id": 1,
        "first_timestamp": reset["reset"]["first_timestamp"], "released": 3}}
    for n in range(8, 10):  # published while no run listens: 4 and 5, replayed next run
        server.publish(1, order(1, n))
    before = max(r.number for r in server.connections())
    again = run()
    wait_subscribed(server, 1, 2, after=before)
    server.publish(1, order(1, 10))  # live, after the replay
    server.wait_for(lambda: len(written()) >= len(new_numbering) + 3, timeout=60)
    again.send_signal(signal.SIGTERM)
    assert again.wait(30) == ExitCode.TERMINATED
    assert written() == [*new_numbering, (1, 4), (1, 5), (1, 6)]
    resumed = [m["payload"] for r in server.connections() if r.number > before
               for m in r.received if m.get("msg_type") == "subscription.request"
               and m["payload"]["action"] == "subscribe"]
    assert {p["strategy_id"]: p.get("resume_from") for p in resumed} == {1: "3", 2: "1"}


def test_a_stalled_reader_costs_no_heartbeat_and_loses_nothing(server: TestServer) -> None:
    """The reader stops for longer than the heartbeat grace under a fast feed: c2ws keeps
    answering heartbeats, closes cleanly once --max-buffer is passed, and resumes where
    the output stopped once the reader is back."""
    max_buffer = 100
    process = start(server, "1", "-c", "signal", "-o", "ndjson", "--max-buffer",
                    str(max_buffer), *FAST)
    reader = LineReader(process)
    wait_subscribed(server, 1, 1)
    reader.running.clear()  # the reader stops
    for n in range(700):
        server.publish(1, order(1, n))
        if n % 10 == 0:
            time.sleep(0.005)  # 3 s or more of a fast feed: longer than the 1 s grace
    server.wait_for(lambda: any(not r.open for r in server.connections()), timeout=60)
    reader.running.set()
    reader.wait_for(lambda lines: len(lines) >= 700)
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    err = process.stderr.read().decode() if process.stderr else ""
    assert [line["seq_id"] for line in reader.lines] == list(range(1, 701))
    closed = [r for r in server.connections() if not r.open]
    assert closed and all(r.end is not ConnectionEnd.HEARTBEAT_TIMEOUT for r in closed)
    assert closed[0].client_close_code == spec.CLOSE_NORMAL
    behind = [int(n) for n in re.findall(r"stdout is (\d+) messages behind", err)]
    assert behind and max(behind) <= max_buffer + 500  # bounded by the backlog, not the feed
    assert "resumes where the output stopped" in err


@pytest.mark.c2_server_options(strategies=(7,), replay_limit=5)
def test_fail_on_gap_writes_both_ends_of_the_hole_then_exits_11(
    server: TestServer, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    process = start(server, "7", "-c", "signal", "-o", "ndjson", "-n", "3", "--state",
                    str(state))
    wait_subscribed(server, 1, 1)
    for n in range(3):
        server.publish(7, order(7, n))
    assert process.wait(30) == 0
    for n in range(3, 23):  # 20 signals while nobody listens; 5 can be replayed
        server.publish(7, order(7, n))
    before = max(r.number for r in server.connections())
    process = start(server, "7", "-c", "signal", "-o", "ndjson", "--state", str(state),
                    "--fail-on-gap")
    wait_subscribed(server, 1, 1, after=before)
    server.publish(7, order(7, 23))  # the first live signal after the hole
    out, err = process.communicate(timeout=60)
    assert process.returncode == ExitCode.GAP, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line.get("seq_id") for line in lines] == [4, 5, 6, 7, 8, None, 24]
    gap = lines[5]
    assert gap["msg_type"] == "gap"
    assert {k: gap["missing"][k] for k in ("strategy_id", "after_seq_id", "before_seq_id")} == {
        "strategy_id": 7, "after_seq_id": 8, "before_seq_id": 24}
    assert gap["missing"]["after_timestamp"] == lines[4]["timestamp"]
    assert gap["missing"]["before_timestamp"] == lines[6]["timestamp"]
    assert b"GAP on strategy.signal:7" in err and b"--fail-on-gap" in err


def test_a_state_file_resumes_the_next_run_where_the_last_one_stopped(
    server: TestServer, tmp_path: Path,
) -> None:
    state = tmp_path / "state.json"
    process = start(server, "1", "-c", "signal", "-o", "ndjson", "-n", "3", "--state",
                    str(state))
    wait_subscribed(server, 1, 1)
    for n in range(5):
        server.publish(1, order(1, n))
    out, _ = process.communicate(timeout=30)
    assert [json.loads(line)["seq_id"] for line in out.splitlines()] == [1, 2, 3]
    second = start(server, "1", "-c", "signal", "-o", "ndjson", "-n", "2", "--state",
                   str(state))
    out, err = second.communicate(timeout=30)
    assert second.returncode == 0, err
    assert [json.loads(line)["seq_id"] for line in out.splitlines()] == [4, 5]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "corrupt"),
        ('{"format": "c2ws-state", "version": 1, "endpoint": "wss://elsewhere/ws", '
         '"key_fingerprint": "0123456789abcdef", "cursors": {}, "updated": "x"}', "endpoint"),
    ],
)
def test_a_corrupt_or_foreign_state_file_is_a_clear_error(
    server: TestServer, tmp_path: Path, content: str, message: str,
) -> None:
    state = tmp_path / "state.json"
    state.write_text(content)
    process = start(server, "1", "--state", str(state), "-o", "ndjson")
    _, err = process.communicate(timeout=30)
    assert process.returncode == ExitCode.STATE_FAILED
    assert message in err.decode() and str(state) in err.decode()
    assert KEY not in err.decode() and "Traceback" not in err.decode()
    assert state.read_text() == content  # never silently reset


def test_two_runs_cannot_share_a_state_file(server: TestServer, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    first = start(server, "1", "--state", str(state), "-o", "ndjson")
    wait_subscribed(server, 1, 2)
    second = start(server, "1", "--state", str(state), "-o", "ndjson")
    _, err = second.communicate(timeout=30)
    assert second.returncode == ExitCode.STATE_FAILED
    assert "another c2ws run" in err.decode()
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == ExitCode.TERMINATED


@pytest.mark.parametrize("second_output", ["ndjson", "csv"])
def test_a_run_refused_by_the_lock_leaves_the_running_runs_output_untouched(
    server: TestServer, tmp_path: Path, second_output: str,
) -> None:
    """Two runs, one --state, one >> file: the second is refused before it reads the file
    back (which would cut the line the first is writing) or writes to it (a CSV header)."""
    output, state = tmp_path / "signals.ndjson", tmp_path / "state.json"

    def lines_now() -> int:
        return output.read_bytes().count(b"\n")

    with output.open("ab") as sink:
        first = start(server, "1", "-c", "signal", "-o", "ndjson", "--state", str(state),
                      *FAST, stdout=sink)
    try:
        wait_subscribed(server, 1, 1)
        for n in range(3):
            server.publish(1, order(1, n))
        server.wait_for(lambda: lines_now() >= 3, timeout=60)
        # The first run caught in the middle of a line, as a second run may find it.
        with output.open("ab") as sink:
            sink.write(b'{"msg_type":"strategy.signal","id":"msg_4","seq_id":4,"payl')
        before = output.read_bytes()
        with output.open("ab") as sink:
            second = start(server, "1", "-c", "signal", "-o", second_output, "--state",
                           str(state), stdout=sink)
        _, err = second.communicate(timeout=60)
        assert second.returncode == ExitCode.STATE_FAILED, err
        assert "in use by another c2ws run" in err.decode()
        assert output.read_bytes() == before
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)
    assert first.returncode == ExitCode.TERMINATED


@pytest.mark.c2_server_options(strategies=tuple(range(1, 126)))
def test_250_subscriptions_spread_over_3_connections(server: TestServer) -> None:
    process = start(server, *map(str, range(1, 126)), "-o", "ndjson", "-n", "3")
    records = wait_subscribed(server, 3, 250)
    assert sorted(len(r.subscriptions) for r in records) == [83, 83, 84]
    for strategy in (1, 60, 125):  # one on each connection, merged into one output
        server.publish(strategy, order(strategy, 0))
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert sorted(json.loads(line)["payload"]["StrategyId"] for line in out.splitlines()) == [
        1, 60, 125]


def test_more_than_1000_subscriptions_is_a_usage_error_saying_why() -> None:
    env = {k: v for k, v in os.environ.items() if k != "C2WS_URL"} | {"C2_API_KEY": KEY}
    result = subprocess.run([sys.executable, "-m", "c2ws", "subscribe", *map(str, range(1, 502)),
                             "-o", "ndjson"],
                            env=env, cwd=REPO, capture_output=True, timeout=30, check=False)
    assert result.returncode == ExitCode.USAGE
    text = " ".join(result.stderr.decode().split())
    assert "1002 subscriptions" in text and "at most 1000" in text and "-c" in text


def test_a_wrong_key_is_not_retried(server: TestServer) -> None:
    env = {k: v for k, v in os.environ.items()} | {"C2_API_KEY": "wrong-key-0000",
                                                   "C2WS_URL": server.url}
    result = subprocess.run([sys.executable, "-m", "c2ws", "subscribe", "1", "-o", "ndjson"],
                            env=env, cwd=REPO, capture_output=True, timeout=30, check=False)
    assert result.returncode == ExitCode.AUTH_FAILED
    assert b"reconnecting" not in result.stderr


@contextmanager
def occupied(**config: Any) -> Iterator[ReferenceServer]:
    """A server that allows one connection per key, that one taken: every connection
    c2ws opens is answered with HTTP 429."""
    from websockets.sync.client import connect

    settings = ServerConfig(api_keys=(KEY,), feed="none", max_connections_per_key=1,
                            max_lifetime=60, **config)
    with ReferenceServer(settings) as limited, connect(
        limited.url, additional_headers={"Authorization": f"Bearer {KEY}"}
    ) as occupying:
        occupying.recv(timeout=5)  # connection.connected: the key's one place is taken
        yield limited


def test_a_busy_server_is_retried_after_a_longer_wait_then_given_up() -> None:
    with occupied() as limited:
        process = start(limited, "1", "--max-retries", "1", "--max-backoff", "1")
        _, err = process.communicate(timeout=30)
    assert process.returncode == ExitCode.SERVER_BUSY
    waits = [float(w) for w in re.findall(rb"reconnecting in ([\d.]+) s", err)]
    # Busy: between half the step and the step (here capped at 1 s); a plain drop's
    # first wait would be up to 0.5 s from 0.
    assert len(waits) == 1 and 0.5 <= waits[0] <= 1.0
    assert b"HTTP 429" in err


@pytest.mark.parametrize(
    ("retry_after", "max_backoff", "said"),
    [
        (120, "1", "reconnecting in 1.0 s (attempt 1; the server asked for 120 s (Retry-After), "
                   "capped by --max-backoff)"),
        (1, "30", "reconnecting in 1.0 s (attempt 1; the server asked for 1 s (Retry-After))"),
    ],
)
def test_retry_after_sets_the_wait_within_max_backoff_and_the_line_says_so(
    retry_after: int, max_backoff: str, said: str,
) -> None:
    with occupied(retry_after=retry_after) as limited:
        process = start(limited, "1", "--max-retries", "1", "--max-backoff", max_backoff)
        code, err = outcome(process)
    assert code == ExitCode.SERVER_BUSY
    (line,) = [line for line in err.splitlines() if "reconnecting in" in line]
    assert line.endswith(said) and "HTTP 429" in line


def test_acked_then_closed_at_once_every_time_ends_after_max_retries(
    server: TestServer,
) -> None:
    """The server accepts, acks, then closes 50 ms later, every time: each such connection
    is a failed attempt, so --max-retries 3 ends the run after 4 connections."""
    server.close_after_acks(0.05)
    process = start(server, "1", "-c", "signal", "-o", "ndjson", "--max-retries", "3", *FAST)
    code, err = outcome(process)
    assert code == ExitCode.SERVER_BUSY, err
    records = server.connections()
    assert len(records) == 4
    assert all(r.end is ConnectionEnd.CLOSED_BY_SERVER and r.subscriptions for r in records)
    assert [f"attempt {n})" in err for n in (1, 2, 3)] == [True, True, True]


@pytest.mark.c2_server_options(strategies=tuple(range(1, 251)))
def test_one_of_three_connections_closed_after_every_ack_ends_the_run_and_is_named(
    server: TestServer,
) -> None:
    """250 subscriptions over 3 connections; the server closes the third with 1008 right
    after its acks, every time.  --max-retries 3 ends the run with that connection's exit
    code (5), and stderr names the connection and the subscriptions it left unserved."""
    server.close_after_acks(0.05, strategies=[250])  # the third connection's last one
    process = start(server, *map(str, range(1, 251)), "-c", "signal", "-o", "ndjson",
                    "--max-retries", "3", *FAST)
    code, err = outcome(process)
    records = server.connections()
    assert code == ExitCode.SERVER_BUSY, err
    closed = [r for r in records if r.end is ConnectionEnd.CLOSED_BY_SERVER]
    assert len(closed) == 4 and {len(r.subscriptions) for r in closed} == {83}
    assert ("c2ws: connection 3 of 3 gave up after 4 failed attempt(s) in a row: 83 "
            "subscription(s) were not served at the end (strategy.signal:168, "
            "strategy.signal:169, strategy.signal:170, strategy.signal:171, "
            "strategy.signal:172 and 78 more); last: the server closed the connection "
            "(code 1008") in err
    assert "connection 1 of 3" not in err and "connection 2 of 3" not in err


def test_a_ws_url_through_an_http_proxy_is_warned_about_once_without_the_key(
    server: TestServer,
) -> None:
    from test_connection import RawServer, connect_proxy

    seen: list[bytes] = []
    with RawServer(connect_proxy(seen)) as proxy:
        process = start(server, "1", "-c", "signal", "-o", "ndjson", "-n", "1", *FAST,
                        env={"http_proxy": f"http://user:proxy-pass@127.0.0.1:{proxy.port}"})
        (first,) = wait_subscribed(server, 1, 1)
        server.drop_connections(0)  # a second connection: still one warning
        wait_subscribed(server, 1, 1, after=first.number)
        server.publish(1, order(1, 0))
        code, err = outcome(process)
    assert code == 0, err
    assert len(seen) == 2  # both connections went through the proxy
    warnings = [line for line in err.splitlines() if "clear text" in line]
    assert len(warnings) == 1, err
    assert warnings[0].startswith(f"c2ws: WARNING: http_proxy sends this ws:// connection "
                                  f"through the proxy 127.0.0.1:{proxy.port}: the API key")
    assert KEY not in err and "proxy-pass" not in err


def test_bursts_larger_than_the_buffer_reach_a_reader_that_keeps_reading(
    server: TestServer,
) -> None:
    """--max-buffer far below the burst: while the reader makes progress c2ws lets it
    catch up, and when it falls behind all the same it closes and resumes; either way
    every signal arrives, once, in order."""
    process = start(server, "1", "-c", "signal", "-o", "ndjson", "--max-buffer", "100", *FAST)
    reader = LineReader(process)
    wait_subscribed(server, 1, 1)
    total = 3000
    for first in range(0, total, 200):  # bursts of 200: a resume never misses 1000
        for n in range(first, first + 200):
            server.publish(1, order(1, n))
        reader.wait_for(lambda lines, done=first + 200: len(lines) >= done)
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    assert [line["seq_id"] for line in reader.lines] == list(range(1, total + 1))
