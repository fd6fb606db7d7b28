"""The --state file (lock, atomic commit, total parse) and the output tail reconciliation."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from c2ws import spec, speedups
from c2ws.delivery import state as state_module
from c2ws.delivery.state import (
    STATE_FORMAT,
    STATE_VERSION,
    StateCorrupt,
    StateError,
    StateFile,
    StateForeign,
    StateFull,
    StateIdentity,
    StateIOFailure,
    StateLocked,
    TailReconciliation,
    decode_state,
    encode_state,
    key_fingerprint,
    normalize_endpoint,
    reconcile_output_tail,
    whole_lines_written,
)
from c2ws.events import SequenceReset, SubscriptionKey
from c2ws.render.ndjson import reset_object

API_KEY = "sk-LIVE-7f3c9a2b-SECRET-do-not-leak"
ENDPOINT = "wss://api.example.com/ws"
IDENTITY = StateIdentity.of(ENDPOINT, API_KEY)
CHILD_DEADLINE_SECONDS = 30.0


def signal(strategy_id: int) -> SubscriptionKey:
    return SubscriptionKey(strategy_id=strategy_id, channel=spec.CHANNEL_SIGNAL)


def positions(strategy_id: int) -> SubscriptionKey:
    return SubscriptionKey(strategy_id=strategy_id, channel=spec.CHANNEL_POSITIONS)


def fixed_clock() -> float:
    return 1704110400.0  # 2024-01-01T12:00:00Z


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "c2ws.json"


@contextlib.contextmanager
def opened(path: Path, identity: StateIdentity = IDENTITY) -> Iterator[StateFile]:
    state = StateFile(path, identity, clock=fixed_clock)
    state.open()
    try:
        yield state
    finally:
        state.close()


def document(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "endpoint": IDENTITY.endpoint,
        "key_fingerprint": IDENTITY.key_fingerprint,
        "updated": "2024-01-01T12:00:00Z",
        "cursors": {"strategy.signal:123": 456},
    }
    base.update(overrides)
    return base


# --- round trip, no-op, merge ------------------------------------------------------------


def test_round_trip_and_human_readable_format(state_path: Path) -> None:
    with opened(state_path) as state:
        assert state.cursors == {}
        state.commit({signal(123): 456, positions(7): 3})
    assert StateFile(state_path, IDENTITY).open() == {signal(123): 456, positions(7): 3}
    on_disk = orjson.loads(state_path.read_bytes())
    assert on_disk == {
        "format": "c2ws-state",
        "version": 2,
        "endpoint": "wss://api.example.com/ws",
        "key_fingerprint": IDENTITY.key_fingerprint,
        "updated": "2024-01-01T12:00:00Z",
        "cursors": {"strategy.positions:7": 3, "strategy.signal:123": 456},
        "output": None,
    }
    assert state_path.read_bytes().count(b"\n") > 5  # indented for people, not one line


def test_missing_file_opens_empty_and_creates_the_directory_at_open(state_path: Path) -> None:
    assert not state_path.parent.exists()
    with opened(state_path) as state:
        assert state.cursors == {}
        assert state_path.parent.is_dir()
        assert not state_path.exists()  # nothing is written until there is a cursor
        assert state_path.with_name("c2ws.json.lock").exists()


def test_context_manager_opens_and_releases(state_path: Path) -> None:
    with StateFile(state_path, IDENTITY) as state:
        state.commit({signal(1): 2})
        with pytest.raises(StateLocked):
            StateFile(state_path, IDENTITY).open()
    with StateFile(state_path, IDENTITY) as again:
        assert again.cursors == {signal(1): 2}


def test_files_are_private_whatever_the_umask(state_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        with opened(state_path) as state:
            state.commit({signal(1): 1})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_path.with_name("c2ws.json.lock").stat().st_mode) == 0o600
    assert stat.S_IMODE(state_path.parent.stat().st_mode) == 0o700


def python_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The state file's rewrite by its Python twin, whose system calls (os.replace,
    os.fsync) a test can replace; the C twin does the same (tests/test_speedups.py)."""
    monkeypatch.setattr(speedups, "replace_file", speedups.py_replace_file)


def count_replaces(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, object]]:
    calls: list[tuple[object, object]] = []
    real_replace = os.replace
    python_twin(monkeypatch)

    def counting_replace(src: Any, dst: Any, **where: Any) -> None:
        calls.append((src, dst))
        real_replace(src, dst, **where)

    monkeypatch.setattr(os, "replace", counting_replace)
    return calls


def test_commit_without_change_does_not_write(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with opened(state_path) as state:
        state.commit({signal(1): 5})
        inode = state_path.stat().st_ino
        replaces = count_replaces(monkeypatch)
        state.commit({signal(1): 5})
        state.commit({})
        assert replaces == []
        assert state_path.stat().st_ino == inode
        state.commit({signal(1): 6})
        assert len(replaces) == 1
    with opened(state_path) as state:  # what was read at open counts as committed
        state.commit({signal(1): 6})
        assert len(replaces) == 1


def test_commit_keeps_the_cursors_of_keys_not_given(state_path: Path) -> None:
    with opened(state_path) as state:
        state.commit({signal(1): 10, signal(2): 20})
    with opened(state_path) as state:
        state.commit({signal(1): 11})
        assert state.cursors == {signal(1): 11, signal(2): 20}
    with opened(state_path) as state:
        assert state.cursors == {signal(1): 11, signal(2): 20}


def test_commit_refuses_what_is_not_a_cursor(state_path: Path) -> None:
    with opened(state_path) as state:
        for bad in ({signal(1): -1}, {signal(1): True}, {signal(1): 1.5}, {signal(1): 1 << 64}):
            with pytest.raises(ValueError):
                state.commit(bad)  # type: ignore[arg-type]
        for bad_key in (
            SubscriptionKey(1, "orders"),
            signal(0),
            signal(-5),
            signal(10**20),
            SubscriptionKey(True, spec.CHANNEL_SIGNAL),
        ):
            with pytest.raises(ValueError):
                state.commit({bad_key: 1})
        with pytest.raises(ValueError):
            state.commit({"strategy.signal:1": 1})  # type: ignore[dict-item]
    with pytest.raises(RuntimeError):
        state.commit({signal(1): 1})


def test_commit_beyond_the_cursor_cap_is_refused(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spec, "STATE_MAX_CURSORS", 3)
    with opened(state_path) as state:
        state.commit({signal(1): 1, signal(2): 1, signal(3): 1})
        with pytest.raises(StateFull, match="more than 3 cursors"):
            state.commit({signal(4): 1})
        assert state.cursors == {signal(1): 1, signal(2): 1, signal(3): 1}


# --- atomicity and I/O failures ---------------------------------------------------------


def test_crash_before_the_rename_leaves_the_old_state(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with opened(state_path) as state:
        state.commit({signal(1): 5})
        before = state_path.read_bytes()

        def failing_replace(src: Any, dst: Any, **where: Any) -> None:
            raise OSError(errno.EIO, "Input/output error")

        with monkeypatch.context() as patch:
            python_twin(patch)
            patch.setattr(os, "replace", failing_replace)
            with pytest.raises(StateIOFailure, match="cannot write state file"):
                state.commit({signal(1): 6})
        assert state_path.read_bytes() == before
        assert sorted(p.name for p in state_path.parent.iterdir()) == [
            "c2ws.json",
            "c2ws.json.lock",
        ]
        assert state.cursors == {signal(1): 5}
        state.commit({signal(1): 6})  # the failed commit is no "nothing changed"
    with opened(state_path) as state:
        assert state.cursors == {signal(1): 6}


def test_failed_fsync_is_reported_and_leaves_the_old_state(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with opened(state_path) as state:
        state.commit({signal(1): 5})
        before = state_path.read_bytes()

        def full_disk(fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        python_twin(monkeypatch)
        monkeypatch.setattr(os, "fsync", full_disk)
        with pytest.raises(StateIOFailure, match="No space left on device"):
            state.commit({signal(1): 6})
        assert state_path.read_bytes() == before


def test_temp_files_of_a_killed_commit_are_removed_at_open(state_path: Path) -> None:
    state_path.parent.mkdir()
    leftover = state_path.parent / ".c2ws.json.tmp-4242-deadbeef"
    unrelated = state_path.parent / ".other.json.tmp-4242-deadbeef"
    leftover.write_bytes(b"{")
    unrelated.write_bytes(b"{")
    with opened(state_path):
        assert not leftover.exists()
        assert unrelated.exists()


def test_state_path_under_a_regular_file_is_an_io_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateIOFailure, match="cannot create the lock file"):
        StateFile(blocker / "state.json", IDENTITY).open()


def test_state_path_that_is_a_directory_or_fifo_is_an_io_failure(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    directory.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (directory, fifo):  # the FIFO must not hang the open
        with pytest.raises(StateIOFailure, match="not a regular file"):
            StateFile(path, IDENTITY).open()
        StateFile(path, IDENTITY).close()


# --- what is at the path: never followed, never another user's ----------------------

ANOTHER_UID = 54321
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")


def precious_file(tmp_path: Path) -> Path:
    """A private file of this user's that a planted name points at."""
    target = tmp_path / "precious"
    target.write_bytes(b"keep me\n")
    target.chmod(0o600)
    return target


def lock_of(state_path: Path) -> Path:
    state_path.parent.mkdir(exist_ok=True)
    return state_path.with_name("c2ws.json.lock")


@pytest.mark.parametrize("plant", ["symlink", "hard link"])
def test_a_link_at_the_lock_path_is_refused_and_its_target_untouched(
    state_path: Path, tmp_path: Path, plant: str
) -> None:
    target = precious_file(tmp_path)
    if plant == "symlink":
        lock_of(state_path).symlink_to(target)
    else:
        os.link(target, lock_of(state_path))
    with pytest.raises(StateIOFailure) as caught:
        StateFile(state_path, IDENTITY).open()
    message = str(caught.value)
    assert "c2ws.json.lock" in message and str(state_path) in message
    assert ("symbolic link" if plant == "symlink" else "hard links") in message
    assert target.read_bytes() == b"keep me\n"
    assert not state_path.exists()


def test_a_dangling_symlink_at_the_lock_path_creates_nothing(
    state_path: Path, tmp_path: Path
) -> None:
    lock_of(state_path).symlink_to(tmp_path / "would-be-created")
    with pytest.raises(StateIOFailure, match="symbolic link"):
        StateFile(state_path, IDENTITY).open()
    assert not (tmp_path / "would-be-created").exists()


def test_a_lock_path_holding_anything_but_a_pid_is_never_truncated(state_path: Path) -> None:
    lock = lock_of(state_path)
    lock.write_bytes(b"somebody's notes\n")
    with pytest.raises(StateIOFailure, match="other than the pid"):
        StateFile(state_path, IDENTITY).open()
    assert lock.read_bytes() == b"somebody's notes\n"
    lock.write_bytes(b"4242\n")  # left by a run that was killed: ours to reuse
    with opened(state_path):
        assert lock.read_bytes() == f"{os.getpid()}\n".encode()


@pytest.mark.parametrize("kind", ["directory", "FIFO"])
def test_a_lock_path_that_is_no_regular_file_is_refused(state_path: Path, kind: str) -> None:
    lock = lock_of(state_path)
    if kind == "directory":
        lock.mkdir()
    else:
        os.mkfifo(lock)
    with pytest.raises(StateIOFailure, match=f"is a {kind}.*, not a regular file"):
        StateFile(state_path, IDENTITY).open()


@needs_root
def test_a_lock_file_of_another_user_is_refused_untouched(state_path: Path) -> None:
    lock = lock_of(state_path)
    lock.write_bytes(b"")
    os.chown(lock, ANOTHER_UID, -1)
    with pytest.raises(StateIOFailure, match=f"another user \\(uid {ANOTHER_UID}\\)"):
        StateFile(state_path, IDENTITY).open()
    assert lock.stat().st_uid == ANOTHER_UID


def test_a_symlinked_state_file_is_refused(state_path: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_bytes(encode_state(IDENTITY, {signal(1): 5}, updated="2024-01-01T12:00:00Z"))
    state_path.parent.mkdir()
    state_path.symlink_to(real)
    with pytest.raises(StateIOFailure, match="symbolic link"):
        StateFile(state_path, IDENTITY).open()


@needs_root
def test_a_state_file_of_another_user_is_refused(state_path: Path) -> None:
    state_path.parent.mkdir()
    state_path.write_bytes(encode_state(IDENTITY, {signal(1): 10**6},
                                        updated="2024-01-01T12:00:00Z"))
    os.chown(state_path, ANOTHER_UID, -1)
    with pytest.raises(StateIOFailure, match="another user"):
        StateFile(state_path, IDENTITY).open()


@pytest.mark.parametrize("filler", [b" ", b"\n", b"\0"])
def test_a_huge_state_file_is_too_large_whatever_it_holds(state_path: Path, filler: bytes) -> None:
    state_path.parent.mkdir()
    state_path.write_bytes(filler * (spec.STATE_MAX_BYTES + 1))
    with pytest.raises(StateCorrupt, match="too large"):
        StateFile(state_path, IDENTITY).open()
    # One hundred megabytes, sparse: refused without being read.
    with state_path.open("r+b") as sparse:
        sparse.truncate(100 << 20)
    with pytest.raises(StateCorrupt, match="too large"):
        StateFile(state_path, IDENTITY).open()


# --- corrupt and foreign files -----------------------------------------------------------

CORRUPT_FILES: dict[str, bytes] = {
    "empty": b"",
    "blank": b" \n\t\n",
    "truncated": orjson.dumps(document())[:-7],
    "not json": b"strategy.signal:123 = 456\n",
    "binary": bytes(range(256)),
    "array": b"[]",
    "other format": orjson.dumps(document(format="something-else")),
    "no format": orjson.dumps({k: v for k, v in document().items() if k != "format"}),
    "newer version": orjson.dumps(document(version=3)),
    "version as text": orjson.dumps(document(version="1")),
    "version as bool": orjson.dumps(document(version=True)),
    "no endpoint": orjson.dumps(document(endpoint=None)),
    "fingerprint a number": orjson.dumps(document(key_fingerprint=5)),
    "no updated": orjson.dumps(document(updated=None)),
    "cursors a list": orjson.dumps(document(cursors=[["strategy.signal:1", 1]])),
    "unknown channel": orjson.dumps(document(cursors={"orders:1": 1})),
    "no strategy": orjson.dumps(document(cursors={"strategy.signal": 1})),
    "strategy zero": orjson.dumps(document(cursors={"strategy.signal:0": 1})),
    "leading zero": orjson.dumps(document(cursors={"strategy.signal:0123": 1})),
    "signed strategy": orjson.dumps(document(cursors={"strategy.signal:+1": 1})),
    "unicode digits": orjson.dumps(document(cursors={"strategy.signal:١٢": 1})),
    "huge strategy": orjson.dumps(document(cursors={"strategy.signal:" + "9" * 40: 1})),
    "negative cursor": orjson.dumps(document(cursors={"strategy.signal:1": -1})),
    "cursor as text": orjson.dumps(document(cursors={"strategy.signal:1": "5"})),
    "cursor as bool": orjson.dumps(document(cursors={"strategy.signal:1": True})),
    "cursor a float": orjson.dumps(document(cursors={"strategy.signal:1": 1.5})),
    "cursor null": orjson.dumps(document(cursors={"strategy.signal:1": None})),
    "cursor beyond int64": orjson.dumps(document(cursors={"strategy.signal:1": 1 << 63})),
    "oversized": orjson.dumps(document()) + b" " * spec.STATE_MAX_BYTES,
}


@pytest.mark.parametrize("content", CORRUPT_FILES.values(), ids=CORRUPT_FILES.keys())
def test_corrupt_file_is_refused_with_advice(state_path: Path, content: bytes) -> None:
    state_path.parent.mkdir()
    state_path.write_bytes(content)
    with pytest.raises(StateCorrupt) as caught:
        StateFile(state_path, IDENTITY).open()
    message = str(caught.value)
    assert str(state_path) in message
    assert "move it aside" in message
    assert "\n" not in message
    assert caught.value.kind == "corrupt"
    assert caught.value.path == state_path
    assert state_path.read_bytes() == content  # never silently reset
    with pytest.raises(StateCorrupt):  # the failed open released its lock
        StateFile(state_path, IDENTITY).open()


def test_too_many_cursors_is_corrupt(state_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec, "STATE_MAX_CURSORS", 2)
    cursors = {f"strategy.signal:{n}": n for n in (1, 2, 3)}
    with pytest.raises(StateCorrupt, match="more than 2 cursors"):
        decode_state(orjson.dumps(document(cursors=cursors)), path=state_path)


def test_control_characters_in_a_corrupt_file_stay_out_of_the_message(tmp_path: Path) -> None:
    path = tmp_path / "odd\nname\x1b[2J.json"
    path.write_bytes(orjson.dumps(document(cursors={"strategy.signal:1\n\x1b[31m": 1})))
    with pytest.raises(StateCorrupt) as caught:
        StateFile(path, IDENTITY).open()
    assert "\n" not in str(caught.value)
    assert "\x1b" not in str(caught.value)


def test_unknown_top_level_fields_are_tolerated(state_path: Path) -> None:
    stored = decode_state(orjson.dumps(document(comment="hand-edited")), path=state_path)
    assert stored.cursors == {signal(123): 456}


def test_file_of_another_endpoint_is_foreign(state_path: Path) -> None:
    with opened(state_path) as state:
        state.commit({signal(1): 1})
    other = StateIdentity.of("wss://other.example.com/ws", API_KEY)
    with pytest.raises(StateForeign) as caught:
        StateFile(state_path, other).open()
    message = str(caught.value)
    assert "wss://api.example.com/ws" in message and "wss://other.example.com/ws" in message
    assert str(state_path) in message
    assert caught.value.kind == "foreign"
    with opened(state_path) as state:  # untouched, and the lock was released
        assert state.cursors == {signal(1): 1}


def test_file_of_another_key_is_foreign(state_path: Path) -> None:
    with opened(state_path) as state:
        state.commit({signal(1): 1})
    with pytest.raises(StateForeign, match="different API key"):
        StateFile(state_path, StateIdentity.of(ENDPOINT, "another-key")).open()


def test_equivalent_endpoint_spellings_are_the_same_identity(state_path: Path) -> None:
    with opened(state_path, StateIdentity.of("wss://API.Example.com:443/ws", API_KEY)) as state:
        state.commit({signal(1): 1})
    with opened(state_path, StateIdentity.of("WSS://api.example.com/ws", API_KEY)) as state:
        assert state.cursors == {signal(1): 1}


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("wss://Host.Example/ws", "wss://host.example/ws"),
        ("wss://host.example:443/ws", "wss://host.example/ws"),
        ("ws://host.example:80/ws", "ws://host.example/ws"),
        ("wss://host.example:8443/ws", "wss://host.example:8443/ws"),
        ("ws://127.0.0.1:8765", "ws://127.0.0.1:8765/"),
        ("ws://[::1]:8765/ws", "ws://[::1]:8765/ws"),
        ("wss://user:secret@host.example/ws#frag", "wss://host.example/ws"),
        ("wss://host.example/ws?x=1", "wss://host.example/ws?x=1"),
        ("wss://host.example/WS", "wss://host.example/WS"),
        ("  wss://host.example/ws ", "wss://host.example/ws"),
        ("wss://host.example:notaport/ws", "wss://host.example:notaport/ws"),
        ("not a url", "not a url"),
    ],
)
def test_normalize_endpoint(given: str, normalized: str) -> None:
    assert normalize_endpoint(given) == normalized
    assert StateIdentity(given, "f").endpoint == normalized


def test_key_fingerprint_is_short_stable_and_not_the_key() -> None:
    fingerprint = key_fingerprint(API_KEY)
    assert len(fingerprint) == 16
    assert int(fingerprint, 16) >= 0
    assert fingerprint == key_fingerprint(API_KEY)
    assert fingerprint != key_fingerprint(API_KEY + "x")
    assert API_KEY not in fingerprint and fingerprint not in API_KEY
    assert key_fingerprint("\udcff") != key_fingerprint("")  # undecodable env bytes


# --- parsing is total (property tests) ---------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=20,
)
CURSOR_KEY_TEXT = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda channel, tail: f"{channel}:{tail}",
        st.sampled_from([*spec.CHANNELS, "orders", ""]),
        st.one_of(st.integers().map(str), st.text(max_size=8)),
    ),
)


def to_json(value: object) -> bytes:
    """Any JSON, big integers included (orjson refuses to write those)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def check_total(data: bytes) -> None:
    try:
        stored = decode_state(data, path=Path("s.json"))
    except StateCorrupt as exc:
        assert "\n" not in str(exc)
        return
    for key, seq_id in stored.cursors.items():
        assert key.channel in spec.CHANNELS and key.strategy_id > 0
        assert isinstance(seq_id, int) and seq_id >= 0


@given(st.binary(max_size=2000))
def test_decoding_arbitrary_bytes_is_total(data: bytes) -> None:
    check_total(data)


@given(JSON_VALUES)
def test_decoding_arbitrary_json_is_total(value: object) -> None:
    check_total(to_json(value))


@given(
    st.dictionaries(
        st.sampled_from(["format", "version", "endpoint", "key_fingerprint", "updated"]),
        JSON_VALUES,
    ),
    st.one_of(JSON_VALUES, st.dictionaries(CURSOR_KEY_TEXT, JSON_VALUES, max_size=6)),
)
def test_decoding_near_valid_documents_is_total(
    header: dict[str, Any], cursors: object
) -> None:
    check_total(to_json({**document(), **header, "cursors": cursors}))


KEYS = st.builds(
    SubscriptionKey, st.integers(1, (1 << 63) - 1), st.sampled_from(spec.CHANNELS)
)


@given(st.dictionaries(KEYS, st.integers(0, (1 << 63) - 1), max_size=50))
def test_encode_decode_round_trip(cursors: dict[SubscriptionKey, int]) -> None:
    data = encode_state(IDENTITY, cursors, updated="2024-01-01T12:00:00Z")
    stored = decode_state(data, path=Path("s.json"))
    assert stored.cursors == cursors
    assert stored.identity == IDENTITY


@settings(max_examples=40)
@given(st.binary(max_size=300) | JSON_VALUES.map(to_json))
def test_opening_a_file_of_arbitrary_content_is_total(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "s.json"
        path.write_bytes(data)
        state = StateFile(path, IDENTITY)
        try:
            state.open()
        except StateError as exc:
            assert isinstance(exc, StateCorrupt)
        finally:
            state.close()


# --- the lock ---------------------------------------------------------------------------

CHILD_HOLDING_THE_LOCK = """
import sys
from pathlib import Path
from c2ws.delivery.state import StateFile, StateIdentity

state = StateFile(Path(sys.argv[1]), StateIdentity(sys.argv[2], sys.argv[3]))
state.open()
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the parent closes our stdin
state.close()
"""


def wait_for_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], CHILD_DEADLINE_SECONDS)
    assert ready, "the child did not take the lock in time"
    return process.stdout.readline().strip()


@contextlib.contextmanager
def child_holding(path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD_HOLDING_THE_LOCK, str(path),
         IDENTITY.endpoint, IDENTITY.key_fingerprint],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for_line(process) == "locked"
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=CHILD_DEADLINE_SECONDS)


def test_lock_held_by_another_process(state_path: Path) -> None:
    with child_holding(state_path) as child:
        with pytest.raises(StateLocked) as caught:
            StateFile(state_path, IDENTITY).open()
        message = str(caught.value)
        assert "another c2ws run" in message
        assert f"pid {child.pid}" in message
        assert str(state_path) in message
        assert caught.value.kind == "locked"
        assert child.stdin is not None
        child.stdin.close()
        assert child.wait(timeout=CHILD_DEADLINE_SECONDS) == 0
    with opened(state_path) as state:
        assert state.cursors == {}


def test_lock_of_a_killed_process_is_free(state_path: Path) -> None:
    with child_holding(state_path) as child:
        child.kill()
        child.wait(timeout=CHILD_DEADLINE_SECONDS)
        with opened(state_path) as state:
            state.commit({signal(1): 1})


def test_lock_released_on_close_and_close_is_idempotent(state_path: Path) -> None:
    first = StateFile(state_path, IDENTITY)
    first.open()
    with pytest.raises(StateLocked):
        StateFile(state_path, IDENTITY).open()
    with pytest.raises(RuntimeError):
        first.open()
    first.close()
    first.close()
    with opened(state_path):
        pass
    assert state_path.with_name("c2ws.json.lock").read_bytes() == b""  # no stale pid


# --- the API key never leaks ------------------------------------------------------------


def test_api_key_appears_in_no_file_and_no_message(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages: list[str] = []

    def expect(error: type[StateError], action: Callable[[], object]) -> None:
        with pytest.raises(error) as caught:
            action()
        messages.append(str(caught.value))

    with opened(state_path) as state:
        state.commit({signal(1): 1})
        expect(StateLocked, StateFile(state_path, IDENTITY).open)
        for path in state_path.parent.iterdir():
            assert API_KEY.encode() not in path.read_bytes()
        python_twin(monkeypatch)
        monkeypatch.setattr(os, "replace", lambda *args, **where: (_ for _ in ()).throw(OSError()))
        expect(StateIOFailure, lambda: state.commit({signal(1): 2}))
    expect(StateForeign, StateFile(state_path, StateIdentity.of(ENDPOINT, "other")).open)
    expect(StateForeign, StateFile(state_path, StateIdentity.of("ws://x/", API_KEY)).open)
    state_path.write_bytes(b"{")
    expect(StateCorrupt, StateFile(state_path, IDENTITY).open)
    assert len(messages) == 5
    for message in messages:
        assert API_KEY not in message
        assert IDENTITY.key_fingerprint not in message


# --- reconciling the output tail --------------------------------------------------------


def line(key: SubscriptionKey, seq_id: object, **extra: object) -> bytes:
    envelope = {
        "msg_type": key.channel,
        "id": f"msg_{seq_id}",
        "seq_id": seq_id,
        "timestamp": "2024-01-01T12:00:00Z",
        "v": 4,
        "payload": {"StrategyId": key.strategy_id, "Symbol": "AAPL", **extra},
    }
    return orjson.dumps(envelope, option=orjson.OPT_APPEND_NEWLINE)


@contextlib.contextmanager
def appended(path: Path, content: bytes, flags: int = os.O_WRONLY | os.O_APPEND) -> Iterator[int]:
    """A descriptor like the one ``>> path`` gives the process (write-only, appending)."""
    path.write_bytes(content)
    fd = os.open(path, flags)
    try:
        yield fd
    finally:
        os.close(fd)


def test_torn_last_line_is_cut(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    whole = line(signal(1), 1) + line(signal(1), 2)
    torn = line(signal(1), 3)[:-9]
    with appended(out, whole + torn) as fd:
        result = reconcile_output_tail(fd, keys=[signal(1)])
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0  # the appending offset is not ours to move
        os.write(fd, line(signal(1), 3))
    assert result == TailReconciliation(
        cursors={signal(1): 2},
        torn_bytes_removed=len(torn),
        scanned_bytes=result.scanned_bytes,
        reconciled=True,
    )
    assert out.read_bytes() == whole + line(signal(1), 3)


def test_the_whole_lines_written_are_read_back_without_a_cut(tmp_path: Path) -> None:
    """After a write failed part way: where each stream's output really ends."""
    out = tmp_path / "out.ndjson"
    content = line(signal(1), 1) + line(signal(2), 7) + line(signal(1), 2) + line(
        signal(1), 3)[:-9]
    with appended(out, content) as fd:
        assert whole_lines_written(fd, keys=[signal(1), signal(2), signal(3)]) == {
            signal(1): 2, signal(2): 7}
    assert out.read_bytes() == content  # nothing cut: that is the next --state run's job
    with appended(out, b"") as fd:
        assert whole_lines_written(fd, keys=[signal(1)]) == {}
    with open(os.devnull, "wb") as devnull:
        assert whole_lines_written(devnull.fileno(), keys=[signal(1)]) is None


def test_complete_json_without_its_newline_is_cut_too(tmp_path: Path) -> None:
    # Not committed and not terminated: the next run writes it again, whole.
    out = tmp_path / "out.ndjson"
    with appended(out, line(signal(1), 1) + line(signal(1), 2)[:-1]) as fd:
        result = reconcile_output_tail(fd, keys=[signal(1)])
    assert result.cursors == {signal(1): 1}
    assert out.read_bytes() == line(signal(1), 1)


def test_cursors_per_key_from_the_tail(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    content = b"".join(
        [
            line(signal(1), 10),
            line(signal(2), 20),
            line(positions(1), 5),
            line(signal(1), 11),
            line(signal(2), "21"),  # seq_id as the server sent it: a digit string
            line(signal(3), 99),  # a key this run does not have
        ]
    )
    with appended(out, content) as fd:
        result = reconcile_output_tail(
            fd, keys=[signal(1), signal(2), positions(1), signal(4)]
        )
    assert result.cursors == {signal(1): 11, signal(2): 21, positions(1): 5}
    assert result.torn_bytes_removed == 0
    assert result.reconciled
    assert out.read_bytes() == content


def test_other_lines_are_ignored(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    gap = {"msg_type": "gap", "seq_id": 500, "payload": {"StrategyId": 1, "from": "7"}}
    junk = [
        b"\x00\xff\xfe binary junk \x80",
        b"[1, 2, 3]",
        b"42",
        b'"strategy.signal"',
        b"",
        b"   ",
        orjson.dumps(gap),
        orjson.dumps({"msg_type": "strategy.signal", "seq_id": "x", "payload": {"StrategyId": 1}}),
        orjson.dumps({"msg_type": "strategy.signal", "seq_id": True, "payload": {"StrategyId": 1}}),
        orjson.dumps({"msg_type": "strategy.signal", "seq_id": -3, "payload": {"StrategyId": 1}}),
        orjson.dumps({"msg_type": "strategy.signal", "seq_id": 600, "payload": [1]}),
        orjson.dumps({"msg_type": "strategy.signal", "seq_id": 600, "payload": {}}),
        orjson.dumps({"msg_type": ["strategy.signal"], "seq_id": 600, "payload": {"a": 1}}),
        orjson.dumps({"msg_type": "strategy.signal", "seq_id": 700}),
        b'{"msg_type": "strategy.signal", "seq_id": 800, "payload": {"StrategyId": 1}',
    ]
    content = line(signal(1), 7) + b"\n".join(junk) + b"\n"
    with appended(out, content) as fd:
        result = reconcile_output_tail(fd, keys=[signal(1)])
    assert result.cursors == {signal(1): 7}
    assert result.torn_bytes_removed == 0


def test_empty_file(tmp_path: Path) -> None:
    with appended(tmp_path / "out.ndjson", b"") as fd:
        assert reconcile_output_tail(fd, keys=[signal(1)]) == TailReconciliation(
            cursors={}, reconciled=True
        )


def test_no_newline_at_all_is_one_torn_line(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    with appended(out, b'{"msg_type": "strategy.signal", "seq') as fd:
        result = reconcile_output_tail(fd, keys=[signal(1)])
    assert result.torn_bytes_removed == len(b'{"msg_type": "strategy.signal", "seq')
    assert result.cursors == {}
    assert out.read_bytes() == b""


def test_unterminated_tail_too_long_to_be_ours_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    content = line(signal(1), 1) + b"x" * 5000
    with appended(out, content) as fd, pytest.raises(StateCorrupt, match="no newline"):
        reconcile_output_tail(fd, keys=[signal(1)], max_torn_bytes=4096)
    assert out.read_bytes() == content
    with appended(out, content) as fd:  # one byte of headroom more and it is a torn line
        result = reconcile_output_tail(fd, keys=[signal(1)], max_torn_bytes=5000)
    assert result.torn_bytes_removed == 5000
    assert result.cursors == {signal(1): 1}


def test_a_pipe_is_left_untouched() -> None:
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b'{"torn')
        result = reconcile_output_tail(write_end, keys=[signal(1)])
        assert result == TailReconciliation(cursors={}, reconciled=False)
        assert os.read(read_end, 100) == b'{"torn'
    finally:
        os.close(read_end)
        os.close(write_end)


def test_character_device_and_closed_fd_are_not_reconciled() -> None:
    with open(os.devnull, "wb") as devnull:
        assert not reconcile_output_tail(devnull.fileno(), keys=[signal(1)]).reconciled
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    assert not reconcile_output_tail(write_end, keys=[signal(1)]).reconciled


def test_read_only_or_mid_file_descriptors_are_left_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    content = line(signal(1), 1) + b'{"torn'
    for flags in (os.O_RDONLY, os.O_RDWR):  # O_RDWR at offset 0: would overwrite, not append
        with appended(out, content, flags) as fd:
            assert not reconcile_output_tail(fd, keys=[signal(1)]).reconciled
        assert out.read_bytes() == content


def test_non_appending_descriptor_at_the_end_follows_the_cut(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    content = line(signal(1), 1) + b'{"torn'
    with appended(out, content, os.O_RDWR) as fd:
        os.lseek(fd, 0, os.SEEK_END)
        result = reconcile_output_tail(fd, keys=[signal(1)])
        os.write(fd, line(signal(1), 2))
    assert result.torn_bytes_removed == len(b'{"torn')
    assert out.read_bytes() == line(signal(1), 1) + line(signal(1), 2)  # no hole, no junk


def reset_line(key: SubscriptionKey, after: int, first: int) -> bytes:
    """The line c2ws writes when the server restarted the numbering of ``key``."""
    reset = SequenceReset(key, last_seq=after, last_timestamp=None, next_seq=first,
                          next_timestamp=None, released=1, cursor=first - 1)
    return orjson.dumps(reset_object(reset), option=orjson.OPT_APPEND_NEWLINE)


def test_lines_before_a_reset_line_are_in_the_old_numbering(tmp_path: Path) -> None:
    """Strategy 2's last line comes before strategy 1's reset: the scan reads past the
    reset and strategy 1's old, higher seq_ids, which must not count."""
    out = tmp_path / "out.ndjson"
    content = b"".join([
        line(signal(2), 1),
        *(line(signal(1), n) for n in range(1, 6)),
        reset_line(signal(1), after=5, first=1),
        *(line(signal(1), n) for n in range(1, 4)),
    ])
    with appended(out, content) as fd:
        result = reconcile_output_tail(fd, keys=[signal(1), signal(2)])
    assert result.cursors == {signal(1): 3, signal(2): 1}
    assert result.reset_keys == {signal(1)}


def test_a_reset_line_last_gives_the_cursor_just_before_the_new_numbering(
    tmp_path: Path,
) -> None:
    """Written, then killed before the messages after it (or they were not shown)."""
    out = tmp_path / "out.ndjson"
    content = (b"".join(line(signal(1), n) for n in range(1, 6))
               + reset_line(signal(1), after=5, first=4) + line(signal(1), 1)[:-7])
    with appended(out, content) as fd:
        result = reconcile_output_tail(fd, keys=[signal(1), signal(3)])
    assert result.cursors == {signal(1): 3} and result.reset_keys == {signal(1)}
    assert result.torn_bytes_removed == len(line(signal(1), 1)) - 7


def test_a_signal_that_merely_mentions_a_reset_is_a_signal(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    mention = line(signal(1), 9, **{"sequence.reset": {"reset": {}}})
    assert b'"sequence.reset"' in mention
    with appended(out, mention) as fd:
        result = reconcile_output_tail(fd, keys=[signal(1)])
    assert result.cursors == {signal(1): 9} and not result.reset_keys


def test_scan_is_bounded_by_max_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.ndjson"
    content = line(signal(1), 1) + b"".join(line(signal(2), n) for n in range(1, 3000))
    read: list[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, size: int, offset: int) -> bytes:
        data = real_pread(fd, size, offset)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", counting_pread)
    with appended(out, content) as fd:
        bounded = reconcile_output_tail(fd, keys=[signal(1), signal(2)], max_bytes=10_000)
    assert bounded.cursors == {signal(2): 2999}
    assert bounded.scanned_bytes <= 10_000
    assert sum(read) <= 10_000 + 2  # plus the probe and the last byte
    with appended(out, content) as fd:
        whole = reconcile_output_tail(fd, keys=[signal(1), signal(2)], max_bytes=len(content))
    assert whole.cursors == {signal(1): 1, signal(2): 2999}
    assert whole.scanned_bytes == len(content)


def test_scan_stops_once_every_key_is_found(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    content = b"".join(line(signal(1), n) for n in range(1, 5000)) + line(signal(2), 1)
    assert len(content) > 4 * state_module._READ_CHUNK
    with appended(out, content) as fd:
        result = reconcile_output_tail(fd, keys=[signal(1), signal(2)])
    assert result.cursors == {signal(1): 4999, signal(2): 1}
    assert result.scanned_bytes <= state_module._READ_CHUNK


def test_lines_longer_than_a_read_chunk(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    big = "x" * (3 * state_module._READ_CHUNK)
    content = line(signal(1), 1, Note=big) + line(signal(2), 2, Note=big) + b'{"to'
    with appended(out, content) as fd:
        result = reconcile_output_tail(fd, keys=[signal(1), signal(2)])
    assert result.cursors == {signal(1): 1, signal(2): 2}
    assert result.torn_bytes_removed == 4


ENVELOPE_KEYS = st.sampled_from([signal(1), signal(2), positions(1), signal(3)])
OUTPUT_LINES = st.lists(
    st.one_of(
        ENVELOPE_KEYS.map(lambda key: ("envelope", key)),
        st.binary(max_size=40).filter(lambda b: b"\n" not in b).map(lambda b: ("junk", b)),
    ),
    max_size=60,
)


@settings(max_examples=150)
@given(
    OUTPUT_LINES,
    st.binary(max_size=50).filter(lambda b: b"\n" not in b),
    st.integers(1, 200),
    st.sampled_from([os.O_WRONLY | os.O_APPEND, os.O_RDWR | os.O_APPEND]),
)
def test_reconcile_agrees_with_reading_the_whole_file(
    items: list[tuple[str, Any]], torn: bytes, chunk: int, flags: int
) -> None:
    """Any chunking finds what a full parse finds: per key, the highest seq_id written."""
    next_seq: dict[SubscriptionKey, int] = {}
    lines: list[bytes] = []
    for kind, value in items:
        if kind == "envelope":
            next_seq[value] = next_seq.get(value, 0) + 1
            lines.append(line(value, next_seq[value]))
        else:
            lines.append(value + b"\n")
    whole = b"".join(lines)
    wanted = [signal(1), signal(2), positions(1)]
    expected = {key: seq for key, seq in next_seq.items() if key in wanted}
    with tempfile.TemporaryDirectory() as directory, pytest.MonkeyPatch.context() as patch:
        patch.setattr(state_module, "_READ_CHUNK", chunk)
        out = Path(directory) / "out.ndjson"
        with appended(out, whole + torn, flags) as fd:
            result = reconcile_output_tail(fd, keys=wanted)
        assert out.read_bytes() == whole
    assert result.torn_bytes_removed == len(torn)
    assert result.cursors == expected
