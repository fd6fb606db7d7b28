"""Sinks: where a stream's messages go, and what is durable there.

A stream hands out batches; a *sink* takes them somewhere (stdout or a file, a command
per message, NATS JetStream) and says which of them are durable there.  The stream's
cursor moves only over what its sink reports durable, so a restart resumes exactly after
the last durable message.  One small interface, :class:`Sink`::

    open(keys) -> {key: seq_id}   # connect; the cursors the sink itself holds ({}: none)
    write(batch)                  # take a batch (may return before it is durable)
    durable() -> [batch, ...]     # the batches durable since the last call, oldest first
    sync()                        # wait until everything written is durable
    close()                       # sync, then release
    unsettled() -> int            # optional: messages written, not yet reported durable

A sink whose batches turn durable after :meth:`~Sink.write` returned (NATS: when
JetStream's acks come, publishing pipelined across batches) has ``unsettled``; while it
says more than 0, the driver does not wait for the next message for ever but at most
``spec.SINK_SETTLE_POLL_SECONDS`` (:func:`settle_wait`, given to
:meth:`~c2ws.streaming.Stream.batches` as ``idle``), and acknowledges what
:meth:`~Sink.durable` then reports: the last batches of a burst are committed within
that time after their acks, even when no message follows.  A sink without it is durable
when ``write`` returns (or never before ``sync``), and the driver waits as it always did.

and two attributes (a third, ``one_message_at_a_time``, is optional: see
:class:`SinkCursors`): ``name`` (for messages: ``stdout``, ``nats://host:4222``,
``--exec notify.sh``) and ``guarantee`` (a :class:`Guarantee`, with ``guarantee_detail``
saying precisely what it means for this sink), what it keeps across a crash when the
cursors are kept too (``--state``, or a log that is its own cursor): :func:`promise`
turns it into the line ``c2ws subscribe --state`` prints at start, or its refusal.

:func:`deliver` drives a stream into a sink; :class:`SinkCursors` is the cursor store of
a sink that holds its own cursors (a log: the last message of each stream is where a
restart resumes), over the store of ``--state`` when there is one.

Sinks that come with c2ws: :mod:`c2ws.sinks.output` (stdout and the renderers: NDJSON,
CSV, TSV, JSON, ``--fields``, tables), :mod:`c2ws.sinks.exec` (``--exec CMD``: a command
per message) and :mod:`c2ws.sinks.nats` (``--to nats://``: JetStream, the ``nats``
extra).  Another one (Redis Streams, Kafka) is one module beside them that implements
:class:`Sink`; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from c2ws.cursors import CommitGroups, CursorStore, StreamIdentity
    from c2ws.events import SubscriptionKey
    from c2ws.streaming import Batch, Stream

__all__ = [
    "FailMode",
    "Guarantee",
    "Promise",
    "Sink",
    "SinkCursors",
    "deliver",
    "promise",
    "settle_wait",
]


class Guarantee(Enum):
    """What a sink keeps across a crash (``kill -9``, a power cut), its cursors kept."""

    EXACTLY_ONCE = "exactly once"
    AT_LEAST_ONCE = "at least once"
    NONE = "nothing"  # it cannot keep a cursor's promise at all: refused with --state


class FailMode(str, Enum):
    """``--exec-fail``: what a message whose handler failed every retry becomes (here,
    not in :mod:`c2ws.sinks.exec`, so that the CLI's help imports no subprocess
    machinery)."""

    STOP = "stop"  # the run ends (exit 12); the message is not acknowledged
    CONTINUE = "continue"  # dead-lettered (or only reported) and acknowledged


@runtime_checkable
class Sink(Protocol):
    """Where messages go (see the module docstring)."""

    name: str
    guarantee: Guarantee
    guarantee_detail: str

    def open(self, keys: Collection[SubscriptionKey]) -> Mapping[SubscriptionKey, int]:
        """Connect (or whatever the sink needs first); the cursors it holds itself, the
        last durable message of each stream of ``keys`` ({} when it keeps none)."""
        ...

    def write(self, batch: Batch) -> None:
        """Take ``batch``, in order after the batches before it; raises the error that
        ends the run (:class:`~c2ws.errors.SinkFailed`, an ``OSError`` for a byte
        stream)."""
        ...

    def durable(self) -> list[Batch]:
        """The batches written that are durable since the last call, oldest first (a
        batch is durable once every message of it is)."""
        ...

    def sync(self) -> None:
        """Return once everything written is durable (or raise why it cannot be)."""
        ...

    def close(self) -> None:
        """Release what the sink holds; what was not durable stays unacknowledged."""
        ...

    # Optional (not part of the runtime check): ``unsettled() -> int``, the messages
    # written and not yet reported by durable(), for a sink whose batches turn durable
    # on their own after write returned (see the module docstring and settle_wait).


@dataclass(frozen=True, slots=True)
class Promise:
    """What ``--state`` with a sink means: ``refused`` (it cannot keep a cursor's promise
    at all), or a ``warning`` to print at start (it keeps less than exactly once), or
    neither."""

    guarantee: Guarantee
    warning: str | None = None
    refused: str | None = None


def promise(sink: Sink) -> Promise:
    """What ``sink`` promises with cursors kept across runs, as ``c2ws subscribe --state``
    says it at start: exactly once says nothing, at least once is a warning naming what
    may repeat, nothing at all is a refusal."""
    guarantee, detail = sink.guarantee, sink.guarantee_detail
    if guarantee is Guarantee.EXACTLY_ONCE:
        return Promise(guarantee)
    if guarantee is Guarantee.AT_LEAST_ONCE:
        return Promise(guarantee, warning=f"--state with {sink.name}: at least once, not "
                                          f"exactly once: {detail}")
    return Promise(guarantee, refused=f"--state with {sink.name}: {detail}")


def check_promise(sink: Sink) -> str | None:
    """The warning to print for ``--state`` with ``sink``; raises :class:`ConfigError`
    when it refuses."""
    said = promise(sink)
    if said.refused is not None:
        from c2ws.errors import ConfigError

        raise ConfigError(said.refused, param="--state")
    return said.warning


def settle_wait(sink: Sink) -> Callable[[], float | None] | None:
    """For :meth:`~c2ws.streaming.Stream.batches`'s ``idle``: how long the driver of
    ``sink`` may wait for the next message before it looks at the sink's durable batches
    again (``spec.SINK_SETTLE_POLL_SECONDS`` while some are unsettled, else as long as
    it takes); None for a sink without ``unsettled`` (durable when written)."""
    unsettled: Callable[[], int] | None = getattr(sink, "unsettled", None)
    if unsettled is None:
        return None
    from c2ws import spec

    poll = spec.SINK_SETTLE_POLL_SECONDS

    def idle() -> float | None:
        return poll if unsettled() else None

    return idle


def deliver(stream: Stream, sink: Sink) -> None:
    """Drive ``stream`` (made with ``auto_ack=False``) into ``sink`` until the stream
    ends: each batch written, and acknowledged once the sink says it is durable (also
    while no message comes: see :func:`settle_wait`); at the end, what was written is
    made durable and acknowledged before the stream closes.  Opening and closing the
    sink are the caller's (``open`` gives the cursors a :class:`SinkCursors` resumes
    from)."""
    with stream:
        for batch in stream.batches(idle=settle_wait(sink)):
            if batch:
                sink.write(batch)
            for done in sink.durable():
                stream.ack(done)
        sink.sync()
        for done in sink.durable():
            stream.ack(done)


class SinkCursors:
    """The cursor store of a sink that holds its own cursors (a log whose last message of
    each stream says where to resume): at ``open`` the sink is opened and its cursors win
    over those of ``store`` (the ``--state`` file, when there is one), which keeps being
    committed to; without a store the sink is the only truth, nothing else is written."""

    def __init__(
        self, sink: Sink, store: CursorStore | None = None, *,
        from_sink: Mapping[SubscriptionKey, int] | None = None,
    ) -> None:
        """``from_sink``: what ``sink.open`` returned, when the caller opened it already
        (then ``open`` does not open it again)."""
        self.sink = sink
        self.store = store
        self._opened = from_sink is not None
        self.from_sink: dict[SubscriptionKey, int] = dict(from_sink or {})

    @property
    def commit_groups(self) -> CommitGroups | None:
        groups: CommitGroups | None = getattr(self.store, "commit_groups", None)
        return groups

    @property
    def commits_each_message(self) -> bool:
        """A sink that makes one message durable at a time (``--exec``) says so
        (``one_message_at_a_time``): the stream then hands it one message per batch, and
        each is acknowledged (and committed) as soon as it is durable, so a crash repeats
        only the message in hand."""
        return bool(getattr(self.sink, "one_message_at_a_time", False))

    def open(self, identity: StreamIdentity) -> None:
        opener = getattr(self.store, "open", None)
        if opener is not None:
            opener(identity)
        if not self._opened:
            # Here, not at the top: the CLI's options import this package, and a Tab
            # completion must not load the engine's modules (tests/test_completions.py).
            from c2ws.events import SubscriptionKey

            self._opened = True
            self.from_sink = {SubscriptionKey(*key): seq
                              for key, seq in self.sink.open(identity.keys).items()}

    def load(self) -> Mapping[tuple[int, str], int]:
        merged: dict[tuple[int, str], int] = dict(self.store.load()) if self.store else {}
        for key, seq in self.from_sink.items():
            merged[key] = seq
        return merged

    def commit(self, cursors: Mapping[SubscriptionKey, int]) -> None:
        if self.store is not None:
            self.store.commit(cursors)

    def close(self) -> None:
        closer = getattr(self.store, "close", None)
        if closer is not None:
            closer()
