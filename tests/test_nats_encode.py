"""--to nats://: the HPUB command the sink makes beforehand for each message
(:func:`c2ws.sinks.nats.encode_publish`) against nats-py's own ``publish`` (the general
path): the same bytes for any input it takes, and every input it does not take left to
nats-py (which refuses what it must)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from c2ws.sinks.nats import CURSOR_HEADER, MSG_ID_HEADER, encode_publish

nats_client = pytest.importorskip("nats.aio.client", reason="the nats extra is not installed")

# Hostile text: non-ASCII, spaces, quotes, colons, delimiters, line breaks, control and
# escape characters, and the plain characters the fast path takes.
tricky = "ab.Z09-_:*> \t\r\n\"'\\{}\x00\x1b\x7f\u00e9\u2028\U0001f600"
hostile = st.text(st.sampled_from(list(tricky)) | st.characters(), max_size=40)
plain = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


def sent_by_nats_py(subject: str, reply: str, headers: dict[str, str],
                    payload: bytes) -> bytes | Exception:
    """What nats-py's publish hands to its writer for this publish (or what it raises)."""
    client: Any = nats_client.Client()
    commands: list[bytes] = []

    async def capture(command: bytes, priority: bool = False) -> None:
        commands.append(bytes(command))

    client._send_command = capture
    client._status = nats_client.Client.CONNECTED
    try:
        asyncio.run(client.publish(subject, payload, reply=reply, headers=headers))
    except Exception as exc:  # the general path's refusal
        return exc
    assert len(commands) == 1
    return commands[0]


def check(subject: str, headers: dict[str, str], payload: bytes, token: int) -> None:
    reply = f"_INBOX.abcdef.{token}"
    ours = encode_publish(subject, headers, payload)
    theirs = sent_by_nats_py(subject, reply, headers, payload)
    if ours is None:
        return  # nats-py's publish is used: it sends or refuses as it always did
    assert not isinstance(theirs, Exception), (subject, headers, theirs)
    head, tail = ours
    assert head + reply.encode() + tail == theirs
    assert b"%s%s%d%s" % (head, b"_INBOX.abcdef.", token, tail) == theirs


@settings(max_examples=2000)
@given(subject=hostile | plain, msg_id=hostile | plain, cursor=hostile | plain,
       payload=st.binary(max_size=300), token=st.integers(0, 10**12))
def test_the_command_made_beforehand_is_what_nats_py_sends(
    subject: str, msg_id: str, cursor: str, payload: bytes, token: int,
) -> None:
    check(subject, {MSG_ID_HEADER: msg_id, CURSOR_HEADER: cursor}, payload, token)


@settings(max_examples=500)
@given(headers=st.dictionaries(hostile | plain, hostile | plain, max_size=4),
       subject=plain, payload=st.binary(max_size=100))
def test_any_header_keys(headers: dict[str, str], subject: str, payload: bytes) -> None:
    check(subject, headers, payload, 7)


def test_what_the_sink_publishes_takes_the_fast_path() -> None:
    payload = b'{"msg_type":"strategy.signal","seq_id":9,"payload":{"Note":"a b\\r\\n"}}'
    headers = {MSG_ID_HEADER: "12345678:strategy.signal:9", CURSOR_HEADER: "9"}
    assert encode_publish("c2.signal.12345678", headers, payload) is not None
    check("c2.signal.12345678", headers, payload, 3)
    # A huge seq_id is plain too; a subject with a space is left to nats-py.
    check("c2.signal.1", {MSG_ID_HEADER: f"1:strategy.signal:{10**40}"}, payload, 1)
    assert encode_publish("c2.signal. 1", headers, payload) is None
    assert encode_publish("c2.signal.1", {MSG_ID_HEADER: "a\r\nb"}, payload) is None
