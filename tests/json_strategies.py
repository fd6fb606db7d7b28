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
