"""Tolerant payload reads (c2ws/payload.py), shared by the table and the typed messages."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from json_strategies import json_values

from c2ws import payload, spec
from c2ws.payload import PayloadView, decimal_of, normalise_key


class CopyingView:
    """The view as it was before the key index was remembered per layout: every key
    normalised into a copy.  The oracle the faster view must agree with."""

    def __init__(self, obj: Mapping[str, object]) -> None:
        self.fields: dict[str, object] = {}
        for key, value in obj.items():
            if isinstance(key, str):
                self.fields.setdefault(normalise_key(key), value)

    def get(self, *names: str) -> object | None:
        for name in names:
            value = self.fields.get(name)
            if value is not None:
                return value
        return None


# Keys that clash once normalised, so the first-spelling-wins rule is exercised.
clashing_keys = st.sampled_from(
    ["Side", "side", "SIDE", "s_ide", "OrderQuantity", "order_quantity", "orderQuantity",
     "Quantity", "qty", "QTY", "ORDER-QUANTITY", "Limit", "limit_price", "x"]
)
objects = st.dictionaries(clashing_keys | st.text(max_size=6), json_values, max_size=8)
names = st.lists(st.sampled_from(["side", "orderquantity", "quantity", "qty", "limit",
                                  "limitprice", "x", "missing"]), min_size=1, max_size=4)


@given(obj=objects, wanted=names)
def test_view_reads_what_a_normalised_copy_reads(obj: dict[str, object],
                                                 wanted: list[str]) -> None:
    assert PayloadView(obj).get(*wanted) == CopyingView(obj).get(*wanted)
    # Twice: the second read comes from the remembered layout.
    assert PayloadView(dict(obj)).get(*wanted) == CopyingView(obj).get(*wanted)


def test_first_spelling_wins_even_when_null() -> None:
    assert PayloadView({"Side": None, "side": "1"}).get("side") is None
    assert PayloadView({"side": "2", "Side": "1"}).get("side") == "2"


def test_remembered_layouts_stay_bounded() -> None:
    for number in range(spec.PAYLOAD_LAYOUTS_KEPT * 3):
        PayloadView({f"k{number}": 1})
    assert len(payload._layouts) <= spec.PAYLOAD_LAYOUTS_KEPT
    wide = {f"k{number}": number for number in range(spec.PAYLOAD_LAYOUT_MAX_KEYS + 1)}
    assert PayloadView(wide).get("k3") == 3
    assert tuple(wide) not in payload._layouts
    long_key = {"k" * (spec.PAYLOAD_MAX_CACHED_KEY_CHARS + 1): 1}
    assert PayloadView(long_key).get("k" * (spec.PAYLOAD_MAX_CACHED_KEY_CHARS + 1)) == 1
    assert tuple(long_key) not in payload._layouts


def test_long_keys_are_normalised_but_never_remembered() -> None:
    # A hostile feed of long distinct keys or code values must not fill memory.
    before = payload._normalise_cached.cache_info().currsize
    for number in range(50):
        key = f"Long_Key_{number}_" + "x" * spec.PAYLOAD_MAX_CACHED_KEY_CHARS
        assert normalise_key(key) == key.lower().replace("_", "")
    assert payload._normalise_cached.cache_info().currsize == before


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4312.25, Decimal("4312.25")),
        (0.1, Decimal("0.1")),
        (1.1 + 2.2, Decimal("3.3000000000000003")),  # the double as its shortest text
        (1e-05, Decimal("0.00001")),
        (25_000, Decimal(25000)),
        (-3, Decimal(-3)),
        ("4312.25", Decimal("4312.25")),
        (" 12.50 ", Decimal("12.50")),
        ("1e3", Decimal("1E+3")),
        ("-0", Decimal("-0")),
        ("0e-99999", Decimal(0)),
        (10**18 - 1, Decimal(10**18 - 1)),
    ],
)
def test_numbers_read_as_exact_decimals(value: object, expected: Decimal) -> None:
    got = decimal_of(value)
    assert got == expected
    assert str(got) == str(expected)  # exact digits, not merely an equal value


@pytest.mark.parametrize(
    "value",
    [None, True, False, float("nan"), float("inf"), -float("inf"), "NaN", "Infinity",
     "1,000", "0x10", "", " ", "1e999999999", "1e-999999999", "1" * 41, 10**18, -(10**18),
     1e18, 1e300, 5e-324, [1], {"a": 1}, "\uff11\uff12"],  # the last: fullwidth digits
)
def test_what_is_no_price_or_quantity_reads_as_none(value: object) -> None:
    assert decimal_of(value) is None


@given(json_values)
def test_any_json_value_reads_as_a_decimal_or_none(value: object) -> None:
    got = decimal_of(value)
    assert got is None or (isinstance(got, Decimal) and got.is_finite())
