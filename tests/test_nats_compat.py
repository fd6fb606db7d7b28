"""The private parts of nats-py the NATS sink relies on (c2ws/sinks/nats_compat.py) are in
the installed version with the shape it expects; they do what nats-py's own paths do; and
no other module of c2ws reaches into nats-py.

When an upgrade of nats-py breaks one, this fails naming the name, the version and the
module to update, instead of the sink silently falling back to its slow path (or failing
at run time)."""

from __future__ import annotations

import asyncio
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

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
    where: object = nats_client.Client if what == "Client" else nats_client.Client()
    if not hasattr(where, name):
        pytest.fail(broken(f"nats.aio.client.Client.{name} (it is gone)"))


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
        assert await ours.send_encoded(head + b"_INBOX.x.7" + tail, len(payload))
        await theirs.publish("c2.signal.1", payload, reply="_INBOX.x.7", headers=headers)
        assert ours.stats == theirs.stats
        return ours._pending, theirs._pending, ours.stats

    ours, theirs, stats = asyncio.run(both())
    assert ours == theirs and len(ours) == 1
    assert stats["out_msgs"] == 1 and stats["out_bytes"] == len(payload)


def test_send_encoded_leaves_to_publish_what_it_must() -> None:
    async def run() -> tuple[bool, bool]:
        made = client()
        made._flush_queue = asyncio.Queue()
        disconnected = await made.send_encoded(b"HPUB x y 0 0\r\n\r\n", 0)
        made._status = nats_client.Client.CONNECTED
        too_large = await made.send_encoded(b"HPUB", made._max_payload + 1)
        assert made._pending == [] and made.stats["out_msgs"] == 0
        return disconnected, too_large

    assert asyncio.run(run()) == (False, False)


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
                                 lambda t, h, d: taken.append((t, h, d)))
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
