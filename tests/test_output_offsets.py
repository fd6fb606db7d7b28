"""Issue 23: the --state file records where the committed output ends (the output file's
device, inode and byte offset), and a restart reads the output from that offset, not a
heuristic window: every format and payload shape reconciles exactly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from c2ws import spec
from c2ws.cursors import FileCursors, StreamIdentity
from c2ws.delivery.state import (
    OutputRecord,
    StateCorrupt,
    StateFile,
    StateIdentity,
    cursors_after_lines,
    decode_state,
    encode_state,
)
from c2ws.events import SubscriptionKey

URL, API_KEY = "ws://127.0.0.1:9/ws", "offset-test-key"
A = SubscriptionKey(1, spec.CHANNEL_SIGNAL)
B = SubscriptionKey(2, spec.CHANNEL_SIGNAL)
P = SubscriptionKey(1, spec.CHANNEL_POSITIONS)
IDENTITY = StreamIdentity.of(URL, API_KEY, [A, B, P])
JUMP = spec.SUSPECT_SEQ_JUMP


def line(key: SubscriptionKey, seq: int, padding: int = 0) -> bytes:
    payload: dict[str, object] = {"StrategyId": key.strategy_id}
    if padding:
        payload["Note"] = "x" * padding
    return orjson.dumps({"msg_type": key.channel, "seq_id": seq, "payload": payload}) + b"\n"


def reset_line(key: SubscriptionKey, after: int, first: int) -> bytes:
    return orjson.dumps({"msg_type": "sequence.reset", "reset": {
        "strategy_id": key.strategy_id, "channel": key.channel, "after_seq_id": after,
        "after_timestamp": None, "first_seq_id": first, "first_timestamp": None,
        "released": 1}}) + b"\n"


@contextmanager
def store_on(state: Path, out: Path, *, read_back: bool = True) -> Iterator[FileCursors]:
    """A FileCursors of ``state`` with ``out`` appended to, opened; closed after."""
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    store = FileCursors(state, output=fd, read_back=read_back)
    try:
        store.open(IDENTITY)
        yield store
    finally:
        store.close()
        os.close(fd)


def written(store: FileCursors, out: Path, data: bytes) -> None:
    """Append ``data`` as the caller does, then commit where it ends (as an
    acknowledgement does: the position is taken right after the write)."""
    with out.open("ab") as sink:
        sink.write(data)
    position = store.position()
    assert position is not None
    store.commit({}, position=position)


def test_the_offset_and_identity_of_the_output_are_committed(tmp_path: Path) -> None:
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    with store_on(state, out) as store:
        assert store.output_is_file
        store_commit = line(A, 1) + line(B, 1)
        with out.open("ab") as sink:
            sink.write(store_commit)
        position = store.position()
        assert position is not None
        store.commit({A: 1, B: 1}, position=position)
    stored = decode_state(state.read_bytes(), path=state)
    status = out.stat()
    assert stored.version == 2
    assert stored.output == OutputRecord(status.st_dev, status.st_ino, len(store_commit))
    assert stored.cursors == {A: 1, B: 1}


def test_a_suspect_jump_after_the_commit_does_not_move_the_resume_point(
    tmp_path: Path,
) -> None:
    """The line of a seq_id jump the engine had not confirmed (its cursor was None) is in
    the file, but resuming after it would skip every seq_id of the hole: the cursor stays
    until a line continues from it."""
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    with store_on(state, out) as store:
        written(store, out, line(A, 5))
        store.commit({A: 5})
    with out.open("ab") as sink:
        sink.write(line(A, 5 + JUMP + 1) + line(B, 3))  # written, never committed
    with store_on(state, out) as store:
        assert store.load() == {A: 5, B: 3}
    # Confirmed by the line after it, both after the commit: followed.
    state, out = tmp_path / "state2.json", tmp_path / "out2.ndjson"
    with store_on(state, out) as store:
        written(store, out, line(A, 5))
        store.commit({A: 5})
    with out.open("ab") as sink:
        sink.write(line(A, 5 + JUMP + 1) + line(A, 5 + JUMP + 2))
    with store_on(state, out) as store:
        assert store.load()[A] == 5 + JUMP + 2


def test_lines_beyond_any_window_after_the_offset_all_count(tmp_path: Path) -> None:
    """One stream's line, then more than the old 16 MiB tail window of another's: each
    stream resumes after its last line (the old scan stopped at the window)."""
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    with store_on(state, out) as store:
        written(store, out, line(A, 1) + line(B, 1))
        store.commit({A: 1, B: 1})
    bulk = b"".join(line(B, seq, padding=1000) for seq in range(2, 2 + 17_500))
    assert len(bulk) > spec.OUTPUT_TAIL_SCAN_BYTES
    with out.open("ab") as sink:
        sink.write(line(A, 2) + bulk)
    with store_on(state, out) as store:
        assert store.load() == {A: 2, B: 17_501}
        assert store.reconciliation is not None and store.reconciliation.counted == 17_501


def test_a_torn_line_after_the_offset_is_cut_and_whole_lines_count(tmp_path: Path) -> None:
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    with store_on(state, out) as store:
        written(store, out, line(A, 1))
        store.commit({A: 1})
    with out.open("ab") as sink:
        sink.write(line(A, 2) + line(A, 3)[:20])
    with store_on(state, out) as store:
        assert store.load() == {A: 2}
        assert store.torn_bytes_removed == 20
    assert out.read_bytes() == line(A, 1) + line(A, 2)
    # The offset now recorded is the end of the whole lines: a third start changes nothing.
    stored = decode_state(state.read_bytes(), path=state)
    assert stored.output is not None and stored.output.offset == out.stat().st_size


def test_a_torn_line_right_at_the_offset_is_cut_whatever_its_bytes(tmp_path: Path) -> None:
    state, out = tmp_path / "state.json", tmp_path / "out.csv"
    with store_on(state, out) as store:
        written(store, out, b"time,seq\n")
    with out.open("ab") as sink:
        sink.write(b"2026-11-25T09:00:00Z,4")  # no newline: cut short by the kill
    with store_on(state, out, read_back=False) as store:
        assert store.torn_bytes_removed == len(b"2026-11-25T09:00:00Z,4")
    assert out.read_bytes() == b"time,seq\n"


def test_a_format_not_read_back_has_its_uncommitted_tail_cut(tmp_path: Path) -> None:
    """CSV, TSV, --fields: no line can be told to be which message, so the lines after
    the committed offset are cut back, and the server sends them again (the bound on
    what is uncommitted is what it can replay)."""
    state, out = tmp_path / "state.json", tmp_path / "out.csv"
    with store_on(state, out, read_back=False) as store:
        written(store, out, b"header\n1,a\n")
        store.commit({A: 1})
        assert store.commit_groups is not None
        assert store.commit_groups.max_messages == spec.CUT_OUTPUT_MAX_UNCOMMITTED
        assert spec.CUT_OUTPUT_MAX_UNCOMMITTED <= spec.REPLAY_LIMIT
    with out.open("ab") as sink:
        sink.write(b"2,b\n3,c\n4,")
    with store_on(state, out, read_back=False) as store:
        assert store.load() == {A: 1}
        found = store.reconciliation
        assert found is not None
        assert (found.cut_lines, found.cut_bytes, found.torn_bytes_removed) == (2, 8, 2)
    assert out.read_bytes() == b"header\n1,a\n"


def test_a_sequence_reset_line_after_the_offset_moves_the_cursor_down(tmp_path: Path) -> None:
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    with store_on(state, out) as store:
        written(store, out, line(A, 900))
        store.commit({A: 900})
    with out.open("ab") as sink:
        sink.write(reset_line(A, 900, 1) + line(A, 1) + line(A, 2))
    with store_on(state, out) as store:
        assert store.load() == {A: 2}


def test_another_file_is_said_and_read_from_nowhere(tmp_path: Path) -> None:
    """Rotated (moved away, a new file in its place): nothing of the new file is read back
    or cut, the stored cursors stand, and the reason is there to say on stderr."""
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    with store_on(state, out) as store:
        written(store, out, line(A, 7))
        store.commit({A: 7})
    out.rename(tmp_path / "out.ndjson.1")
    out.write_bytes(line(A, 99) + b"partial")
    with store_on(state, out) as store:
        assert store.load() == {A: 7}
        found = store.reconciliation
        assert found is not None and found.notice is not None
        assert "not the file the state file recorded" in found.notice
    assert out.read_bytes() == line(A, 99) + b"partial"
    stored = decode_state(state.read_bytes(), path=state)
    assert stored.output is not None and stored.output.inode == out.stat().st_ino


def test_a_file_emptied_since_is_said(tmp_path: Path) -> None:
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    with store_on(state, out) as store:
        written(store, out, line(A, 7))
        store.commit({A: 7})
    out.write_bytes(b"")
    with store_on(state, out) as store:
        assert store.load() == {A: 7}
        assert store.reconciliation is not None
        assert "fewer than the" in (store.reconciliation.notice or "")


def test_a_version_1_state_file_is_read_and_rewritten_as_version_2(tmp_path: Path) -> None:
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    identity = StateIdentity.of(URL, API_KEY)
    version_1 = orjson.loads(encode_state(identity, {A: 2}, updated="2024-01-01T00:00:00Z"))
    version_1["version"] = 1
    del version_1["output"]
    state.write_bytes(orjson.dumps(version_1))
    out.write_bytes(line(A, 1) + line(A, 2) + line(A, 3))  # 3 written after the commit
    with store_on(state, out) as store:
        assert store.load() == {A: 3}  # the old way: the file's last lines
    stored = decode_state(state.read_bytes(), path=state)
    assert stored.version == 2
    assert stored.output is not None and stored.output.offset == out.stat().st_size


def test_an_unterminated_tail_too_long_to_be_a_line_is_refused(tmp_path: Path) -> None:
    state, out = tmp_path / "state.json", tmp_path / "out.ndjson"
    with store_on(state, out) as store:
        written(store, out, line(A, 1))
    with out.open("ab") as sink:
        sink.write(b"x" * (spec.OUTPUT_MAX_TORN_BYTES + 10))
    with pytest.raises(StateCorrupt, match="too long to be a torn line"), store_on(state, out):
        pass


def test_a_pipe_records_no_output(tmp_path: Path) -> None:
    reader, writer = os.pipe()
    try:
        store = FileCursors(tmp_path / "state.json", output=writer, read_back=False)
        store.open(IDENTITY)
        assert not store.output_is_file and store.position() is None
        assert store.commit_groups is not None
        assert store.commit_groups.max_messages == spec.COMMIT_GROUP_MAX_MESSAGES
        store.close()
    finally:
        os.close(reader)
        os.close(writer)
    with StateFile(tmp_path / "state.json", StateIdentity.of(URL, API_KEY)) as opened:
        assert opened.output is None


# --- the cursor rules, line by line -----------------------------------------------------------


def test_cursors_after_lines_follow_the_engine() -> None:
    wanted = frozenset({A, B, P})
    lines = [
        line(A, 2).strip(), line(B, 9).strip(),
        b'{"msg_type":"gap","payload":{"StrategyId":1},"missing":{}}',  # no cursor
        line(A, 2 + JUMP + 5).strip(),                       # suspect: stays at 2
        line(P, 1).strip(),                                  # positions: first one
        line(SubscriptionKey(77, spec.CHANNEL_SIGNAL), 5).strip(),  # not subscribed
        b"not json", b"",
    ]
    moved, resets, counted = cursors_after_lines(lines, {A: 1}, wanted)
    assert moved == {A: 2, B: 9, P: 1}
    assert resets == frozenset() and counted == 4
    # A line that does not continue from the suspect leaves it suspect no more.
    moved, _, _ = cursors_after_lines([line(A, 10 + JUMP).strip(), line(A, 2).strip(),
                                       line(A, 3).strip()], {A: 1}, wanted)
    assert moved == {A: 3}
