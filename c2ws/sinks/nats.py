"""``--to nats://HOST:PORT``: every message published to NATS JetStream, exactly once.

* **Subjects**: ``PREFIX.<signal|positions>.<strategy_id>`` (``c2.signal.12345678``;
  ``--subject-prefix``, default ``c2``).  A ``gap`` or ``sequence.reset`` line goes to the
  subject of its stream, so a consumer of the stream sees it in order.
* **Deduplication**: header ``Nats-Msg-Id`` is a stable id of the message,
  ``<strategy_id>:<channel>:<seq_id>`` (a gap ``...:gap:<after>-<before>``, a reset
  ``...:reset:<after>-<first>``): whoever publishes it (a restart, a second c2ws on the
  same subjects), JetStream stores it once within the stream's duplicate window.
* **The cursor**: header ``C2-Cursor`` is the stream's cursor once the message is written
  (a seq_id jump not yet confirmed keeps the one before; a reset moves it down), so the
  last message of each subject says where to resume: without ``--state`` a restart reads
  it (:meth:`NatsSink.open`) and the log is the one source of truth.
* **Durable**: a batch is durable once JetStream acknowledged every publish of it.
  :meth:`NatsSink.write` hands the batch to the publisher and returns: publishing is
  pipelined across batches (at most ``spec.NATS_MAX_IN_FLIGHT`` messages written and not
  acknowledged, all of them in flight; a write that would pass that waits for acks, a
  batch larger than that waits until nothing is unacknowledged; the acks come to an inbox
  of the sink's own and are awaited in order).  :meth:`NatsSink.durable` reports the
  batches whose acks all came, oldest first; :meth:`NatsSink.unsettled` says that some
  are still due, so the driver looks again while the stream is quiet
  (:func:`c2ws.sinks.settle_wait`).  When an ack does not come within
  ``spec.NATS_ACK_TIMEOUT_SECONDS`` or a publish is refused, everything from the first
  unacknowledged message on (whatever batch it is in) is published again with the same
  ids; a lost connection (the client reconnects on its own) ends the round at once, and
  what the client held unsent for it is dropped, so the messages are published again in
  order (JetStream holds each subject in order, its last message the newest).  After
  ``spec.NATS_PUBLISH_ATTEMPTS`` rounds in a row without an ack publishing stops and the
  next ``write``, ``durable`` or ``sync`` raises :class:`~c2ws.errors.SinkFailed` (exit
  12), nothing unacknowledged counted; every wait of the consumer's thread has a
  deadline.  A lost connection and its return are said on stderr, one line each.
* **--create-stream NAME**: a stream of ``PREFIX.>``, file storage, limits retention
  (nothing removed by c2ws: trim it with ``nats stream edit``), duplicate window
  ``spec.NATS_DUPLICATE_WINDOW_SECONDS``; an existing stream of that name is used as it
  is.

nats-py (the ``nats`` extra) runs on an asyncio loop of the sink's own thread; the
consumer thread makes each message's subject, headers and protocol command
(:class:`Planner`, :func:`encode_publish`) and hands them over; the loop sends them a
run at a time and takes the acks that came in order at each wake-up (with nats_compat
read in bulk from the socket).  What the sink takes from nats-py beyond
its public API is in :mod:`c2ws.sinks.nats_compat` (and used only when the installed
nats-py has it: else the sink is slower, as correct).  The module imports nats-py only
when a sink is made (``pip install 'c2ws[nats]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

import orjson

from c2ws import events as ev
from c2ws import spec
from c2ws.errors import ConfigError, SinkFailed
from c2ws.events import SubscriptionKey
from c2ws.render.safe import terminal_safe
from c2ws.sinks import Guarantee, nats_compat

if TYPE_CHECKING:
    from c2ws.streaming import Batch

__all__ = ["NatsOptions", "NatsSink", "encode_publish", "message_id", "subject_of"]

_T = TypeVar("_T")
_STREAM_MESSAGE: Final = ev.StreamMessage
_SHORT: Final = {spec.CHANNEL_SIGNAL: "signal", spec.CHANNEL_POSITIONS: "positions"}
CURSOR_HEADER: Final = "C2-Cursor"
MSG_ID_HEADER: Final = "Nats-Msg-Id"
# A wait of the consumer's thread that sees no ack for this long fails: longer than the
# publisher's own attempts can take (it fails first when the loop runs at all).
_STALL_SECONDS: Final = (spec.NATS_ACK_TIMEOUT_SECONDS * (spec.NATS_PUBLISH_ATTEMPTS + 1)
                         + spec.NATS_RETRY_PAUSE_MAX_SECONDS * spec.NATS_PUBLISH_ATTEMPTS)
# The acknowledged head of the plan is cut off once it is this long.
_COMPACT_AFTER: Final = 8192


@dataclass(frozen=True)
class NatsOptions:
    """Where and how to publish (options named as the NATS CLI names them)."""

    url: str
    subject_prefix: str = spec.NATS_SUBJECT_PREFIX
    create_stream: str | None = None
    creds: Path | None = None
    nkey: Path | None = None
    user: str | None = None
    password: str | None = None
    tlscert: Path | None = None
    tlskey: Path | None = None
    tlsca: Path | None = None

    def check(self) -> None:
        """:class:`ConfigError` for a URL or names NATS cannot use."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ConfigError(f"{self.url!r} is not a NATS URL: give nats://HOST:PORT (or "
                              "tls://HOST:PORT)", param="--to")
        tokens = self.subject_prefix.split(".")
        if not all(token and not set(token) & set(" \t*>") for token in tokens):
            raise ConfigError(f"{self.subject_prefix!r} is not a subject prefix: tokens "
                              "separated by dots, no spaces, * or >", param="--subject-prefix")
        name = self.create_stream
        if name is not None and (not name or set(name) & set(" \t.*>/\\")):
            raise ConfigError(f"{name!r} is not a stream name (no spaces, ., *, >, / or \\)",
                              param="--create-stream")
        if (self.tlskey is None) != (self.tlscert is None):
            raise ConfigError("--tlscert and --tlskey go together", param="--tlscert")
        for option, path in (("--creds", self.creds), ("--nkey", self.nkey),
                             ("--tlscert", self.tlscert), ("--tlskey", self.tlskey),
                             ("--tlsca", self.tlsca)):
            if path is not None:
                _check_readable(option, path)


def _check_readable(option: str, path: Path) -> None:
    """A file nats-py or ssl will read must be a regular file that can be opened: a FIFO
    there would hang them, a directory give a traceback-shaped error."""
    from c2ws.localfiles import UnusableFile, open_for_reading

    name = terminal_safe(str(path), 300)
    try:
        os.close(open_for_reading(path, max_bytes=spec.NATS_CREDENTIAL_MAX_BYTES))
    except UnusableFile as exc:
        raise ConfigError(f"{option} {name} {exc.problem}", param=option) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {option} {name}: {exc.strerror or exc}",
                          param=option) from None


# One publish of the plan: subject, line, headers, and the HPUB command around the reply
# subject (see encode_publish; None: nats-py's publish builds it).
_Publish = tuple[str, bytes, dict[str, str], bytes | None, bytes | None]
# What encode_publish takes as it is: a subject or header value of printable ASCII
# without spaces, a header key of the characters nats-py allows in one.
_PLAIN: Final = re.compile(r"[!-~]+")
_HEADER_KEY: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def encode_publish(subject: str, headers: Mapping[str, str], payload: bytes,
                   ) -> tuple[bytes, bytes] | None:
    """The NATS protocol's HPUB command of a publish with headers, in two parts around
    its reply subject: ``head + reply + tail`` are the bytes nats-py's ``publish`` sends
    (tests/test_nats_encode.py compares them); None when the subject, a key or a value
    is not plain (printable ASCII, no space), which nats-py's publish then handles (and
    refuses what it must).  Made on the consumer's thread, once per message: nats-py
    would validate and encode the headers again on the loop for every publish."""
    head = _HEADS.get(subject) or _learn(_HEADS, subject, _PLAIN, b"HPUB %s ")
    if head is None:
        return None
    lines = [b"NATS/1.0\r\n"]
    for key, value in headers.items():
        start = _KEYS.get(key) or _learn(_KEYS, key, _HEADER_KEY, b"%s: ")
        if start is None:
            return None
        if not _PLAIN.fullmatch(value):
            return None
        lines += (start, value.encode(), b"\r\n")
    lines.append(b"\r\n")
    header = b"".join(lines)
    size = len(header)
    return head, b"".join((b" %d %d\r\n" % (size, size + len(payload)), header, payload,
                           b"\r\n"))


# encode_publish's subjects and header keys found plain, as their bytes (a few: one
# subject per stream), up to _KNOWN_MAX of each.
_HEADS: dict[str, bytes] = {}
_KEYS: dict[str, bytes] = {}
_KNOWN_MAX: Final = 65536


def _learn(known: dict[str, bytes], text: str, plain: re.Pattern[str],
           form: bytes) -> bytes | None:
    """``form`` with ``text`` in it, kept in ``known`` (up to _KNOWN_MAX), when ``plain``
    matches all of ``text``; None when it does not (encode_publish's cache misses)."""
    if not plain.fullmatch(text):
        return None
    made = form % text.encode()
    if len(known) < _KNOWN_MAX:
        known[text] = made
    return made


_Stream = tuple[str, bytes, str, bytes] | tuple[()]


class Planner:
    """What :class:`NatsSink` publishes for each message, made on the consumer's thread
    as the batches come (in order): subject, line, headers (``Nats-Msg-Id``, and
    ``C2-Cursor``: the stream's cursor once the message is written) and the HPUB command
    around the reply subject (:func:`encode_publish`).  Sans-I/O."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.cursors: dict[SubscriptionKey, int] = {}  # of each stream, as planned
        # A stream's subject, its HPUB head and the start of its messages' ids (as text
        # and bytes), each plain; (): not plain (the general path's).
        self._streams: dict[SubscriptionKey, _Stream] = {}

    def plan(self, events: Sequence[Any], lines: list[bytes]) -> list[_Publish]:
        """Each message's publish, in order (see :meth:`publish`: the same, made at once
        for the usual message, a stream's with an int seq_id and cursor)."""
        cursors, streams = self.cursors, self._streams
        plan: list[_Publish] = []
        append = plan.append
        for event, line in zip(events, lines, strict=True):
            if type(event) is _STREAM_MESSAGE and (key := event.key) is not None:
                seq = event.message.seq_id
                known = streams.get(key)
                if known is None:
                    known = self._learn(key)
                if (known and type(seq) is int and type(line) is bytes
                        and type(key[0]) is int and type(key[1]) is str):
                    cursor = event.cursor
                    if cursor is not None:
                        cursors[key] = cursor
                    else:
                        cursor = cursors.get(key)
                    if type(cursor) is int:
                        subject, head, id_text, id_bytes = known
                        header = (b"NATS/1.0\r\nNats-Msg-Id: %s%d\r\nC2-Cursor: %d\r\n\r\n"
                                  % (id_bytes, seq, cursor))
                        size = len(header)
                        append((subject, line,
                                {MSG_ID_HEADER: f"{id_text}{seq}", CURSOR_HEADER: str(cursor)},
                                head, b"".join((b" %d %d\r\n" % (size, size + len(line)),
                                                header, line, b"\r\n"))))
                        continue
            append(self.publish(event, line))
        return plan

    def _learn(self, key: SubscriptionKey) -> _Stream:
        """A stream's subject, HPUB head and id start for :meth:`plan` (() when one is
        not plain), kept (up to _KNOWN_MAX streams)."""
        known: _Stream = ()
        if type(key[0]) is int and type(key[1]) is str:
            subject = subject_of(self.prefix, key.channel, key.strategy_id)
            head = _HEADS.get(subject) or _learn(_HEADS, subject, _PLAIN, b"HPUB %s ")
            id_text = f"{key.strategy_id}:{key.channel}:"
            if head is not None and _PLAIN.fullmatch(id_text):
                known = (subject, head, id_text, id_text.encode())
        if len(self._streams) < _KNOWN_MAX:
            self._streams[key] = known
        return known

    def publish(self, event: Any, line: bytes) -> _Publish:
        """A message's publish, the general path (any event, any line)."""
        prefix, cursors = self.prefix, self.cursors
        kind = type(event)
        key: SubscriptionKey | None = getattr(event, "key", None)
        if kind is _STREAM_MESSAGE:
            cursor = event.cursor
            if key is not None and cursor is not None:
                cursors[key] = cursor
        elif kind is ev.SequenceReset:
            cursors[event.key] = event.cursor
        if key is not None:
            subject = subject_of(prefix, key.channel, key.strategy_id)
        else:  # not a stream's (a REST line: backfill, snapshot)
            strategy = getattr(event, "strategy_id", None) or 0
            msg_type = getattr(event, "msg_type", "other")
            subject = f"{prefix}.{msg_type}.{strategy}"
        headers = {MSG_ID_HEADER: message_id(event, line)}
        if key is not None and key in cursors:
            headers[CURSOR_HEADER] = str(cursors[key])
        command = encode_publish(subject, headers, line)
        if command is None:
            return (subject, line, headers, None, None)
        return (subject, line, headers, command[0], command[1])


def subject_of(prefix: str, channel: str, strategy_id: int) -> str:
    """``c2.signal.12345678``."""
    return f"{prefix}.{_SHORT.get(channel, 'other')}.{strategy_id}"


def message_id(event: ev.Event, line: bytes) -> str:
    """The stable ``Nats-Msg-Id`` of a message (see the module docstring)."""
    kind = type(event)
    if kind is _STREAM_MESSAGE:
        key, seq = event.key, event.message.seq_id  # type: ignore[union-attr]
        if key is not None and seq is not None:
            return f"{key.strategy_id}:{key.channel}:{seq}"
    elif kind is ev.GapReported:
        gap: ev.GapReported = event  # type: ignore[assignment]
        return f"{gap.key.strategy_id}:{gap.key.channel}:gap:{gap.last_seq}-{gap.next_seq}"
    elif kind is ev.SequenceReset:
        reset: ev.SequenceReset = event  # type: ignore[assignment]
        return (f"{reset.key.strategy_id}:{reset.key.channel}:reset:{reset.last_seq}-"
                f"{reset.next_seq}")
    return "line:" + hashlib.sha256(line).hexdigest()[:32]


class NatsSink:
    """``--to nats://``: see the module docstring.  Not thread-safe: one consumer
    thread (its own asyncio loop runs on a thread of the sink's)."""

    guarantee = Guarantee.EXACTLY_ONCE
    guarantee_detail = ("JetStream stores each message once (Nats-Msg-Id, within the "
                        "stream's duplicate window) and the cursor moves on its acks only")

    def __init__(self, options: NatsOptions, *,
                 say: Callable[[str, str], None] | None = None) -> None:
        """``say(text, color)`` reports the connection's losses and recoveries on stderr
        (the CLI's diagnostics); None: silent."""
        options.check()
        try:
            import nats  # noqa: F401  (the extra: said at once when it is missing)
        except ImportError:
            raise ConfigError("--to nats:// needs the 'nats' extra: pip install "
                              "'c2ws[nats]'", param="--to") from None
        self.options = options
        self.name = options.url
        self.say = say
        self.stream_name: str | None = None
        self.published = 0  # messages acknowledged by JetStream (duplicates included)
        self.duplicates = 0  # of them, those JetStream already held
        # The consumer's thread: what to publish, the cursor of each stream followed.
        self._planner = Planner(options.subject_prefix)
        # Shared by both threads, under _lock: the batches written and not yet durable
        # (each with the count of messages it ends at), those durable and not yet
        # reported, how many messages were written and acknowledged, and the failure
        # that ended publishing.  _settled is signalled when a batch turns durable.
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._unsettled: deque[tuple[Batch, int]] = deque()
        self._done: list[Batch] = []
        self._written_count = 0
        self._acked_count = 0
        self._failure: SinkFailed | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="c2ws-nats",
                                        daemon=True)
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None
        self._inbox = ""
        # The loop's: every message from the first unacknowledged one on (_plan[_head:]),
        # the publisher task, and its wake-up (an ack, or a plan that came).
        self._plan: list[_Publish] = []
        self._head = 0
        self._ends: deque[int] = deque()  # where each batch in flight ends (as _written_count)
        self._acked_total = 0  # messages acknowledged, counted from the first written
        self._publisher: asyncio.Task[None] | None = None
        self._fast = False  # nats_compat.supported(): see nats_compat
        self._epoch = 0  # connections lost: a round ends with the one it began on
        self._next_token = 0
        self._round_base = 0
        self._acks: dict[int, tuple[Mapping[str, str] | None, bytes]] = {}
        self._arrived = asyncio.Event()
        self._disconnected = False
        self._last_error: str | None = None
        self._loss: str | None = None  # why the connection was lost, said on disconnect

    # --- the seam ---

    def open(self, keys: Collection[SubscriptionKey]) -> Mapping[SubscriptionKey, int]:
        """Connect, find (or create) the stream, and read the last message of each
        stream's subject: its ``C2-Cursor`` is where to resume."""
        found = self._run(self._open(list(keys)))
        self._planner.cursors.update(found)
        return found

    def write(self, batch: Batch) -> None:
        """Hand the batch's messages to the publisher and return: they are published
        behind those of the batches before it, pipelined across batches.  Blocks only
        while more than ``spec.NATS_MAX_IN_FLIGHT`` messages would be unacknowledged
        (a larger batch waits until nothing is); raises the failure that ended
        publishing (:class:`~c2ws.errors.SinkFailed`)."""
        events = batch.events
        size = len(events)
        with self._lock:
            self._raise_failure()
            if size and self._written_count - self._acked_count + size > (
                    spec.NATS_MAX_IN_FLIGHT):
                self._wait(lambda: self._written_count - self._acked_count + size
                           <= spec.NATS_MAX_IN_FLIGHT
                           or self._written_count == self._acked_count)
            if not size and not self._unsettled:
                self._done.append(batch)  # durable, as the batches before it
                return
            self._written_count = end = self._written_count + size
            self._unsettled.append((batch, end))
        if size:
            plan = self._planner.plan(events, batch.lines())
            self._loop.call_soon_threadsafe(self._take_plan, plan, end)

    def durable(self) -> list[Batch]:
        """The batches all of whose messages JetStream acknowledged since the last call,
        oldest first; raises the failure that ended publishing once none is left."""
        with self._lock:
            done, self._done = self._done, []
            if not done:
                self._raise_failure()
            return done

    def sync(self) -> None:
        """Wait until JetStream acknowledged every message written (or raise why not)."""
        with self._lock:
            self._wait(lambda: self._acked_count >= self._written_count)
            self._raise_failure()

    def unsettled(self) -> int:
        """The messages written and not yet acknowledged, plus the batches acknowledged
        and not yet reported by :meth:`durable` (0: nothing is due): the driver looks
        again for durable batches while it is not 0 (see :mod:`c2ws.sinks`).  Any
        thread may ask."""
        with self._lock:
            return self._written_count - self._acked_count + len(self._done)

    def close(self) -> None:
        """Stop publishing, drain and close the connection, stop the loop; idempotent.
        What was not acknowledged stays unacknowledged."""
        if not self._loop.is_closed():
            if self._nc is not None:
                # A close that cannot drain in time leaves nothing acknowledged behind.
                with contextlib.suppress(Exception):
                    self._run(self._close(), timeout=spec.NATS_CONNECT_TIMEOUT_SECONDS)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self._loop.close()
        with self._lock:
            if self._failure is None and self._acked_count < self._written_count:
                self._failure = SinkFailed(f"NATS {self.options.url}: the sink is closed")
            self._settled.notify_all()

    # --- on the consumer's thread, under _lock ---

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _wait(self, ready: Callable[[], bool]) -> None:
        """Wait until ``ready()`` or a failure, under ``_lock``.  Every wait has a
        deadline: the publisher fails within its attempts when no ack comes, and a
        wait that sees no ack for longer than they can take (a stuck loop) fails too."""
        stall = _STALL_SECONDS
        acked = self._acked_total  # the loop's count, read as progress
        deadline = time.monotonic() + stall
        while not ready() and self._failure is None:
            if self._acked_total != acked:
                acked, deadline = self._acked_total, time.monotonic() + stall
            left = deadline - time.monotonic()
            if left <= 0:
                self._failure = SinkFailed(
                    f"NATS JetStream at {self.options.url} acknowledged nothing within "
                    f"{stall:g} s")
                break
            self._settled.wait(left)

    # --- on the loop ---

    def _run(self, coroutine: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    async def _open(self, keys: list[SubscriptionKey]) -> dict[SubscriptionKey, int]:
        from nats.aio.client import Client
        from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        options = self.options
        # Once connected, a lost connection is tried again without end (NATS restarts;
        # the publishes' own attempts bound a stall); the first connection gets
        # NATS_CONNECT_TIMEOUT_SECONDS in all (nats-py's "without end" covers it too:
        # an unreachable or refusing server would hang the start).
        # With nats_compat the acks come straight from the parser and the commands made
        # beforehand are sent as they are; else nats-py's public API.
        self._fast = fast = nats_compat.supported()
        client: Any = nats_compat.client_class()() if fast else Client()
        # nats-py annotates the waits as int; it sleeps on them, fractions included.
        waits: dict[str, Any] = {"connect_timeout": spec.NATS_CONNECT_TIMEOUT_SECONDS,
                                 "reconnect_time_wait": spec.NATS_RECONNECT_WAIT_SECONDS}
        try:
            await asyncio.wait_for(client.connect(
                servers=[options.url], allow_reconnect=True, max_reconnect_attempts=-1,
                name="c2ws", error_cb=self._on_error, disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected, **waits, **self._credentials()),
                spec.NATS_CONNECT_TIMEOUT_SECONDS)
        except Exception as exc:  # nats-py raises a few kinds: each is "cannot connect"
            with contextlib.suppress(Exception):
                await client.close()
            reason = self._last_error or _reason(exc)
            raise SinkFailed(f"cannot connect to NATS at {options.url} within "
                             f"{spec.NATS_CONNECT_TIMEOUT_SECONDS:g} s: {reason}") from None
        self._nc = client
        self._js = self._nc.jetstream()
        # Acks come to an inbox of the sink's own, one subject per publish: a dict
        # lookup per ack (nats-py's publish_async spends a future, a semaphore and a
        # random token on each, which halves the rate).
        self._inbox = self._nc.new_inbox() + "."
        await self._nc.subscribe(self._inbox + "*", cb=self._on_ack)
        if fast:
            client.take_acks_first(self._inbox, self._token_of, self._take_ack,
                                   self._take_acks)
        prefix = options.subject_prefix
        try:
            if options.create_stream is not None:
                try:
                    await self._js.stream_info(options.create_stream)
                except NotFoundError:
                    await self._js.add_stream(StreamConfig(
                        name=options.create_stream, subjects=[f"{prefix}.>"],
                        storage=StorageType.FILE, retention=RetentionPolicy.LIMITS,
                        discard=DiscardPolicy.OLD,
                        duplicate_window=spec.NATS_DUPLICATE_WINDOW_SECONDS))
            probe = subject_of(prefix, keys[0].channel, keys[0].strategy_id) if keys else (
                f"{prefix}.signal.0")
            try:
                self.stream_name = await self._js.find_stream_name_by_subject(probe)
            except NotFoundError:
                raise SinkFailed(
                    f"no JetStream stream on {options.url} holds subject {probe}: create one "
                    f"with --create-stream NAME (or nats stream add, subjects {prefix}.>)"
                ) from None
            found: dict[SubscriptionKey, int] = {}
            for key in keys:
                subject = subject_of(prefix, key.channel, key.strategy_id)
                try:
                    last = await self._js.get_last_msg(self.stream_name, subject)
                except NotFoundError:
                    continue
                cursor = _cursor_of(last.headers)
                if cursor is not None:
                    found[key] = cursor
            return found
        except SinkFailed:
            raise
        except Exception as exc:
            raise SinkFailed(f"NATS JetStream at {options.url}: {_reason(exc)}") from None

    def _credentials(self) -> dict[str, Any]:
        options = self.options
        given: dict[str, Any] = {}
        if options.creds is not None:
            given["user_credentials"] = str(options.creds)
        if options.nkey is not None:
            given["nkeys_seed"] = str(options.nkey)
        if options.user is not None and options.password is not None:
            given["user"], given["password"] = options.user, options.password
        elif options.user is not None:  # as the NATS CLI: a user without password is a token
            given["token"] = options.user
        if options.tlsca or options.tlscert or urlsplit(options.url).scheme == "tls":
            context = ssl.create_default_context(
                cafile=str(options.tlsca) if options.tlsca else None)
            if options.tlscert is not None and options.tlskey is not None:
                context.load_cert_chain(str(options.tlscert), str(options.tlskey))
            given["tls"] = context
        return given

    # nats-py's own reports would be tracebacks on stderr: each is one line here, the
    # loss once and the recovery once, not every failed reconnect attempt.
    async def _on_error(self, exc: Exception) -> None:
        self._last_error = terminal_safe(_reason(exc), 300)
        if self._nc is not None and not self._disconnected:  # not the first connect's
            if _connection_lost(exc):
                # nats-py says "disconnected" right after: one line, with this reason.
                self._loss = _reason(exc)
                return
            self._report(f"NATS {self.options.url}: {_reason(exc)}", "yellow")

    async def _on_disconnected(self) -> None:
        self._epoch += 1  # the round in progress is over
        self._drop_unsent()
        self._arrived.set()
        if not self._disconnected and self._nc is not None and not self._nc.is_closed:
            self._disconnected = True
            loss, self._loss = self._loss, None
            why = f" ({loss})" if loss else ""
            self._report(f"NATS {self.options.url}: connection lost{why}; reconnecting "
                         "(what was not acknowledged is published again)", "yellow")

    async def _on_reconnected(self) -> None:
        if self._disconnected:
            self._disconnected = False
            self._report(f"NATS {self.options.url}: reconnected", "")

    def _report(self, text: str, color: str) -> None:
        if self.say is not None:
            self.say(terminal_safe(text, 400), color)

    def _take_plan(self, plan: list[_Publish], end: int) -> None:
        """A batch's messages, ending at message ``end`` (counted from the first written):
        published after those before them."""
        if self._failure is not None:
            return
        self._plan.extend(plan)
        self._ends.append(end)
        self._arrived.set()
        if self._publisher is None:
            self._publisher = self._loop.create_task(self._publish_all())

    async def _publish_all(self) -> None:
        """Publish the plan as it grows, at most ``spec.NATS_MAX_IN_FLIGHT``
        unacknowledged, the acks awaited in order.  A round that fails (an ack not in
        time, a refusal, a publish the client cannot buffer) publishes everything from the
        first unacknowledged message again (whatever batch it is in), the same ids;
        ``spec.NATS_PUBLISH_ATTEMPTS`` rounds in a row without one ack end publishing:
        the failure is raised by the next write, durable or sync."""
        fruitless = 0
        while True:
            before = self._acked_total
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a round that failed, or else a bug: said at once
                if not isinstance(exc, _RoundFailed):
                    self._fail(SinkFailed(f"NATS JetStream at {self.options.url}: "
                                          f"publishing stopped: {_reason(exc)}"))
                    return
                failed = exc
                # A round that got an ack, or owed none (a connection lost while all
                # was acknowledged), is no fruitless attempt.
                fruitless = 0 if (self._acked_total > before
                                  or self._head >= len(self._plan)) else fruitless + 1
                if fruitless >= spec.NATS_PUBLISH_ATTEMPTS:
                    subject = self._plan[self._head][0]
                    self._fail(SinkFailed(
                        f"NATS JetStream did not acknowledge a publish to {subject} after "
                        f"{fruitless} attempt(s): {failed.reason}"))
                    return
                if not failed.timed_out:  # a refusal comes at once: do not spin on it
                    if self._head < len(self._plan):
                        # Loud at once: until the refused message is stored, the stream's
                        # last message may be past it, and a restart after a kill -9
                        # would resume from there (README, Fan-out).
                        subject, _, headers, _, _ = self._plan[self._head]
                        self._report(
                            f"NATS JetStream did not store "
                            f"{headers.get(MSG_ID_HEADER, '?')} on {subject} "
                            f"({failed.reason}); publishing it and what follows again",
                            "yellow")
                    await asyncio.sleep(min(spec.NATS_RETRY_PAUSE_MAX_SECONDS,
                                            spec.NATS_RETRY_PAUSE_SECONDS * 2 ** fruitless))

    async def _round(self) -> None:
        """One pass over the plan from its first unacknowledged message, following it as
        it grows; returns never, or raises :class:`_RoundFailed`.  Each wake-up takes
        every ack that came in order, then publishes as many more as they make room for
        (with nats_compat in one piece, see :meth:`_send_run`)."""
        nc, inbox, results, plan = self._nc, self._inbox, self._acks, self._plan
        loop = asyncio.get_running_loop()
        arrived, ends = self._arrived, self._ends
        # Replies to an earlier round (published again in this one) count no more.
        self._round_base = token = self._next_token
        results.clear()
        epoch = self._epoch
        to_inbox = inbox.encode()
        fast = self._fast
        if not nc.is_connected:
            self._drop_unsent()
        # The publishes in flight have the tokens expected..token-1, in plan order, and
        # are plan[self._head:published].
        expected = token
        published = self._head
        # Without nats_compat one publish at a time: nothing later is queued behind one
        # that a lost connection may take (see nats_compat).
        limit = spec.NATS_MAX_IN_FLIGHT if fast else 1
        deadline: float | None = None  # for the ack of the first publish in flight
        while True:
            head = self._head
            if published < len(plan) and published - head < limit and self._epoch == epoch:
                try:
                    while published < len(plan) and published - head < limit:
                        sent = await self._send_run(
                            plan, published, min(len(plan), head + limit), to_inbox,
                            token) if fast else 0
                        if not sent:
                            # not plain, no nats_compat, not connected or too large:
                            # nats-py's publish
                            subject, line, headers, _, _ = plan[published]
                            await nc.publish(subject, line, reply=f"{inbox}{token}",
                                             headers=headers)
                            sent = 1
                        token += sent
                        published += sent
                        if self._epoch != epoch:
                            break
                except Exception as exc:  # closed, or the reconnect buffer is full
                    self._next_token = token + 1
                    raise _RoundFailed(_reason(exc), timed_out=False) from None
                self._next_token = token
            if self._epoch != epoch:
                # The connection was lost: what it had not stored is published again, in
                # order, from the first unacknowledged message (see _drop_unsent).
                raise _RoundFailed("the connection was lost", timed_out=True)
            if published == head:  # everything acknowledged: wait for more (none is owed)
                arrived.clear()
                await arrived.wait()
                continue
            # Every ack that came in order: a plain PubAck at a glance, else _refusal.
            taken = duplicates = 0
            refused: str | None = None
            reply = results.pop(expected, None)
            while reply is not None:
                data = reply[1]
                if reply[0] is not None or not data.startswith(b'{"stream"'):
                    refused = _refusal(reply)
                    if refused is not None:
                        break
                if _DUPLICATE in data:
                    duplicates += 1
                taken += 1
                expected += 1
                reply = results.pop(expected, None)
            if taken:
                deadline = None
                self.published += taken
                self.duplicates += duplicates
                self._head = head = head + taken
                self._acked_total = acked = self._acked_total + taken
                if ends and acked >= ends[0]:
                    while ends and ends[0] <= acked:
                        ends.popleft()
                    self._settle(acked)
                if head >= _COMPACT_AFTER:
                    del plan[:head]
                    published -= head
                    self._head = 0
            if refused is not None:
                raise _RoundFailed(refused, timed_out=False)
            if taken:
                continue
            if deadline is None:
                deadline = loop.time() + spec.NATS_ACK_TIMEOUT_SECONDS
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _RoundFailed(f"no ack within {spec.NATS_ACK_TIMEOUT_SECONDS:g} s",
                                   timed_out=True)
            arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(arrived.wait(), remaining)

    async def _send_run(self, plan: list[_Publish], start: int, stop: int, to_inbox: bytes,
                        token: int) -> int:
        """Send ``plan[start:stop]`` up to its first publish that is not plain (or too
        large), the reply subjects ``to_inbox`` + ``token`` on, in one piece
        (nats_compat's ``send_encoded``); how many were sent (0: publish the next with
        nats-py's ``publish``)."""
        nc = self._nc
        most = nc.largest_payload()
        parts: list[bytes] = []
        extend = parts.extend
        payload_bytes = 0
        first = token
        for _, line, _, before, after in itertools.islice(plan, start, stop):
            size = len(line)
            if before is None or after is None or size > most:
                break
            extend((before, to_inbox, b"%d" % token, after))
            payload_bytes += size
            token += 1
        count = token - first
        if not count or not await nc.send_encoded(b"".join(parts), count, payload_bytes):
            return 0
        return count

    def _drop_unsent(self) -> None:
        """Forget the publishes nats-py holds unsent for a lost connection.  It sends them
        first once it reconnects; but a publish before them may have been lost with the
        connection, and the round that publishes everything again from there must not
        find later messages stored before it (JetStream would hold them out of order,
        and the last message of a subject, where a restart resumes, would not be the
        newest).  Only the sink's own publishes (to its inbox) are taken out
        (:meth:`c2ws.sinks.nats_compat.AckFirstClient.drop_unsent`); without nats_compat
        a single publish is in flight, and nothing needs dropping."""
        if self._fast and self._nc is not None:
            self._nc.drop_unsent(self._inbox)

    def _settle(self, acked: int) -> None:
        """The batches whose messages are all acknowledged (``acked`` of them, counted
        from the first written) turn durable."""
        with self._lock:
            unsettled, done = self._unsettled, self._done
            while unsettled and unsettled[0][1] <= acked:
                done.append(unsettled.popleft()[0])
            self._acked_count = acked
            self._settled.notify_all()

    def _fail(self, failure: SinkFailed) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = failure
            self._settled.notify_all()

    async def _on_ack(self, msg: Any) -> None:
        """A reply to one of our publishes (on the sink's own inbox), as nats-py's
        subscription hands it over (without nats_compat: else see _take_ack)."""
        token = self._token_of(msg.subject[len(self._inbox):])
        if token is not None:
            self._take_ack(token, msg.headers, msg.data)

    def _token_of(self, suffix: str | bytes) -> int | None:
        """The publish a reply answers (its reply subject's suffix), None when it
        answers none of this round's (an earlier round's: published again since)."""
        try:
            token = int(suffix)
        except ValueError:
            return None
        return token if token >= self._round_base else None

    def _take_ack(self, token: int, headers: Mapping[str, str] | None, data: bytes) -> None:
        self._acks[token] = (headers, data)
        self._arrived.set()

    def _take_acks(self, acks: list[tuple[int, bytes]]) -> None:
        """A run of plain replies (nats_compat's bulk read): ``(token, data)`` each, the
        tokens of earlier rounds left out as :meth:`_token_of` leaves them."""
        base, results = self._round_base, self._acks
        for token, data in acks:
            if token >= base:
                results[token] = (None, data)
        self._arrived.set()

    async def _close(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.cancel()
            with contextlib.suppress(BaseException):
                await publisher
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            await nc.drain()


class _RoundFailed(Exception):
    """A publishing round that stopped (the messages before ``_head`` are acknowledged)."""

    def __init__(self, reason: str, *, timed_out: bool) -> None:
        super().__init__(reason)
        self.reason, self.timed_out = reason, timed_out


_DUPLICATE: Final = b'"duplicate":true'


def _refusal(reply: tuple[Mapping[str, str] | None, bytes]) -> str | None:
    """Why JetStream did not store a publish (None: it did, or already held it).  Its
    ack is ``{"stream":..,"seq":..[,"duplicate":true]}``; a refusal
    ``{"error":{"code":..,"description":..}}``; no stream on the subject (JetStream
    restarting, the stream deleted) a 503 status without data."""
    headers, data = reply
    if headers and headers.get("Status") == "503":
        return "no JetStream stream answered (503 no responders)"
    if data.startswith(b'{"stream"'):
        return None
    try:
        answer = orjson.loads(data)
    except orjson.JSONDecodeError:
        return f"not a JetStream ack: {terminal_safe(repr(data[:200]), 240)}"
    if isinstance(answer, dict) and "stream" in answer and "error" not in answer:
        return None
    error = answer.get("error") if isinstance(answer, dict) else None
    described = error.get("description") if isinstance(error, dict) else None
    return terminal_safe(str(described or answer), 240)


def _cursor_of(headers: Mapping[str, str] | None) -> int | None:
    text = (headers or {}).get(CURSOR_HEADER)
    if text is None or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _connection_lost(exc: BaseException) -> bool:
    """An error nats-py reports as the connection ends (before it says disconnected)."""
    from nats import errors

    return isinstance(exc, (errors.UnexpectedEOF, errors.StaleConnectionError,
                            ConnectionError))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
