"""The API key a server echoes is replaced by **** in every frame before anything sees it:
in any JSON encoding of its characters, keeping the frame valid JSON with every other
value as it was, and never touching a frame (or text) that does not hold it."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from json_strategies import json_scalars

from c2ws import spec
from c2ws.config import check_api_key
from c2ws.errors import ConfigError
from c2ws.redaction import REDACTED, KeyRedactor
from c2ws.render import safe

PLAIN_KEY = "Zq7-Xj2W_k9.Lm"
# Every character an encoder may escape, and a run of plain ones to find it by.
SPECIAL_KEY = 'Zq/7+X"j\\2W<&>\'`'


def escaped(value: Any, *, upper: bool = False) -> str:
    """``value`` as JSON whose strings escape every character an encoder may escape
    (\\/ for '/', \\u00XX for the rest but the two JSON must escape)."""
    if isinstance(value, str):
        def one(ch: str) -> str:
            if ch == "/":
                return "\\/"
            if ch in spec.JSON_MAY_ESCAPE and ch not in "\"\\":
                code = f"\\u{ord(ch):04x}"
                return code.upper().replace("\\U", "\\u") if upper else code
            return json.dumps(ch)[1:-1]
        return '"' + "".join(map(one, value)) + '"'
    if isinstance(value, list):
        return "[" + ",".join(escaped(item, upper=upper) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{escaped(k, upper=upper)}:{escaped(v, upper=upper)}"
                              for k, v in value.items()) + "}"
    return json.dumps(value)


def expected(value: Any, key: str) -> Any:
    """``value`` with the key replaced in every string, object keys included."""
    if isinstance(value, str):
        return value.replace(key, REDACTED)
    if isinstance(value, list):
        return [expected(item, key) for item in value]
    if isinstance(value, dict):
        return dict((name.replace(key, REDACTED), expected(item, key))
                    for name, item in value.items())
    return value


def documents(key: str) -> st.SearchStrategy[Any]:
    """JSON values whose strings hold the key, pieces of it, and look-alikes."""
    pieces = st.sampled_from([key, key[:-1], key[1:], key[: len(key) // 2], "****", "\\", "n"])
    others = st.text(st.characters(exclude_categories=["Cs"]), max_size=4)
    texts = st.lists(pieces | others, max_size=4).map("".join)
    scalars = json_scalars.filter(lambda value: not isinstance(value, str)) | texts
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
        max_leaves=10,
    )


@pytest.mark.parametrize("key", [PLAIN_KEY, SPECIAL_KEY])
@given(data=st.data())
def test_every_string_loses_the_key_in_any_encoding_and_nothing_else_changes(
    key: str, data: st.DataObject
) -> None:
    redactor = KeyRedactor(key)
    document = data.draw(documents(key))
    for frame in (json.dumps(document, ensure_ascii=False).encode(),
                  escaped(document).encode(), escaped(document, upper=True).encode()):
        decoded = orjson.loads(frame)
        out = redactor.redact_frame(frame)
        assert orjson.loads(out) == expected(decoded, key)
        if expected(decoded, key) == decoded:
            assert out is frame  # nothing to redact: the frame as it came, byte for byte


def test_a_frame_without_the_key_is_passed_on_as_it_is() -> None:
    redactor = KeyRedactor(PLAIN_KEY)
    frames = [b'{"msg_type":"heartbeat","v":4}', b'{"payload":{"Note":"Zq7-Xj2W_k9"}}']
    before = list(frames)
    redactor.redact_frames(frames)
    assert frames[0] is before[0] and frames[1] is before[1]


def test_frames_are_redacted_in_place_and_stay_json() -> None:
    redactor = KeyRedactor(PLAIN_KEY)
    echo = b'{"msg_type":"error","payload":{"message":"bad key Zq7-Xj2W_k9.Lm","n":1e5}}'
    frames = [b'{"msg_type":"heartbeat"}', echo]
    redactor.redact_frames(frames)
    assert frames[0] == b'{"msg_type":"heartbeat"}'
    assert orjson.loads(frames[1]) == {"msg_type": "error",
                                       "payload": {"message": "bad key ****", "n": 100000.0}}
    assert PLAIN_KEY.encode() not in frames[1]


def test_a_frame_that_is_not_json_loses_the_key_s_plain_bytes() -> None:
    redactor = KeyRedactor(PLAIN_KEY)
    assert redactor.redact_frame(b"\xffkey=Zq7-Xj2W_k9.Lm;") == b"\xffkey=****;"
    assert redactor.redact_frame("key=Zq7-Xj2W_k9.Lm, no JSON") == "key=****, no JSON"


def test_text_frames_and_deep_nesting() -> None:
    redactor = KeyRedactor(PLAIN_KEY)
    assert redactor.redact_frame('["Zq7-Xj2W_k9.Lm"]') == '["****"]'
    assert redactor.redact_frame('"Zq7-Xj2W_k9.Lm"') == '"****"'
    # Deeper than Python's recursion and orjson's encoder go: the key's plain bytes.
    deep = b"[" * 1000 + b'{"Zq7-Xj2W_k9.Lm":"x"}' + b"]" * 1000
    assert redactor.redact_frame(deep) == b"[" * 1000 + b'{"****":"x"}' + b"]" * 1000


def test_the_key_s_characters_as_part_of_an_escape_are_not_the_key() -> None:
    # "\n" + "Xj2W..." decodes to a newline and text that is not the key: left alone.
    key = "nXj2W_k9Lm"
    frame = b'{"message":"line\\nXj2W_k9Lm"}'
    assert KeyRedactor(key).redact_frame(frame) is frame


def test_a_key_of_the_shortest_allowed_length_mangles_nothing_else() -> None:
    key = "USD-2024"
    assert len(key) == spec.MIN_API_KEY_LENGTH
    redactor = KeyRedactor(key)
    near_misses = (b'{"Currency":"USD","Year":2024,"Note":"USD-202 USD 2024 SD-2024 '
                   b'USD_2024 usd-2024 USD/2024"}')
    assert redactor.redact_frame(near_misses) is near_misses
    frame = b'{"Currency":"USD","Note":"key USD-2024, then USD-202"}'
    assert orjson.loads(redactor.redact_frame(frame)) == {"Currency": "USD",
                                                          "Note": "key ****, then USD-202"}


@pytest.mark.parametrize("key", ["a", "US", "USD", "abcdefg"])
def test_a_key_too_short_to_be_a_key_is_refused_and_never_redacted_with(key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_api_key(key)
    # The same words whatever the key: neither it nor its length shows.
    assert str(refused.value) == ("the API key is too short to be a key (fewer than "
                                  f"{spec.MIN_API_KEY_LENGTH} characters)")
    with pytest.raises(ValueError):
        KeyRedactor(key)
    safe.keep_secret(key)
    try:
        text = "c2ws: a USD price, abcdefg"
        assert safe.redacted(text) == text
    finally:
        safe._secrets.discard(key)


def test_a_key_of_the_minimum_length_is_accepted() -> None:
    assert check_api_key("abcdefgh") == "abcdefgh"


@given(bursts=st.lists(st.lists(st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from([PLAIN_KEY, PLAIN_KEY[:7], PLAIN_KEY[5:], "Zq", "Lm", "a", '"',
                              '{"x":"', '"}', "\\u005a"]), max_size=6).map(
        lambda parts: "".join(parts).encode())), max_size=8), max_size=6))
def test_a_burst_is_redacted_as_each_frame_alone(bursts: list[list[bytes]]) -> None:
    """The burst's byte probes (and their order, which changes from burst to burst) never
    let a frame holding the key through, nor touch one that does not."""
    redactor = KeyRedactor(PLAIN_KEY)
    for frames in bursts:
        alone = [redactor.redact_frame(data) for data in frames]
        redactor.redact_frames(frames)
        assert frames == alone
