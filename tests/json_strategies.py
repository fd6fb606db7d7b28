"""Hypothesis strategies for arbitrary JSON, shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

# Integers past 64 bits too: the standard library encodes them, orjson reads them as floats.
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=12,
)


# --- signal frames as a feed might send them, and as no feed should ----------------------
# Keys of the payload fields a CSV/TSV signal row reads, in spellings a lookup that ignores
# case, "_" and "-" takes for one another (and some it does not: "Sid\u0435" ends in a
# Cyrillic letter, "Side\u0020" in a space; "Sid\u0065" is "Side" escaped).
SIGNAL_KEYS = [
    "StrategyId", "strategy_id", "StrategyName", "strategyName", "Side", "side", "SIDE", "s_i-de",
    "OpenClose", "open_close", "OrderQuantity", "Quantity", "qty", "QTY", "OrderType", "Type",
    "type", "Limit", "LimitPrice", "limit_price", "Stop", "StopPrice", "TIF", "TimeInForce",
    "time_in_force", "OrderStatus", "Status", "SignalId", "OrderId", "signal_id", "C2Symbol",
    "c2symbol", "Symbol", "symbol", "ExchangeSymbol", "exchange_symbol", "Info", "FilledQuantity",
    "Sid\\u0065", "Sid\\u0435", "Side\\u0020", "Order_Quantity_", "__side__", "LongKeyNoMatchAtAll",
]
SYMBOL_KEYS = ["FullSymbol", "fullSymbol", "full_symbol", "Symbol", "SYMBOL", "Underlying",
               "Full\\u0053ymbol", "Description"]
# JSON texts of hostile values: quotes, delimiters, line breaks and control characters
# (escaped: a frame holds none raw), escapes, non-ASCII, huge and odd numbers.
SIGNAL_VALUES = [
    "null", "true", "false", "0", "-0", "1", "2", "-7", "12345678", "999999999999999999",
    "1000000000000000000", "18446744073709551616", "123456789012345678901234567890", "1.5",
    "-0.0", "0.0", "4312.25", "1e400", "-1e400", "1e-400", "2.5e0", "1E2", "0.1", "1e15",
    "3.0000000001", "123456.78901234", '""', '" "', '"1"', '"2"', '"O"', '"C"', '"0"', '"A"',
    '"Buy"', '"@ESZ6"', '"MSFT"', '"a,b"', '"a\\tb"', '"say \\"hi\\""', '"x\\ny"', '"x\\r\\ny"',
    '"\\u001b[31mred"', '"\\u00e9t\\u00e9"', '"\\ud83d\\ude00"', '"caf\\u00e9,\\"q\\""', '"42"',
    '" 42 "', '"1,000"', '"0x10"', '"NaN"', '"1e5"', '"-3.25"', '"' + "x" * 80 + '"',
    "[]", "[1,2]", '["@ESZ6"]', "{}", '{"a":1}',
]


@st.composite
def symbol_object(draw: st.DrawFn) -> str:
    pairs = [f'"{draw(st.sampled_from(SYMBOL_KEYS))}":{draw(st.sampled_from(SIGNAL_VALUES))}'
             for _ in range(draw(st.integers(0, 3)))]
    return "{" + ",".join(pairs) + "}"


@st.composite
def signal_line(draw: st.DrawFn, seq: int = 1) -> bytes:
    """A strategy.signal frame on one line: the usual fields in any spelling, any value,
    sometimes twice; sometimes an odd header."""
    pairs: list[str] = []
    if draw(st.booleans()):  # the usual layout first
        pairs += ['"StrategyId":42', '"StrategyName":"Alpha"', '"SignalId":150921878',
                  '"OrderType":"2"', '"Side":"1"', '"OpenClose":"O"', '"OrderQuantity":2',
                  '"Limit":4312.25', '"Stop":null', '"TIF":"1"', '"OrderStatus":"2"',
                  '"C2Symbol":{"FullSymbol":"@ESZ6","SymbolType":"future"}']
    for _ in range(draw(st.integers(0, 6))):
        key = draw(st.sampled_from(SIGNAL_KEYS))
        value = draw(st.one_of(st.sampled_from(SIGNAL_VALUES), symbol_object()))
        pairs.append(f'"{key}":{value}')
    pairs = draw(st.permutations(pairs)) if draw(st.booleans()) else pairs
    space = draw(st.sampled_from(["", " ", "\t"]))
    payload = "{" + space + ("," + space).join(pairs) + space + "}"
    header = {"msg_type": '"strategy.signal"', "id": '"m1"', "seq_id": str(seq),
              "timestamp": '"2027-01-15T08:00:00Z"', "v": "4", "payload": payload}
    for name in draw(st.lists(st.sampled_from(sorted(header)), max_size=2)):
        header[name] = draw(st.sampled_from(
            ["null", '"strategy.positions"', '"x,y"', "1.5", '"5"', "[]", "true", str(2**63),
             '"2027-01-15T08:00:00.123+00:00"', '"\\u001b]0;t\\u0007"',
             '"strategy\\u002esignal"']))
    fields = [f'"{name}":{value}' for name, value in header.items()]
    fields += draw(st.lists(st.sampled_from(['"seq_id":9', '"extra":[1,{"Side":"2"}]',
                                             '"payload":{}', '"ms\\u0067_type":"x"']), max_size=1))
    return ("{" + ",".join(fields) + "}").encode()
