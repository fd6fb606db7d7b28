"""The outputs made faster for issue 22 against the renderers as they were, on generated
messages: the same bytes.  ``-o csv|tsv`` (c2ws/render/cells.py, c2ws/render/tabular.py)
against every record of c2ws.render.records with every value through ``cell_text`` and
one ``csv.writer`` row each, for every column set and both delimiters, a message rendered
again (remembered cells) included; ``-o json`` and ``--fields`` (c2ws/render/objects.py,
now written per batch) against one write per element."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import json_values

from c2ws import events as ev
from c2ws import spec
from c2ws.events import SubscriptionKey
from c2ws.protocol import Envelope
from c2ws.render import records
from c2ws.render.objects import JsonArrayRenderer, ProjectedNdjsonRenderer, output_objects
from c2ws.render.records import (
    COMBINED_COLUMNS,
    DECODED_FIELDS,
    POSITION_COLUMNS,
    SIGNAL_COLUMNS,
    Projection,
    cell_text,
    raw_value,
)
from c2ws.render.tabular import DelimitedRenderer

SIGNAL_KEY = SubscriptionKey(12345678, spec.CHANNEL_SIGNAL)
POSITIONS_KEY = SubscriptionKey(12345678, spec.CHANNEL_POSITIONS)

# The columns of the table, the envelope's keys and paths, in every combination --fields
# allows (a projection without decoded fields takes the raw path).
COLUMN_SETS: tuple[Sequence[str], ...] = (
    COMBINED_COLUMNS, SIGNAL_COLUMNS, POSITION_COLUMNS,
    ("symbol", "side", "payload.Limit"), ("kind", "qty", "seq_id"),
    ("seq_id", "payload.C2Symbol.FullSymbol", "msg_type"), ("payload",), ("qty",),
    ("payload.Side",),
)


def old_records(projection: Projection, message: Envelope,
                key: SubscriptionKey | None) -> list[dict[str, Any]]:
    """``Projection.records`` before issue 22: every signal through ``signal_record``."""
    raw = message.raw
    if not projection.decoded:
        record: dict[str, Any] = {"kind": records._kind_of(message)} if (
            projection._add_kind) else {}
        for name in projection._chosen:
            record[name] = raw_value(raw, name)
        return [record]
    return [{name: decoded[name] if name in DECODED_FIELDS else raw_value(raw, name)
             for name in projection.names}
            for decoded in records.decoded_records(message, key)]


class OldDelimited:
    """The renderer before issue 22, as it was: a record per stream message (or per
    position), each value through ``cell_text``, one ``csv.writer`` row per record."""

    def __init__(self, columns: Sequence[str], delimiter: str,
                 channels: Iterable[str]) -> None:
        self.channels = frozenset(channels)
        self.projection = Projection(columns, channels=self.channels)
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, delimiter=delimiter, lineterminator="\n",
                                 quoting=csv.QUOTE_MINIMAL)
        self.writer.writerow(self.projection.names)

    def handle(self, event: ev.StreamMessage) -> None:
        if event.message.msg_type not in self.channels:
            return
        for record in old_records(self.projection, event.message, event.key):
            self.writer.writerow([cell_text(record[name]) for name in self.projection.names])

    def output(self) -> bytes:
        return self.buffer.getvalue().encode("utf-8")


def new_output(events: list[ev.StreamMessage], columns: Sequence[str], delimiter: str,
               channels: Iterable[str], *, batch: bool) -> bytes:
    out = io.BytesIO()
    renderer = DelimitedRenderer(out, columns, delimiter=delimiter, channels=channels)
    if batch:
        renderer.handle_messages(events)
    else:
        for event in events:
            renderer.handle(event)
    renderer.close()
    return out.getvalue()


def old_output(events: list[ev.StreamMessage], columns: Sequence[str], delimiter: str,
               channels: Iterable[str]) -> bytes:
    renderer = OldDelimited(columns, delimiter, channels)
    for event in events:
        renderer.handle(event)
    return renderer.output()


# Payload keys in the spellings feeds use, and values that test every conversion: codes
# as numbers and text, numbers as text, hostile text (escape sequences, bidi overrides,
# line breaks, long strings), nested symbols, and any JSON at all.
_hostile_text = st.sampled_from([
    "", " ", "Buy", "BUY", "sell_short", "1", "2", "0", "O", "C", "GTC", "day", "ioc",
    "Filled", "partially filled", "@ESZ6", " AAPL ", "\x1b[2Jx", "a\x1b]0;t\x07b", "\u202eevil",
    "tab\there", "line\nbreak", "x" * 200, "5012.25", " 7 ", "1e3", "-0", "0.0", "12345678",
    "0012", "+5", "\x9b31m", "é€✓", "\x00\x7f\x85", 'Alpha, "Momentum"', ",", '"', "a,b",
    '"quoted"', "x\ty", "\r",
])
_numbers = st.sampled_from([0, 0.0, -0.0, 1, 1.0, 2.5, -3, 10**15, 1e-9, 0.1 + 0.2, 2**63])
_values = st.one_of(st.none(), json_values, _hostile_text, _numbers,
                    st.integers(-(2**64), 2**64),
                    st.floats(allow_nan=False, allow_infinity=False), st.booleans())
_symbol = st.one_of(_values, st.fixed_dictionaries({}, optional={
    "FullSymbol": _values, "Symbol": _values, "fullsymbol": _values}))
_KEYS = {
    "StrategyId": st.one_of(st.just(12345678), _values), "strategy_id": _values,
    "StrategyName": _values, "strategyName": _values, "SignalId": _values,
    "OrderId": _values, "OrderType": _values, "type": _values, "Side": _values,
    "SIDE": _values, "OpenClose": _values, "OrderQuantity": _values, "qty": _values,
    "Quantity": _values, "Limit": _values, "LimitPrice": _values, "Stop": _values,
    "stop_price": _values, "TIF": _values, "TimeInForce": _values, "OrderStatus": _values,
    "status": _values, "C2Symbol": _symbol, "symbol": _symbol, "ExchangeSymbol": _symbol,
    "AvgPx": _values, "Currency": _values, "NetQuantity": _values,
    "Positions": st.lists(st.fixed_dictionaries({}, optional={
        "C2Symbol": _symbol, "Quantity": _values, "StrategyId": _values}), max_size=2),
}
payloads = st.fixed_dictionaries({}, optional=_KEYS)  # type: ignore[arg-type]
timestamps = st.one_of(st.none(), st.just("2026-01-02T03:04:05Z"), _hostile_text)
seq_ids = st.one_of(st.none(), st.integers(0, 2**63 - 1))


@st.composite
def stream_events(draw: st.DrawFn) -> ev.StreamMessage:
    channel = draw(st.sampled_from(spec.CHANNELS))
    payload = draw(payloads)
    # Keys in any order: where two spellings of a field meet, the first one counts.
    order = draw(st.permutations(list(payload)))
    raw: dict[str, Any] = {"msg_type": channel, "payload": {k: payload[k] for k in order}}
    seq_id, timestamp = draw(seq_ids), draw(timestamps)
    if seq_id is not None:
        raw["seq_id"] = seq_id
    if timestamp is not None:
        raw["timestamp"] = timestamp
    # As c2ws receives it: decoded by orjson (an integer past 64 bits is a float then).
    raw = orjson.loads(json.dumps(raw))
    message = Envelope(channel, raw["payload"], None, seq_id, None, timestamp, 4, raw)
    key = draw(st.sampled_from([None, SIGNAL_KEY if channel == spec.CHANNEL_SIGNAL
                                else POSITIONS_KEY]))
    return ev.StreamMessage(key, message, seq_id)


@settings(max_examples=200)
@given(st.lists(stream_events(), min_size=1, max_size=4),
       st.sampled_from(COLUMN_SETS), st.sampled_from([",", "\t"]),
       st.sampled_from([spec.CHANNELS, (spec.CHANNEL_SIGNAL,), (spec.CHANNEL_POSITIONS,)]),
       st.booleans())
def test_rows_are_the_bytes_the_records_made(
    events: list[ev.StreamMessage], columns: Sequence[str], delimiter: str,
    channels: tuple[str, ...], batch: bool,
) -> None:
    twice = events + events  # the second time from remembered cells
    assert new_output(twice, columns, delimiter, channels, batch=batch) == old_output(
        twice, columns, delimiter, channels)


def test_the_feeds_own_messages_are_the_same_bytes_too() -> None:
    """The reference server's synthetic OrderStatusDTO signals and positions (the shape C2
    sends), each decoded from its JSON as c2ws receives it."""
    from c2ws.server.feed import SyntheticFeed

    feed = SyntheticFeed(seed=22)
    events = []
    for seq in range(1, 400):
        item = feed.next_event(1_790_000_000.0 + seq)
        raw = {"msg_type": item.channel, "seq_id": seq, "timestamp": "2026-01-02T03:04:05Z",
               "payload": item.payload}
        raw = orjson.loads(orjson.dumps(raw))
        key = SubscriptionKey(item.strategy_id, item.channel)
        events.append(ev.StreamMessage(key, Envelope(
            item.channel, raw["payload"], None, seq, None, raw["timestamp"], 4, raw), seq))
    assert {event.message.msg_type for event in events} == set(spec.CHANNELS)
    for columns in COLUMN_SETS:
        for delimiter in (",", "\t"):
            assert new_output(events, columns, delimiter, spec.CHANNELS, batch=True) == (
                old_output(events, columns, delimiter, spec.CHANNELS))


def signal(payload: dict[str, Any], seq: int = 1) -> ev.StreamMessage:
    raw = {"msg_type": spec.CHANNEL_SIGNAL, "seq_id": seq, "payload": payload}
    return ev.StreamMessage(SIGNAL_KEY, Envelope(spec.CHANNEL_SIGNAL, payload, None, seq,
                                                 raw=raw), seq)


def test_equal_values_of_other_types_are_other_cells() -> None:
    """1, 1.0, True and "1" are one key to a dict, and four different cells: what is
    remembered for one is never given for another, in one column or a row's codes."""
    values: list[object] = [1, True, 1.0, "1", 0, False, 0.0, "0", -0.0]
    events = [signal({"StrategyId": 12345678, field: value, "OrderQuantity": value,
                      "SignalId": value, "StrategyName": value})
              for field in ("Side", "OrderType", "TIF", "OrderStatus", "OpenClose")
              for value in values]
    for columns in (COMBINED_COLUMNS, ("side", "qty", "signal_id", "strategy")):
        assert new_output(events, columns, ",", spec.CHANNELS, batch=True) == old_output(
            events, columns, ",", spec.CHANNELS)


def test_a_null_first_spelling_gives_way_to_the_next() -> None:
    pairs = [("SignalId", "OrderId"), ("OrderType", "type"), ("Limit", "LimitPrice"),
             ("OrderQuantity", "qty"), ("TIF", "TimeInForce"), ("OrderStatus", "status"),
             ("Stop", "StopPrice")]
    events = [signal({"StrategyId": 12345678, first: None, second: "2"})
              for first, second in pairs]
    events += [signal({"StrategyId": 12345678, second: "2", first: None})
               for first, second in pairs]
    assert new_output(events, COMBINED_COLUMNS, ",", spec.CHANNELS, batch=True) == (
        old_output(events, COMBINED_COLUMNS, ",", spec.CHANNELS))


def test_remembered_cells_stay_bounded() -> None:
    from c2ws.render import cells, planned

    renderer_events = [
        signal({"StrategyId": 12345678, "StrategyName": f"name {n}", "Side": "1",
                f"Extra{n % 300}": n, "OrderQuantity": f"{n}"}, n)
        for n in range(spec.CELL_MEMO_ENTRIES * 2 + 5)
    ]
    assert new_output(renderer_events, SIGNAL_COLUMNS, ",", spec.CHANNELS, batch=True) == (
        old_output(renderer_events, SIGNAL_COLUMNS, ",", spec.CHANNELS))
    memos = [cells._codes, *(
        cell.cell_contents for cell in cells._number_cell.__closure__ or ()  # type: ignore[attr-defined]
        if isinstance(cell.cell_contents, dict))]
    assert len(memos) == 2 and max(map(len, memos)) <= spec.CELL_MEMO_ENTRIES
    assert 0 < len(planned._plans) <= spec.PAYLOAD_LAYOUTS_KEPT


# --- -o json and --fields ----------------------------------------------------------------------


@settings(max_examples=200)
@given(st.lists(stream_events(), min_size=1, max_size=4), st.sampled_from(COLUMN_SETS))
def test_records_are_the_records_signal_record_made(
    events: list[ev.StreamMessage], columns: Sequence[str],
) -> None:
    """--fields objects: a signal's record from planned lookups and remembered values
    (records.planned_signal_record) is the one signal_record makes, value for value."""
    projection = Projection(columns)
    for event in events + events:
        made = projection.records(event.message, event.key)
        expected = old_records(projection, event.message, event.key)
        assert orjson.dumps(made) == orjson.dumps(expected)  # types too: 1 is not 1.0


def old_objects(event: ev.Event, projection: Projection | None) -> list[dict[str, Any]]:
    if isinstance(event, ev.StreamMessage) and projection is not None:
        return old_records(projection, event.message, event.key)
    return output_objects(event, include_control=True, projection=projection)


class OldJsonArray:
    """``-o json`` before issue 22: every element written as it was handled."""

    def __init__(self, out: io.BytesIO, projection: Projection | None) -> None:
        self.out, self.projection, self.elements = out, projection, 0

    def handle(self, event: ev.Event) -> None:
        for obj in old_objects(event, self.projection):
            self.out.write(b",\n" if self.elements else b"[\n")
            self.out.write(orjson.dumps(obj))
            self.elements += 1

    def close(self) -> None:
        self.out.write(b"\n]\n" if self.elements else b"[]\n")


class OldProjected:
    """``--fields`` NDJSON before issue 22: a write per line."""

    def __init__(self, out: io.BytesIO, projection: Projection) -> None:
        self.out, self.projection = out, projection

    def handle(self, event: ev.Event) -> None:
        for obj in old_objects(event, self.projection):
            self.out.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))

    def close(self) -> None:
        pass


HEARTBEAT = ev.HeartbeatAnswered(Envelope("heartbeat", {}, raw={"msg_type": "heartbeat"}))
GAP = ev.GapReported(SIGNAL_KEY, last_seq=3, last_timestamp=None, next_seq=9,
                     next_timestamp=None, text="replay limit",
                     message=Envelope("gap", {}, raw={"msg_type": "gap", "payload": {}}))


@settings(max_examples=100)
@given(st.lists(st.lists(st.one_of(stream_events(), st.sampled_from([HEARTBEAT, GAP])),
                         max_size=4), max_size=4),
       st.sampled_from([None, *COLUMN_SETS]), st.booleans())
def test_json_outputs_written_per_batch_are_the_same_bytes(
    batches: list[list[ev.Event]], columns: Sequence[str] | None, array: bool,
) -> None:
    projection = None if columns is None else Projection(columns)
    if projection is None and not array:
        return  # plain NDJSON: not this renderer
    old_out, new_out = io.BytesIO(), io.BytesIO()
    old: OldJsonArray | OldProjected
    new: JsonArrayRenderer | ProjectedNdjsonRenderer
    if array:
        old = OldJsonArray(old_out, projection)
        new = JsonArrayRenderer(new_out, include_control=True, projection=projection)
    else:
        assert projection is not None
        old = OldProjected(old_out, projection)
        new = ProjectedNdjsonRenderer(new_out, projection, include_control=True)
    for batch in batches:
        for event in batch:
            old.handle(event)
        if batch and all(type(event) is ev.StreamMessage for event in batch):
            new.handle_messages(batch)  # type: ignore[arg-type]
        else:
            for event in batch:
                new.handle(event)
        new.flush()
    old.close()
    new.close()
    assert new_out.getvalue() == old_out.getvalue()
