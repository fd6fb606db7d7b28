"""The table renderer and the payload field extraction behind it."""

from __future__ import annotations

import io
import re
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from c2ws import events, protocol
from c2ws.events import SubscriptionKey
from c2ws.render import fields
from c2ws.render import table as table_module
from c2ws.render.table import TableRenderer

STRATEGY = 12345678
SIGNALS = SubscriptionKey(STRATEGY, "strategy.signal")
POSITIONS = SubscriptionKey(STRATEGY, "strategy.positions")
TIMESTAMP = "2024-01-01T12:00:00Z"
NOON = 1_704_110_400.0  # TIMESTAMP as epoch seconds

# Anything a terminal would act on: C0 (newline aside), DEL, C1.
TERMINAL_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
LIVE_CONTROL = re.compile(r"\x1b\[(?:\?25[lh]|2K|1A)|\r")


def envelope(
    msg_type: str,
    payload: dict[str, Any] | None = None,
    *,
    seq_id: int | None = None,
    timestamp: str = TIMESTAMP,
) -> protocol.Envelope:
    message: dict[str, Any] = {"msg_type": msg_type, "id": "msg_0a1b", "timestamp": timestamp}
    if payload is not None:
        message["payload"] = payload
    if seq_id is not None:
        message["seq_id"] = seq_id
    return protocol.decode(orjson.dumps(message))


def signal(payload: dict[str, Any], seq_id: int = 98765, **kwargs: Any) -> events.StreamMessage:
    return events.StreamMessage(
        SIGNALS, envelope("strategy.signal", payload, seq_id=seq_id, **kwargs)
    )


def position(payload: dict[str, Any], **kwargs: Any) -> events.StreamMessage:
    return events.StreamMessage(POSITIONS, envelope("strategy.positions", payload, **kwargs))


def rest_signal(**overrides: Any) -> dict[str, Any]:
    """An order as the C2 REST v4 OrderStatusDTO spells it."""
    payload: dict[str, Any] = {
        "StrategyId": STRATEGY,
        "StrategyName": "Alpha Momentum",
        "SignalId": 150339567,
        "OrderType": "2",
        "Side": "1",
        "OpenClose": "O",
        "OrderQuantity": 2,
        "Limit": 4312.25,
        "Stop": None,
        "TIF": "1",
        "OrderStatus": "0",
        "C2Symbol": {"FullSymbol": "@ESZ6", "SymbolType": "future"},
    }
    payload.update(overrides)
    return payload


def rest_position(
    quantity: float, avg_px: float = 4312.25, symbol: str = "@ESZ6"
) -> dict[str, Any]:
    return {
        "StrategyId": STRATEGY,
        "StrategyName": "Alpha Momentum",
        "Quantity": quantity,
        "AvgPx": avg_px,
        "C2Symbol": {"FullSymbol": symbol},
        "Currency": "USD",
    }


def make_console(*, terminal: bool = False, width: int = 140) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=terminal, color_system=None), out


DATE_LINE = re.compile(r"^── \w+day \d{4}-\d\d-\d\d ──\n", re.MULTILINE)


def render(
    *handled: events.Event, width: int = 140, dates: bool = False, **options: Any
) -> str:
    """What a log of these events shows (without the date lines unless ``dates``)."""
    console, out = make_console(width=width)
    with TableRenderer(console, live=False, **options) as renderer:
        for event in handled:
            renderer.handle(event)
    return out.getvalue() if dates else DATE_LINE.sub("", out.getvalue())


def lines_with(output: str, needle: str) -> list[str]:
    return [line for line in output.splitlines() if needle in line]


def last_live_frame(output: str) -> str:
    """What a terminal shows at the end: the last redraw of the live region."""
    return LIVE_CONTROL.sub("", output.rsplit("\x1b[2K", 1)[-1])


# --- fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "value", "name"),
    [
        (fields.SIDES, "1", "Buy"),
        (fields.SIDES, 2, "Sell"),
        (fields.SIDES, "BUY", "Buy"),
        (fields.SIDES, "sell", "Sell"),
        (fields.ORDER_TYPES, "1", "Market"),
        (fields.ORDER_TYPES, 1, "Market"),
        (fields.ORDER_TYPES, "2", "Limit"),
        (fields.ORDER_TYPES, 3.0, "Stop"),
        (fields.ORDER_TYPES, "limit", "Limit"),
        (fields.ORDER_TYPES, "STOP_LIMIT", "Stop Limit"),
        (fields.TIME_IN_FORCE, "0", "Day"),
        (fields.TIME_IN_FORCE, "1", "GTC"),
        (fields.TIME_IN_FORCE, "gtc", "GTC"),
        (fields.OPEN_CLOSE, "O", "Open"),
        (fields.OPEN_CLOSE, "c", "Close"),
        (fields.OPEN_CLOSE, "close", "Close"),
        (fields.ORDER_STATUSES, "A", "PendingNew"),
        (fields.ORDER_STATUSES, "0", "Working"),
        (fields.ORDER_STATUSES, "1", "Partially filled"),
        (fields.ORDER_STATUSES, "2", "Filled"),
        (fields.ORDER_STATUSES, "4", "Canceled"),
        (fields.ORDER_STATUSES, "5", "Replaced"),
        (fields.ORDER_STATUSES, "6", "Pending Cancel"),
        (fields.ORDER_STATUSES, "8", "Rejected"),
        (fields.ORDER_STATUSES, "C", "Expired"),
        (fields.ORDER_STATUSES, "E", "Pending Replace"),
        (fields.ORDER_STATUSES, "partially_filled", "Partially filled"),
        (fields.SIDES, "9", "9"),  # unknown codes are shown as sent
        (fields.SIDES, None, ""),
        (fields.SIDES, True, "true"),
        (fields.SIDES, {"x": 1}, "{…}"),
    ],
)
def test_codes_are_named(table: fields.CodeTable, value: object, name: str) -> None:
    assert table.name_of(value) == name


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (4312.25, "4312.25"),
        (4312.2500000001, "4312.25"),
        (0.1 + 0.2, "0.3"),
        (1.08377, "1.08377"),
        (0.00000812, "0.00000812"),
        (100.0, "100"),
        (-2, "-2"),
        (-0.0, "0"),
        (1e-12, "1e-12"),
        (10**30, "1000000000000000000000000000000"),
        (10**70, "########"),  # never cut short: that would be another number
        (10**400, "########"),
    ],
)
def test_numbers_are_formatted_plainly(value: float, text: str) -> None:
    assert fields.format_number(value) == text


def test_numeric_strings_are_formatted_and_zero_prices_are_unset() -> None:
    assert fields.display_number("4312.2500000001") == "4312.25"
    assert fields.display_number(" 10 ") == "10"
    assert fields.display_number("n/a") == "n/a"
    assert fields.display_price(0) == ""
    assert fields.display_price("0") == ""


def test_lookup_ignores_case_and_underscores() -> None:
    for payload in (
        {"OrderType": "2", "Side": "2", "OrderQuantity": 3, "TIF": "0"},
        {"orderType": "2", "side": "2", "orderQuantity": 3, "tif": "0"},
        {"order_type": "limit", "side": "SELL", "quantity": 3, "tif": "day"},
    ):
        parsed = fields.signal_fields(payload)
        assert (parsed.order_type, parsed.side, parsed.quantity, parsed.tif) == (
            "Limit",
            "Sell",
            "3",
            "Day",
        )


@pytest.mark.parametrize(
    "payload",
    [
        {"C2Symbol": {"FullSymbol": "@ESZ6"}},
        {"c2_symbol": {"full_symbol": "@ESZ6"}},
        {"symbol": "@ESZ6"},
        {"Symbol": {"Symbol": "@ESZ6"}},
        {"ExchangeSymbol": {"Symbol": "@ESZ6"}},
        {"C2Symbol": {"SymbolType": "future"}, "ExchangeSymbol": {"Symbol": "@ESZ6"}},
    ],
)
def test_symbol_is_found_nested_or_flat(payload: dict[str, Any]) -> None:
    assert fields.signal_fields(payload).symbol == "@ESZ6"


def test_sanitize_removes_control_sequences_and_caps_length() -> None:
    assert fields.sanitize("a\x1b[2Jb\x07c\x9b31md") == "ab\ufffdcd"
    assert fields.sanitize("title\x1b]0;pwned\x07!") == "title!"
    assert fields.sanitize("one\ntwo\tthree") == "one two three"
    assert fields.sanitize("\u202eevil") == "\ufffdevil"
    capped = fields.sanitize("x" * 500)
    assert len(capped) == fields.MAX_CELL_CHARS
    assert capped.endswith(fields.ELLIPSIS)


def test_positions_list_items_inherit_the_strategy() -> None:
    found = fields.position_fields(
        {
            "StrategyId": STRATEGY,
            "Positions": [
                {"C2Symbol": {"FullSymbol": "AAPL"}, "Quantity": 100},
                {"C2Symbol": {"FullSymbol": "MSFT"}, "Quantity": -50, "StrategyId": 42},
                "not a position",
            ],
        }
    )
    assert [(p.strategy_id, p.symbol, p.quantity) for p in found] == [
        (STRATEGY, "AAPL", 100),
        (42, "MSFT", -50),
    ]


def test_overlong_strategy_id_text_is_ignored_not_fatal() -> None:
    assert fields.signal_fields({"StrategyId": "1" * 5000}).strategy_id is None


# --- signals -----------------------------------------------------------------------


def test_signal_row_shows_names_symbol_and_prices() -> None:
    output = render(signal(rest_signal()))
    header, row = output.splitlines()
    assert header.split() == [
        "Time",
        "UTC",
        "Strategy",
        "Seq",
        "Side",
        "O/C",
        "Qty",
        "Symbol",
        "Type",
        "Limit/Stop",
        "TIF",
        "Status",
        "Signal",
        "id",
    ]
    assert row.split() == [
        "12:00:00",
        "Alpha",
        "Momentum",
        "98765",
        "Buy",
        "Open",
        "2",
        "@ESZ6",
        "Limit",
        "4312.25",
        "GTC",
        "Working",
        "150339567",
    ]


def test_rows_line_up_under_the_header() -> None:
    output = render(
        signal(rest_signal()),
        signal(rest_signal(Side="2", OrderType="3", Limit=None, Stop=4300.5, OrderStatus="1")),
        signal({"side": "buy"}, seq_id=7),
    )
    header, *rows = output.splitlines()
    assert len(rows) == 3
    for column in ("Side", "Symbol", "Status"):
        start = header.index(column)
        assert rows[0][start:].startswith(("Buy", "@ESZ6", "Working"))
    assert rows[1][header.index("Side") :].startswith("Sell")
    assert rows[1][header.index("Status") :].startswith("Partially filled")
    price_end = header.index("Limit/Stop") + len("Limit/Stop")
    assert rows[1][:price_end].endswith("4300.5")
    assert rows[0][:price_end].endswith("4312.25")


def test_snake_case_payload_and_missing_fields() -> None:
    output = render(
        signal(
            {
                "strategy_id": 7,
                "side": "2",
                "order_type": "1",
                "quantity": 3,
                "symbol": "AAPL",
                "open_close": "C",
                "signal_id": "s-1",
            },
            seq_id=1,
        ),
        signal({}, seq_id=2),
    )
    _, full, empty = output.splitlines()
    assert full.split() == ["12:00:00", "7", "1", "Sell", "Close", "3", "AAPL", "Market", "s-1"]
    # Nothing but what the envelope and the subscription say.
    assert empty.split() == ["12:00:00", str(STRATEGY), "2"]


def test_time_falls_back_to_local_arrival() -> None:
    console, out = make_console()
    arrival = 1_700_000_000.0  # 22:13:20 UTC
    renderer = TableRenderer(console, live=False, clock=lambda: arrival)
    renderer.handle(signal(rest_signal(), timestamp="not a time"))
    renderer.close()
    assert DATE_LINE.sub("", out.getvalue()).splitlines()[1].startswith("22:13:20 ")


def test_header_is_printed_once() -> None:
    output = render(*(signal(rest_signal(), seq_id=n) for n in range(1, 30)))
    assert len(lines_with(output, "Time UTC")) == 1
    assert len(output.splitlines()) == 30


def test_narrow_console_drops_optional_columns_and_fits() -> None:
    output = render(signal(rest_signal(StrategyName="S" * 60)), width=80)
    header, row = output.splitlines()
    assert "Signal id" not in header and "Side" in header and "Limit/Stop" in header
    assert all(len(line) <= 80 for line in output.splitlines())
    assert "Buy" in row and "@ESZ6" in row and "4312.25" in row


def test_gap_and_jump_are_marked() -> None:
    gap = events.GapReported(
        SIGNALS,
        last_seq=99765,
        last_timestamp="2024-01-01T12:00:00Z",
        next_seq=100800,
        next_timestamp="2024-01-01T12:30:00Z",
        text="Replay limit of 1000 messages exceeded",
        message=envelope("gap"),
    )
    jump = events.SequenceJump(SIGNALS, expected=8, received=10)
    output = render(gap, jump)
    assert lines_with(output, "GAP: signals between seq 99765 and 100800 are missing (Replay limit")
    assert lines_with(output, "JUMP: seq 8 expected, 10 received")


def test_a_sequence_reset_is_marked_like_a_gap() -> None:
    reset = events.SequenceReset(SIGNALS, last_seq=99765, last_timestamp=None, next_seq=1,
                                 next_timestamp=TIMESTAMP, released=2, cursor=0)
    output = render(reset, signal(rest_signal(), seq_id=1))
    (banner,) = lines_with(output, "RESET:")
    assert "seq 1 came after 99765" in banner and "12:00:00" in banner
    assert output.index("RESET:") < output.index("Buy")


def test_handling_a_signal_is_cheap() -> None:
    console, _ = make_console()
    renderer = TableRenderer(console, live=False)
    batch = [signal(rest_signal(), seq_id=n) for n in range(500)]
    started = time.perf_counter()
    for event in batch:
        renderer.handle(event)
    per_signal = (time.perf_counter() - started) / len(batch)
    # Target is well under 1 ms; the bound leaves room for a loaded CI machine.
    assert per_signal < 0.005


# --- positions -----------------------------------------------------------------------


def test_position_updates_in_place() -> None:
    console, out = make_console()
    renderer = TableRenderer(console, live=False, clock=lambda: NOON)
    renderer.handle(position(rest_position(2, 4300.0)))
    renderer.handle(position(rest_position(5, 4310.5), timestamp="2024-01-01T12:05:00Z"))
    renderer.handle(position(rest_position(-3, 1.08377, symbol="EURUSD")))
    assert {key: row.quantity for key, row in renderer.positions.items()} == {
        (str(STRATEGY), "@ESZ6"): 5,
        (str(STRATEGY), "EURUSD"): -3,
    }
    renderer.close()
    final_table = re.split(r"^Positions.*$", out.getvalue(), flags=re.MULTILINE)[1]
    es_rows = lines_with(final_table, "@ESZ6")
    assert len(es_rows) == 1
    assert es_rows[0].split() == ["Alpha", "Momentum", "@ESZ6", "5", "4310.5", "USD", "12:05:00"]
    assert lines_with(final_table, "EURUSD")[0].split()[3] == "-3"


def test_each_update_is_a_line_when_not_live() -> None:
    output = render(position(rest_position(2)), position(rest_position(5)))
    updates = lines_with(output, " Pos ")
    assert [line.split()[4] for line in updates] == ["2", "5"]
    assert "avg 4312.25 USD" in updates[0]


def test_flat_positions_leave_the_table() -> None:
    console, out = make_console()
    renderer = TableRenderer(console, live=False)
    renderer.handle(position(rest_position(2)))
    renderer.handle(position(rest_position(0)))
    assert renderer.positions == {}
    renderer.close()
    output = out.getvalue()
    assert lines_with(output, " Pos ")[-1].endswith("flat")
    assert "no open positions" in output


def test_snake_case_position_without_strategy_uses_the_subscription() -> None:
    console, _ = make_console()
    renderer = TableRenderer(console, live=False)
    renderer.handle(position({"symbol": "AAPL", "quantity": "100", "avg_price": "190.5"}))
    (row,) = renderer.positions.values()
    assert (row.strategy, row.symbol, row.quantity, row.avg_price) == (
        str(STRATEGY),
        "AAPL",
        100,
        "190.5",
    )


def test_no_final_table_without_positions() -> None:
    assert "Positions" not in render(signal(rest_signal()))


def test_live_region_updates_in_place() -> None:
    console, out = make_console(terminal=True)
    renderer = TableRenderer(console)
    assert renderer.is_live
    renderer.handle(position(rest_position(2)))
    renderer.handle(signal(rest_signal()))
    renderer.handle(position(rest_position(-7, 4320.0)))
    renderer.close()
    output = out.getvalue()
    frame = last_live_frame(output)
    rows = lines_with(frame, "@ESZ6")
    assert len(rows) == 1
    assert rows[0].split()[3:5] == ["-7", "4320"]
    assert "messages: 3" in frame
    # The signal went to the scrollback above the region, not into it.
    assert "Limit/Stop" not in frame
    assert lines_with(output, "150339567")


def test_live_dashboard_keeps_only_the_latest_signals() -> None:
    console, out = make_console(terminal=True)
    with TableRenderer(console, max_signal_rows=3) as renderer:
        for seq_id in range(1, 11):
            renderer.handle(signal(rest_signal(SignalId=f"sig-{seq_id}"), seq_id=seq_id))
    frame = last_live_frame(out.getvalue())
    assert [line.split()[-1] for line in lines_with(frame, "sig-")] == [
        "sig-8",
        "sig-9",
        "sig-10",
    ]


def test_live_is_off_for_a_file_console() -> None:
    console, out = make_console(terminal=False)
    renderer = TableRenderer(console)
    renderer.handle(position(rest_position(2)))
    renderer.close()
    assert not renderer.is_live
    assert "\x1b" not in out.getvalue()


# --- status ----------------------------------------------------------------------------


def test_status_text_counts() -> None:
    console, _ = make_console()
    renderer = TableRenderer(console, live=False, clock=lambda: NOON)
    other = SubscriptionKey(42, "strategy.signal")
    ack = envelope("subscription.ack")
    for event in (
        events.Connected(envelope("connection.connected")),
        events.SubscriptionConfirmed(SIGNALS, "r-1", ack),
        events.SubscriptionConfirmed(POSITIONS, "r-2", ack),
        events.SubscriptionRejected(other, "r-3", (), envelope("error")),
        signal(rest_signal()),
        events.DuplicateDropped(SIGNALS, 98765),
        events.DuplicateDropped(SIGNALS, 98765),
        events.HeartbeatAnswered(envelope("heartbeat", timestamp="2024-01-01T12:00:30Z")),
    ):
        renderer.handle(event)
    # "messages" counts signals and positions only (what --count counts): not the
    # connection, acks, errors, heartbeats nor the duplicates, which have their own count.
    assert renderer.status_text() == (
        "connected: yes | subscriptions: 2/3 active, 1 rejected | messages: 1"
        " | last heartbeat: 12:00:30 | duplicates dropped: 2"
    )
    renderer.handle(events.Unsubscribed(POSITIONS, ack))
    assert "subscriptions: 1/3 active" in renderer.status_text()
    renderer.handle(LOST)
    assert renderer.status_text().startswith("connected: no | subscriptions: 0/3 active")


def test_expected_subscriptions_count_before_the_server_answers() -> None:
    console, _ = make_console()
    renderer = TableRenderer(console, live=False)
    renderer.expect_subscriptions([SIGNALS, POSITIONS])
    assert "subscriptions: 0/2 active" in renderer.status_text()
    renderer.handle(events.SubscriptionConfirmed(SIGNALS, "r-1", envelope("subscription.ack")))
    assert "subscriptions: 1/2 active" in renderer.status_text()
    renderer.handle(LOST)
    assert renderer.status_text().startswith("connected: no | subscriptions: 0/2 active")


LOST = events.ConnectionEnded(
    0, events.ConnectionEnd(events.EndReason.SILENT, "silent"), was_connected=True
)


# --- hostile input -----------------------------------------------------------------------

HOSTILE = "[bold red]x[/]\x1b[2J\x07\x9b6n"


@pytest.mark.parametrize("terminal", [False, True])
def test_hostile_strings_are_shown_literally_and_defused(terminal: bool) -> None:
    console, out = make_console(terminal=terminal)
    renderer = TableRenderer(console)
    renderer.handle(
        signal(rest_signal(StrategyName=HOSTILE, C2Symbol={"FullSymbol": HOSTILE}, Side=HOSTILE))
    )
    renderer.handle(position({**rest_position(1), "StrategyName": HOSTILE, "Currency": HOSTILE}))
    renderer.close()
    output = out.getvalue()
    assert "[bold red]x[/]" in output
    for attack in ("\x1b[2J", "\x07", "\x9b", "\x1b[6n"):
        assert attack not in output
    if not terminal:
        assert not TERMINAL_CONTROL.search(output)


def test_long_strings_are_truncated() -> None:
    output = render(
        signal(rest_signal(StrategyName="N" * 5000, C2Symbol={"FullSymbol": "S" * 5000})),
        position({**rest_position(1), "StrategyName": "N" * 5000}),
    )
    assert all(len(line) <= 140 for line in output.splitlines())
    assert "N" * 200 not in output
    assert fields.ELLIPSIS in output


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)
known_keys = st.sampled_from(
    [
        "StrategyId",
        "strategy_id",
        "StrategyName",
        "Side",
        "side",
        "OrderType",
        "OpenClose",
        "OrderQuantity",
        "Quantity",
        "quantity",
        "Limit",
        "Stop",
        "TIF",
        "OrderStatus",
        "SignalId",
        "C2Symbol",
        "symbol",
        "ExchangeSymbol",
        "AvgPx",
        "avg_price",
        "Currency",
        "Positions",
    ]
)
payloads = st.dictionaries(known_keys | st.text(max_size=10), json_values, max_size=12)


@settings(max_examples=300, deadline=None)
@given(payload=payloads, terminal=st.booleans())
def test_arbitrary_payloads_never_raise(payload: dict[str, Any], terminal: bool) -> None:
    console, out = make_console(terminal=terminal, width=100)
    renderer = TableRenderer(console, max_signal_rows=2 if terminal else None)
    renderer.handle(signal(payload))
    renderer.handle(position(payload))
    # Python-side values JSON cannot carry, straight into an envelope.
    raw = protocol.Envelope("strategy.positions", payload={**payload, "Quantity": 10**5000})
    renderer.handle(events.StreamMessage(None, raw))
    renderer.close()
    if not terminal:
        assert not TERMINAL_CONTROL.search(out.getvalue())


# --- layout: what a narrow terminal keeps ------------------------------------------------


def test_80_columns_keep_what_a_trader_needs_and_abbreviate_the_strategy() -> None:
    output = render(signal(rest_signal(StrategyName="Index Mean Reversion", OrderStatus="1")),
                    width=80)
    header, row = output.splitlines()
    for name in ("Time", "Strategy", "Side", "O/C", "Qty", "Symbol", "Type", "Limit/Stop",
                 "Status"):
        assert name in header.split(), header
    assert "Signal id" not in header and "Seq" not in header
    assert row.split()[1].startswith("Index") and "…" in row  # abbreviated, not dropped
    assert "Part fill" in row  # "Partially filled", shortened for a narrow column
    assert len(header) <= 80 and len(row) <= 80


# What each width shows: the header's columns, in order.
EVERY_COLUMN = ["Time UTC", "Strategy", "Seq", "Side", "O/C", "Qty", "Symbol", "Type",
                "Limit/Stop", "TIF", "Status", "Signal id"]
COLUMNS_AT_WIDTH = {
    40: ["Time UTC", "Side", "Qty", "Symbol", "Limit/Stop"],
    60: ["Time UTC", "Strategy", "Side", "Qty", "Symbol", "Limit/Stop", "Status"],
    80: ["Time UTC", "Strategy", "Side", "O/C", "Qty", "Symbol", "Type", "Limit/Stop", "TIF",
         "Status"],
    120: EVERY_COLUMN,
    200: EVERY_COLUMN,
}
# When space is short, these go last, and in this order from the end.
FIRST_NEEDED = ["Time UTC", "Side", "Qty", "Symbol", "Limit/Stop", "Status"]
LEAST_NEEDED = ["Type", "O/C", "TIF", "Seq", "Signal id"]


def header_columns(header: str) -> list[str]:
    return [name for name in EVERY_COLUMN if name in header]


@pytest.mark.parametrize("width", sorted(COLUMNS_AT_WIDTH))
def test_each_width_keeps_the_columns_a_trader_needs_first(width: int) -> None:
    output = render(signal(rest_signal(StrategyName="Index Mean Reversion", OrderStatus="1")),
                    width=width)
    header, row = output.splitlines()
    assert header_columns(header) == COLUMNS_AT_WIDTH[width], header
    assert len(header) <= width and len(row) <= width
    assert "Buy" in row and "@ESZ6" in row and " 2 " in row
    if "Limit/Stop" in header:
        assert "4312.25" in row
    if "Strategy" in header:  # abbreviated, never in place of a price or status
        assert row.split()[1].startswith("Index")


def test_the_strategy_shrinks_and_goes_before_price_or_status_at_any_width() -> None:
    from c2ws.render.layout import SIGNAL_COLUMNS, LineLayout

    for width in range(8, 251):
        layout = LineLayout(SIGNAL_COLUMNS, width, headers={"time": "Time UTC"})
        header = layout.header().plain
        shown = header_columns(header)
        assert len(header) <= width, (width, header)
        # The needed columns go from the end of their list, never from its middle.
        needed = [name for name in FIRST_NEEDED if name in shown]
        assert needed == FIRST_NEEDED[: len(needed)], (width, header)
        # The strategy is abbreviated, then goes, before any of them; and stays as long
        # as a less needed column does.
        strategy = layout.width_of("strategy")
        if needed != FIRST_NEEDED:
            assert strategy is None, (width, header)
        if any(name in shown for name in LEAST_NEEDED):
            assert strategy is not None, (width, header)


def test_a_wide_quantity_makes_the_strategy_go_before_price_and_status() -> None:
    wide = signal(rest_signal(OrderQuantity=123456789012, OrderStatus="2"))
    header, row = render(wide, width=60).splitlines()
    assert "Strategy" not in header
    assert "123456789012" in row and "4312.25" in row and "Filled" in row


@pytest.mark.parametrize("width", [60, 80, 120])
def test_numbers_widen_their_column_instead_of_being_cut(width: int) -> None:
    wide = signal(rest_signal(OrderQuantity=123456789012, Limit=4312.25, Stop=4300.5), seq_id=2)
    output = render(signal(rest_signal(), seq_id=1), wide, signal(rest_signal(), seq_id=3),
                    width=width)
    lines = output.splitlines()
    assert any("123456789012" in line for line in lines)
    assert any("4312.25/4300.5" in line for line in lines) or "Limit/Stop" not in output
    assert not re.search(r"\d…|…\d", output)
    assert all(len(line) <= width for line in lines)
    # The header comes again when the columns change, so rows stay under their titles.
    headers = [i for i, line in enumerate(lines) if line.startswith("Time UTC")]
    qty_row = next(line for line in lines if "123456789012" in line)
    header = lines[max(i for i in headers if i < lines.index(qty_row))]
    end = header.index("Qty") + len("Qty")
    assert qty_row[:end].endswith("123456789012")


def test_a_number_too_wide_for_the_terminal_shows_as_hashes_never_cut() -> None:
    output = render(signal(rest_signal(OrderQuantity="9" * 55)), width=60)
    row = output.splitlines()[-1]
    assert "#" in row and not re.search(r"\d…", row)


def test_piped_width_keeps_every_column() -> None:
    from c2ws.render.layout import full_width

    output = render(signal(rest_signal()), width=full_width())
    header = output.splitlines()[0]
    assert "Seq" in header and "TIF" in header and "Signal id" in header


def test_footer_is_compact_on_a_narrow_terminal() -> None:
    console, out = make_console(terminal=True, width=80)
    renderer = TableRenderer(console, clock=lambda: NOON)
    renderer.expect_subscriptions([SIGNALS, POSITIONS])
    renderer.handle(events.Connected(envelope("connection.connected")))
    renderer.close()
    footer = last_live_frame(out.getvalue()).rstrip().splitlines()[-1]
    assert footer.startswith("conn no (run ended) | subs 0/2")
    assert "…" not in footer


def test_a_footer_too_wide_even_compact_wraps_between_its_items() -> None:
    console, out = make_console(terminal=True, width=40)
    renderer = TableRenderer(console, clock=lambda: NOON)
    renderer.expect_subscriptions([SIGNALS, POSITIONS])
    renderer.handle(events.Connected(envelope("connection.connected")))
    renderer.handle(signal(rest_signal()))
    renderer.close()
    footer = last_live_frame(out.getvalue()).rstrip().splitlines()[-2:]
    assert footer == ["conn no (run ended) | subs 0/2 | msgs 1", "hb - | dups 0"]


# --- resizing -------------------------------------------------------------------------


@pytest.mark.parametrize(("environ", "rewraps"), [
    ({"TERM": "xterm-256color"}, True),  # VTE, iTerm2, kitty, Windows Terminal...
    ({"TERM": "tmux-256color", "TMUX": "/tmp/tmux-1000/default,1,0"}, True),
    ({"TERM": "xterm", "XTERM_VERSION": "XTerm(390)"}, False),
    ({"TERM": "screen", "TMUX": "/tmp/t,1,0", "XTERM_VERSION": "XTerm(390)"}, True),
    ({"TERM": "linux"}, False),
    ({}, True),
])
def test_which_terminals_rewrap_their_lines_when_resized(
    environ: dict[str, str], rewraps: bool
) -> None:
    from c2ws.render.consoles import rewraps_on_resize

    assert rewraps_on_resize(environ) is rewraps


def test_rows_of_lines_rewrapped_to_a_new_width() -> None:
    from c2ws.render.consoles import rewrapped_rows

    assert rewrapped_rows([0, 80, 81, 160, 161], 80) == 1 + 1 + 2 + 2 + 3
    assert rewrapped_rows([119, 40], 120) == 2


# --- time zones and dates ------------------------------------------------------------


def test_times_are_shown_in_the_chosen_zone_with_its_name_in_the_header() -> None:
    from c2ws.render.clock import DisplayZone

    zone = DisplayZone.parse("America/New_York")
    output = render(signal(rest_signal()), zone=zone, clock=lambda: NOON)
    header, row = output.splitlines()
    assert header.startswith("Time EST ")
    assert row.startswith("07:00:00 ")  # 12:00 UTC in January


def test_local_zone_follows_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    from c2ws.render.clock import DisplayZone

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        output = render(signal(rest_signal()), zone=DisplayZone.local(), clock=lambda: NOON)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    header, row = output.splitlines()
    assert header.startswith("Time IST ") and row.startswith("17:30:00 ")


def test_unknown_zone_says_what_is_accepted() -> None:
    from c2ws.render.clock import DisplayZone, UnknownZone

    with pytest.raises(UnknownZone, match="local, utc or an IANA name"):
        DisplayZone.parse("Mars/Olympus")
    assert DisplayZone.parse("UTC").name == "UTC"
    assert DisplayZone.parse("Local").tz is None


def test_a_log_dates_its_first_line_and_every_new_day() -> None:
    output = render(
        signal(rest_signal(), seq_id=1),
        signal(rest_signal(), seq_id=2, timestamp="2024-01-01T23:59:59Z"),
        signal(rest_signal(), seq_id=3, timestamp="2024-01-02T00:00:01Z"),
        dates=True, clock=lambda: NOON,
    )
    lines = output.splitlines()
    assert lines[0] == "── Monday 2024-01-01 ──"
    assert lines.index("── Tuesday 2024-01-02 ──") == 4
    assert lines[5].startswith("00:00:01 ")
    assert len([line for line in lines if line.startswith("Time UTC")]) == 1


def test_a_live_table_dates_lines_only_when_the_day_is_not_today() -> None:
    console, out = make_console(terminal=True)
    with TableRenderer(console, clock=lambda: NOON, highlight_seconds=0) as renderer:
        renderer.handle(signal(rest_signal(), seq_id=1))
        renderer.handle(signal(rest_signal(), seq_id=2, timestamp="2024-01-02T09:00:00Z"))
    output = out.getvalue()
    assert "Monday 2024-01-01" not in output
    assert "── Tuesday 2024-01-02 ──" in output


def test_positions_updated_on_another_day_show_the_date() -> None:
    console, out = make_console()
    renderer = TableRenderer(console, live=False, clock=lambda: NOON + 86_400)
    renderer.handle(position(rest_position(3)))
    renderer.close()
    row = lines_with(out.getvalue().split("Positions", 1)[1], "@ESZ6")[0]
    assert row.split()[-2:] == ["01-01", "12:00"]


# --- what the positions table can be trusted for ---------------------------------------


def positions_title(renderer: TableRenderer, out: io.StringIO) -> str:
    renderer.close()
    return next(line for line in out.getvalue().splitlines() if line.startswith("Positions"))


def test_positions_say_they_are_updates_since_the_connection() -> None:
    console, out = make_console(terminal=True)
    renderer = TableRenderer(console, clock=lambda: NOON)
    renderer.handle(events.Connected(envelope("connection.connected")))
    renderer.close()
    frame = last_live_frame(out.getvalue())
    assert "updates since 12:00:00" in frame
    assert "no open positions seen since 12:00:00" in frame
    assert "only changes are streamed" in frame


def test_positions_are_stale_while_disconnected_and_the_outage_is_remembered() -> None:
    now = [NOON]
    console, out = make_console(terminal=True)
    renderer = TableRenderer(console, clock=lambda: now[0], highlight_seconds=0)
    renderer.handle(events.Connected(envelope("connection.connected")))
    renderer.handle(position(rest_position(3)))
    now[0] += 60
    renderer.handle(LOST)
    renderer._live.update(renderer._live_view(), refresh=True)  # type: ignore[union-attr]
    stale = last_live_frame(out.getvalue())
    assert "stale: disconnected since 12:01:00" in stale
    now[0] += 5
    renderer.handle(events.Connected(envelope("connection.connected")))
    renderer._live.update(renderer._live_view(), refresh=True)  # type: ignore[union-attr]
    back = last_live_frame(out.getvalue())
    assert "changes between 12:01:00 and 12:01:05 may be missing" in back
    renderer.close()
    final = last_live_frame(out.getvalue())
    assert "Positions at 12:01:05 (run ended; updates since 12:00:00)" in final
    assert "connected: no (run ended)" in final


def test_the_last_frame_is_true_even_without_a_connection_ended_event() -> None:
    # The engine's ConnectionEnded events during stop are never read by the output loop.
    console, out = make_console(terminal=True)
    renderer = TableRenderer(console, clock=lambda: NOON)
    renderer.expect_subscriptions([SIGNALS, POSITIONS])
    renderer.handle(events.Connected(envelope("connection.connected")))
    for key in (SIGNALS, POSITIONS):
        renderer.handle(events.SubscriptionConfirmed(key, "r", envelope("subscription.ack")))
    assert renderer.status_text().startswith("connected: yes | subscriptions: 2/2 active")
    renderer.close()
    assert renderer.status_text().startswith(
        "connected: no (run ended) | subscriptions: 0/2 active")
    assert "connected: yes" not in last_live_frame(out.getvalue())


def test_a_message_printed_while_live_lands_above_the_region_in_order() -> None:
    from rich.text import Text

    console, out = make_console(terminal=True)
    with TableRenderer(console, clock=lambda: NOON, highlight_seconds=0) as renderer:
        renderer.handle(signal(rest_signal(SignalId="first"), seq_id=1))
        renderer.print_message(Text("c2ws: a message"))
        renderer.handle(signal(rest_signal(SignalId="second"), seq_id=2))
    output = out.getvalue()
    assert output.index("first") < output.index("c2ws: a message") < output.index("second")
    assert "c2ws: a message" not in last_live_frame(output)


def test_a_burst_faster_than_a_terminal_shows_the_newest_and_counts_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No redraw during the burst: it all waits for the one at close.
    monkeypatch.setattr(table_module, "REFRESH_INTERVAL_SECONDS", 3600.0)
    console, out = make_console(terminal=True)
    renderer = TableRenderer(console, live=True, highlight_seconds=0)
    burst = table_module.MAX_SIGNALS_PER_REFRESH * 5
    for seq in range(1, burst + 1):
        renderer.handle(signal(rest_signal(), seq_id=seq))
    renderer.close()
    text = out.getvalue()
    skipped = burst - table_module.MAX_SIGNALS_PER_REFRESH
    assert f"{skipped} more signals came faster than a terminal can show them" in text
    assert text.count(" Buy ") == table_module.MAX_SIGNALS_PER_REFRESH  # the newest only
    shown = [int(seq) for seq in re.findall(r"(\d+) Buy ", text)]
    assert shown == list(range(skipped + 1, burst + 1))


def test_with_several_connections_the_footer_says_how_many_are_up() -> None:
    """One connection of three failing over and over must not read 'connected: yes'."""
    console, _ = make_console()
    renderer = TableRenderer(console, clock=lambda: NOON)
    renderer.expect_subscriptions([SIGNALS, POSITIONS], connections=3)
    for shard in range(3):
        renderer.handle(events.Connected(envelope("connection.connected"), shard=shard))
    assert renderer.status_text().startswith("connected: 3/3 up |")
    renderer.handle(events.ConnectionEnded(
        2, events.ConnectionEnd(events.EndReason.BUSY, "closed with 1008"), True))
    assert renderer.status_text().startswith("connected: 2/3 up |")
    assert renderer._footer(60)[0].plain.startswith("conn 2/3 up |")


def test_a_rest_snapshot_fills_the_positions_marked_until_a_live_update_replaces_it() -> None:
    """Issue 24: the positions panel starts from the REST snapshot (rows marked "snap"
    with its time, the title says so); a live update of a symbol replaces its row."""
    from c2ws.rest.results import snapshot_event

    snapshot = snapshot_event(STRATEGY, [
        {"StrategyId": STRATEGY, "StrategyName": "Alpha", "Quantity": 4, "AvgPx": 10.5,
         "C2Symbol": {"FullSymbol": "@ESZ6"}, "Currency": "USD"},
        {"StrategyId": STRATEGY, "Quantity": -100, "AvgPx": 5.0,
         "C2Symbol": {"FullSymbol": "AAPL"}},
    ], NOON)
    console, out = make_console(width=140)
    renderer = TableRenderer(console, live=False, clock=lambda: NOON)
    renderer.handle(snapshot)
    assert {symbol: row.snapshot for (_, symbol), row in renderer.positions.items()} == {
        "@ESZ6": True, "AAPL": True}
    renderer.handle(position({"StrategyId": STRATEGY, "Quantity": 2, "AvgPx": 11.0,
                              "C2Symbol": {"FullSymbol": "@ESZ6"}}))
    assert {symbol: row.snapshot for (_, symbol), row in renderer.positions.items()} == {
        "@ESZ6": False, "AAPL": True}
    renderer.close()
    final = out.getvalue()
    assert "snapshot at" in final
    (aapl,) = [line for line in lines_with(final, "AAPL") if "snap" in line]
    assert "-100" in aapl
