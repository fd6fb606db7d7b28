"""An idle connection's heartbeat, answered at once on the socket thread (issue 22's scale
target): FrameReader.lone_text, protocol.is_heartbeat, ClientSession.heartbeat and the
driver's use of them each decide exactly as the general path (feed + next_frame,
decode, receive) does, for any input; the liveness deadline still moves; and over real
sockets every heartbeat is acked with a current timestamp the reference server accepts.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from raw_server import WAIT, read_client_frame, server_frame

from c2ws import protocol, spec
from c2ws.delivery.dedupe import StreamFilter
from c2ws.events import EndReason, SubscriptionKey
from c2ws.net.connection import SocketTransport, StopSignal, open_connection
from c2ws.net.driver import Driver, DriverHooks
from c2ws.net.frames import OPCODE_TEXT, FrameError, FrameReader
from c2ws.protocol import MalformedMessage
from c2ws.redaction import KeyRedactor
from c2ws.server.app import ReferenceServer, ServerConfig
from c2ws.session import ClientSession, ConnectionState

pytestmark = pytest.mark.timeout(120)

KEY = "heartbeat-test-secret-key-0123"
SIGNAL = SubscriptionKey(spec.CHANNEL_SIGNAL, 12345678)
HEARTBEAT = orjson.dumps({"msg_type": "heartbeat", "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
                          "timestamp": "2024-01-01T12:00:00Z", "v": 1})


# --- heartbeat-like frames ---------------------------------------------------------------

_MSG_TYPES = st.sampled_from([
    "heartbeat", "heartbeatx", "Heartbeat", "heartbeat ", " heartbeat", "heartbeat.ack",
    "heart", "", "strategy.signal", "hëartbeat", "heartbeat\n", "heartbeat\x00",
])
_ODD = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
        | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3),
                                                                  st.integers(), max_size=2))
_FIELDS = st.fixed_dictionaries({}, optional={
    "id": st.text(max_size=12) | _ODD,
    "seq_id": st.integers(min_value=-(2**64), max_value=2**64)
    | st.from_regex(r"-?[0-9]{1,21}", fullmatch=True) | _ODD,
    "timestamp": st.just("2024-01-01T12:00:00Z") | _ODD,
    "request_id": st.text(max_size=12) | _ODD,
    "v": st.integers() | st.text(max_size=3) | _ODD,
    "payload": st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4),
                               max_size=3) | _ODD,
    "extra": _ODD,
    "Heartbeat": _ODD,
})


@st.composite
def heartbeat_like(draw: st.DrawFn) -> bytes:
    """Frames near a heartbeat: its fields of every type, odd spacing and escapes,
    duplicate keys, other JSON values, broken bytes."""
    kind = draw(st.sampled_from(["object", "object", "object", "value", "mutated", "binary"]))
    if kind == "binary":
        return draw(st.binary(max_size=120))
    if kind == "value":
        return json.dumps(draw(st.lists(_MSG_TYPES, max_size=2) | _MSG_TYPES | _ODD)).encode()
    obj: dict[str, Any] = {"msg_type": draw(_MSG_TYPES), **draw(_FIELDS)}
    order = draw(st.permutations(list(obj)))
    text = json.dumps({key: obj[key] for key in order}, ensure_ascii=draw(st.booleans()),
                      separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " :\t")])),
                      indent=draw(st.sampled_from([None, None, 1, "\n"])))
    if draw(st.booleans()) and '"heartbeat"' in text:  # the same string, escaped
        text = text.replace('"heartbeat"', draw(st.sampled_from(
            ['"heartbe\\u0061t"', '"\\u0068eartbeat"', '"heartbeat\\u0000"'])), 1)
    if draw(st.booleans()):  # a duplicate msg_type, before or after
        other = json.dumps(draw(_MSG_TYPES))
        text = (text.replace("{", '{"msg_type":' + other + ",", 1) if draw(st.booleans())
                else text[: text.rindex("}")] + ',"msg_type":' + other + "}")
    data = text.encode()
    if kind == "mutated" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    return data


def decoded_heartbeat(data: bytes) -> bool:
    """The general path's decision: decode, then the msg_type."""
    try:
        return protocol.decode(data).msg_type == spec.MSG_HEARTBEAT
    except MalformedMessage:
        return False


@settings(max_examples=1500, deadline=None)
@given(heartbeat_like())
@example(HEARTBEAT)
@example(b'{"msg_type":"heartbeat","seq_id":"12"}')  # decode's slower path takes it
@example(b'{"msg_type":"heartbeat","seq_id":"x"}')
@example(b'{"msg_type":"heartbeat","v":true}')
@example(b'{"msg_type":"heartbeat","payload":[]}')
@example(b'{"msg_type":"heartbeat","payload":{"a":1}}')
@example(b'{"msg_type":"heartbeat","seq_id":99999999999999999999}')
@example(b'{"msg_type":"heartbeat","msg_type":"x"}')
@example(b'{"msg_type":"x","msg_type":"heartbeat"}')
@example(b'{"msg_type":"heartbe\\u0061t"}')
@example(b'{"msg_type":"heartbeat","n":1e400}')
@example(b'{"msg_type":"heartbeat"} ')
@example(b'{"msg_type":"heartbeat"}\xff')
@example(b'["heartbeat"]')
@example(b"")
def test_is_heartbeat_decides_as_decode(data: bytes) -> None:
    assert protocol.is_heartbeat(data) is decoded_heartbeat(data)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-6e10, max_value=2.5e11, allow_nan=False))
@example(0.0)
@example(1e9 + 0.999999)
def test_the_ack_bytes_are_those_of_the_general_encoding(wall: float) -> None:
    general = protocol.encode(protocol.heartbeat_ack(timestamp=protocol.format_timestamp(wall)))
    assert protocol.heartbeat_ack_bytes(wall) == general


# --- FrameReader.lone_text against feed + next_frame ---------------------------------------


def reader_in(state: str) -> FrameReader:
    """A reader with nothing, part of a frame, or a fragmented message under way, or with
    small bounds."""
    if state == "small":
        return FrameReader(max_frame_bytes=8)
    if state == "no-fragments":
        return FrameReader(max_fragments=0)
    reader = FrameReader()
    if state == "partial":
        reader.feed(server_frame(b'{"msg_type":"x"}')[:5], 1.0)
    elif state == "fragmented":
        reader.feed(server_frame(b'{"msg_type":', fin=0), 1.0)
        assert reader.next_frame() is None
    elif state == "consumed":
        reader.feed(server_frame(b"{}") + server_frame(b"[]"), 1.0)
        assert reader.next_frame() is not None and reader.next_frame() is not None
    return reader


def general(reader: FrameReader, data: bytes) -> tuple[list[Any], int]:
    """What feed + next_frame hand out for ``data`` (a FrameError as the last item), and
    what is left buffered."""
    reader.feed(data, 2.0)
    out: list[Any] = []
    try:
        while (message := reader.next_frame()) is not None:
            out.append(message)
    except FrameError as exc:
        out.append(type(exc))
    return out, reader.buffered


@st.composite
def frame_like(draw: st.DrawFn) -> bytes:
    payload = draw(heartbeat_like() | st.binary(max_size=130))
    first = draw(st.sampled_from([0x81, 0x81, 0x81, 0x01, 0x80, 0x82, 0x89, 0x8A, 0x88, 0xC1,
                                  0x91, 0xA1, 0x8F]) | st.integers(0, 255))
    length = len(payload)
    second = draw(st.sampled_from([length, length + 1, max(0, length - 1), 0x80 | length, 126,
                                   127]) | st.integers(0, 255)) & 0xFF
    data = bytes((first, second)) + payload
    cut = draw(st.sampled_from([None, None, 1, 2, -1]))
    if cut is not None:
        data = data[:cut]
    if draw(st.integers(0, 5)) == 0:
        data += server_frame(HEARTBEAT)  # two frames in one read
    return data


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(["fresh", "consumed", "partial", "fragmented", "small", "no-fragments"]),
       frame_like())
@example("fresh", server_frame(HEARTBEAT))
@example("fresh", server_frame(b"x" * 125))
@example("fresh", server_frame(b"x" * 126))
@example("partial", server_frame(HEARTBEAT))
@example("fragmented", server_frame(HEARTBEAT))
@example("small", server_frame(HEARTBEAT))
@example("no-fragments", server_frame(HEARTBEAT))
def test_lone_text_hands_out_what_feed_and_next_frame_would(state: str, data: bytes) -> None:
    fast = reader_in(state)
    before = (fast.buffered, fast.incomplete_since, fast.wanted())
    payload = fast.lone_text(data)
    # Nothing done either way: the reader is as it was (a lone frame leaves nothing).
    assert (fast.buffered, fast.incomplete_since, fast.wanted()) == before
    out, left = general(reader_in(state), data)
    if payload is not None:
        assert out == [(OPCODE_TEXT, payload)] and left == 0
        assert general(fast, server_frame(b"{}")) == ([(OPCODE_TEXT, b"{}")], 0)
    elif state == "fresh" and out == [(OPCODE_TEXT, data[2:])] and left == 0:
        # Only a frame with a 16- or 64-bit length is left to the general path.
        assert data[1] >= 126


# --- ClientSession.heartbeat against receive ------------------------------------------------


def session_in(state: str, report_heartbeats: bool, now: float = 0.0) -> ClientSession:
    session = ClientSession(request_id_prefix="c2ws-test",
                            stream_filter=StreamFilter([SIGNAL], {}), now=now,
                            report_heartbeats=report_heartbeats, decoded_payloads=False,
                            message_runs=True)
    session.subscribe(SIGNAL, now=0.0, wall=1e9)
    if state == "awaiting":
        return session
    session.receive(protocol.encode(protocol.server_message(
        spec.MSG_CONNECTED, message_id="c", timestamp="2024-01-01T12:00:00Z", payload={})),
        now=0.5, wall=1e9)
    if state == "queued":  # the subscribe is queued, not sent yet
        return session
    request = orjson.loads(session.data_to_send()[0])
    if state == "acked":
        session.receive(protocol.encode(protocol.server_message(
            spec.MSG_SUBSCRIPTION_ACK, message_id="a", timestamp="2024-01-01T12:00:00Z",
            request_id=request["request_id"], payload=request["payload"])), now=0.5, wall=1e9)
    elif state == "closing":
        session.close(now=0.6, wall=1e9)
        session.data_to_send()
    elif state == "ended":
        session.fail(EndReason.LOST, "gone")
    session.events_received()
    return session


def observed(session: ClientSession) -> tuple[Any, ...]:
    return (session.state, session.last_received, session.last_heartbeat,
            session.next_deadline(), session.data_to_send(), session.events_received())


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(["awaiting", "ready", "acked", "queued", "closing", "ended"]),
       st.booleans(),
       heartbeat_like())
@example("ready", False, HEARTBEAT)
@example("closing", False, HEARTBEAT)
@example("awaiting", False, HEARTBEAT)
def test_session_heartbeat_does_what_receive_does(
    state: str, report_heartbeats: bool, data: bytes
) -> None:
    fast, slow = session_in(state, report_heartbeats), session_in(state, report_heartbeats)
    untouched = session_in(state, report_heartbeats)
    ack = fast.heartbeat(data, now=7.0, wall=1.7e9)
    if ack is None:  # nothing done
        assert observed(fast) == observed(untouched)
        return
    slow.receive(data, now=7.0, wall=1.7e9)
    assert observed(slow) == (*observed(fast)[:4], [ack], [])
    assert fast.last_heartbeat == 7.0 and fast.state is not ConnectionState.ENDED


def test_an_answered_heartbeat_moves_the_silence_deadline() -> None:
    session = session_in("acked", False)
    assert session.next_deadline() == 0.5 + spec.CLIENT_STALE_AFTER_SECONDS
    ack = session.heartbeat(HEARTBEAT, now=30.0, wall=1.7e9)
    assert ack == protocol.heartbeat_ack_bytes(1.7e9)
    assert session.next_deadline() == 30.0 + spec.CLIENT_STALE_AFTER_SECONDS
    session.handle_timeout(now=30.0 + spec.CLIENT_STALE_AFTER_SECONDS - 1, wall=1.7e9)
    assert session.ended is None


# --- the driver, over a socket pair ----------------------------------------------------------


class _Counted:
    """Counts the session's fast answers (the wrapper the driver finds on the instance)."""

    def __init__(self, session: ClientSession) -> None:
        self.answers: list[bytes | None] = []
        original: Callable[..., bytes | None] = session.heartbeat

        def heartbeat(data: bytes, *, now: float, wall: float) -> bytes | None:
            answer = original(data, now=now, wall=wall)
            self.answers.append(answer)
            return answer

        session.heartbeat = heartbeat  # type: ignore[method-assign]


def test_the_driver_answers_heartbeats_on_the_fast_path_and_the_rest_as_ever() -> None:
    ours, theirs = socket.socketpair()
    theirs.settimeout(WAIT)
    session = session_in("awaiting", False, now=time.monotonic())
    counted = _Counted(session)
    stop = StopSignal()
    driver = Driver(SocketTransport(ours), session, hooks=DriverHooks(), stop=stop,
                    redactor=KeyRedactor(KEY))
    thread = threading.Thread(target=driver.run, daemon=True)
    thread.start()
    try:
        theirs.sendall(server_frame(protocol.encode(protocol.server_message(
            spec.MSG_CONNECTED, message_id="c", timestamp="2024-01-01T12:00:00Z", payload={}))))
        opcode, request = read_client_frame(theirs)
        assert opcode == OPCODE_TEXT and orjson.loads(request)["msg_type"] == (
            spec.MSG_SUBSCRIPTION_REQUEST)
        beats = [HEARTBEAT,
                 b'{"msg_type":"heartbeat","id":"' + KEY.encode() + b'"}',  # the redactor's
                 b'{"msg_type": "heartbe\\u0061t"}']  # general path, escaped: the same answer
        sent_from = time.monotonic()
        for beat in beats:
            before = time.time()
            theirs.sendall(server_frame(beat))
            opcode, ack = read_client_frame(theirs)
            after = time.time()
            assert opcode == OPCODE_TEXT
            sent = orjson.loads(ack)
            assert sent["msg_type"] == spec.MSG_HEARTBEAT_ACK and set(sent) == {
                "msg_type", "timestamp"}
            stamp = protocol.parse_timestamp(sent["timestamp"])
            assert stamp is not None and int(before) <= stamp <= after
        # Offered: connection.connected (not one), the plain heartbeat (answered there),
        # the escaped one (left to the general path); not the one holding the key.
        assert [answer is not None for answer in counted.answers] == [False, True, False]
        # The liveness clock moved with them (the silence deadline is last_received's).
        assert session.last_heartbeat is not None and session.last_heartbeat >= sent_from
        assert session.last_received >= session.last_heartbeat
    finally:
        stop.set()
        thread.join(WAIT)
        theirs.close()
        ours.close()
    assert not thread.is_alive()


# --- end to end, against the reference server ---------------------------------------------------


def test_every_heartbeat_of_the_reference_server_is_acked_in_time() -> None:
    """The server sends one every 50 ms and closes the connection (4000) when an ack
    is late by 2 s, or answers an error when its timestamp is not current."""
    config = ServerConfig(api_keys=(KEY,), feed="none", max_lifetime=120,
                          heartbeat_interval=0.05, heartbeat_grace=2.0)
    with ReferenceServer(config) as server:
        transport = open_connection(server.url, KEY, timeout=10)
        session = ClientSession(request_id_prefix="c2ws-test",
                                stream_filter=StreamFilter([SIGNAL], {}), now=time.monotonic(),
                                report_heartbeats=False, decoded_payloads=False,
                                message_runs=True)
        session.subscribe(SIGNAL, now=time.monotonic(), wall=time.time())
        counted = _Counted(session)
        stop = StopSignal()
        driver = Driver(transport, session, hooks=DriverHooks(), stop=stop,
                        redactor=KeyRedactor(KEY))
        ends: list[Any] = []
        thread = threading.Thread(target=lambda: ends.append(driver.run()), daemon=True)
        thread.start()
        try:
            record = server.wait_for(
                lambda: next((r for r in server.connections() if r.heartbeat_acks >= 10), None),
                timeout=60)
            # Every ack the server got it accepted (a current timestamp), nothing else.
            acks = [m for m in record.received if m["msg_type"] == spec.MSG_HEARTBEAT_ACK]
            assert record.open and record.malformed == []
            assert len(acks) == record.heartbeat_acks
            assert len(record.received) == len(acks) + 1  # and the subscription request
        finally:
            stop.set()
            thread.join(WAIT)
            transport.close()
    assert not thread.is_alive() and ends and ends[0].reason is EndReason.STOPPED
    # Every ack the server counted went out on the fast path.
    assert sum(answer is not None for answer in counted.answers) >= 10
    assert session.last_heartbeat is not None
