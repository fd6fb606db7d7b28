"""Output formats end to end: ``-o json`` and ``csv``/``tsv`` read back with the standard
library, ``--fields``, ``--symbol`` (with ``--count``), and color (``--color``, NO_COLOR,
FORCE_COLOR)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from c2ws import spec
from c2ws.exitcodes import ExitCode
from c2ws.render.color import ColorChoice, console_options, wants_color
from c2ws.testing import ConnectionRecord, TestServer

REPO = Path(__file__).resolve().parent.parent
KEY = "formats-secret-key-7890"
A, B = 12345678, 23456789
ESC = "\x1b["

pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=(A, B), lifetime=120)

SIGNAL: dict[str, Any] = {
    "StrategyId": A, "StrategyName": "Alpha, \"Momentum\"", "SignalId": 150000123,
    "OrderType": "2", "Side": "1", "OpenClose": "O", "OrderQuantity": 2, "Limit": 5012.25,
    "Stop": None, "TIF": "1", "OrderStatus": "0", "C2Symbol": {"FullSymbol": "@ESZ6"},
}
POSITION: dict[str, Any] = {
    "StrategyId": A, "StrategyName": "Alpha", "Quantity": -3, "AvgPx": 228.5,
    "C2Symbol": {"FullSymbol": "AAPL"}, "Currency": "USD",
}


def start(server: TestServer, *args: str, stdout: Any = subprocess.PIPE,
          **env: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("C2_", "C2WS_")) and k not in ("NO_COLOR", "FORCE_COLOR")}
    environment.update({"C2_API_KEY": KEY, "C2WS_URL": server.url, "C2WS_CONFIG": os.devnull,
                        **env})
    return subprocess.Popen([sys.executable, "-m", "c2ws", "subscribe", *args], cwd=REPO,
                            env=environment, stdout=stdout, stderr=subprocess.PIPE, text=True)


def subscribed(server: TestServer, count: int) -> ConnectionRecord:
    def ready() -> ConnectionRecord | None:
        records = server.connections(open_only=True)
        return records[-1] if records and len(records[-1].subscriptions) >= count else None
    return server.wait_for(ready, timeout=20)


def run(server: TestServer, *args: str, subscriptions: int = 2,
        publish: list[tuple[str, dict[str, Any]]] | None = None, **env: str) -> str:
    process = start(server, *args, **env)
    subscribed(server, subscriptions)
    for channel, payload in publish if publish is not None else [
        ("signal", SIGNAL), ("positions", POSITION)
    ]:
        server.publish(payload.get("StrategyId", A), payload, channel=channel)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out


def test_json_is_one_array_of_the_ndjson_objects(server: TestServer) -> None:
    out = run(server, str(A), "-o", "json", "-n", "2")
    document = json.loads(out)
    assert [m["msg_type"] for m in document] == [spec.CHANNEL_SIGNAL, spec.CHANNEL_POSITIONS]
    assert document[0]["payload"] == SIGNAL and document[1]["payload"] == POSITION


def test_json_with_nothing_to_show_is_an_empty_array(server: TestServer) -> None:
    assert json.loads(run(server, str(A), "-o", "json", "--timeout", "0.5", publish=[])) == []


@pytest.mark.parametrize("unbuffered", [True, False], ids=["PYTHONUNBUFFERED", "buffered"])
def test_a_json_array_that_cannot_be_closed_is_exit_9(
    server: TestServer, monkeypatch: pytest.MonkeyPatch, unbuffered: bool,
) -> None:
    """Nothing to show: the only write is the array at the end of the run, and it fails."""
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    with open("/dev/full", "wb") as full:
        process = start(server, str(A), "-o", "json", "--timeout", "2", stdout=full,
                        **({"PYTHONUNBUFFERED": "1"} if unbuffered else {}))
    subscribed(server, 2)
    _, err = process.communicate(timeout=60)
    assert process.returncode == ExitCode.OUTPUT_FAILED, err
    assert err == "c2ws: cannot write to stdout: No space left on device; nothing was written\n"


def test_csv_rows_read_back_with_the_csv_module(server: TestServer) -> None:
    out = run(server, str(A), "-o", "csv", "-n", "2")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["time", "kind", "strategy_id", "strategy", "seq", "side",
                             "open_close", "qty", "symbol", "type", "limit", "stop", "tif",
                             "status", "signal_id", "avg_price", "currency"]
    signal, position = rows
    assert {k: signal[k] for k in ("kind", "strategy_id", "strategy", "seq", "side",
                                   "open_close", "qty", "symbol", "type", "limit", "stop",
                                   "tif", "status", "signal_id")} == {
        "kind": "signal", "strategy_id": str(A), "strategy": 'Alpha, "Momentum"', "seq": "1",
        "side": "Buy", "open_close": "Open", "qty": "2", "symbol": "@ESZ6", "type": "Limit",
        "limit": "5012.25", "stop": "", "tif": "GTC", "status": "Working",
        "signal_id": "150000123"}
    assert signal["time"].endswith("Z") and len(signal["time"]) == 20
    assert {k: position[k] for k in ("kind", "qty", "symbol", "avg_price", "currency",
                                     "side")} == {
        "kind": "position", "qty": "-3", "symbol": "AAPL", "avg_price": "228.5",
        "currency": "USD", "side": ""}


def test_tsv_and_a_positions_only_table(server: TestServer) -> None:
    out = run(server, str(A), "-c", "positions", "-o", "tsv", "-n", "1", subscriptions=1,
              publish=[("positions", POSITION)])
    rows = list(csv.DictReader(io.StringIO(out), delimiter="\t"))
    assert list(rows[0]) == ["time", "strategy_id", "strategy", "seq", "symbol", "qty",
                             "avg_price", "currency"]
    assert (rows[0]["symbol"], rows[0]["qty"], rows[0]["avg_price"]) == ("AAPL", "-3", "228.5")
    signals = run(server, str(A), "-c", "signal", "-o", "tsv", "-n", "1", subscriptions=1,
                  publish=[("signal", {**SIGNAL, "StrategyName": "tab\there"})])
    header, row = signals.splitlines()
    assert header.split("\t")[-1] == "signal_id" and "kind" not in header
    assert row.split("\t")[2] == "tab here"  # a tab in a value never splits a row


def test_fields_project_ndjson_and_choose_csv_columns(server: TestServer) -> None:
    out = run(server, str(A), "-o", "ndjson", "-n", "2",
              "--fields", "seq,side,qty,symbol,limit,payload.C2Symbol.FullSymbol,msg_type")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"seq": 1, "side": "Buy", "qty": 2, "symbol": "@ESZ6", "limit": 5012.25,
         "payload.C2Symbol.FullSymbol": "@ESZ6", "msg_type": spec.CHANNEL_SIGNAL},
        {"seq": 1, "side": None, "qty": -3, "symbol": "AAPL", "limit": None,
         "payload.C2Symbol.FullSymbol": "AAPL", "msg_type": spec.CHANNEL_POSITIONS},
    ]
    table = run(server, str(A), "-o", "csv", "-n", "1", "--fields", "symbol,side,payload.Limit")
    assert table.splitlines() == ["kind,symbol,side,payload.Limit", "signal,@ESZ6,Buy,5012.25"]


@pytest.mark.parametrize("mode", ["ndjson", "json", "csv"])
def test_fields_of_both_channels_say_which_channel_each_row_is_from(
    server: TestServer, mode: str
) -> None:
    # A seq of 1 is a different message on each channel: without kind, the rows of
    # `--fields seq` could not be told apart.
    def rows(*args: str, subscriptions: int = 2) -> list[dict[str, Any]]:
        out = run(server, str(A), "-o", mode, "-n", "2", *args, subscriptions=subscriptions)
        if mode == "ndjson":
            return [json.loads(line) for line in out.splitlines()]
        if mode == "json":
            return list(json.loads(out))
        return [{k: int(v) if v.isdigit() else v for k, v in row.items()}
                for row in csv.DictReader(io.StringIO(out))]

    # (Each run publishes anew on the same server: the seq values grow from run to run.)
    first = rows("--fields", "seq")
    assert [list(row) for row in first] == [["kind", "seq"]] * 2
    assert [row["kind"] for row in first] == ["signal", "position"]
    # A raw field keeps one row per message (a positions message can hold several).
    raw = rows("--fields", "seq_id,payload.C2Symbol.FullSymbol")
    assert [(row["kind"], row["payload.C2Symbol.FullSymbol"]) for row in raw] == [
        ("signal", "@ESZ6"), ("position", "AAPL")]
    assert list(raw[0]) == ["kind", "seq_id", "payload.C2Symbol.FullSymbol"]
    # Named by the user (kind, or msg_type), it is not added again, and stays where put.
    assert [list(row) for row in rows("--fields", "seq,kind")] == [["seq", "kind"]] * 2
    # One channel: nothing to tell apart.
    only = run(server, str(A), "-c", "positions", "-o", mode, "-n", "1", "--fields", "seq",
               subscriptions=1, publish=[("positions", POSITION)])
    assert "kind" not in only


def test_symbol_filters_and_count_counts_only_what_is_shown(server: TestServer) -> None:
    other = {**SIGNAL, "C2Symbol": {"FullSymbol": "MSFT"}}
    out = run(server, str(A), str(B), "-o", "ndjson", "-n", "2", "--symbol", "@esz6",
              "--symbol", "AAPL", subscriptions=4,
              publish=[("signal", other), ("signal", SIGNAL), ("signal", other),
                       ("positions", POSITION), ("signal", other)])
    shown = [json.loads(line)["payload"] for line in out.splitlines()]
    assert shown == [SIGNAL, POSITION]


@pytest.mark.parametrize(("args", "message"), [
    (("--fields", "side,nope"), "unknown field 'nope'"),
    (("-o", "table", "--fields", "side"), "--fields applies to"),
    (("-o", "yaml"), "yaml"),
])
def test_bad_format_options_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "c2ws", "subscribe", "1", *args], cwd=REPO,
                            env={**os.environ, "C2_API_KEY": KEY, "C2WS_CONFIG": os.devnull},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == ExitCode.USAGE
    assert message in result.stderr


# --- color ----------------------------------------------------------------------------


@pytest.mark.parametrize(("choice", "env", "tty", "expected"), [
    (ColorChoice.auto, {}, True, True),
    (ColorChoice.auto, {}, False, False),
    (ColorChoice.auto, {"NO_COLOR": "1"}, True, False),
    (ColorChoice.auto, {"NO_COLOR": ""}, True, True),  # empty means unset (no-color.org)
    (ColorChoice.auto, {"FORCE_COLOR": "1"}, False, True),
    (ColorChoice.auto, {"FORCE_COLOR": "0"}, True, False),
    (ColorChoice.auto, {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False, True),
    (ColorChoice.auto, {"TERM": "dumb"}, True, False),
    (ColorChoice.always, {"NO_COLOR": "1"}, False, True),
    (ColorChoice.never, {"FORCE_COLOR": "1"}, True, False),
])
def test_color_precedence(choice: ColorChoice, env: dict[str, str], tty: bool,
                          expected: bool) -> None:
    assert wants_color(choice, env, tty) is expected


def test_force_color_colors_a_pipe_without_making_it_a_terminal() -> None:
    options = console_options(ColorChoice.auto, {"FORCE_COLOR": "1"}, io.StringIO())
    assert options == {"force_terminal": False, "no_color": False, "color_system": "standard"}


def test_tables_in_a_pipe_follow_color_settings(server: TestServer) -> None:
    plain = run(server, str(A), "-o", "table", "-n", "1", publish=[("signal", SIGNAL)])
    assert ESC not in plain and "@ESZ6" in plain
    forced = run(server, str(A), "-o", "table", "-n", "1", publish=[("signal", SIGNAL)],
                 FORCE_COLOR="1")
    assert f"{ESC}1;32mBuy" in forced  # colored ...
    assert "\x1b[?25l" not in forced and "\x1b[2K" not in forced  # ... but not redrawn live
    never = run(server, str(A), "-o", "table", "-n", "1", "--color", "never",
                publish=[("signal", SIGNAL)], FORCE_COLOR="1")
    assert ESC not in never
    always = run(server, str(A), "-o", "table", "-n", "1", "--color", "always",
                 publish=[("signal", SIGNAL)], NO_COLOR="1")
    assert f"{ESC}1;32mBuy" in always


def test_stderr_messages_follow_color_settings(server: TestServer) -> None:
    for env, colored in (({"FORCE_COLOR": "1"}, True), ({}, False)):
        process = start(server, str(A), str(99999999), "-c", "signal", "-o", "ndjson",
                        "--timeout", "0.5", **env)
        _, err = process.communicate(timeout=60)
        assert "subscription strategy.signal:99999999 rejected" in err
        assert (ESC in err) is colored


@pytest.mark.parametrize(("mode", "fields", "symbols", "bell", "needs"), [
    ("ndjson", (), (), False, False),  # frames pass through as received
    ("ndjson", ("seq_id",), (), False, True),
    ("ndjson", (), ("@ESZ6",), False, True),
    ("ndjson", (), (), True, True),
    ("json", (), (), False, True),
    ("csv", (), (), False, False),  # CSV and TSV decode what they read themselves
    ("tsv", ("seq", "payload.Info"), (), False, False),
    ("csv", (), ("@ESZ6",), False, True),
    ("tsv", (), (), True, True),
    ("table", (), (), False, False),  # the table decodes the messages it shows
    ("table", (), ("@ESZ6",), False, True),
    ("table", (), (), True, True),
])
def test_only_plain_ndjson_csv_tsv_and_table_run_without_decoded_payloads(
    mode: str, fields: tuple[str, ...], symbols: tuple[str, ...], bell: bool, needs: bool
) -> None:
    from c2ws.cli.options import OutputMode
    from c2ws.cli.output import OutputSpec, TerminalOptions, build_output
    from c2ws.render.filters import MessageFilter

    spec_ = OutputSpec(mode=OutputMode(mode), fields=fields,
                       message_filter=MessageFilter.of(symbols=symbols),
                       terminal=TerminalOptions(bell=bell, progress=False))
    stdout = io.TextIOWrapper(io.BytesIO())
    built = build_output(spec_, channels={spec.CHANNEL_SIGNAL}, stdout=stdout)
    assert built.needs_payloads is needs
