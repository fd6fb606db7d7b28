"""The private parts of nats-py the NATS sink relies on (c2ws/sinks/nats_compat.py) are in
the installed version with the shape it expects; they do what nats-py's own paths do; and
no other module of c2ws reaches into nats-py.

When an upgrade of nats-py breaks one, this fails naming the name, the version and the
module to update, instead of the sink silently falling back to its slow path (or failing
at run time)."""

from __future__ import annotations

import asyncio
import itertools
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from c2ws.sinks import nats_compat

nats_client = pytest.importorskip("nats.aio.client", reason="the nats extra is not installed")

REPO = Path(__file__).resolve().parent.parent
COMPAT = "c2ws/sinks/nats_compat.py"


def broken(what: str) -> str:
    return (f"nats-py {version('nats-py')} changed {what}: update {COMPAT} (and the "
            "version range in pyproject.toml); until then the NATS sink publishes one "
            "message at a time")


@pytest.mark.parametrize(("what", "name"), nats_compat.PRIVATE_NAMES,
                         ids=[name for _, name in nats_compat.PRIVATE_NAMES])
def test_each_private_name_exists(what: str, name: str) -> None:
    from nats.protocol import parser

    where: object = {"Client": nats_client.Client, "instance": nats_client.Client(),
                     "Parser": parser.Parser, "parser": nats_client.Client()._ps,
                     "parser module": parser}[what]
    if not hasattr(where, name):
        pytest.fail(broken(f"{what} {name} (it is gone)"))


def test_the_installed_nats_py_has_everything_nats_compat_uses() -> None:
    nats_compat.supported.cache_clear()
    gone = nats_compat.missing()
    if gone:
        pytest.fail(broken("; ".join(gone)))
    assert nats_compat.supported()


def test_a_name_gone_or_changed_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(nats_client.Client, "_process_headers")

    async def other(self: Any, sid: int, subject: bytes) -> None: ...

    monkeypatch.setattr(nats_client.Client, "_process_msg", other)
    gone = nats_compat.missing()
    assert any("nats.aio.client.Client._process_headers (it is gone)" in g for g in gone)
    assert any(g.startswith("nats.aio.client.Client._process_msg (now") for g in gone)


# --- the subclass does what nats-py's own paths do ----------------------------------------


def client() -> Any:
    made = nats_compat.client_class()()
    assert isinstance(made, nats_client.Client)
    return made


def test_send_encoded_queues_what_publish_would() -> None:
    from c2ws.sinks.nats import encode_publish

    headers = {"Nats-Msg-Id": "1:strategy.signal:9", "C2-Cursor": "9"}
    payload = b'{"seq_id":9}'
    head, tail = encode_publish("c2.signal.1", headers, payload) or (b"", b"")

    async def both() -> tuple[list[bytes], list[bytes], dict[str, int]]:
        ours, theirs = client(), client()
        for made in (ours, theirs):
            made._status = nats_client.Client.CONNECTED
            made._flush_queue = asyncio.Queue()
            made._flusher_task = None  # no transport: flushed only into _pending
        ours._flush_queue.put_nowait(asyncio.Future())  # a flush already due: left queued
        theirs._flush_queue.put_nowait(asyncio.Future())
        assert await ours.send_encoded(head + b"_INBOX.x.7" + tail, 1, len(payload))
        await theirs.publish("c2.signal.1", payload, reply="_INBOX.x.7", headers=headers)
        assert ours.stats == theirs.stats
        # A run: one command, what publish queues one by one.
        assert await ours.send_encoded(
            b"".join(head + b"_INBOX.x.%d" % n + tail for n in (8, 9)), 2, 2 * len(payload))
        for n in (8, 9):
            await theirs.publish("c2.signal.1", payload, reply=f"_INBOX.x.{n}",
                                 headers=headers)
        assert ours.stats == theirs.stats
        return ours._pending, theirs._pending, ours.stats

    ours, theirs, stats = asyncio.run(both())
    assert len(ours) == 2 and len(theirs) == 3 and b"".join(ours) == b"".join(theirs)
    assert stats["out_msgs"] == 3 and stats["out_bytes"] == 3 * len(payload)


def test_send_encoded_leaves_to_publish_what_it_must() -> None:
    """Not connected: nothing sent; a payload larger than the server takes is the
    caller's to leave to publish (which refuses it)."""
    async def run() -> tuple[bool, bool]:
        made = client()
        made._flush_queue = asyncio.Queue()
        disconnected = await made.send_encoded(b"HPUB x y 0 0\r\n\r\n", 1, 0)
        assert made._pending == [] and made.stats["out_msgs"] == 0
        made._max_payload = 1234  # as connect sets it from the server's INFO
        return disconnected, made.largest_payload()

    assert asyncio.run(run()) == (False, 1234)


def test_drop_unsent_takes_out_only_the_sinks_publishes() -> None:
    made = client()
    ours = b"HPUB c2.signal.1 _INBOX.abc.7 10 12\r\nNATS/1.0\r\n\r\nab\r\n"
    # Another subject that merely contains the inbox, and other commands, stay.
    others = [b"PUB x 2\r\nhi\r\n", b"HPUB c2.signal.1 _INBOX.other.1 5 5\r\n_INBOX.abc.\r\n",
              b"PING\r\n", b"SUB _INBOX.abc.* 1\r\n"]
    made._pending = [others[0], ours, others[1], ours, others[2], others[3]]
    made._pending_data_size = sum(map(len, made._pending))
    assert made.drop_unsent("_INBOX.abc.") == 2
    assert made._pending == others
    assert made._pending_data_size == sum(map(len, others))
    assert made.drop_unsent("_INBOX.abc.") == 0


def test_acks_are_taken_first_and_everything_else_goes_nats_pys_way() -> None:
    taken: list[tuple[int, dict[str, str] | None, bytes]] = []
    passed: list[tuple[int, bytes]] = []

    async def run() -> Any:
        made = client()

        async def usual(sid: int, subject: bytes, reply: bytes, data: bytes,
                        headers: bytes) -> None:
            passed.append((sid, subject))

        # What nats-py's own _process_msg would get (the class's, called by super()).
        base: Any = nats_client.Client
        original = base._process_msg
        base._process_msg = lambda self, *args: usual(*args)
        try:
            made.take_acks_first("_INBOX.abc.", lambda s: int(s) if s.isdigit() else None,
                                 lambda t, h, d: taken.append((t, h, d)),
                                 lambda run: pytest.fail("no run here"))
            await made._process_msg(1, b"_INBOX.abc.7", b"", b'{"stream":"S"}', None)
            await made._process_msg(1, b"_INBOX.abc.x", b"", b"junk", None)
            await made._process_msg(1, b"_INBOX.abc.8", b"", b"",
                                    b"NATS/1.0 503\r\n\r\n")
            await made._process_msg(2, b"c2.signal.1", b"", b"other", None)
        finally:
            base._process_msg = original
        return made.stats

    stats = asyncio.run(run())
    assert [(t, d) for t, _, d in taken] == [(7, b'{"stream":"S"}'), (8, b"")]
    assert taken[0][1] is None and (taken[1][1] or {}).get("Status") == "503"
    assert passed == [(2, b"c2.signal.1")]
    assert stats["in_msgs"] == 3  # the acks counted as nats-py counts them


# --- nothing else in c2ws reaches into nats-py ----------------------------------------------

_PRIVATE_USE = re.compile(r"\b(?!self\b|cls\b)(\w+)\._[A-Za-z]\w*")


def test_only_nats_compat_uses_nats_py_internals() -> None:
    names = {name for _, name in nats_compat.PRIVATE_NAMES}
    offenders = []
    for path in sorted((REPO / "c2ws").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative == COMPAT:
            continue
        code = re.sub(r'""".*?"""|#[^\n]*', "", path.read_text(), flags=re.S)
        uses = [found.group() for found in _PRIVATE_USE.finditer(code)]
        # In a module that uses nats-py, no private name of anything but itself; in any
        # other, none of the names nats_compat takes (on anything but itself).
        if not re.search(r"^\s*(?:import nats\b|from nats\b)", code, re.M):
            uses = [use for use in uses if use.split(".", 1)[1] in names]
        offenders += [f"{relative}: {use}" for use in uses]
    assert offenders == [], f"confine nats-py's internals to {COMPAT}: {offenders}"


# --- acks read in bulk: what nats-py's parser would have done, however the bytes split ---

INBOX = b"_INBOX.abc."


def msg(subject: bytes, payload: bytes, sid: bytes = b"3", reply: bytes = b"") -> bytes:
    between = b" %s" % reply if reply else b""
    return b"MSG %s %s%s %d\r\n%s\r\n" % (subject, sid, between, len(payload), payload)


def hmsg(subject: bytes, headers: bytes, payload: bytes) -> bytes:
    return b"HMSG %s 3 %d %d\r\n%s%s\r\n" % (subject, len(headers),
                                            len(headers) + len(payload), headers, payload)


ack_data = st.one_of(st.sampled_from([
    b'{"stream":"S","seq":1}', b'{"stream":"S","seq":2,"duplicate":true}', b"", b"\r\n",
    b'{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},'
    b'"stream":"S","seq":0}', b"MSG _INBOX.abc.1 3 0\r\n"]), st.binary(max_size=30))
tokens = st.one_of(st.integers(0, 10**20).map(lambda n: b"%d" % n),
                   st.sampled_from([b"0007", b"+7", b"x", b"", b"7.1", b"\xd9\xa7", b"1_0"]))
traffic = st.one_of(
    st.tuples(tokens, ack_data).map(lambda pair: msg(INBOX + pair[0], pair[1])),
    st.tuples(tokens, ack_data).map(lambda pair: msg(INBOX + pair[0], pair[1])),
    st.tuples(tokens, ack_data).map(lambda pair: msg(INBOX + pair[0], pair[1])),
    st.tuples(tokens, ack_data).map(lambda pair: msg(INBOX + pair[0], pair[1], sid=b"12")),
    ack_data.map(lambda data: msg(INBOX + b"5", data, reply=b"_INBOX.r.1")),
    ack_data.map(lambda data: msg(b"_INBOX.abd.5", data)),
    ack_data.map(lambda data: msg(b"c2.signal.1", data)),
    ack_data.map(lambda data: hmsg(INBOX + b"8", b"NATS/1.0 503\r\n\r\n", data)),
    ack_data.map(lambda data: hmsg(INBOX + b"9", b"NATS/1.0\r\nA: b\r\n\r\n", data)),
    st.sampled_from([b"PING\r\n", b"PONG\r\n", b"+OK\r\n", b"-ERR 'slow consumer'\r\n",
                     b'INFO {"max_payload":1048576}\r\n', b"MSG  _INBOX.abc.7 3 2\r\nhi\r\n",
                     b"MSG _INBOX.abc.7 3 2\r\nhi!!", b"MSG _INBOX.abc.7\t3 1\r\nh\r\n"]),
)


def parse_all(chunks: list[bytes], bulk: bool) -> tuple[list[tuple[object, ...]], dict[str, int]]:
    """What a client does with ``chunks`` read one after the other: nats_compat's parser
    (``bulk``) or nats-py's own, its messages through AckFirstClient._process_msg."""
    from nats.errors import ProtocolError
    from nats.protocol.parser import Parser

    seen: list[tuple[object, ...]] = []

    async def other(self: Any, sid: int, subject: bytes, reply: bytes, data: bytes,
                    headers: bytes | None) -> None:
        seen.append(("msg", sid, subject, reply, data, headers))

    async def run() -> dict[str, int]:
        made = client()
        if not bulk:
            made._ps = Parser(made)

        async def record(*what: object) -> None:
            seen.append(what)

        made._process_ping = lambda: record("ping")
        made._process_pong = lambda: record("pong")
        made._process_err = lambda text: record("err", text)
        made._process_info = lambda info: record("info", info)

        def token_of(suffix: bytes) -> int | None:  # as NatsSink's, all rounds
            try:
                return int(suffix)
            except ValueError:
                return None

        made.take_acks_first(INBOX.decode(), token_of,
                             lambda t, h, d: seen.append(("ack", t, h, d)),
                             lambda run: seen.extend(("ack", t, None, d) for t, d in run))
        for chunk in chunks:
            try:
                await made._ps.parse(chunk)
            except ProtocolError:
                seen.append(("protocol error",))
                break
        return dict(made.stats)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nats_client.Client, "_process_msg", other)
        stats = asyncio.run(run())
    return seen, stats


@settings(max_examples=600, deadline=None)
@given(items=st.lists(traffic, max_size=10), cuts=st.lists(st.integers(0, 400), max_size=5))
def test_acks_read_in_bulk_are_what_nats_pys_parser_reads(items: list[bytes],
                                                         cuts: list[int]) -> None:
    wire = b"".join(items)
    at = sorted({min(cut, len(wire)) for cut in cuts} | {0, len(wire)})
    chunks = [wire[a:b] for a, b in itertools.pairwise(at)]
    assert parse_all(chunks, True) == parse_all(chunks, False)


def test_a_run_of_acks_goes_over_at_once() -> None:
    runs: list[list[tuple[int, bytes]]] = []
    acks = [msg(INBOX + b"%d" % n, b'{"stream":"S","seq":%d}' % n) for n in range(1, 6)]
    wire = b"".join(acks[:3]) + b"PING\r\n" + b"".join(acks[3:])

    async def run() -> None:
        made = client()
        made._process_ping = lambda: asyncio.sleep(0)
        made.take_acks_first(INBOX.decode(), lambda s: pytest.fail("not one by one"),
                             lambda t, h, d: pytest.fail("not one by one"), runs.append)
        cut = len(b"".join(acks[:2])) + 9  # the third cut short: waits for the rest
        await made._ps.parse(wire[:cut])
        assert len(runs) == 1 and made._ps.buf == wire[len(b"".join(acks[:2])):cut]
        made._process_msg = lambda *args: pytest.fail("nats-py's way")  # type: ignore
        await made._ps.parse(wire[cut:cut + len(acks[2]) + 6 - 9])  # up to the PING
        # The PING went nats-py's way; the acks after it come in the next read.
        await made._ps.parse(wire[cut + len(acks[2]) + 6 - 9:])
        assert made.stats["in_msgs"] == 5

    asyncio.run(run())
    assert [token for run in runs for token, _ in run] == [1, 2, 3, 4, 5]
