"""``c2ws subscribe`` end to end: the real CLI process against the reference server
over real sockets on 127.0.0.1."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from c2ws import spec
from c2ws import stream as library_stream
from c2ws.cli.run import ForwardEvents, SubscribeRun
from c2ws.exitcodes import ExitCode
from c2ws.render import Renderer
from c2ws.render.diagnostics import Diagnostics
from c2ws.render.ndjson import NdjsonRenderer
from c2ws.render.table import TableRenderer
from c2ws.server.app import ReferenceServer, ServerConfig
from c2ws.testing import ConnectionRecord, TestServer

KEY = "e2e-secret-key-1234"
VISIBLE = (12345678, 23456789)
HIDDEN = 99999999
REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=VISIBLE, heartbeat_interval=0.5,
                                           heartbeat_grace=1.0, lifetime=120)


def c2ws(server: TestServer | ReferenceServer | None, *args: str, key: str | None = KEY,
         url: str | None = None, **popen: Any) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("C2_API_KEY", "C2WS_URL")}
    if key is not None:
        env["C2_API_KEY"] = key
    env["C2WS_URL"] = url or (server.url if server else "ws://127.0.0.1:9/ws")
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-m", "c2ws", *args], env=env, cwd=REPO, **popen)


def finish(process: subprocess.Popen[bytes], timeout: float = 20) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out.decode(), err.decode()


def order(strategy_id: int, side: str) -> dict[str, Any]:
    return {"StrategyId": strategy_id, "Side": side, "OrderType": "1", "OrderQuantity": 2,
            "C2Symbol": {"FullSymbol": "@ESZ6", "SymbolType": "future"}, "Note": "ünïcode ✓"}


def only_connection(server: TestServer, subscriptions: int) -> ConnectionRecord:
    """Wait until one connection holds ``subscriptions`` subscriptions, and return it."""
    def ready() -> ConnectionRecord | None:
        records = server.connections(open_only=True)
        if records and len(records[-1].subscriptions) >= subscriptions:
            return records[-1]
        return None
    return server.wait_for(ready, timeout=15)


def last_record(server: TestServer) -> ConnectionRecord:
    return server.connections()[-1]


def wait_closed(server: TestServer) -> ConnectionRecord:
    return server.wait_for(lambda: (r := last_record(server)) and not r.open and r, timeout=10)


def sent_requests(record: ConnectionRecord, action: str) -> list[dict[str, Any]]:
    return [m for m in record.received if m.get("msg_type") == "subscription.request"
            and m["payload"]["action"] == action]


def test_ndjson_lines_are_exactly_the_messages_the_server_sent(server: TestServer) -> None:
    process = c2ws(server, "subscribe", str(VISIBLE[0]), "-o", "ndjson", "-n", "4")
    only_connection(server, 2)
    published = [
        server.publish(VISIBLE[0], order(VISIBLE[0], "1")),
        server.publish(VISIBLE[1], order(VISIBLE[1], "1")),  # not subscribed
        server.publish_position(VISIBLE[0], {"StrategyId": VISIBLE[0], "Quantity": 2,
                                             "C2Symbol": {"FullSymbol": "@ESZ6"}}),
        server.publish(VISIBLE[0], order(VISIBLE[0], "2")),
        server.publish(VISIBLE[0], order(VISIBLE[0], "1")),
    ]
    code, out, err = finish(process)
    assert code == 0, err
    lines = out.splitlines()
    assert [json.loads(line) for line in lines] == [published[i] for i in (0, 2, 3, 4)]
    assert all(" " not in line.split('"payload"')[0] for line in lines)  # compact
    assert "Traceback" not in err


@pytest.mark.parametrize("pure_python", [False, True], ids=["compiled-core", "pure-python"])
def test_a_burst_comes_out_whole_and_in_order(server: TestServer, pure_python: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Published faster than one read at a time: bursts take the run path, with the
    compiled core (when built) and with its pure-Python twins (c2ws.speedups)."""
    monkeypatch.setenv("C2WS_PURE_PYTHON", "1" if pure_python else "0")
    process = c2ws(server, "subscribe", str(VISIBLE[0]), "-c", "signal", "-o", "ndjson",
                   "-n", "1500")
    only_connection(server, 1)
    ascii_order = {**order(VISIBLE[0], "1"), "Note": "plain ASCII"}  # as a burst needs
    published = [server.publish(VISIBLE[0], ascii_order) for _ in range(1500)]
    code, out, err = finish(process, timeout=60)
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == published


def test_requests_follow_the_protocol(server: TestServer) -> None:
    process = c2ws(server, "subscribe", str(VISIBLE[0]), "-c", "signal", "-c",
                   "strategy.positions", "-o", "ndjson", "--timeout", "0.5")
    code, _, err = finish(process)
    assert code == 0, err
    record = wait_closed(server)
    subscribes = sent_requests(record, "subscribe")
    assert {(m["payload"]["channel"], m["payload"]["strategy_id"]) for m in subscribes} == {
        (spec.CHANNEL_SIGNAL, VISIBLE[0]), (spec.CHANNEL_POSITIONS, VISIBLE[0])}
    ids = [m["request_id"] for m in record.received if "request_id" in m]
    assert len(ids) == len(set(ids)) and all(len(i) <= 50 for i in ids)
    assert len(sent_requests(record, "unsubscribe")) == 2
    assert record.client_close_code == 1000


def test_include_control_adds_connected_and_acks(server: TestServer) -> None:
    process = c2ws(server, "subscribe", str(VISIBLE[0]), "-c", "signal", "-o", "ndjson",
                   "--include-control", "-n", "1")
    only_connection(server, 1)
    server.publish(VISIBLE[0])
    code, out, err = finish(process)
    assert code == 0, err
    types = [json.loads(line)["msg_type"] for line in out.splitlines()]
    assert types[0] == "connection.connected"
    assert "subscription.ack" in types and types[-1] == "strategy.signal"


def test_count_and_timeout(server: TestServer) -> None:
    code, out, _ = finish(c2ws(server, "subscribe", str(VISIBLE[0]), "-o", "ndjson",
                               "--timeout", "0.3"))
    assert (code, out) == (0, "")
    code, out, err = finish(c2ws(server, "subscribe", str(VISIBLE[0]), "-o", "ndjson",
                                 "-n", "3", "--timeout", "0.5"))
    assert code == ExitCode.COUNT_NOT_REACHED
    assert "0 of 3" in err


# The acks counted below are the proof; a long grace only keeps a loaded machine (a
# client not scheduled for a second) from having the server close the connection.
@pytest.mark.c2_server_options(heartbeat_grace=10.0)
def test_heartbeats_are_acked_while_stdout_is_blocked(server: TestServer) -> None:
    # Nobody reads stdout: after ~64 KiB the pipe is full and every write blocks.
    process = c2ws(server, "subscribe", str(VISIBLE[0]), "-c", "signal", "-o", "ndjson")
    only_connection(server, 1)
    published = [server.publish(VISIBLE[0]) for _ in range(300)]
    acks_before = last_record(server).heartbeat_acks
    # 0.5 s heartbeats with 1 s grace: the server would close a silent client quickly.
    server.wait_for(lambda: last_record(server).heartbeat_acks >= acks_before + 6, timeout=15)
    assert last_record(server).open
    process.send_signal(signal.SIGTERM)
    code, out, err = finish(process)
    assert code == ExitCode.TERMINATED, err
    # The signal cuts the blocked write short: a pipe's last line may be cut (README,
    # --timeout); every line before it is whole.
    whole = out if out.endswith("\n") else out[: out.rfind("\n") + 1]
    seqs = [json.loads(line)["seq_id"] for line in whole.splitlines()]
    assert seqs == [m["seq_id"] for m in published][: len(seqs)]
    # What stdout never took is accounted for on stderr, to the message: everything
    # published is either on stdout, or in the batch being written, or counted unwritten.
    match = re.search(
        r"terminated: (\d+) more received message\(s\) were not written; output ends at "
        rf"strategy.signal:{VISIBLE[0]} seq (\d+)"
        r"(?: \(then (\d+) message\(s\) up to strategy.signal:\d+ seq (\d+) were being "
        r"written\))?", err)
    assert match, err
    unwritten, acknowledged = int(match[1]), int(match[2])
    assert acknowledged <= seqs[-1]
    if match[3] is None:
        assert acknowledged == seqs[-1] and unwritten == len(published) - seqs[-1]
    else:
        being_written = int(match[4])
        assert seqs[-1] <= being_written and int(match[3]) == being_written - acknowledged
        assert unwritten == len(published) - being_written


@pytest.mark.parametrize(("signum", "expected"), [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                                  (signal.SIGHUP, 129)])
def test_signals_unsubscribe_close_cleanly_and_exit(server: TestServer, signum: int,
                                                     expected: int) -> None:
    process = c2ws(server, "subscribe", *map(str, VISIBLE), "-o", "ndjson")
    only_connection(server, 4)
    process.send_signal(signum)
    code, _, err = finish(process)
    assert code == expected, err
    assert "Traceback" not in err
    record = wait_closed(server)
    assert record.client_close_code == 1000
    assert len(sent_requests(record, "unsubscribe")) == 4


def test_broken_pipe_exits_quietly_with_a_clean_close(server: TestServer) -> None:
    process = subprocess.Popen(
        ["bash", "-c", f"set -o pipefail; {sys.executable} -m c2ws subscribe {VISIBLE[0]} "
                       "-c signal -o ndjson | head -1"],
        env={**os.environ, "C2_API_KEY": KEY, "C2WS_URL": server.url}, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    only_connection(server, 1)
    deadline = time.monotonic() + 15
    while process.poll() is None and time.monotonic() < deadline:
        server.publish(VISIBLE[0])  # c2ws notices head is gone at its next write
        time.sleep(0.05)
    code, out, err = finish(process)
    assert code == 0, err
    assert len(out.splitlines()) == 1
    assert err == ""
    assert wait_closed(server).client_close_code == 1000


def test_the_timeout_ends_a_run_whose_reader_is_behind() -> None:
    """Defect 1 (#21): a fast feed and a reader slower than it; --timeout 2 used to keep
    the run going as long as the feed did (the deadline was only checked when nothing
    was waiting), so an hourly cron job overlapped the next one.  Asserted by what
    happened: the run ended by the timeout (exit 0, while the feed went on), and the
    reader got fewer messages than the server published."""
    config = ServerConfig(api_keys=(KEY,), rate=1000, strategies=(VISIBLE[0],),
                          feed_waits_for_subscription=True, max_lifetime=120)
    with ReferenceServer(config) as fast:
        process = subprocess.Popen(
            ["bash", "-c", f"set -o pipefail; {sys.executable} -m c2ws subscribe {VISIBLE[0]} "
                           "-c signal -o ndjson --timeout 2 | "
                           "(n=0; while read -r line; do n=$((n+1)); sleep 0.02; done; echo $n)"],
            env={**os.environ, "C2_API_KEY": KEY, "C2WS_URL": fast.url}, cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        code, out, err = finish(process, timeout=60)
        published = fast.last_seq(VISIBLE[0])
    assert code == 0, err
    assert 0 < int(out) < published
    assert "Traceback" not in err


def test_a_flood_of_gaps_is_rate_limited_on_stderr_and_the_gap_stays_on_stdout(
    server: TestServer,
) -> None:
    """2,000 gap messages: stderr tells the first ones and counts the rest; the run is
    not held up by stderr (no false "messages behind"); stdout keeps the hole."""
    from c2ws import protocol

    process = c2ws(server, "subscribe", str(VISIBLE[0]), "-c", "signal", "-o", "ndjson",
                   "-n", "1")
    only_connection(server, 1)
    gap = protocol.encode(protocol.server_message(
        spec.MSG_GAP, message_id="gap", timestamp=protocol.format_timestamp(time.time()),
        payload=protocol.gap_payload(strategy_id=VISIBLE[0], from_seq=0,
                                     message="Replay limit of 1000 messages exceeded")))
    floods = 2000
    for _ in range(floods):
        server.send_raw(gap, text=True)
    server.publish(VISIBLE[0], order(VISIBLE[0], "1"))
    code, out, err = finish(process, timeout=60)
    assert code == 0, err
    # The run ends before a signal shows the hole's far end: it is written at the end.
    assert [json.loads(line)["msg_type"] for line in out.splitlines()] == [
        spec.CHANNEL_SIGNAL, spec.MSG_GAP]
    lines = err.splitlines()
    announced = [line for line in lines if "the hole is reported when" in line]
    assert len(announced) == spec.GAP_WARNING_BURST, err
    assert lines[-1] == (f"c2ws: {floods - spec.GAP_WARNING_BURST:,} more gap announcements "
                         "not shown")
    assert len(lines) == spec.GAP_WARNING_BURST + 2, err  # and the hole, reported at the end
    assert "behind" not in err


def test_wrong_key_is_an_authentication_failure_without_the_key(server: TestServer) -> None:
    code, out, err = finish(c2ws(server, "subscribe", "1", key="wrong-key-5678"))
    assert code == ExitCode.AUTH_FAILED
    assert out == ""
    assert err.strip() == "c2ws: authentication failed: Invalid API key"


def test_rejected_subscription_is_reported_and_the_rest_streams(server: TestServer) -> None:
    process = c2ws(server, "subscribe", str(VISIBLE[0]), str(HIDDEN), "-c", "signal",
                   "-o", "ndjson", "-n", "1")
    record = only_connection(server, 1)
    # Both requests answered (the rejection sent) before the signal that ends the run:
    # published earlier, it could overtake the rejection, and -n 1 would end first.
    server.wait_for(lambda: len(sent_requests(last_record(server), "subscribe")) >= 2,
                    timeout=15)
    assert record.number == last_record(server).number
    server.publish(VISIBLE[0])
    code, out, err = finish(process)
    assert code == 0, err
    assert json.loads(out)["payload"]["StrategyId"] == VISIBLE[0]
    assert f"subscription strategy.signal:{HIDDEN} rejected: FORBIDDEN (StrategyId)" in err


def test_all_subscriptions_rejected_exits_7(server: TestServer) -> None:
    code, _, err = finish(c2ws(server, "subscribe", str(HIDDEN), "-o", "ndjson"))
    assert code == ExitCode.NOTHING_TO_STREAM
    assert "every subscription was rejected" in err


def test_unknown_and_malformed_messages_are_skipped_with_a_warning(
    server: TestServer,
) -> None:
    process = c2ws(server, "subscribe", str(VISIBLE[0]), "-c", "signal", "-o", "ndjson",
                   "-n", "1")
    only_connection(server, 1)
    server.send_message({"msg_type": "strategy.orders", "id": "msg_x", "v": 4,
                         "timestamp": "2026-01-01T00:00:00Z", "payload": {}})
    server.send_raw("{this is not json")
    server.send_raw(b'{"msg_type":"\xff"}', text=False)
    server.send_raw(b'{"msg_type":"\xff"}', text=True)  # invalid UTF-8 in a text frame
    published = server.publish(VISIBLE[0])
    code, out, err = finish(process)
    assert code == 0, err
    assert json.loads(out) == published
    assert "skipped message of unknown type 'strategy.orders'" in err
    assert err.count("skipped malformed frame") == 3
    assert "Traceback" not in err


def test_without_reconnect_a_dropped_connection_exits_6(server: TestServer) -> None:
    process = c2ws(server, "subscribe", str(VISIBLE[0]), "-o", "ndjson", "--no-reconnect")
    only_connection(server, 2)
    server.drop_connections(0)
    code, _, err = finish(process)
    assert code == ExitCode.CONNECTION_LOST
    assert "connection lost" in err


def test_policy_violation_close_means_server_busy(server: TestServer) -> None:
    process = c2ws(server, "subscribe", str(VISIBLE[0]), "-o", "ndjson", "--no-reconnect")
    only_connection(server, 2)
    server.close_connections(1008, "too many")
    code, _, err = finish(process)
    assert code == ExitCode.SERVER_BUSY
    assert "code 1008" in err


def test_unreachable_server_is_a_one_line_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = finish(c2ws(None, "subscribe", "1", "--no-reconnect",
                               url=f"ws://127.0.0.1:{port}/ws"))
    assert code == ExitCode.CONNECT_FAILED
    assert err.strip() == f"c2ws: cannot connect to ws://127.0.0.1:{port}/ws: connection refused"


def test_verbose_shows_traffic_but_never_the_key(server: TestServer) -> None:
    process = c2ws(server, "subscribe", str(VISIBLE[0]), "-c", "signal", "-o", "ndjson",
                   "-v", "--timeout", "1.2")
    code, _, err = finish(process)
    assert code == 0, err
    assert '> {"msg_type":"subscription.request"' in err
    assert '< {"msg_type":"heartbeat"' in err and '> {"msg_type":"heartbeat.ack"' in err
    assert KEY not in err


def in_process_run(server: TestServer, renderer: Renderer, diagnostics: Diagnostics,
                   channels: tuple[str, ...] = spec.CHANNELS, **options: Any) -> SubscribeRun:
    """``c2ws subscribe``'s run in this process, over the library's stream."""
    events = ForwardEvents()
    stream = library_stream([VISIBLE[0]], channels, api_key=KEY, url=server.url,
                         auto_ack=False, on_event=events, decode_payloads=True, **options)
    return SubscribeRun(stream, renderer, diagnostics, events=events,
                        count=options.get("count"), timeout=options.get("timeout"))


def test_table_mode_renders_signals_and_positions(server: TestServer) -> None:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    diagnostics = Diagnostics(Console(file=io.StringIO(), width=160))
    run = in_process_run(server, TableRenderer(console, live=False), diagnostics, count=2)
    thread, result = run_in_thread(run)
    only_connection(server, 2)
    server.publish(VISIBLE[0], {"StrategyId": VISIBLE[0], "Side": "1", "OrderType": "2",
                                       "OrderQuantity": 3, "Limit": 4312.25,
                                       "C2Symbol": {"FullSymbol": "@ESZ6"}})
    server.publish_position(VISIBLE[0], {"StrategyId": VISIBLE[0], "Quantity": -3,
                                         "AvgPx": 4312.25, "C2Symbol": {"FullSymbol": "@ESZ6"}})
    thread.join(20)
    run.renderer.close()
    assert result == [ExitCode.OK]
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "Buy" in text and "@ESZ6" in text and "4312.25" in text and "Limit" in text
    assert "-3" in text


def test_tls_failure_is_a_one_line_error(server: TestServer) -> None:
    url = server.url.replace("ws://", "wss://")  # the reference server speaks plain ws
    code, out, err = finish(c2ws(server, "subscribe", "1", "--no-reconnect", url=url))
    assert code == ExitCode.CONNECT_FAILED
    assert out == ""
    assert err.startswith(f"c2ws: cannot connect to {url}: TLS handshake failed")
    assert len(err.strip().splitlines()) == 1


def test_unresolvable_host_is_a_one_line_error() -> None:
    url = "ws://no-such-host.invalid/ws"  # .invalid never resolves (RFC 2606)
    code, _, err = finish(c2ws(None, "subscribe", "1", "--no-reconnect", url=url), timeout=60)
    assert code == ExitCode.CONNECT_FAILED
    assert err.startswith(f"c2ws: cannot connect to {url}: ")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["subscribe", "abc"], "'abc' is not a strategy id"),
        (["subscribe", "0"], "'0' is not a strategy id"),
        (["subscribe", "1", "-c", "orders"], "'orders' is not a channel"),
        (["subscribe", "1", "-o", "xml"], "'xml' is not one of"),
        (["subscribe", "1", "--url", "http://example.com/ws"], "is not a ws:// or wss:// URL"),
        (["subscribe", "1", "--url", "ws://"], "is not a ws:// or wss:// URL"),
        (["subscribe", "1", "--url", "ws://h:99999/ws"], "URL with a host and port"),
    ],
)
def test_bad_arguments_are_usage_errors_naming_the_value(args: list[str], message: str) -> None:
    code, out, err = finish(c2ws(None, *args))
    assert code == ExitCode.USAGE
    assert out == ""
    assert message in " ".join(err.split())  # rich may wrap the box


def test_missing_key_is_a_usage_error() -> None:
    code, _, err = finish(c2ws(None, "subscribe", "1", key=None))
    assert code == ExitCode.USAGE
    assert "no API key" in err


def test_an_oversized_frame_is_refused_with_1009(server: TestServer) -> None:
    process = c2ws(server, "subscribe", str(VISIBLE[0]), "-o", "ndjson", "--no-reconnect")
    only_connection(server, 2)
    server.send_raw("x" * (spec.MAX_FRAME_BYTES + 1))
    code, out, err = finish(process)
    assert code == ExitCode.CONNECTION_LOST
    assert out == ""
    assert "exceeds the limit" in err and "Traceback" not in err
    assert "c2ws closed the connection (1009)" in err  # says who closed it
    assert wait_closed(server).client_close_code == 1009


def run_in_thread(run: SubscribeRun) -> tuple[threading.Thread, list[ExitCode]]:
    result: list[ExitCode] = []
    thread = threading.Thread(target=lambda: result.append(run.run()))
    thread.start()
    return thread, result


def test_a_silent_server_is_detected_and_ends_the_stream(server: TestServer) -> None:
    err = io.StringIO()
    run = in_process_run(server, NdjsonRenderer(io.BytesIO()), Diagnostics(Console(file=err)),
                         channels=(spec.CHANNEL_SIGNAL,), reconnect=False, silence_timeout=1.0)
    thread, result = run_in_thread(run)
    only_connection(server, 1)
    server.stall()  # the socket stays open, nothing more arrives, heartbeats included
    thread.join(20)
    assert result == [ExitCode.CONNECTION_LOST]
    assert "nothing (not even a heartbeat) arrived for 1 s" in err.getvalue()


@pytest.mark.parametrize("key", ["abc\r\nX-Injected: 1", "with space", "clé", "tab\there"])
def test_a_key_that_cannot_be_a_header_is_refused_without_echoing_it(key: str) -> None:
    code, _, err = finish(c2ws(None, "subscribe", "1", key=key))
    assert code == ExitCode.USAGE
    assert "the API key contains" in " ".join(err.split())
    assert key not in err and "Injected" not in err


@pytest.mark.parametrize("key", ["Q", "Zj", "Xq7", "Wq7Xj2"])
def test_a_key_too_short_to_be_a_key_is_refused_without_echoing_it(key: str) -> None:
    # Redacting a 1-3 character key would mangle any text that holds those characters.
    code, _, err = finish(c2ws(None, "subscribe", "1", key=key))
    assert code == ExitCode.USAGE
    assert "the API key is too short to be a key (fewer than 8 characters)" in " ".join(
        err.split())
    assert key not in err


def test_a_redirect_is_not_followed_so_the_key_stays_put() -> None:
    # A plain HTTP server answering every request with a redirect to another port.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        requests: list[bytes] = []

        def answer() -> None:
            connection, _ = listener.accept()
            with connection:
                requests.append(connection.recv(65536))
                connection.sendall(b"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:9/elsewhere"
                                   b"\r\nContent-Length: 0\r\n\r\n")

        server_thread = threading.Thread(target=answer, daemon=True)
        server_thread.start()
        code, _, err = finish(c2ws(None, "subscribe", "1", url=f"ws://127.0.0.1:{port}/ws"))
        server_thread.join(5)
    # A redirect is refused for good: no retry, whatever the reconnect settings.
    assert code == ExitCode.CONNECT_FAILED
    assert "redirect, which c2ws does not follow" in err
    assert len(requests) == 1 and KEY not in err


def test_ndjson_output_replays_as_a_server_feed(tmp_path: Path) -> None:
    """What subscribe records, serve --feed FILE publishes again, payload for payload."""
    config = ServerConfig(api_keys=(KEY,), rate=50, seed=7, max_lifetime=120)
    with ReferenceServer(config) as live:
        ids = [str(s) for s in config.strategies]
        code, recorded, err = finish(c2ws(live, "subscribe", *ids, "-o", "ndjson", "-n", "12"))
    assert code == 0, err
    recording = tmp_path / "recording.ndjson"
    recording.write_text(recorded)
    replay_config = ServerConfig(api_keys=(KEY,), feed=recording, rate=100, max_lifetime=120)
    with ReferenceServer(replay_config) as replaying:
        code, replayed, err = finish(c2ws(replaying, "subscribe", *ids, "-o", "ndjson",
                                          "-n", "12"))
    assert code == 0, err
    def payloads(text: str) -> list[tuple[str, Any]]:
        return [(m["msg_type"], m["payload"]) for m in map(json.loads, text.splitlines())]
    assert payloads(replayed) == payloads(recorded)


def test_the_per_key_connection_limit_means_server_busy() -> None:
    from websockets.sync.client import connect

    config = ServerConfig(api_keys=(KEY,), feed="none", max_connections_per_key=1,
                          max_lifetime=60)
    with ReferenceServer(config) as limited, connect(
        limited.url, additional_headers={"Authorization": f"Bearer {KEY}"}
    ) as occupying:
        occupying.recv(timeout=5)  # connection.connected: the key's one place is taken
        code, _, err = finish(c2ws(limited, "subscribe", "1", "--no-reconnect"))
    assert code == ExitCode.SERVER_BUSY
    assert err.startswith("c2ws: the server refused the connection (HTTP 429): ")
