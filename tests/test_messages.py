"""The library's typed messages (c2ws/messages.py): tolerant, exact, lazy, frozen, and
written byte for byte as the CLI writes them."""

from __future__ import annotations

import copy
import datetime
import io
import json
import pickle
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import json_values

from c2ws import dto, spec
from c2ws import events as ev
from c2ws import messages as messages_module
from c2ws.events import SubscriptionKey
from c2ws.messages import (
    Gap,
    OpenClose,
    OrderStatus,
    OrderType,
    Position,
    SequenceReset,
    Side,
    Signal,
    TimeInForce,
    message_of,
)
from c2ws.protocol import Envelope, decode
from c2ws.render import fields
from c2ws.render.ndjson import NdjsonRenderer
from c2ws.server.feed import SyntheticFeed
from c2ws.stream_head import read_stream_head

STRATEGY = 12345678
SIGNALS = SubscriptionKey(STRATEGY, spec.CHANNEL_SIGNAL)
POSITIONS = SubscriptionKey(STRATEGY, spec.CHANNEL_POSITIONS)
NOON = datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.timezone.utc)
TIMESTAMP = "2024-01-01T12:00:00Z"
UTC = datetime.timezone.utc


def frame_of(payload: object, *, msg_type: str = spec.CHANNEL_SIGNAL, seq_id: int = 7,
             timestamp: object = TIMESTAMP, indent: bool = False) -> bytes:
    """A server frame; the standard library encodes what orjson will not (ints past 64
    bits), as a server in another language might."""
    envelope = {"msg_type": msg_type, "id": "msg_0a1b", "seq_id": seq_id,
                "timestamp": timestamp, "v": 4, "payload": payload}
    return json.dumps(envelope, indent=2 if indent else None).encode()


def decoded_event(frame: bytes, key: SubscriptionKey | None = SIGNALS) -> ev.StreamMessage:
    """What the engine hands over when it decodes payloads (``decoded_payloads=True``)."""
    message = decode(frame)
    return ev.StreamMessage(key, message, message.seq_id)


def header_event(frame: bytes, key: SubscriptionKey | None = SIGNALS) -> ev.StreamMessage:
    """What the engine hands over on the NDJSON fast path: the header only, payload and
    raw empty, the frame kept (``c2ws.stream_head``; built by hand when the header reader
    passes the frame on, as the session then empties them too)."""
    head = read_stream_head(frame)
    if head is not None:
        message = head[0]
    else:
        full = decode(frame)
        message = Envelope(full.msg_type, {}, full.id, full.seq_id, full.request_id,
                           full.timestamp, full.v, {}, frame)
    return ev.StreamMessage(key, message, message.seq_id)


BOTH_PATHS = pytest.mark.parametrize("build", [decoded_event, header_event],
                                     ids=["decoded", "header-only"])


def rest_signal(**overrides: object) -> dict[str, Any]:
    """An order as the C2 REST v4 OrderStatusDTO spells it."""
    payload: dict[str, Any] = {
        "StrategyId": STRATEGY, "StrategyName": "Alpha Momentum", "SignalId": 150000123,
        "OrderId": 7000000123, "OrderType": "2", "Side": "1", "OpenClose": "O",
        "OrderQuantity": 3, "Limit": 4312.25, "Stop": None, "TIF": "1",
        "OrderStatus": "2", "FilledQuantity": 3, "AvgFillPrice": 4312.25,
        "C2Symbol": {"FullSymbol": "@ESZ6", "SymbolType": "future"},
        "ExchangeSymbol": {"Symbol": "ES", "Currency": "USD"},
    }  # fmt: skip
    payload.update(overrides)
    return payload


SIGNAL_FIELDS: dict[str, Callable[[object], bool]] = {
    "symbol": lambda v: v is None or (isinstance(v, str) and v == v.strip() and v != ""),
    "strategy_name": lambda v: v is None or (isinstance(v, str) and v != ""),
    "signal_id": lambda v: v is None or (type(v) is int and -(2**63) <= v < 2**63),
    "side": lambda v: v is None or isinstance(v, Side),
    "open_close": lambda v: v is None or isinstance(v, OpenClose),
    "order_type": lambda v: v is None or isinstance(v, OrderType),
    "time_in_force": lambda v: v is None or isinstance(v, TimeInForce),
    "status": lambda v: v is None or isinstance(v, OrderStatus),
    "quantity": lambda v: v is None or (isinstance(v, Decimal) and v.is_finite()),
    "filled_quantity": lambda v: v is None or (isinstance(v, Decimal) and v.is_finite()),
    "limit_price": lambda v: v is None or (isinstance(v, Decimal) and v.is_finite() and v != 0),
    "stop_price": lambda v: v is None or (isinstance(v, Decimal) and v.is_finite() and v != 0),
    "avg_fill_price": lambda v: v is None or (isinstance(v, Decimal) and v != 0),
}
POSITION_FIELDS: dict[str, Callable[[object], bool]] = {
    "symbol": SIGNAL_FIELDS["symbol"],
    "strategy_name": SIGNAL_FIELDS["strategy_name"],
    "quantity": SIGNAL_FIELDS["quantity"],
    "avg_price": SIGNAL_FIELDS["avg_fill_price"],
    "currency": lambda v: v is None or (isinstance(v, str) and v != ""),
}
COMMON_FIELDS: dict[str, Callable[[object], bool]] = {
    "seq_id": lambda v: v is None or type(v) is int,
    "strategy_id": lambda v: v is None or (type(v) is int and v > 0),
    "channel": lambda v: v in spec.STREAM_MSG_TYPES,
    "timestamp": lambda v: v is None or (isinstance(v, datetime.datetime) and v.tzinfo is UTC),
    "raw": lambda v: isinstance(v, dict),
    "line": lambda v: isinstance(v, bytes) and b"\n" not in v and b"\r" not in v,
}

# Every key a field is looked for under, in the three spellings, and a few strangers:
# arbitrary payloads then hit the decoded fields with arbitrary values.
_FIELD_KEYS = ("StrategyId", "StrategyName", "SignalId", "OrderId", "Side", "OpenClose",
               "OrderQuantity", "Quantity", "qty", "FilledQuantity", "OrderType", "type",
               "Limit", "LimitPrice", "Stop", "StopPrice", "TIF", "TimeInForce",
               "OrderStatus", "status", "AvgFillPrice", "AvgPx", "AvgPrice", "Currency",
               "C2Symbol", "Symbol", "ExchangeSymbol", "FullSymbol")
payload_keys = st.sampled_from(
    [*_FIELD_KEYS, *(key[0].lower() + key[1:] for key in _FIELD_KEYS),
     *(re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower() for key in _FIELD_KEYS)]
) | st.text(max_size=6)
symbol_objects = st.dictionaries(st.sampled_from(["FullSymbol", "Symbol", "symbol"]),
                                 json_values, max_size=2)
payloads = st.dictionaries(payload_keys, json_values | symbol_objects, max_size=12)


def assert_well_typed(message: Signal | Position) -> None:
    declared = {**COMMON_FIELDS,
                **(SIGNAL_FIELDS if isinstance(message, Signal) else POSITION_FIELDS)}
    for name, holds in declared.items():
        value = getattr(message, name)
        assert holds(value), (name, value)
    assert len(repr(message)) < 400


@settings(max_examples=300)
@given(payload=payloads, msg_type=st.sampled_from(sorted(spec.STREAM_MSG_TYPES)),
       timestamp=st.one_of(st.none(), st.text(max_size=30),
                           st.just("2024-01-01T12:00:00.123456789Z")),
       has_key=st.booleans(), indent=st.booleans())  # fmt: skip
def test_any_payload_gives_values_of_the_declared_types_and_never_raises(
    payload: dict[str, Any], msg_type: str, timestamp: str | None, has_key: bool, indent: bool
) -> None:
    frame = frame_of(payload, msg_type=msg_type, timestamp=timestamp, indent=indent)
    key = SubscriptionKey(STRATEGY, msg_type) if has_key else None
    for build in (decoded_event, header_event):
        message = message_of(build(frame, key))
        assert type(message) is (Position if msg_type == spec.CHANNEL_POSITIONS else Signal)
        assert_well_typed(message)


@given(value=json_values)
def test_any_value_in_every_field_of_a_rest_signal_is_read_without_raising(
    value: object,
) -> None:
    for name in rest_signal():
        message = message_of(decoded_event(frame_of(rest_signal(**{name: value}))))
        assert_well_typed(message)


def test_a_rest_signal_reads_as_a_trader_expects() -> None:
    signal = message_of(decoded_event(frame_of(rest_signal())))
    assert isinstance(signal, Signal)
    assert (signal.strategy_id, signal.channel, signal.seq_id) == (STRATEGY, "strategy.signal", 7)
    assert signal.timestamp == NOON
    assert signal.symbol == "@ESZ6"
    assert signal.strategy_name == "Alpha Momentum"
    assert signal.signal_id == 150000123
    assert signal.side is Side.BUY
    assert signal.open_close is OpenClose.OPEN
    assert signal.order_type is OrderType.LIMIT
    assert signal.time_in_force is TimeInForce.GTC
    assert signal.status is OrderStatus.FILLED
    assert signal.quantity == Decimal(3) and signal.filled_quantity == Decimal(3)
    assert signal.limit_price == Decimal("4312.25") and signal.stop_price is None
    assert signal.avg_fill_price == Decimal("4312.25")


def test_absent_fields_are_none_and_unknown_codes_are_unknown() -> None:
    signal = message_of(decoded_event(frame_of({"Side": "7", "OrderType": "StopLimit",
                                                "TIF": True, "OrderStatus": [1]})))
    assert isinstance(signal, Signal)
    assert signal.side is Side.UNKNOWN and signal.order_type is OrderType.UNKNOWN
    assert signal.time_in_force is TimeInForce.UNKNOWN and signal.status is OrderStatus.UNKNOWN
    assert signal.open_close is None and signal.symbol is None and signal.quantity is None
    blank = message_of(decoded_event(frame_of({"Side": "  ", "C2Symbol": {"FullSymbol": " "}})))
    assert isinstance(blank, Signal)
    assert blank.side is None and blank.symbol is None


def test_a_position_reads_signed_quantity_and_flat_price_as_unset() -> None:
    short = message_of(decoded_event(
        frame_of({"StrategyId": STRATEGY, "Quantity": -2, "AvgPx": 6850.25, "Currency": "USD",
                  "C2Symbol": {"FullSymbol": "@ESZ6"}}, msg_type=spec.CHANNEL_POSITIONS),
        POSITIONS,
    ))  # fmt: skip
    assert isinstance(short, Position)
    assert (short.symbol, short.quantity, short.avg_price, short.currency) == (
        "@ESZ6", Decimal(-2), Decimal("6850.25"), "USD")
    flat = message_of(decoded_event(
        frame_of({"Quantity": 0, "AvgPx": 0.0}, msg_type=spec.CHANNEL_POSITIONS), POSITIONS
    ))
    assert isinstance(flat, Position)
    assert flat.quantity == 0 and flat.avg_price is None


def test_a_list_of_positions_decodes_no_fields_but_stays_in_raw() -> None:
    items = [{"Quantity": 1, "C2Symbol": {"FullSymbol": "AAPL"}}]
    listed = message_of(decoded_event(
        frame_of({"StrategyId": STRATEGY, "positions": items}, msg_type=spec.CHANNEL_POSITIONS),
        POSITIONS,
    ))
    assert isinstance(listed, Position)
    assert listed.symbol is None and listed.quantity is None
    assert listed.raw["payload"]["positions"] == items


def test_strategy_id_comes_from_the_payload_when_the_engine_placed_none() -> None:
    message = message_of(header_event(frame_of({"strategy_id": "42"}), key=None))
    assert message.strategy_id == 42
    assert message_of(header_event(frame_of({}), key=None)).strategy_id is None


# --- key spellings ----------------------------------------------------------------------


def spelled(value: object, spell: Callable[[str], str]) -> object:
    if isinstance(value, dict):
        return {spell(key): spelled(item, spell) for key, item in value.items()}
    if isinstance(value, list):
        return [spelled(item, spell) for item in value]
    return value


def camel(key: str) -> str:
    return key[:1].lower() + key[1:]


def snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def feed_payloads(seed: int, count: int) -> Iterator[ev.StreamMessage]:
    """The reference server's synthetic feed (PascalCase REST objects)."""
    feed = SyntheticFeed(seed)
    for number in range(count):
        item = feed.next_event(1_700_000_000.0 + number)
        yield decoded_event(frame_of(item.payload, msg_type=item.channel, seq_id=number + 1),
                            SubscriptionKey(item.strategy_id, item.channel))


def decoded_fields(message: Signal | Position) -> dict[str, object]:
    names = SIGNAL_FIELDS if isinstance(message, Signal) else POSITION_FIELDS
    return {name: getattr(message, name) for name in names}


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32))
def test_pascal_camel_and_snake_case_payloads_give_the_same_fields(seed: int) -> None:
    for event in feed_payloads(seed, 6):
        pascal = message_of(event)
        expected = decoded_fields(pascal)
        assert expected["symbol"] is not None and expected["quantity"] is not None
        for spell in (camel, snake, str.upper):
            frame = frame_of(spelled(event.message.payload, spell),
                             msg_type=event.message.msg_type)
            for build in (decoded_event, header_event):
                assert decoded_fields(message_of(build(frame, event.key))) == expected


def test_the_feed_codes_read_as_their_rest_meaning() -> None:
    for event in feed_payloads(3, 60):
        message = message_of(event)
        payload = event.message.payload
        if isinstance(message, Signal):
            assert message.side is {dto.SIDE_BUY: Side.BUY, dto.SIDE_SELL: Side.SELL}[
                payload["Side"]]
            assert message.quantity == Decimal(payload["OrderQuantity"])
            assert message.symbol == payload["C2Symbol"]["FullSymbol"]
        else:
            assert message.quantity == Decimal(payload["Quantity"])


# --- codes: the same meaning as the table shows -----------------------------------------

CODE_TABLES = [
    (fields.SIDES, messages_module._SIDES, Side.UNKNOWN),
    (fields.OPEN_CLOSE, messages_module._OPEN_CLOSE, OpenClose.UNKNOWN),
    (fields.ORDER_TYPES, messages_module._ORDER_TYPES, OrderType.UNKNOWN),
    (fields.TIME_IN_FORCE, messages_module._TIME_IN_FORCE, TimeInForce.UNKNOWN),
    (fields.ORDER_STATUSES, messages_module._ORDER_STATUSES, OrderStatus.UNKNOWN),
]
# Printable text only: the table strips control sequences for display, so "Buy\x1b[0m"
# shows as Buy there, while it is no code at all.
code_values = st.one_of(
    json_values.filter(lambda v: not isinstance(v, str)),
    st.text(alphabet=st.characters(categories=["L", "N", "Zs"], include_characters="_-"),
            max_size=20),
    st.sampled_from([*dto.SIDE_NAMES, *dto.ORDER_STATUS_NAMES, *dto.OPEN_CLOSE_NAMES,
                     *dto.ORDER_STATUS_NAMES.values(), "partially_filled", "PENDING-NEW",
                     " gtc ", "ioc", "c", "1.0", 1.0, 2, 8, -1, 10**30]),
)


def member_name(member: Any) -> str:
    return messages_module._name_key(member.value)


@given(value=code_values)
def test_codes_mean_what_the_table_shows(value: object) -> None:
    for table, reader, unknown in CODE_TABLES:
        shown = table.name_of(value)
        member = reader.read(value)
        if shown in table.names.values():  # the table recognised a code or a name
            assert member is not None and member is not unknown, (value, shown)
            assert member_name(member) == messages_module._name_key(shown)
        elif shown == "":
            assert member is None or member is unknown, (value, member)
        else:
            assert member is unknown, (value, shown, member)


def test_every_rest_code_has_a_member() -> None:
    for table, reader, unknown in CODE_TABLES:
        for code, name in table.codes.items():
            member = reader.read(code)
            assert member is not None and member is not unknown
            assert member_name(member) == messages_module._name_key(name)


# --- exact numbers ----------------------------------------------------------------------


def test_prices_and_quantities_are_exact_decimals() -> None:
    frame = b'{"msg_type":"strategy.signal","seq_id":1,"payload":{"OrderQuantity":25000,' \
            b'"Limit":4312.25,"Stop":"1.08501","FilledQuantity":0.1,"AvgFillPrice":1e-05}}'
    for build in (decoded_event, header_event):
        signal = message_of(build(frame))
        assert isinstance(signal, Signal)
        assert str(signal.quantity) == "25000"
        assert str(signal.limit_price) == "4312.25"  # not 4312.25000000000181898940354585648
        assert str(signal.stop_price) == "1.08501"
        assert str(signal.filled_quantity) == "0.1"
        assert signal.avg_fill_price == Decimal("0.00001")


def test_numbers_orjson_refuses_still_decode_through_the_standard_library() -> None:
    # Valid JSON: a number beyond a double's range and an integer past 64 bits.
    frame = (b'{"msg_type":"strategy.signal","seq_id":3,"payload":{"StrategyId":12345678,'
             b'"OrderQuantity":1e400,"Limit":123456789012345678901234567890,'
             b'"C2Symbol":{"FullSymbol":"@ESZ6"},"Side":"2"}}')
    signal = message_of(header_event(frame))
    assert isinstance(signal, Signal)
    assert signal.raw["payload"]["Limit"] == 123456789012345678901234567890
    assert signal.quantity is None and signal.limit_price is None  # no plausible numbers
    assert (signal.symbol, signal.side) == ("@ESZ6", Side.SELL)


# --- the line: byte for byte what the CLI writes -----------------------------------------


def cli_lines(events: list[ev.Event], *, batch: bool) -> list[bytes]:
    out = io.BytesIO()
    renderer = NdjsonRenderer(out)
    if batch:
        renderer.handle_messages([event for event in events
                                  if isinstance(event, ev.StreamMessage)])
    else:
        for event in events:
            renderer.handle(event)
    renderer.flush()
    return out.getvalue().splitlines()


@given(payload=payloads, indent=st.booleans(), crlf=st.booleans())
def test_line_is_what_the_cli_writes(payload: dict[str, Any], indent: bool, crlf: bool) -> None:
    frame = frame_of(payload, indent=indent)
    if crlf:
        frame = frame.replace(b"\n", b"\r\n")
    for build in (decoded_event, header_event):
        event = build(frame)
        line = message_of(event).line
        assert [line] == cli_lines([event], batch=False) == cli_lines([event], batch=True)
        assert orjson.loads(line) == message_of(event).raw


def test_line_of_a_message_built_without_frame_bytes_is_its_raw_object() -> None:
    raw = {"msg_type": spec.CHANNEL_SIGNAL, "seq_id": 4, "payload": {"Side": "1"}}
    event = ev.StreamMessage(SIGNALS, Envelope(spec.CHANNEL_SIGNAL, raw["payload"], None, 4,
                                               raw=raw))
    signal = message_of(event)
    assert [signal.line] == cli_lines([event], batch=False)
    assert signal.raw is raw and signal.side is Side.BUY


def gap_report(last_seq: int | None = 1000, next_seq: int | None = 2001) -> ev.GapReported:
    frame = (b'{"msg_type":"gap","id":"msg_9","timestamp":"2024-01-01T12:00:05Z","v":4,'
             b'"payload":{"strategy_id":null,"channel":"strategy.signal:12345678",'
             b'"from":"1000","message":"Replay limit of 1000 messages exceeded"}}')
    return ev.GapReported(SIGNALS, last_seq, "2024-01-01T11:00:00Z", next_seq,
                          "2024-01-01T12:00:06.25Z" if next_seq else None,
                          "Replay limit of 1000 messages exceeded", decode(frame))


@pytest.mark.parametrize("next_seq", [2001, None])
def test_a_gap_reads_both_ends_and_its_line_is_what_the_cli_writes(next_seq: int | None) -> None:
    report = gap_report(next_seq=next_seq)
    gap = Gap(report)
    assert [gap.line] == cli_lines([report], batch=False)
    assert orjson.loads(gap.line) == gap.raw
    assert (gap.strategy_id, gap.channel, gap.seq_id) == (STRATEGY, "strategy.signal", None)
    assert gap.timestamp == datetime.datetime(2024, 1, 1, 12, 0, 5, tzinfo=UTC)
    assert gap.after_seq_id == 1000
    assert gap.after_timestamp == datetime.datetime(2024, 1, 1, 11, tzinfo=UTC)
    assert gap.before_seq_id == next_seq
    assert gap.before_timestamp == (
        datetime.datetime(2024, 1, 1, 12, 0, 6, 250_000, tzinfo=UTC) if next_seq else None)
    assert gap.text == "Replay limit of 1000 messages exceeded"


def sequence_reset() -> SequenceReset:
    line = (b'{"msg_type":"sequence.reset","strategy_id":12345678,'
            b'"channel":"strategy.signal","old_cursor":90210,"first_seq_id":1}')
    return SequenceReset(SIGNALS, 90210, 1, line, "2024-01-01T12:00:00Z",
                         "2024-01-01T11:59:00Z")


def test_a_sequence_reset_is_built_from_plain_values_and_its_line() -> None:
    reset = sequence_reset()
    assert (reset.strategy_id, reset.channel) == (STRATEGY, "strategy.signal")
    assert (reset.old_cursor, reset.first_seq_id, reset.seq_id) == (90210, 1, 1)
    assert reset.timestamp == NOON
    assert reset.old_timestamp == datetime.datetime(2024, 1, 1, 11, 59, tzinfo=UTC)
    assert reset.raw == orjson.loads(reset.line)
    broken = SequenceReset(SIGNALS, None, 1, b"not json")
    assert broken.raw == {} and broken.timestamp is None and broken.old_cursor is None


# --- lazy -------------------------------------------------------------------------------


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every frame decoded with orjson from now on."""
    calls: list[object] = []
    real = orjson.loads

    def counting(data: Any) -> Any:
        calls.append(data)
        return real(data)

    monkeypatch.setattr(orjson, "loads", counting)
    return calls


def test_building_and_writing_messages_decodes_nothing(decodes: list[object]) -> None:
    events = [header_event(frame_of(rest_signal(), seq_id=seq)) for seq in range(1, 51)]
    decodes.clear()
    built = [message_of(event) for event in events]
    for message in built:
        assert message.line == message.line
        assert (message.seq_id, message.channel, message.strategy_id) != (None, "", None)
        assert message.timestamp == NOON
        hash(message)
    assert built[0] != built[1]
    assert decodes == []
    for message in built:
        assert isinstance(message, Signal)
        assert (message.symbol, message.side, message.quantity) == ("@ESZ6", Side.BUY, 3)
        assert message.limit_price == Decimal("4312.25") and message.raw["seq_id"] > 0
    assert len(decodes) == len(built)  # each frame decoded once, on the first field read


def test_an_undecodable_frame_builds_and_writes_and_reads_as_empty() -> None:
    frame = b'{"msg_type":"strategy.signal","seq_id":5,"payload":{"Side":"1", broken'
    message = Signal(ev.StreamMessage(SIGNALS, Envelope(spec.CHANNEL_SIGNAL, {}, None, 5,
                                                        data=frame)))
    assert message.line == frame and message.seq_id == 5
    assert message.raw == {} and message.side is None and message.symbol is None


def test_fields_are_kept_once_read(decodes: list[object]) -> None:
    signal = message_of(header_event(frame_of(rest_signal())))
    assert isinstance(signal, Signal)
    first = (signal.quantity, signal.raw, signal.timestamp, signal.symbol)
    second = (signal.quantity, signal.raw, signal.timestamp, signal.symbol)
    assert all(a is b for a, b in zip(first, second, strict=True))
    assert len(decodes) == 1


# --- frozen, equal by line, picklable, short repr ----------------------------------------


def all_kinds() -> list[Signal | Position | Gap | SequenceReset]:
    return [
        message_of(header_event(frame_of(rest_signal()))),
        message_of(decoded_event(frame_of({"Quantity": 1}, msg_type=spec.CHANNEL_POSITIONS),
                                 POSITIONS)),
        Gap(gap_report()),
        sequence_reset(),
    ]


@pytest.mark.parametrize("name", ["line", "raw", "seq_id", "side", "_event", "_memo",
                                  "_gap", "_line", "anything"])
def test_messages_are_frozen(name: str) -> None:
    for message in all_kinds():
        with pytest.raises(AttributeError):
            setattr(message, name, None)
        with pytest.raises(AttributeError):
            delattr(message, name)


def test_equal_and_hashed_by_class_and_line_whatever_the_path() -> None:
    frame = frame_of(rest_signal())
    by_header, by_decoding = message_of(header_event(frame)), message_of(decoded_event(frame))
    by_header.symbol  # noqa: B018  (reading a field must not change equality)
    assert by_header == by_decoding and hash(by_header) == hash(by_decoding)
    assert len({by_header, by_decoding}) == 1
    assert by_header != message_of(header_event(frame_of(rest_signal(), seq_id=8)))
    as_position = Position(header_event(frame))
    assert as_position != by_header  # another class, though the line is the same
    assert by_header != frame


def test_messages_pickle_and_copy_to_equal_messages() -> None:
    for message in all_kinds():
        for clone in (pickle.loads(pickle.dumps(message)), copy.copy(message),
                      copy.deepcopy(message)):
            assert clone == message and type(clone) is type(message)
            assert clone.raw == message.raw and clone.timestamp == message.timestamp


def test_repr_is_short_and_safe_for_a_terminal() -> None:
    hostile = "\x1b]0;owned\x07\x1b[2J" + "A" * 100_000
    signal = message_of(header_event(frame_of(rest_signal(C2Symbol={"FullSymbol": hostile}))))
    text = repr(signal)
    assert len(text) < 300 and "\x1b" not in text and "\x07" not in text
    assert text.startswith("Signal(strategy_id=12345678, seq_id=7, side=BUY, quantity=3")
    for message in all_kinds():
        assert len(repr(message)) < 300


def test_every_public_name_has_a_docstring() -> None:
    for name in messages_module.__all__:
        value = getattr(messages_module, name)
        if name != "Message":  # a type alias
            assert (value.__doc__ or "").strip(), name
    for cls in (Signal, Position, Gap, SequenceReset):
        for attribute in dir(cls):
            if not attribute.startswith("_"):
                assert (getattr(cls, attribute).__doc__ or "").strip(), (cls, attribute)
