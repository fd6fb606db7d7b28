"""What c2ws tells the person on stderr: rejections, gaps, reconnects, warnings, ``-v``
traffic and a status line.

stdout carries data only; everything here goes to stderr.  Every line passes through
:meth:`Diagnostics.say`, which removes the API key wherever a server echoed it and
prints without markup interpretation; server-supplied text is made terminal-safe first.
Every warning a hostile or broken server can repeat at will goes through
:meth:`Diagnostics.warn`, which rate-limits it per kind and later says how many were held
back; what is remembered about them is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

import orjson
from rich.console import Console
from rich.live import Live
from rich.text import Text

from c2ws import events as ev
from c2ws import spec
from c2ws.protocol import ErrorDetail
from c2ws.render.safe import redacted, terminal_safe

if TYPE_CHECKING:
    from c2ws.monitor.health import Reconnected

STATUS_REFRESH_INTERVAL: Final = 0.25
# A warning kind prints its first few lines, then at most one line per interval that
# also says how many were held back (see c2ws/spec.py).
WARNING_BURST: Final = spec.WARNING_BURST
WARNING_INTERVAL_SECONDS: Final = spec.WARNING_INTERVAL_SECONDS
# Distinct unknown msg_types remembered (for "first of its kind" warnings).
MAX_REMEMBERED_TYPES: Final = 32
# --log-format: each line as the person reads it, or one JSON object per event.
LOG_FORMATS: Final = ("human", "json")
# The levels of --log-format json; -q keeps only the first.
ERROR, WARNING, INFO = "error", "warning", "info"
# The status line's items, least needed last: left out from the end when it is too wide.
_STATUS_SEPARATOR: Final = " | "


def level_of(style: str) -> str:
    """A line's level, from the color it is shown in: red says something failed or was
    lost, yellow that something needs a look, the rest informs."""
    if "red" in style:
        return ERROR
    if "yellow" in style:
        return WARNING
    return INFO


def fit_status(items: Sequence[str], width: int = spec.STATUS_LINE_COLUMNS) -> str:
    """``items`` joined, in at most ``width`` columns: the last items are left out while
    it is too wide, then the first is cut (a status line that wraps is drawn twice)."""
    kept = list(items)
    while len(kept) > 1 and len(_STATUS_SEPARATOR.join(kept)) > width:
        kept.pop()
    text = _STATUS_SEPARATOR.join(kept)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe_errors(errors: tuple[ErrorDetail, ...]) -> str:
    parts = []
    for error in errors:
        where = f" ({error.field})" if error.field else ""
        parts.append(f"{error.code}{where}: {error.message}")
    return terminal_safe("; ".join(parts) or "no reason given", limit=400)


def describe_proxy(setting: ev.ProxySetting) -> tuple[str, str]:
    """What to say about the environment's proxy, and in which style.  A proxy that is
    used for wss:// is worth a line with -v only."""
    variable = setting.variable
    if setting.key_in_clear:
        return (f"WARNING: {variable} sends this ws:// connection through the proxy "
                f"{terminal_safe(setting.address, 300)}: the API key crosses it in clear text, "
                "readable by the proxy and anyone on the way; use wss://, or name the host "
                "in no_proxy", "bold yellow")
    if not setting.used:
        return (f"{variable} names a {terminal_safe(setting.scheme, 20)} proxy, which c2ws "
                "cannot use (HTTP CONNECT proxies only): connecting directly", "yellow")
    return (f"connecting through the proxy {terminal_safe(setting.address, 300)} "
            f"(from {variable})", "dim")


class _Throttle:
    """Rate limit for one kind of warning: its first ``burst`` lines, then at most one
    line per interval."""

    def __init__(self, clock: Callable[[], float], burst: int, style: str) -> None:
        self._clock = clock
        self._burst = burst
        self.style = style  # of the summary of those held back
        self._shown = 0
        self._held_back = 0
        self._last = float("-inf")

    def allow(self) -> int | None:
        """None: hold this one back; else how many were held back before it."""
        now = self._clock()
        if self._shown < self._burst or now - self._last >= WARNING_INTERVAL_SECONDS:
            held_back, self._held_back = self._held_back, 0
            self._shown += 1
            self._last = now
            return held_back
        self._held_back += 1
        return None

    def release(self, *, final: bool) -> int:
        """How many were held back, once it is time to say so in a line of its own (an
        interval since the last line, or ``final``: the run ends); else 0."""
        now = self._clock()
        if not self._held_back or (not final and now - self._last < WARNING_INTERVAL_SECONDS):
            return 0
        held_back, self._held_back = self._held_back, 0
        self._last = now
        return held_back


class Diagnostics:
    """Turns events into stderr lines; optionally keeps a one-line live status.

    ``printer``: print every line through it instead of ``console`` (the live table's
    :meth:`~c2ws.render.table.TableRenderer.print_message` when stderr is its terminal).
    ``quiet``: only errors (``-q``).  ``log_format``: ``"human"`` lines, or ``"json"``:
    one object per line (time, level, event, connection, strategy, detail) for journald
    and log shippers; ``wall`` gives its time.
    """

    def __init__(
        self,
        console: Console,
        *,
        verbose: bool = False,
        status_line: bool = False,
        clock: Callable[[], float] = time.monotonic,
        printer: Callable[[Text], None] | None = None,
        quiet: bool = False,
        log_format: str = "human",
        wall: Callable[[], float] = time.time,
    ) -> None:
        if log_format not in LOG_FORMATS:
            raise ValueError(f"log_format is one of {LOG_FORMATS}, not {log_format!r}")
        self.console = console
        self.quiet = quiet
        self.json = log_format == "json"
        self._wall = wall
        # Where lines go instead of ``console``: the live table's message line, when stderr
        # is the terminal the table redraws (a line printed beside it would be overwritten).
        self.printer = printer
        self.verbose = verbose
        self._clock = clock
        self.stream_messages = 0
        self.duplicates = 0
        self.active: set[ev.SubscriptionKey] = set()
        self.rejected = 0
        self.connections_up: set[int] = set()
        # How many connections the run has (0: unknown); with more than one, the status
        # line says how many are up, so a connection that is down cannot go unseen.
        self.connections_total = 0
        # The subscriptions of each connection (see expect): a connection that ends takes
        # its subscriptions out of the active ones, so the status line tells the truth
        # while it is down (subs 0/4).
        self._keys_of: list[tuple[ev.SubscriptionKey, ...]] = []
        self.requested = 0
        self.reconnecting = False
        self.last_heartbeat: str | None = None
        self._unknown_types: set[str] = set()
        self._throttles: dict[str, _Throttle] = {}
        self._holding_back: set[str] = set()  # kinds with warnings held back, not yet told
        self._live: Live | None = None
        self._last_refresh = 0.0
        if status_line and not quiet and not self.json:
            self._live = Live(
                Text(""), console=console, auto_refresh=False, transient=True,
                redirect_stdout=False, redirect_stderr=False,
            )
            self._live.start()

    @property
    def has_status_line(self) -> bool:
        return self._live is not None

    def expect(self, plan: Sequence[Sequence[ev.SubscriptionKey]]) -> None:
        """The subscriptions of each connection, in the engine's order (see
        :class:`c2ws.monitor.health.StreamHealth`)."""
        self._keys_of = [tuple(keys) for keys in plan]
        self.connections_total = len(plan)
        self.requested = sum(map(len, self._keys_of))

    def say(
        self, text: str, style: str = "", *, event: str = "message", level: str | None = None,
        connection: int | None = None, strategy: int | None = None, always: bool = False,
    ) -> None:
        """A line on stderr (``text`` must already be terminal-safe).  The API key never
        shows, whoever put it into the text.  ``event``: what it is about, by name (the
        JSON log's ``event``); ``level``: error, warning or info (else from ``style``);
        ``connection``: counted from 1; ``strategy``: the strategy id it concerns;
        ``always``: shown with -q too (a report that was asked for)."""
        level = level or level_of(style)
        if self.quiet and level != ERROR and not always:
            return
        if self.json:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall := self._wall()))
            record = {
                "time": f"{stamp}.{int(wall % 1 * 1000):03d}Z", "level": level,
                "event": event, "connection": connection, "strategy": strategy,
                "detail": redacted(text),
            }
            line = Text(orjson.dumps(record).decode())
        else:
            line = Text(f"c2ws: {redacted(text)}", style=style)
        if self.printer is not None:
            self.printer(line)
            return
        self.console.print(line, soft_wrap=True, highlight=False)

    def reconnected(self, notice: Reconnected) -> None:
        """A connection is back (see :class:`c2ws.monitor.health.Reconnected`)."""
        self.say(notice.text(), "green",
                 event="connection.connected" if notice.first else "connection.reconnected",
                 connection=notice.shard + 1)

    def warn(
        self, kind: str, text: str, style: str = "yellow", *, burst: int = WARNING_BURST,
        event: str = "warning", strategy: int | None = None,
    ) -> None:
        """A line a server can make c2ws print at will (``text`` terminal-safe): every
        such line comes here.  Rate-limited per ``kind``, a plural noun for what is warned
        about ("gaps"): its first ``burst`` lines, then one per interval saying how many
        were held back; those held back when no line follows are counted in a summary
        line ("12,345 more gaps not shown") an interval later, or when the run ends."""
        throttle = self._throttles.get(kind)
        if throttle is None:
            throttle = self._throttles[kind] = _Throttle(self._clock, burst, style)
        held_back = throttle.allow()
        if held_back is None:
            self._holding_back.add(kind)
            return
        self._holding_back.discard(kind)
        more = f" ({held_back:,} more like it not shown)" if held_back else ""
        self.say(text + more, style, event=event, strategy=strategy)

    def _tell_held_back(self, *, final: bool = False) -> None:
        """A summary line per kind whose held-back warnings are due (see :meth:`warn`)."""
        for kind in sorted(self._holding_back):
            throttle = self._throttles[kind]
            held_back = throttle.release(final=final)
            if held_back:
                self._holding_back.discard(kind)
                self.say(f"{held_back:,} more {kind} not shown", throttle.style,
                         event="warnings.held_back")

    def count_stream_messages(self, count: int) -> None:
        """``count`` stream messages went out (counted per batch, not per event)."""
        self.stream_messages += count
        if self._holding_back:
            self._tell_held_back()
        self._refresh_status()

    def handle(self, event: ev.Event) -> None:
        match event:
            case ev.StreamMessage():
                self.stream_messages += 1
            case ev.HeartbeatAnswered():
                self.last_heartbeat = time.strftime("%H:%M:%S")
            case ev.Traffic(direction=direction, data=data, shard=shard) if self.verbose:
                text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
                self.say(f"{direction} {terminal_safe(text, 2000)}", "dim", event="traffic",
                         connection=shard + 1)
            case ev.Connected(shard=shard):
                self.connections_up.add(shard)
                self.reconnecting = False
                if self.verbose:
                    self.say(f"connection {shard + 1} ready", event="connection.ready",
                             connection=shard + 1)
            case ev.ConnectionEnded(shard=shard, end=end):
                self.connections_up.discard(shard)
                if shard < len(self._keys_of):
                    self.active.difference_update(self._keys_of[shard])
                if self.verbose:
                    self.say(f"connection {shard + 1} ended: {terminal_safe(end.detail)}",
                             event="connection.ended", connection=shard + 1)
            case ev.Reconnecting():
                self.reconnecting = True
                self._on_reconnecting(event)
            case ev.ProxySetting(used=used, key_in_clear=key_in_clear):
                if key_in_clear or not used or self.verbose:
                    self.say(*describe_proxy(event), event="proxy")
            case ev.SubscriptionConfirmed(key=key):
                self.active.add(key)
                if self.verbose:
                    self.say(f"subscribed to {key}", event="subscription.confirmed",
                             strategy=key.strategy_id)
            case ev.Unsubscribed(key=key):
                self.active.discard(key)
            case ev.SubscriptionRejected(key=key, errors=errors):
                self.active.discard(key)
                self.rejected += 1
                self.say(f"subscription {key} rejected: {describe_errors(errors)}", "red",
                         event="subscription.rejected", strategy=key.strategy_id)
            case ev.ServerError(errors=errors):
                self.warn("server errors", f"server error: {describe_errors(errors)}", "red",
                          event="server.error")
            case ev.GapAnnounced(key=key, last_seq=last_seq, text=text):
                # A gap is data: stdout shows every one; stderr tells the first ones.
                after = f" after seq {last_seq}" if last_seq is not None else ""
                self.warn(
                    "gap announcements",
                    f"GAP on {key}: the server could not replay the signals{after} "
                    f"({terminal_safe(text)}); the hole is reported when the next signal "
                    "arrives", "bold red", burst=spec.GAP_WARNING_BURST,
                    event="gap.announced", strategy=key.strategy_id,
                )
            case ev.GapReported(key=key):
                self.warn("gaps", self._describe_gap(event), "bold red",
                          burst=spec.GAP_WARNING_BURST, event="gap", strategy=key.strategy_id)
            case ev.BackfillDone(key=key):  # issue 24: --heal-gaps
                self.warn("backfills", _describe_backfill(event),
                          "bold red" if event.failed else "green", burst=spec.GAP_WARNING_BURST,
                          event="backfill.failed" if event.failed else "backfill",
                          strategy=key.strategy_id)
            case ev.SnapshotFailed(strategy_id=strategy_id, reason=reason):
                self.warn("snapshot failures", f"WARNING: no positions snapshot of strategy "
                          f"{strategy_id}: {terminal_safe(reason, 400)}; the stream goes on",
                          "bold yellow", event="snapshot.failed", strategy=strategy_id)
            case ev.GapFilled(key=key, last_seq=last_seq):
                self.warn("filled gaps", f"the gap on {key} after seq {last_seq} was filled by "
                          "a later replay: nothing is missing", "green",
                          burst=spec.GAP_WARNING_BURST, event="gap.filled",
                          strategy=key.strategy_id)
            case ev.SequenceJump(key=key, expected=expected, received=received, suspect=suspect):
                if suspect:
                    text = (f"WARNING: {key} jumped from seq {expected - 1} to {received}, "
                            "implausibly far: delivered, but the cursor stays at "
                            f"{expected - 1} unless the next message continues from it")
                else:
                    text = (f"WARNING: {key} jumped from seq {expected - 1} to {received}: "
                            f"{received - expected} message(s) may be missing")
                self.warn("seq_id jumps", text, "bold yellow", event="sequence.jump",
                          strategy=key.strategy_id)
            case ev.SequenceBackwards(key=key, cursor=cursor, received=received):
                self.warn("seq_ids going back", f"WARNING: {key} went back from seq {cursor} to "
                          f"{received} outside a replay: not delivered (a duplicate, unless "
                          "nothing newer follows: then the server restarted its numbering)",
                          "bold yellow", event="sequence.backwards", strategy=key.strategy_id)
            case ev.SequenceReset(key=key, last_seq=last_seq, next_seq=next_seq):
                self.warn("sequence resets", f"SEQUENCE RESET on {key}: seq {next_seq} came after "
                          f"{last_seq} and the old numbering did not go on: the server "
                          f"restarted its numbering; delivering {event.released} held "
                          "message(s) and following the new numbering", "bold red",
                          event="sequence.reset", strategy=key.strategy_id)
            case ev.DuplicateDropped(key=key, seq_id=seq_id):
                self.duplicates += 1
                if self.verbose:
                    self.say(f"dropped duplicate {key} seq {seq_id}", event="duplicate",
                             strategy=key.strategy_id)
            case ev.UnexpectedStream(strategy_id=strategy_id, channel=channel):
                where = f"{terminal_safe(channel, 40)}:{strategy_id}"
                self.warn("messages for streams not subscribed", f"dropped a message for "
                          f"{where}, which was not subscribed", event="stream.unexpected",
                          strategy=strategy_id)
            case ev.UnknownMessage(message=message):
                self._on_unknown(message.msg_type)
            case ev.MalformedFrame(reason=reason, size=size):
                self.warn("malformed frames", f"skipped malformed frame ({size} bytes): "
                          f"{terminal_safe(reason)}", event="frame.malformed")
            case _:
                pass
        if self._holding_back:
            self._tell_held_back()
        self._refresh_status()

    def _on_reconnecting(self, event: ev.Reconnecting) -> None:
        cause = terminal_safe(event.after.detail or event.after.reason.value)
        connection = f"connection {event.shard + 1}"
        if event.delay is None:
            self.say(f"{connection} paused: {cause}; it resumes where the output stopped once "
                     "the reader catches up", "yellow", event="connection.paused",
                     connection=event.shard + 1)
        else:
            asked = ""
            if event.retry_after is not None:
                asked = f"; the server asked for {event.retry_after:g} s (Retry-After)"
                if event.retry_after > event.delay:
                    asked += ", capped by --max-backoff"
            self.say(f"{connection}: {cause}; reconnecting in {event.delay:.1f} s "
                     f"(attempt {event.attempt}{asked})", "yellow",
                     event="connection.reconnecting", connection=event.shard + 1)

    def _on_unknown(self, msg_type: str) -> None:
        # Remember the cleaned, capped name: hostile names that clean up alike are one kind.
        name = terminal_safe(msg_type, 60)
        if name in self._unknown_types:
            return
        if len(self._unknown_types) >= MAX_REMEMBERED_TYPES:
            self.warn("messages of further unknown types",
                      "skipped a message of yet another unknown type", event="message.unknown")
            return
        self._unknown_types.add(name)
        self.say(f"skipped message of unknown type '{name}' (further ones of this type are "
                 "skipped quietly)", "yellow", event="message.unknown")

    @staticmethod
    def _describe_gap(gap: ev.GapReported) -> str:
        after = "?" if gap.last_seq is None else str(gap.last_seq)
        if gap.next_seq is None:
            hole = f"every signal after seq {after}"
        else:
            hole = f"seq {after} < missing < {gap.next_seq}"
        times = ""
        if gap.last_timestamp or gap.next_timestamp:
            times = (f", between {terminal_safe(gap.last_timestamp or '?', 40)} and "
                     f"{terminal_safe(gap.next_timestamp or 'now', 40)}")
        return (f"GAP on {gap.key}: {hole}{times} ({terminal_safe(gap.text)}); fetch them "
                "from the REST API")

    def status_text(self) -> str:
        """The status line, in at most 80 columns: the connection state, the active
        subscriptions of those requested (0/N while disconnected), messages, duplicates
        dropped and the last heartbeat (the last two left out when it is too wide)."""
        if self.connections_total > 1:
            state = f"{len(self.connections_up)}/{self.connections_total} connections up"
        elif self.connections_up:
            state = "connected"
        else:
            state = "reconnecting" if self.reconnecting else "connecting"
        subscriptions = (f"subs {len(self.active)}/{self.requested}" if self.requested
                         else f"subs {len(self.active)}")
        if self.rejected:
            subscriptions += f", {self.rejected} rejected"
        return fit_status([
            state, subscriptions, f"msgs {self.stream_messages:,}",
            f"dups {self.duplicates:,}", f"hb {self.last_heartbeat or '-'}",
        ])

    def _refresh_status(self, force: bool = False) -> None:
        if self._live is None:
            return
        now = time.monotonic()
        if force or now - self._last_refresh >= STATUS_REFRESH_INTERVAL:
            self._last_refresh = now
            self._live.update(Text(self.status_text(), style="dim"), refresh=True)

    def close(self) -> None:
        """The run has ended: say how many warnings are still held back, stop the
        status line."""
        self._tell_held_back(final=True)
        if self._live is not None:
            self._live.stop()
            self._live = None


def _describe_backfill(done: ev.BackfillDone) -> str:
    """One line on a --heal-gaps backfill: what it wrote, from which window (and the
    margin added to each end), or why it failed."""
    gap, window = done.gap, done.window
    after = "?" if gap.last_seq is None else str(gap.last_seq)
    hole = (f"after seq {after}" if gap.next_seq is None
            else f"between seq {after} and {gap.next_seq}")
    span = (f"REST order history from {window.get('start')} to {window.get('end') or 'now'} "
            f"(each end widened by {window.get('margin_seconds')} s)")
    if done.failed:
        return (f"BACKFILL FAILED for the gap on {done.key} {hole}: {done.written} order(s) "
                f"written from the {span}; the rest is missing (a backfill.failed line says "
                "why)")
    return (f"backfilled the gap on {done.key} {hole}: {done.written} order(s) from the "
            f"{span}; {done.left_out} the stream had delivered were left out")
