"""The state file of ``c2ws subscribe --state FILE``, and the reconciliation of stdout.

The state file records, per subscription key, the last seq_id c2ws WROTE to stdout, so a
restart resumes (``resume_from``) exactly where output stopped.  The stream commits it
per group of written messages (:mod:`c2ws.delivery.groups`): never more than
``spec.COMMIT_GROUP_MAX_MESSAGES`` written messages behind (with an NDJSON file appended
to, whose lines after the last commit are read back at the next start,
``spec.READ_BACK_MAX_UNCOMMITTED``).

What "exactly once" means here, precisely:

* With ``--state`` and stdout appended to a regular file (``>> out.ndjson``): every
  stream message is in the output file exactly once across crashes, ``kill -9``
  included.  The output file is the truth for what was written: at start,
  :func:`reconcile_output_tail` cuts a torn last line and finds, per key, the last
  seq_id the file holds, which may be ahead of the state file (written, not yet
  committed); the engine resumes from the higher of the two.  This holds as long as
  the lines written after the last commit fit in the tail scan
  (``spec.OUTPUT_TAIL_SCAN_BYTES``).
* With ``--state`` and stdout a pipe or terminal, what was written cannot be read back:
  messages written after the last commit may be written again after a crash (at least
  once): at most ``spec.COMMIT_GROUP_MAX_MESSAGES``.
* Across a clean stop nothing is repeated or lost either way.  Whatever the server
  could not replay (a ``gap``) is reported, not hidden.  The server replays
  ``strategy.signal`` only: for ``strategy.positions`` the cursor keeps repeats out, but
  what was sent while no run was connected is not in the output.

Plain functions and one class: no threads, no terminal.  Every parse of a file is total:
cursors, or a :class:`StateError` whose one-line message says what is wrong and how to
fix it.  No message, and nothing in any file, contains the API key.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import stat
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import orjson

from c2ws import protocol, spec, speedups
from c2ws.errors import StateError
from c2ws.events import SequenceReset, SubscriptionKey
from c2ws.lines import read_reset_object
from c2ws.localfiles import FileTooLarge, UnusableFile, open_for_reading, open_own_file

STATE_FORMAT: Final = "c2ws-state"
# Version 2 (issue 23) adds "output": the output file's device, inode and the byte offset
# its committed lines end at.  Version 1 files (no output record) are still read.
STATE_VERSION: Final = 2
STATE_VERSIONS_READ: Final = (1, 2)

_FINGERPRINT_DOMAIN: Final = b"c2ws state file key fingerprint v1\x00"
_FINGERPRINT_HEX_CHARS: Final = 16
_DEFAULT_PORTS: Final = {"ws": 80, "http": 80, "wss": 443, "https": 443}
# JSON numbers orjson reads as int; larger ones come back as float (and are refused).
_MAX_CURSOR: Final = (1 << 63) - 1
_MAX_STRATEGY_ID_DIGITS: Final = 19
_SHOWN_TEXT_LIMIT: Final = 200
_READ_CHUNK: Final = 64 * 1024
_LOCK_PID_BYTES: Final = 32
# A line that may be a sequence.reset line (only those are decoded as such).
_RESET_MARK: Final = b'"' + spec.SEQUENCE_RESET.encode() + b'"'

_T = TypeVar("_T")


# --- errors -----------------------------------------------------------------------------


class StateCorrupt(StateError):
    """Unreadable content: empty, truncated, not JSON, wrong format, version or entries."""

    kind = "corrupt"


class StateForeign(StateError):
    """Written for another endpoint or another API key."""

    kind = "foreign"


class StateLocked(StateError):
    """Another c2ws run holds the state file."""

    kind = "locked"


class StateIOFailure(StateError):
    """A file or directory that cannot be read, written or created."""

    kind = "io"


class StateFull(StateError):
    """Committing would take the file past ``spec.STATE_MAX_CURSORS`` cursors."""

    kind = "full"


def _shown(text: str | os.PathLike[str]) -> str:
    """Quoted with control characters escaped, so a message stays one line."""
    quoted = repr(os.fspath(text))
    if len(quoted) > _SHOWN_TEXT_LIMIT:
        quoted = quoted[: _SHOWN_TEXT_LIMIT - 1] + "…"
    return quoted


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


# --- identity ---------------------------------------------------------------------------


def key_fingerprint(api_key: str) -> str:
    """A short, non-reversible fingerprint of an API key: tells keys apart, reveals none."""
    digest = hashlib.sha256(_FINGERPRINT_DOMAIN + api_key.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:_FINGERPRINT_HEX_CHARS]


def normalize_endpoint(url: str) -> str:
    """``url`` with scheme and host lower-case, the default port, credentials and fragment
    dropped and an empty path made ``/``: ``wss://Host/ws`` == ``wss://host:443/ws``."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if not scheme or not host:
        return text
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{path}{query}"


@dataclass(frozen=True, slots=True)
class StateIdentity:
    """What a state file belongs to; the endpoint is normalised on construction."""

    endpoint: str
    key_fingerprint: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint", normalize_endpoint(self.endpoint))

    @classmethod
    def of(cls, endpoint: str, api_key: str) -> StateIdentity:
        return cls(endpoint=endpoint, key_fingerprint=key_fingerprint(api_key))


# --- the file format --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """Where the committed output ends: the output file (``device``, ``inode``) and the
    byte ``offset`` just past the last line the committed cursors count as written."""

    device: int
    inode: int
    offset: int

    def same_file(self, status: os.stat_result) -> bool:
        return (self.device, self.inode) == (status.st_dev, status.st_ino)

    def to_json(self) -> dict[str, int]:
        return {"device": self.device, "inode": self.inode, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class StoredState:
    identity: StateIdentity
    cursors: dict[SubscriptionKey, int]
    output: OutputRecord | None = None
    version: int = STATE_VERSION


def _parse_key(text: str) -> SubscriptionKey | None:
    channel, _, digits = text.rpartition(":")
    if (
        channel not in spec.CHANNELS
        or not digits.isascii()
        or not digits.isdigit()
        or len(digits) > _MAX_STRATEGY_ID_DIGITS
    ):
        return None
    key = SubscriptionKey(strategy_id=int(digits), channel=channel)
    # Only the form c2ws writes: no leading zeros, no strategy 0.
    return key if key.strategy_id > 0 and str(key) == text else None


def _valid_cursor(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_CURSOR


def _corrupt(path: Path, reason: str) -> StateCorrupt:
    return StateCorrupt(
        f"state file {_shown(path)} is corrupt ({reason}); move it aside to start "
        "without resume points, or restore a good copy",
        path=path,
    )


def decode_state(data: bytes, *, path: Path) -> StoredState:
    """The identity and cursors in a state file's bytes, or :class:`StateCorrupt`."""

    def corrupt(reason: str) -> StateCorrupt:
        return _corrupt(path, reason)

    # The size first: a huge file of blanks is too large, not empty.
    if len(data) > spec.STATE_MAX_BYTES:
        raise corrupt(f"it is too large: more than {spec.STATE_MAX_BYTES} bytes")
    if not data.strip():
        raise corrupt("it is empty")
    try:
        document = orjson.loads(data)
    except ValueError:
        raise corrupt("not JSON, or cut short") from None
    if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
        raise corrupt(f"not a {STATE_FORMAT} file")
    version = document.get("version")
    if not _valid_cursor(version) or version not in STATE_VERSIONS_READ:
        readable = " and ".join(map(str, STATE_VERSIONS_READ))
        raise corrupt(f"format version {_shown(str(version))}, this c2ws reads {readable}")
    endpoint = document.get("endpoint")
    fingerprint = document.get("key_fingerprint")
    if not isinstance(endpoint, str) or not isinstance(fingerprint, str):
        raise corrupt("endpoint or key_fingerprint missing")
    if not isinstance(document.get("updated"), str):
        raise corrupt("'updated' missing")
    entries = document.get("cursors")
    if not isinstance(entries, dict):
        raise corrupt("'cursors' is not an object")
    if len(entries) > spec.STATE_MAX_CURSORS:
        raise corrupt(f"more than {spec.STATE_MAX_CURSORS} cursors")
    cursors: dict[SubscriptionKey, int] = {}
    for text, value in entries.items():
        key = _parse_key(text)
        if key is None:
            raise corrupt(f"bad cursor key {_shown(text)}")
        if not _valid_cursor(value):
            raise corrupt(f"cursor {_shown(text)} is not a seq_id")
        cursors[key] = value
    output = _decode_output(document.get("output"), corrupt) if version >= 2 else None
    return StoredState(StateIdentity(endpoint, fingerprint), cursors, output, version)


def _decode_output(
    value: object, corrupt: Callable[[str], StateCorrupt]
) -> OutputRecord | None:
    """The "output" record of a version 2 file: null, or device, inode and offset."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise corrupt("'output' is not an object")
    numbers = [value.get(name) for name in ("device", "inode", "offset")]
    if not all(_valid_cursor(number) for number in numbers):
        raise corrupt("'output' needs device, inode and offset, each a whole number")
    device, inode, offset = numbers
    assert isinstance(device, int) and isinstance(inode, int) and isinstance(offset, int)
    return OutputRecord(device, inode, offset)


def encode_state(
    identity: StateIdentity, cursors: Mapping[SubscriptionKey, int], *, updated: str,
    output: OutputRecord | None = None,
) -> bytes:
    """The state file's bytes: small, human-readable JSON, cursors in a stable order."""
    ordered = sorted(cursors.items(), key=lambda item: (item[0].channel, item[0].strategy_id))
    document: dict[str, Any] = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "endpoint": identity.endpoint,
        "key_fingerprint": identity.key_fingerprint,
        "updated": updated,
        "cursors": {str(key): seq_id for key, seq_id in ordered},
        "output": None if output is None else output.to_json(),
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


# --- the state file ---------------------------------------------------------------------


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems cannot sync a directory at all; the rename still happened.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _make_directory(directory: Path) -> None:
    """Create ``directory`` and missing parents (0700), each durably linked in its parent."""
    missing: list[Path] = []
    current = directory
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):
            created.mkdir(mode=0o700)
        _fsync_directory(created.parent)


def _read_bounded(path: Path) -> bytes | None:
    """The file's bytes, at most one past the cap; None when there is no file.

    Only a regular file of this user's, not reached through a symbolic link: the cursors
    in it decide what is delivered, and another user's file (or a link planted in a
    shared directory) must not.  A FIFO at the path is refused without waiting for a
    writer."""
    try:
        fd = open_for_reading(path, follow_symlinks=False, own=True,
                              max_bytes=spec.STATE_MAX_BYTES)
    except FileNotFoundError:
        return None
    except FileTooLarge:
        raise _corrupt(path, f"it is too large: more than {spec.STATE_MAX_BYTES} bytes") from None
    except UnusableFile as exc:
        raise StateIOFailure(
            f"state file {_shown(path)} {exc.problem}; pass --state a path of your own "
            "(a regular file, or none yet)",
            path=path,
        ) from None
    try:
        chunks: list[bytes] = []
        remaining = spec.STATE_MAX_BYTES + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, _READ_CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class StateFile:
    """One ``--state`` file, held exclusively by this run between :meth:`open` and
    :meth:`close`.

    The lock is ``flock`` on the sidecar ``<path>.lock``, which is never replaced or
    removed (the state file itself is replaced at every commit, which would orphan a lock
    on it).  The directory is created at :meth:`open`, since the lock file lives there.
    A commit writes the cursors given and keeps those of other keys read at open: a run
    on fewer strategies does not erase the resume points of the others.
    """

    def __init__(
        self, path: Path, identity: StateIdentity, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.identity = identity
        self._clock = clock
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._temp_prefix = f".{self.path.name}.tmp-"
        self._lock_fd: int | None = None
        # The state file's directory, open while the file is (each commit renames in it
        # and fsyncs it, without looking the path up again).
        self._dir_fd: int | None = None
        self._persisted: dict[SubscriptionKey, int] = {}
        self._output: OutputRecord | None = None
        # The file as read at open: None when there was none; its format version.
        self.found_version: int | None = None

    # -- lifecycle --

    def open(self) -> dict[SubscriptionKey, int]:
        """Lock the file and return its cursors (empty when there is no file yet)."""
        if self._lock_fd is not None:
            raise RuntimeError("state file is already open")
        self._lock_fd = self._acquire_lock()
        try:
            self._dir_fd = self._io("open the directory of", lambda: os.open(
                self.path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC))
            data = self._io("read", lambda: _read_bounded(self.path))
            if data is None:
                self._persisted, self._output, self.found_version = {}, None, None
            else:
                stored = decode_state(data, path=self.path)
                self._check_identity(stored.identity)
                self._persisted, self._output = stored.cursors, stored.output
                self.found_version = stored.version
            self._remove_stale_temp_files()
        except BaseException:
            self.close()
            raise
        return dict(self._persisted)

    def close(self) -> None:
        """Release the lock; safe to call more than once."""
        directory, self._dir_fd = self._dir_fd, None
        if directory is not None:
            with contextlib.suppress(OSError):
                os.close(directory)
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # the pid of a finished run would mislead
        os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> StateFile:
        if self._lock_fd is None:
            self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        """Locked by this run (between :meth:`open` and :meth:`close`)."""
        return self._lock_fd is not None

    @property
    def cursors(self) -> dict[SubscriptionKey, int]:
        """The cursors as the file now holds them (after open or the last commit)."""
        return dict(self._persisted)

    @property
    def output(self) -> OutputRecord | None:
        """Where the committed output ends, as the file now holds it (None: not known)."""
        return self._output

    # -- commit --

    def commit(
        self, cursors: Mapping[SubscriptionKey, int], *, output: OutputRecord | None = None
    ) -> None:
        """Durably record ``cursors`` (keys not given keep their stored value) and, when
        given, where the output file's committed lines end (else the stored record stays).

        Atomic: a crash at any point leaves the old file or the new one, never a mix.
        A no-op when nothing changed since the last commit."""
        if self._lock_fd is None:
            raise RuntimeError("state file is not open")
        for key, seq_id in cursors.items():
            # Only what decode_state reads back: a key it refused would corrupt the file.
            if not isinstance(key, SubscriptionKey) or _parse_key(str(key)) != key:
                raise ValueError(f"not a subscription key: {key!r}")
            if not _valid_cursor(seq_id):
                raise ValueError(f"cursor of {key} is not a seq_id: {seq_id!r}")
        merged = {**self._persisted, **cursors}
        record = self._output if output is None else output
        if merged == self._persisted and record == self._output:
            return
        if len(merged) > spec.STATE_MAX_CURSORS:
            raise StateFull(
                f"state file {_shown(self.path)} would hold more than "
                f"{spec.STATE_MAX_CURSORS} cursors; pass a new --state file",
                path=self.path,
            )
        updated = protocol.format_timestamp(self._clock())
        data = encode_state(self.identity, merged, updated=updated, output=record)
        self._io("write", lambda: self._replace_with(data))
        self._persisted, self._output = merged, record

    def _replace_with(self, data: bytes) -> None:
        """A temporary file of a fresh name (never reached through a link: O_EXCL alone
        would do, O_NOFOLLOW says so), fsynced, renamed over the state file, then the
        directory fsynced: in C, one release of the GIL for all of it
        (:func:`c2ws.speedups.replace_file`)."""
        assert self._dir_fd is not None
        temp = f"{self._temp_prefix}{os.getpid()}-{secrets.token_hex(4)}"
        speedups.replace_file(self._dir_fd, temp, self.path.name, data)

    # -- helpers --

    def _io(self, action: str, operation: Callable[[], _T]) -> _T:
        try:
            return operation()
        except OSError as exc:
            raise StateIOFailure(
                f"cannot {action} state file {_shown(self.path)} ({_reason(exc)}); "
                "check the path and its permissions",
                path=self.path,
            ) from None

    def _acquire_lock(self) -> int:
        """Open and ``flock`` the lock file, then write our pid into it.

        Written into only when it is a regular file of ours with one name, not reached
        through a symbolic link (a link planted in a shared directory must not make a
        run truncate its target), and, when it was there before, when it holds what
        c2ws writes into a lock file: a pid or nothing."""
        def create() -> tuple[int, bool]:
            _make_directory(self.path.parent)
            return open_own_file(self._lock_path)

        try:
            fd, created = self._io("create the lock file of", create)
        except UnusableFile as exc:
            raise self._unusable_lock(exc.problem) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _lock_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                run = f"another c2ws run (pid {holder})" if holder else "another c2ws run"
                raise StateLocked(
                    f"state file {_shown(self.path)} is in use by {run}; stop that run "
                    "or pass a different --state file",
                    path=self.path,
                ) from None
            raise StateIOFailure(
                f"cannot lock state file {_shown(self.path)} ({_reason(exc)}); "
                "put it on a local file system",
                path=self.path,
            ) from None
        if not created and not _holds_a_lock(fd):
            os.close(fd)
            raise self._unusable_lock("holds something other than the pid c2ws writes there")
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _unusable_lock(self, problem: str) -> StateIOFailure:
        return StateIOFailure(
            f"the lock file {_shown(self._lock_path)} of state file {_shown(self.path)} "
            f"{problem}; c2ws leaves it as it is: remove it, or pass a different --state file",
            path=self.path,
        )

    def _check_identity(self, stored: StateIdentity) -> None:
        if stored.endpoint != self.identity.endpoint:
            raise StateForeign(
                f"state file {_shown(self.path)} was written for endpoint "
                f"{_shown(stored.endpoint)}, not {_shown(self.identity.endpoint)}; "
                "pass a different --state file for this endpoint",
                path=self.path,
            )
        if stored.key_fingerprint != self.identity.key_fingerprint:
            raise StateForeign(
                f"state file {_shown(self.path)} was written with a different API key; "
                "pass a different --state file for this key",
                path=self.path,
            )

    def _remove_stale_temp_files(self) -> None:
        """Temp files of a run killed mid-commit: ours to remove, since we hold the lock."""
        with contextlib.suppress(OSError), os.scandir(self.path.parent) as entries:
            for entry in entries:
                if entry.name.startswith(self._temp_prefix):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


def _holds_a_lock(fd: int) -> bool:
    """The lock file holds what c2ws writes there: nothing, or a pid and a newline."""
    try:
        text = os.pread(fd, _LOCK_PID_BYTES + 1, 0)
    except OSError:
        return False
    return not text or (len(text) <= _LOCK_PID_BYTES and text.rstrip(b"\n").isdigit())


def _lock_holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, _LOCK_PID_BYTES, 0)
    except OSError:
        return None
    pid = protocol.parse_int(text.decode("ascii", "replace").strip())
    return pid if pid is not None and pid > 0 else None


# --- reconciling stdout -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TailReconciliation:
    """What the output file says was written.

    ``reconciled`` is False when stdout is no regular file appended to (a pipe, a
    terminal): nothing was read or changed, and written-once cannot be checked.
    ``reset_keys``: keys whose cursor comes after a ``sequence.reset`` line (or is the
    one just before its new numbering, when that line is the key's last): it replaces
    the state file's cursor even when lower."""

    cursors: dict[SubscriptionKey, int]
    torn_bytes_removed: int = 0
    scanned_bytes: int = 0
    reconciled: bool = False
    reset_keys: frozenset[SubscriptionKey] = frozenset()


def _not_reconciled() -> TailReconciliation:
    return TailReconciliation(cursors={})


def reconcile_output_tail(
    fd: int,
    *,
    keys: Collection[SubscriptionKey],
    max_bytes: int = spec.OUTPUT_TAIL_SCAN_BYTES,
    max_torn_bytes: int = spec.OUTPUT_MAX_TORN_BYTES,
) -> TailReconciliation:
    """Make the output file on ``fd`` end with a whole line, then find, per key, the last
    seq_id it holds.

    For stdout appended to a regular file: a torn last line (``kill -9`` mid-write) is
    cut, and the last ``max_bytes`` are searched backwards for NDJSON stream envelopes
    of ``keys``, stopping once every key is found.  Anything else on ``fd`` (a pipe, a
    terminal, a file written at an offset before its end) is left untouched.  The file
    offset is not moved, except that of a non-appending descriptor, which follows a cut.
    Raises :class:`StateError` when the file cannot be read back or cut, or when its
    unterminated tail is longer than ``max_torn_bytes`` (too long to be a line of ours).
    """
    try:
        status = os.fstat(fd)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        appending = bool(flags & os.O_APPEND)
        at_end = appending or os.lseek(fd, 0, os.SEEK_CUR) == status.st_size
    except OSError:
        return _not_reconciled()
    writable = flags & os.O_ACCMODE != os.O_RDONLY
    if not stat.S_ISREG(status.st_mode) or not writable or not at_end:
        return _not_reconciled()
    if status.st_size == 0:
        return TailReconciliation(cursors={}, reconciled=True)
    path = _output_path(fd)
    with _reader_for(fd, status, path) as reader:
        end = _end_of_last_line(reader, status.st_size, max_torn_bytes, path)
        if end < status.st_size:
            _cut(fd, end, path, move_offset=not appending)
        wanted = frozenset(keys)
        cursors, scanned, reset_keys = _last_seq_ids(reader, end, wanted, max_bytes, path)
    return TailReconciliation(
        cursors=cursors,
        torn_bytes_removed=status.st_size - end,
        scanned_bytes=scanned,
        reconciled=True,
        reset_keys=reset_keys,
    )


@dataclass(frozen=True, slots=True)
class OutputReconciliation:
    """What the output file says was written after the last commit, read from the
    committed offset (:func:`reconcile_output`).

    ``cursors``: the cursors to resume from.  ``record``: where the output's committed
    lines now end (the file's identity and the offset after any cut), to commit at once;
    None when the output is no regular file appended to (nothing was read or changed).
    ``torn_bytes_removed``: an unterminated last line cut; ``cut_bytes`` and
    ``cut_lines``: whole lines after the committed offset cut (a format that is not read
    back: the server sends them again); ``counted``: stream lines after the offset
    counted as written; ``notice``: the file is not the one the state file recorded (or
    is shorter than it recorded), said on stderr; ``reset_keys``: keys whose cursor
    comes from a ``sequence.reset`` line (it replaces the stored one, even when lower)."""

    cursors: dict[SubscriptionKey, int]
    record: OutputRecord | None = None
    torn_bytes_removed: int = 0
    cut_bytes: int = 0
    cut_lines: int = 0
    counted: int = 0
    notice: str | None = None
    reset_keys: frozenset[SubscriptionKey] = frozenset()


def reconcile_output(
    fd: int,
    *,
    keys: Collection[SubscriptionKey],
    cursors: Mapping[SubscriptionKey, int],
    record: OutputRecord | None,
    read_back: bool = True,
    max_torn_bytes: int = spec.OUTPUT_MAX_TORN_BYTES,
) -> OutputReconciliation:
    """Make the output file on ``fd`` hold exactly what ``cursors`` (the committed ones)
    and the lines after them say was written, from ``record`` (where the committed lines
    end, as the state file holds it).

    The bytes after the committed offset are the uncommitted tail: an unterminated last
    line (a crash mid-write) is cut; then, with ``read_back`` (each message is its NDJSON
    envelope line), every whole line after the offset counts as written, read forward
    with the engine's cursor rules (a ``seq_id`` jump of more than
    ``spec.SUSPECT_SEQ_JUMP`` moves no cursor until the line after it confirms it; a
    ``sequence.reset`` line moves the cursor down); without it (CSV, TSV, ``--fields``:
    no line can be told to be which message) the whole tail is cut back to the offset
    and the server sends it again.  A file that is not the one recorded (another device
    or inode: rotated, replaced) or shorter than the offset (emptied) is left as it is,
    with a ``notice``: the stored cursors stand.  Without a record (a version 1 state
    file, or none yet), the end of the file is read as before version 2
    (:func:`reconcile_output_tail`).  Anything but a regular file appended to (a pipe, a
    terminal) is left untouched.  Raises :class:`StateError` when the file cannot be
    read or cut, or its unterminated tail is too long to be a line of c2ws's."""
    stored = dict(cursors)
    try:
        status = os.fstat(fd)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        appending = bool(flags & os.O_APPEND)
        at_end = appending or os.lseek(fd, 0, os.SEEK_CUR) == status.st_size
    except OSError:
        return OutputReconciliation(stored)
    writable = flags & os.O_ACCMODE != os.O_RDONLY
    if not stat.S_ISREG(status.st_mode) or not writable or not at_end:
        return OutputReconciliation(stored)
    size = status.st_size
    path = _output_path(fd)

    def at(offset: int) -> OutputRecord:
        return OutputRecord(status.st_dev, status.st_ino, offset)

    if record is None:
        return _reconcile_without_record(fd, status, keys, stored, read_back, max_torn_bytes,
                                         appending, path)
    if not record.same_file(status):
        return OutputReconciliation(stored, at(size), notice=(
            f"stdout file {_shown(path)} is not the file the state file recorded (another "
            "device or inode: rotated or replaced); resuming from the state file's cursors, "
            "nothing read back from this file"))
    if size < record.offset:
        return OutputReconciliation(stored, at(size), notice=(
            f"stdout file {_shown(path)} holds {size} bytes, fewer than the {record.offset} "
            "the state file recorded as written (emptied or cut since: opened with > "
            "rather than >>?); resuming from the state file's cursors"))
    with _reader_for(fd, status, path) as reader:
        end = _end_of_whole_lines(reader, record.offset, size, max_torn_bytes, path)
        if read_back:
            lines = _lines_between(reader, record.offset, end, path)
            moved, reset_keys, counted = cursors_after_lines(lines, stored, frozenset(keys))
            if end < size:
                _cut(fd, end, path, move_offset=not appending)
            return OutputReconciliation(moved, at(end), torn_bytes_removed=size - end,
                                        counted=counted, reset_keys=reset_keys)
        cut_lines = (_count_newlines(reader, record.offset, end, path)
                     if end > record.offset else 0)
    if size > record.offset:
        _cut(fd, record.offset, path, move_offset=not appending)
    return OutputReconciliation(stored, at(record.offset), torn_bytes_removed=size - end,
                                cut_bytes=end - record.offset, cut_lines=cut_lines)


def _reconcile_without_record(
    fd: int, status: os.stat_result, keys: Collection[SubscriptionKey],
    cursors: dict[SubscriptionKey, int], read_back: bool, max_torn_bytes: int,
    appending: bool, path: Path,
) -> OutputReconciliation:
    """No offset recorded yet (a version 1 state file, or none): a torn last line is cut
    and, for NDJSON, the last lines of the file are read back (the scan of version 1)."""
    size = status.st_size
    if read_back:
        tail = reconcile_output_tail(fd, keys=keys, max_torn_bytes=max_torn_bytes)
        for key, seq in tail.cursors.items():
            if seq > cursors.get(key, 0) or key in tail.reset_keys:
                cursors[key] = seq
        end = size - tail.torn_bytes_removed
        return OutputReconciliation(
            cursors, OutputRecord(status.st_dev, status.st_ino, end),
            torn_bytes_removed=tail.torn_bytes_removed, reset_keys=tail.reset_keys)
    end = size
    if size:
        with _reader_for(fd, status, path) as reader:
            end = _end_of_last_line(reader, size, max_torn_bytes, path)
        if end < size:
            _cut(fd, end, path, move_offset=not appending)
    return OutputReconciliation(cursors, OutputRecord(status.st_dev, status.st_ino, end),
                                torn_bytes_removed=size - end)


def _end_of_whole_lines(reader: int, low: int, size: int, max_torn_bytes: int,
                        path: Path) -> int:
    """Just past the last newline in ``[low, size)``; ``low`` when there is none (all of
    it is one torn line).  Too long a torn line is no line of ours: :class:`StateCorrupt`."""
    if size <= low or _pread_exact(reader, 1, size - 1, path) == b"\n":
        return size
    limit = max(low, size - max_torn_bytes - 1)
    position = size
    while position > limit:
        length = min(_READ_CHUNK, position - limit)
        position -= length
        newline = _pread_exact(reader, length, position, path).rfind(b"\n")
        if newline >= 0:
            return position + newline + 1
    if size - low <= max_torn_bytes:
        return low
    raise StateCorrupt(
        f"stdout file {_shown(path)} ends with more than {max_torn_bytes} bytes and no "
        "newline, too long to be a torn line of c2ws output; check that stdout is the "
        "c2ws output file",
        path=path,
    )


_FORWARD_CHUNK: Final = 1 << 20


def _lines_between(reader: int, start: int, end: int, path: Path) -> Iterator[bytes]:
    """The lines of ``[start, end)`` (which ends with a newline), oldest first, without
    their newlines; read in chunks, never the whole range at once."""
    position = start
    pending = b""
    while position < end:
        chunk = _pread_exact(reader, min(_FORWARD_CHUNK, end - position), position, path)
        position += len(chunk)
        pieces = (pending + chunk).split(b"\n")
        pending = pieces.pop()
        yield from pieces
    if pending:
        yield pending


def _count_newlines(reader: int, start: int, end: int, path: Path) -> int:
    count = 0
    position = start
    while position < end:
        chunk = _pread_exact(reader, min(_FORWARD_CHUNK, end - position), position, path)
        position += len(chunk)
        count += chunk.count(b"\n")
    return count


def cursors_after_lines(
    lines: Iterable[bytes], cursors: Mapping[SubscriptionKey, int],
    wanted: frozenset[SubscriptionKey],
) -> tuple[dict[SubscriptionKey, int], frozenset[SubscriptionKey], int]:
    """The cursors once ``lines`` (output lines written after ``cursors`` were committed,
    oldest first) count as written: each stream envelope of a wanted key moves its cursor
    as the engine moved it when it wrote the line (see :mod:`c2ws.delivery.dedupe`): a
    ``seq_id`` more than ``spec.SUSPECT_SEQ_JUMP`` past the cursor is a suspect jump and
    moves nothing until the next line of the stream continues from it; a
    ``sequence.reset`` line moves the cursor just before its new numbering.  Returns the
    cursors, the keys a reset line moved, and how many stream lines were read."""
    moved = dict(cursors)
    suspects: dict[SubscriptionKey, int] = {}
    reset_keys: set[SubscriptionKey] = set()
    counted = 0
    for line in lines:
        if _RESET_MARK in line:
            reset = _reset_line(line)
            if reset is not None:
                if reset.key in wanted:
                    moved[reset.key] = reset.cursor
                    suspects.pop(reset.key, None)
                    reset_keys.add(reset.key)
                continue
        position = _stream_position(line) if line.strip() else None
        if position is None:
            continue
        key, seq_id = position
        if key not in wanted:
            continue
        counted += 1
        held = moved.get(key)
        if held is not None and seq_id <= held:
            continue
        suspect = suspects.pop(key, None)
        if held is not None and seq_id > held + spec.SUSPECT_SEQ_JUMP and not (
                suspect is not None and seq_id == suspect + 1):
            suspects[key] = seq_id  # written, but the cursor stays until confirmed
            continue
        moved[key] = seq_id
    return moved, frozenset(reset_keys), counted


def _output_path(fd: int) -> Path:
    """The output file's name, for messages only."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return Path(f"<fd {fd}>")


def _output_failure(path: Path, what: str, exc: OSError | None = None) -> StateIOFailure:
    detail = f" ({_reason(exc)})" if exc is not None else ""
    return StateIOFailure(
        f"cannot {what} stdout file {_shown(path)}{detail}; append stdout to a local "
        "file (>> FILE), or pipe it",
        path=path,
    )


@contextlib.contextmanager
def _reader_for(fd: int, status: os.stat_result, path: Path) -> Iterator[int]:
    """A descriptor that can read the file of ``fd``: ``fd`` itself, or, when it is
    write-only (as ``>>`` opens it), the same file opened again for reading."""
    try:
        os.pread(fd, 1, 0)
    except OSError as exc:
        if exc.errno != errno.EBADF:
            raise _output_failure(path, "read back", exc) from None
    else:
        yield fd
        return
    for alias in (f"/proc/self/fd/{fd}", f"/dev/fd/{fd}"):
        try:
            reader = os.open(alias, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            again = os.fstat(reader)
            if (again.st_dev, again.st_ino) == (status.st_dev, status.st_ino):
                os.pread(reader, 1, 0)
                break
        except OSError:
            pass
        os.close(reader)
    else:
        raise _output_failure(path, "read back")
    try:
        yield reader
    finally:
        os.close(reader)


def _pread_exact(reader: int, size: int, offset: int, path: Path) -> bytes:
    chunks: list[bytes] = []
    while size > 0:
        try:
            chunk = os.pread(reader, size, offset)
        except OSError as exc:
            raise _output_failure(path, "read back", exc) from None
        if not chunk:
            raise _output_failure(path, "read back a stable")
        chunks.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _end_of_last_line(reader: int, size: int, max_torn_bytes: int, path: Path) -> int:
    """The offset just past the file's last newline; 0 when a short file has none."""
    if _pread_exact(reader, 1, size - 1, path) == b"\n":
        return size
    low = max(0, size - max_torn_bytes - 1)
    position = size
    while position > low:
        length = min(_READ_CHUNK, position - low)
        position -= length
        newline = _pread_exact(reader, length, position, path).rfind(b"\n")
        if newline >= 0:
            return position + newline + 1
    if size <= max_torn_bytes:
        return 0
    raise StateCorrupt(
        f"stdout file {_shown(path)} ends with more than {max_torn_bytes} bytes and no "
        "newline, too long to be a torn line of c2ws output; check that stdout is the "
        "c2ws output file",
        path=path,
    )


def _cut(fd: int, end: int, path: Path, *, move_offset: bool) -> None:
    try:
        os.ftruncate(fd, end)
        if move_offset:
            os.lseek(fd, end, os.SEEK_SET)
    except OSError as exc:
        raise _output_failure(path, "cut the torn last line of", exc) from None
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise _output_failure(path, "sync", exc) from None


def _stream_position(line: bytes) -> tuple[SubscriptionKey, int] | None:
    """The key and seq_id of one NDJSON stream envelope; None for any other line."""
    try:
        message = orjson.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    msg_type = message.get("msg_type")
    payload = message.get("payload")
    if not isinstance(msg_type, str) or msg_type not in spec.STREAM_MSG_TYPES:
        return None
    if not isinstance(payload, dict):
        return None
    seq_id = protocol.parse_int(message.get("seq_id"))
    strategy_id = protocol.strategy_id_of(payload)
    if seq_id is None or seq_id < 0 or strategy_id is None:
        return None
    return SubscriptionKey(strategy_id=strategy_id, channel=msg_type), seq_id


def _reset_line(line: bytes) -> SequenceReset | None:
    try:
        return read_reset_object(orjson.loads(line))
    except ValueError:
        return None


def _last_seq_ids(
    reader: int, end: int, wanted: frozenset[SubscriptionKey], max_bytes: int, path: Path
) -> tuple[dict[SubscriptionKey, int], int, frozenset[SubscriptionKey]]:
    """Per wanted key, the seq_id of its last whole line within the last ``max_bytes``
    before ``end`` (0 or just past a newline), the bytes read, and the keys that had a
    ``sequence.reset`` line in what was read.  c2ws writes each key's seq_ids in
    increasing order, so the last line is the highest; lines read before the scan stops
    count too (the highest of them is taken), back to the key's last reset line: what
    is older is in the old numbering.  A reset line that is the key's last line gives
    the cursor just before its new numbering."""
    found: dict[SubscriptionKey, int] = {}
    reset_keys: set[SubscriptionKey] = set()

    def consider(line: bytes) -> bool:
        """Take one line into ``found``; True once every wanted key is found."""
        reset = _reset_line(line) if _RESET_MARK in line else None
        if reset is not None:
            if reset.key in wanted and reset.key not in reset_keys:
                reset_keys.add(reset.key)
                found.setdefault(reset.key, reset.cursor)
            return len(found) == len(wanted)
        position = _stream_position(line) if line.strip() else None
        if position is not None and position[0] in wanted and position[0] not in reset_keys:
            key, seq_id = position
            found[key] = max(seq_id, found.get(key, seq_id))
        return len(found) == len(wanted)

    def result(scanned: int) -> tuple[dict[SubscriptionKey, int], int,
                                      frozenset[SubscriptionKey]]:
        return found, scanned, frozenset(reset_keys)

    if not wanted:
        return result(0)
    low = max(0, end - max_bytes)
    position = end
    # The start of the line being assembled, newest piece first (lines span chunks).
    pending: list[bytes] = []
    while position > low:
        length = min(_READ_CHUNK, position - low)
        position -= length
        pieces = _pread_exact(reader, length, position, path).split(b"\n")
        if len(pieces) == 1:
            pending.append(pieces[0])
            continue
        if consider(b"".join([pieces[-1], *reversed(pending)])):
            return result(end - position)
        for line in reversed(pieces[1:-1]):
            if consider(line):
                return result(end - position)
        pending = [pieces[0]]
    if position == 0:
        consider(b"".join(reversed(pending)))  # the file's first line is whole
    return result(end - position)


def whole_lines_written(
    fd: int, *, keys: Collection[SubscriptionKey], max_bytes: int = spec.OUTPUT_TAIL_SCAN_BYTES,
) -> dict[SubscriptionKey, int] | None:
    """Per key, the seq_id of the last whole NDJSON stream envelope the file on ``fd``
    holds, read back without changing anything (an unterminated last line does not
    count): where the output really ends after a write failed part way.  None when ``fd``
    is not a regular file or cannot be read back."""
    try:
        status = os.fstat(fd)
    except OSError:
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    if status.st_size == 0:
        return {}
    path = _output_path(fd)
    try:
        with _reader_for(fd, status, path) as reader:
            end = _end_of_last_line(reader, status.st_size, spec.OUTPUT_MAX_TORN_BYTES, path)
            cursors, _, _ = _last_seq_ids(reader, end, frozenset(keys), max_bytes, path)
    except StateError:
        return None
    return cursors
