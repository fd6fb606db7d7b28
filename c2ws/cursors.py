"""Where a stream keeps its cursors: the last seq_id handled of each subscription, which
a restart resumes after (the server replays ``strategy.signal`` from there).

A store is anything with two methods (:class:`CursorStore`)::

    load() -> Mapping[(strategy_id, channel), seq_id]   # once, when the stream starts
    commit(cursors) -> None                              # after each acknowledgement

and, optionally, two hooks the stream calls when the store has them:

* ``open(identity: StreamIdentity) -> None``, before ``load``: the endpoint, a
  fingerprint of the API key (never the key) and the subscriptions of the stream, for a
  store to refuse cursors written for another endpoint or key;
* ``close() -> None``, when the stream ends (however it ends).

A store may also say how its commits are to be made:

* ``commit_groups`` (a :class:`CommitGroups`, or None): the stream commits to it per
  group of messages, on a thread of its own, never more than ``max_messages`` messages
  behind what it handed out and at the latest ``max_seconds`` after a group's first
  message (see :mod:`c2ws.delivery.groups`, :mod:`c2ws.commits`), never per
  acknowledgement: for a store whose commit is slow (fsyncs) and whose caller can take a
  bounded repeat after a crash;
* ``commits_each_message = True``: the stream hands over (and commits) one message at a
  time.

Two stores come with c2ws: :class:`FileCursors` (the ``--state`` file of ``c2ws
subscribe``, with its lock and, optionally, exactly-once appends to an output file) and
:class:`SqliteCursors` (rows in the caller's own SQLite transaction).  ``cursors=None``
keeps them in memory for the run only.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from c2ws import spec
from c2ws.delivery.groups import CommitGroups
from c2ws.errors import StateFileError
from c2ws.events import SubscriptionKey

if TYPE_CHECKING:
    from c2ws.delivery.state import OutputReconciliation, OutputRecord, StateFile

__all__ = [
    "CommitGroups",
    "CursorStore",
    "FileCursors",
    "SqliteCursors",
    "StreamIdentity",
    "written_cursors",
]

# A table name used as such in SQL (it cannot be a bound parameter): a plain identifier.
_TABLE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@runtime_checkable
class CursorStore(Protocol):
    """What a stream needs of a cursor store (see the module docstring for the optional
    ``open``/``close`` hooks, ``commit_groups`` and ``commits_each_message``)."""

    def load(self) -> Mapping[tuple[int, str], int]:
        """The stored cursors: ``(strategy_id, channel)`` (the channel's full name,
        ``strategy.signal``) to the last seq_id handled.  Subscriptions the stream does
        not have are ignored; missing ones start with what the server sends next."""
        ...

    def commit(self, cursors: Mapping[SubscriptionKey, int]) -> None:
        """Record ``cursors`` (every subscription's, changed or not).  Called on the
        stream's consumer thread after each acknowledgement; raising ends the stream
        with that error."""
        ...


@dataclass(frozen=True, slots=True)
class StreamIdentity:
    """What a stream's cursors belong to: ``endpoint`` (the URL, normalised:
    ``wss://Host/ws`` and ``wss://host:443/ws`` are one), ``key_fingerprint`` (a short
    one-way hash of the API key: tells keys apart, reveals none) and ``keys``, the
    subscriptions."""

    endpoint: str
    key_fingerprint: str
    keys: tuple[SubscriptionKey, ...] = ()

    @classmethod
    def of(cls, url: str, api_key: str, keys: Iterable[tuple[int, str]] = ()) -> StreamIdentity:
        """The identity of a stream of ``keys`` on ``url`` with ``api_key``."""
        from c2ws.delivery.state import key_fingerprint, normalize_endpoint

        return cls(normalize_endpoint(url), key_fingerprint(api_key),
                   tuple(SubscriptionKey(*key) for key in keys))


def checked_cursors(
    loaded: Mapping[tuple[int, str], int], keys: Collection[SubscriptionKey], store: object
) -> dict[SubscriptionKey, int]:
    """The cursors of ``keys`` in what a store's ``load()`` returned, or a
    :class:`StateFileError` naming the store when one is no seq_id."""
    cursors: dict[SubscriptionKey, int] = {}
    for key, seq_id in loaded.items():
        try:
            placed = SubscriptionKey(*key)
        except TypeError:
            continue
        if placed not in keys:
            continue
        if not isinstance(seq_id, int) or isinstance(seq_id, bool) or seq_id < 0:
            raise StateFileError(
                f"the cursor store {type(store).__name__} returned {seq_id!r} as the cursor "
                f"of {placed}, not a seq_id"
            )
        cursors[placed] = seq_id
    return cursors


# --- the state file -----------------------------------------------------------------------


class FileCursors:
    """The ``--state`` file of ``c2ws subscribe``: JSON, locked for the whole stream (a
    second stream on the same file gets a :class:`~c2ws.errors.StateFileError` at once,
    never a race), written atomically (a crash leaves the old file or the new one), and
    refused when it was written for another endpoint or API key.

    ``output``: a descriptor the caller writes the stream's output to.  With one, commits
    are grouped (:attr:`commit_groups`, :mod:`c2ws.delivery.groups`: made on the
    stream's commit thread, never more than ``spec.COMMIT_GROUP_MAX_MESSAGES`` messages
    behind what the stream handed out (``spec.READ_BACK_MAX_UNCOMMITTED`` for a file
    appended to whose lines are read back, see below), each group
    ``spec.COMMIT_GROUP_MAX_SECONDS`` after its first message at the latest, at once at a
    sequence reset, and when the stream closes).  When it is a regular file appended to
    (``>> out.ndjson``), every commit records with the cursors the output file's
    identity (device, inode) and the byte
    offset its acknowledged lines end at, after syncing the output (``fsync``), so the
    state file never counts a byte that is not on disk.  At :meth:`open` the bytes after
    the committed offset are the uncommitted tail (:func:`~c2ws.delivery.state.
    reconcile_output`): a torn last line is cut, and with ``read_back`` (each message is
    its NDJSON line, ``msg.line`` and a newline) every whole line after the offset counts
    as written; without it (any other format) the tail is cut back to the offset and the
    server sends it again, and commits come at least every ``spec.
    CUT_OUTPUT_MAX_UNCOMMITTED`` messages (what the server can replay).  Together: every
    message is in the output file exactly once, ``kill -9`` included.  When ``output`` is
    a pipe or a terminal (nothing can be read back), a crash repeats at most the messages
    written since the last commit: at most ``spec.COMMIT_GROUP_MAX_MESSAGES``.  An
    ``OSError`` syncing the output propagates as is (raised to the stream's caller).
    Without ``output`` every acknowledgement is committed at once, on the caller's
    thread.

    :meth:`open` may be called early (``c2ws subscribe`` takes the lock before it
    touches its output); the stream's own ``open`` with the same identity is then a
    no-op."""

    def __init__(
        self, path: str | os.PathLike[str], *, output: int | None = None,
        read_back: bool = True,
    ) -> None:
        self.path = Path(path)
        self.output = output
        self.read_back = read_back
        self.torn_bytes_removed = 0
        # What open() found in the output file (None before, or without an output).
        self.reconciliation: OutputReconciliation | None = None
        self._identity: StreamIdentity | None = None
        self._state: StateFile | None = None
        self._cursors: dict[SubscriptionKey, int] = {}
        # The output file whose offsets are committed (None: no regular file appended to).
        self._record: OutputRecord | None = None

    @property
    def commit_groups(self) -> CommitGroups | None:
        """With an output, commits are grouped (see the class docstring); None without."""
        if self.output is None:
            return None
        if self._record is not None:
            if not self.read_back:
                # A tail that is cut must be one the server can replay.
                return CommitGroups(max_messages=spec.CUT_OUTPUT_MAX_UNCOMMITTED)
            # A tail that is read back repeats nothing: the bound only caps that read.
            return CommitGroups(max_messages=spec.READ_BACK_MAX_UNCOMMITTED)
        return CommitGroups()

    @property
    def output_is_file(self) -> bool:
        """After :meth:`open`: the output is a regular file appended to, whose committed
        offset is recorded (exactly once); False for a pipe or a terminal."""
        return self._record is not None

    def open(self, identity: StreamIdentity) -> None:
        """Lock the file and read it (and reconcile the output file from its committed
        offset, when there is one, recording where it now ends at once); raises
        :class:`~c2ws.errors.StateFileError` (a subclass of :mod:`c2ws.delivery.state`
        says which problem) and releases the lock on error."""
        if self._state is not None:
            opened = self._identity
            assert opened is not None
            if (identity.endpoint, identity.key_fingerprint, frozenset(identity.keys)) != (
                    opened.endpoint, opened.key_fingerprint, frozenset(opened.keys)):
                raise ValueError(f"{self.path} is already open for another stream")
            return
        from c2ws.delivery.state import StateFile, StateIdentity, reconcile_output

        state = StateFile(self.path, StateIdentity(identity.endpoint, identity.key_fingerprint))
        stored = state.open()
        try:
            # Every stored cursor, not only those of identity.keys: a strategy added to
            # the running stream (--strategies-file) resumes from its own too, and the
            # output's lines of each are read back.
            cursors = dict(stored)
            keys = set(identity.keys) | set(cursors)
            if self.output is not None:
                found = reconcile_output(self.output, keys=keys, cursors=cursors,
                                         record=state.output, read_back=self.read_back)
                self.reconciliation = found
                self.torn_bytes_removed = found.torn_bytes_removed
                cursors = found.cursors
                if found.record is not None:
                    # Lines counted as written must be on disk before the state says so;
                    # and the next run reads from where this one starts writing.
                    _sync(self.output)
                    state.commit(cursors, output=found.record)
                    self._record = found.record
        except BaseException:
            state.close()
            raise
        self._state, self._identity, self._cursors = state, identity, cursors

    def load(self) -> dict[SubscriptionKey, int]:
        """The cursors read at :meth:`open` (and committed since)."""
        if self._state is None:
            raise RuntimeError("FileCursors.load() before open(): pass it to c2ws.stream()")
        return dict(self._cursors)

    def position(self) -> OutputRecord | None:
        """Where the output file ends now: called on the stream's consumer thread at each
        acknowledgement, right after the lines it acknowledges were written, and committed
        with their cursors (None: no output file is tracked)."""
        record = self._record
        if record is None or self.output is None:
            return None
        try:
            size = os.fstat(self.output).st_size
        except OSError:
            return None
        from c2ws.delivery.state import OutputRecord

        return OutputRecord(record.device, record.inode, size)

    def commit(
        self, cursors: Mapping[SubscriptionKey, int], position: OutputRecord | None = None
    ) -> None:
        """Sync the output file (when one is tracked), then record ``cursors`` (and where
        the output's acknowledged lines end, ``position``) durably."""
        if self._state is None:
            raise RuntimeError("FileCursors.commit() before open()")
        if self._record is not None:
            assert self.output is not None
            os.fsync(self.output)
        self._state.commit(cursors, output=position)
        self._cursors.update(cursors)

    def close(self) -> None:
        """Release the lock; idempotent."""
        state, self._state = self._state, None
        if state is not None:
            state.close()


def _sync(fd: int) -> None:
    """fsync, where the file system can."""
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise StateFileError(f"cannot sync the output file ({exc.strerror})") from None


def written_cursors(
    fd: int, keys: Iterable[tuple[int, str]]
) -> dict[SubscriptionKey, int] | None:
    """Per stream of ``keys``, the seq_id of the last whole NDJSON line the file on ``fd``
    holds (an unterminated last line does not count), read back without changing
    anything: where an output really ends after a write failed part way.  None when
    ``fd`` is no regular file or cannot be read back."""
    from c2ws.delivery.state import whole_lines_written

    return whole_lines_written(fd, keys=[SubscriptionKey(*key) for key in keys])


# --- SQLite ---------------------------------------------------------------------------------


class SqliteCursorsForeign(StateFileError):
    """The table holds cursors written for another endpoint or API key."""

    kind = "foreign"


class SqliteCursors:
    """Cursors as rows of ``table`` (created when missing) in the caller's SQLite
    database, written in the caller's own transaction: :meth:`commit` writes the rows and
    never commits, so the caller's ``connection.commit()`` makes the data it stored and
    the cursor durable together, or neither (a rollback, a crash).  With
    ``auto_ack=False``::

        with c2ws.stream([123], cursors=SqliteCursors(conn), auto_ack=False) as s:
            for msg in s:
                conn.execute("INSERT INTO fills VALUES (?, ?)", (msg.seq_id, msg.line))
                s.ack(msg)      # writes the cursor row, in the same transaction
                conn.commit()   # both, or neither

    Use it on the connection's own thread (sqlite3's ``check_same_thread``): the stream
    commits on the thread that iterates (:func:`c2ws.astream` commits on its executor
    thread, so open the connection with ``check_same_thread=False`` there and do not use
    it elsewhere meanwhile).  A connection in autocommit mode (``isolation_level=None``)
    commits each row at once, without that guarantee.  After a rollback, end the stream
    and start a new one: it resumes from the committed cursors (the running stream does
    not deliver again what it delivered before).  The table refuses a stream on another
    endpoint or API key (use another ``table``)."""

    def __init__(self, connection: sqlite3.Connection, table: str = "c2ws_cursors") -> None:
        if not _TABLE_NAME.fullmatch(table):
            raise ValueError(f"{table!r} is not a plain SQL table name (letters, digits, _)")
        self.connection = connection
        self.table = table
        self._identity: StreamIdentity | None = None
        self._written: dict[SubscriptionKey, int] = {}

    def open(self, identity: StreamIdentity) -> None:
        """Create the table when missing; refuse rows of another endpoint or key."""
        table = self.table
        try:
            self.connection.execute(
                f"CREATE TABLE IF NOT EXISTS {table} ("
                "strategy_id INTEGER NOT NULL, channel TEXT NOT NULL, seq_id INTEGER NOT NULL, "
                "endpoint TEXT NOT NULL, key_fingerprint TEXT NOT NULL, "
                "PRIMARY KEY (strategy_id, channel))"
            )
            foreign = self.connection.execute(
                f"SELECT endpoint, key_fingerprint FROM {table} "
                "WHERE endpoint != ? OR key_fingerprint != ? LIMIT 1",
                (identity.endpoint, identity.key_fingerprint),
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._failed("open", exc) from None
        if foreign is not None:
            other = ("endpoint " + repr(foreign[0]) if foreign[0] != identity.endpoint
                     else "API key")
            raise SqliteCursorsForeign(
                f"SQLite table {table!r} holds cursors of another {other}; pass another "
                "table= for this stream"
            )
        self._identity = identity

    def load(self) -> dict[SubscriptionKey, int]:
        """Every row of the table (as committed, or written in the open transaction)."""
        try:
            rows = self.connection.execute(
                f"SELECT strategy_id, channel, seq_id FROM {self.table}"
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._failed("read", exc) from None
        loaded = {SubscriptionKey(int(sid), str(channel)): seq for sid, channel, seq in rows
                  if channel in spec.CHANNELS}
        self._written = dict(loaded)
        return loaded

    def commit(self, cursors: Mapping[SubscriptionKey, int]) -> None:
        """Write the rows of the cursors that moved since the last call; no COMMIT."""
        identity = self._identity
        if identity is None:
            raise RuntimeError("SqliteCursors.commit() before open(): pass it to c2ws.stream()")
        moved = [(key.strategy_id, key.channel, seq, identity.endpoint, identity.key_fingerprint)
                 for key, seq in cursors.items() if self._written.get(key) != seq]
        if not moved:
            return
        try:
            self.connection.executemany(
                f"INSERT OR REPLACE INTO {self.table} "
                "(strategy_id, channel, seq_id, endpoint, key_fingerprint) VALUES (?, ?, ?, ?, ?)",
                moved,
            )
        except sqlite3.Error as exc:
            raise self._failed("write", exc) from None
        self._written.update((SubscriptionKey(row[0], row[1]), row[2]) for row in moved)

    def close(self) -> None:
        """Nothing to release: the connection and its transaction are the caller's."""

    def _failed(self, action: str, exc: sqlite3.Error) -> StateFileError:
        return StateFileError(f"cannot {action} the cursors in SQLite table {self.table!r}: "
                              f"{exc}")
