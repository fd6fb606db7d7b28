"""The cursor stores of c2ws.cursors: FileCursors (the --state file and its output file)
and SqliteCursors (rows in the caller's transaction)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import orjson
import pytest

from c2ws import spec
from c2ws.cursors import (
    CommitGroups,
    CursorStore,
    FileCursors,
    SqliteCursors,
    StreamIdentity,
    written_cursors,
)
from c2ws.delivery.state import StateFile, StateIdentity, StateLocked
from c2ws.errors import StateFileError
from c2ws.events import SubscriptionKey

URL, API_KEY = "ws://127.0.0.1:9/ws", "cursor-test-key"
A = SubscriptionKey(1, spec.CHANNEL_SIGNAL)
B = SubscriptionKey(2, spec.CHANNEL_SIGNAL)
IDENTITY = StreamIdentity.of(URL, API_KEY, [A, B])


def line(key: SubscriptionKey, seq: int) -> bytes:
    return orjson.dumps({"msg_type": key.channel, "seq_id": seq,
                         "payload": {"StrategyId": key.strategy_id}}) + b"\n"


def test_both_stores_are_cursor_stores() -> None:
    assert isinstance(FileCursors("x"), CursorStore)
    assert isinstance(SqliteCursors(sqlite3.connect(":memory:")), CursorStore)


def test_the_identity_holds_a_fingerprint_never_the_key() -> None:
    assert API_KEY not in repr(IDENTITY)
    assert IDENTITY.endpoint == "ws://127.0.0.1:9/ws" and IDENTITY.keys == (A, B)
    assert StreamIdentity.of("WS://127.0.0.1:9/ws", API_KEY, [(1, spec.CHANNEL_SIGNAL),
                                                              (2, spec.CHANNEL_SIGNAL)]) == IDENTITY


# --- FileCursors ------------------------------------------------------------------------------


def test_file_cursors_are_the_state_file_same_format_same_lock(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with StateFile(path, StateIdentity.of(URL, API_KEY)) as state:
        state.commit({A: 5, SubscriptionKey(9, spec.CHANNEL_SIGNAL): 3})
    store = FileCursors(path)
    store.open(IDENTITY)
    try:
        # Every cursor of the file, as SqliteCursors gives every row: the stream takes
        # its own (strategy 9 may be added to it while it runs: --strategies-file).
        assert store.load() == {A: 5, SubscriptionKey(9, spec.CHANNEL_SIGNAL): 3}
        with pytest.raises(StateLocked):
            FileCursors(path).open(IDENTITY)
        store.open(IDENTITY)  # the stream's own open after the caller's: nothing more
        store.commit({A: 7, B: 1})
    finally:
        store.close()
    with StateFile(path, StateIdentity.of(URL, API_KEY)) as state:
        # The other strategy's cursor is kept (a run on fewer strategies erases none).
        assert state.cursors == {A: 7, B: 1, SubscriptionKey(9, spec.CHANNEL_SIGNAL): 3}
    with pytest.raises(StateFileError, match="different API key"):
        FileCursors(path).open(StreamIdentity.of(URL, "another-key-1234", [A]))


def test_an_output_file_ahead_of_the_state_file_is_resumed_from_and_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    with StateFile(path, StateIdentity.of(URL, API_KEY)) as state:
        state.commit({A: 2, B: 9})
    out.write_bytes(line(A, 1) + line(A, 2) + line(A, 3) + line(B, 4) + b'{"msg_type": "str')
    fd = os.open(out, os.O_WRONLY | os.O_APPEND)
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    store = FileCursors(path, output=fd)
    try:
        store.open(IDENTITY)
        assert store.torn_bytes_removed == len(b'{"msg_type": "str')
        assert store.load() == {A: 3, B: 9}  # the higher of each
        # Exactly once all the same; the lines after a commit are read back, so the bound
        # only caps that read (issue 22: a burst commits by age, not every 5,000).
        assert store.commit_groups == CommitGroups(spec.READ_BACK_MAX_UNCOMMITTED)
        store.commit({A: 4, B: 9})
        assert fd in synced  # the output is on disk before the state file says so
    finally:
        store.close()
        os.close(fd)
    assert out.read_bytes().endswith(line(B, 4))
    assert written_cursors(os.open(out, os.O_RDONLY), [A, B]) == {A: 3, B: 4}


def test_a_pipe_as_output_commits_in_groups(tmp_path: Path) -> None:
    reader, writer = os.pipe()
    store = FileCursors(tmp_path / "state.json", output=writer)
    try:
        store.open(IDENTITY)
        assert store.load() == {}
        assert store.commit_groups == CommitGroups(spec.COMMIT_GROUP_MAX_MESSAGES,
                                                   spec.COMMIT_GROUP_MAX_SECONDS)
        # Every line written after the last commit is within the output's tail scan
        # (lines of the size of C2's order objects, ~1.2 KB at most).
        assert spec.COMMIT_GROUP_MAX_MESSAGES * 1200 < spec.OUTPUT_TAIL_SCAN_BYTES
    finally:
        store.close()
        os.close(reader)
        os.close(writer)
    # Without an output (a library caller writing elsewhere): every acknowledgement.
    assert FileCursors(tmp_path / "other.json").commit_groups is None


@pytest.mark.parametrize("bad", [{"max_messages": 0}, {"max_messages": True},
                                 {"max_seconds": -1.0}, {"max_seconds": float("nan")}])
def test_commit_groups_refuse_limits_that_bound_nothing(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        CommitGroups(**bad)  # type: ignore[arg-type]


def test_file_cursors_outside_a_stream_say_how_to_use_them(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"pass it to c2ws\.stream"):
        FileCursors(tmp_path / "s.json").load()


# --- SqliteCursors ------------------------------------------------------------------------------


def open_store(db: sqlite3.Connection, identity: StreamIdentity = IDENTITY) -> SqliteCursors:
    store = SqliteCursors(db)
    store.open(identity)
    store.load()
    return store


def test_sqlite_cursors_commit_in_the_callers_transaction_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE fills (seq INTEGER)")
    db.commit()
    store = open_store(db)
    db.execute("INSERT INTO fills VALUES (1)")
    store.commit({A: 1, B: 0})
    other = sqlite3.connect(path)
    assert other.execute("SELECT COUNT(*) FROM c2ws_cursors").fetchone() == (0,)  # no COMMIT
    db.commit()
    assert dict(((sid, ch), seq) for sid, ch, seq in other.execute(
        "SELECT strategy_id, channel, seq_id FROM c2ws_cursors")) == {A: 1, B: 0}
    # Data and cursor roll back together.
    db.execute("INSERT INTO fills VALUES (2)")
    store.commit({A: 2, B: 0})
    db.rollback()
    assert open_store(sqlite3.connect(path)).load() == {A: 1, B: 0}
    assert [n for (n,) in other.execute("SELECT seq FROM fills")] == [1]


def test_sqlite_cursors_write_only_what_moved(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "j.db")
    store = open_store(db)
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    store.commit({A: 1})
    store.commit({A: 1})
    assert sum("INSERT" in s for s in statements) == 1


def test_sqlite_cursors_refuse_another_endpoint_or_key(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "j.db")
    open_store(db).commit({A: 1})
    db.commit()
    with pytest.raises(StateFileError, match="another API key"):
        open_store(db, StreamIdentity.of(URL, "another-key-1234", [A]))
    with pytest.raises(StateFileError, match=r"another endpoint 'ws://127\.0\.0\.1:9/ws'"):
        open_store(db, StreamIdentity.of("ws://example.com/ws", API_KEY, [A]))
    open_store(db).commit({A: 2})  # its own table, as before
    SqliteCursors(db, table="other_account").open(StreamIdentity.of(URL, "another-key-1234"))


@pytest.mark.parametrize("table", ["", "x; DROP TABLE fills", "1abc", "a-b"])
def test_a_table_name_must_be_a_plain_identifier(table: str) -> None:
    with pytest.raises(ValueError, match="plain SQL table name"):
        SqliteCursors(sqlite3.connect(":memory:"), table=table)


def test_sqlite_errors_are_state_file_errors(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "j.db")
    store = open_store(db)
    db.close()
    with pytest.raises(StateFileError, match="cannot write the cursors in SQLite table"):
        store.commit({A: 1})
