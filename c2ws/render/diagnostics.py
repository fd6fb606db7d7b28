"""What c2ws tells the person on stderr: rejections, gaps, reconnects, warnings, ``-v``
traffic and a status line.

stdout carries data only; everything here goes to stderr.  Every line passes through
:meth:`Diagnostics.say`, which removes the API key wherever a server echoed it and
prints without markup interpretation; server-supplied text is made terminal-safe first.
Warnings a hostile or broken server can repeat at will are rate-limited, and what is
remembered about them is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from rich.console import Console
from rich.live import Live
from rich.text import Text

from c2ws import events as ev
from c2ws.protocol import ErrorDetail
from c2ws.render.safe import redacted, terminal_safe

STATUS_REFRESH_INTERVAL: Final = 0.25
# A warning kind prints its first few lines, then at most one line per interval that
# also says how many were held back.
WARNING_BURST: Final = 3
WARNING_INTERVAL_SECONDS: Final = 10.0
# Distinct unknown msg_types remembered (for "first of its kind" warnings).
MAX_REMEMBERED_TYPES: Final = 32


def describe_errors(errors: tuple[ErrorDetail, ...]) -> str:
    parts = []
    for error in errors:
        where = f" ({error.field})" if error.field else ""
        parts.append(f"{error.code}{where}: {error.message}")
    return terminal_safe("; ".join(parts) or "no reason given", limit=400)


class _Throttle:
    """Rate limit for one kind of warning."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._shown = 0
        self._held_back = 0
        self._last = float("-inf")

    def allow(self) -> int | None:
        """None: hold this one back; else how many were held back before it."""
        now = self._clock()
        if self._shown < WARNING_BURST or now - self._last >= WARNING_INTERVAL_SECONDS:
            held_back, self._held_back = self._held_back, 0
            self._shown += 1
            self._last = now
            return held_back
        self._held_back += 1
        return None


class Diagnostics:
    """Turns events into stderr lines; optionally keeps a one-line live status.

    ``printer``: print every line through it instead of ``console`` (the live table's
    :meth:`~c2ws.render.table.TableRenderer.print_message` when stderr is its terminal).
    """

    def __init__(
        self,
        console: Console,
        *,
        verbose: bool = False,
        status_line: bool = False,
        clock: Callable[[], float] = time.monotonic,
        printer: Callable[[Text], None] | None = None,
    ) -> None:
        self.console = console
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
        self.reconnecting = False
        self.last_heartbeat: str | None = None
        self._unknown_types: set[str] = set()
        self._throttles: dict[str, _Throttle] = {}
        self._live: Live | None = None
        self._last_refresh = 0.0
        if status_line:
            self._live = Live(
                Text(""), console=console, auto_refresh=False, transient=True,
                redirect_stdout=False, redirect_stderr=False,
            )
            self._live.start()

    @property
    def has_status_line(self) -> bool:
        return self._live is not None

    def say(self, text: str, style: str = "") -> None:
        """A line on stderr (``text`` must already be terminal-safe).  The API key never
        shows, whoever put it into the text."""
        line = Text(f"c2ws: {redacted(text)}", style=style)
        if self.printer is not None:
            self.printer(line)
            return
        self.console.print(line, soft_wrap=True, highlight=False)

    def warn(self, kind: str, text: str, style: str = "yellow") -> None:
        """A warning a server can repeat at will: rate-limited per ``kind``."""
        throttle = self._throttles.setdefault(kind, _Throttle(self._clock))
        held_back = throttle.allow()
        if held_back is None:
            return
        more = f" ({held_back} more like it not shown)" if held_back else ""
        self.say(text + more, style)

    def count_stream_messages(self, count: int) -> None:
        """``count`` stream messages went out (counted per batch, not per event)."""
        self.stream_messages += count
        self._refresh_status()

    def handle(self, event: ev.Event) -> None:
        match event:
            case ev.StreamMessage():
                self.stream_messages += 1
            case ev.HeartbeatAnswered():
                self.last_heartbeat = time.strftime("%H:%M:%S")
            case ev.Traffic(direction=direction, data=data) if self.verbose:
                text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
                self.say(f"{direction} {terminal_safe(text, 2000)}", "dim")
            case ev.Connected(shard=shard):
                self.connections_up.add(shard)
                self.reconnecting = False
                if self.verbose:
                    self.say(f"connection {shard + 1} ready")
            case ev.ConnectionEnded(shard=shard, end=end):
                self.connections_up.discard(shard)
                if self.verbose:
                    self.say(f"connection {shard + 1} ended: {terminal_safe(end.detail)}")
            case ev.Reconnecting():
                self.reconnecting = True
                self._on_reconnecting(event)
            case ev.SubscriptionConfirmed(key=key):
                self.active.add(key)
                if self.verbose:
                    self.say(f"subscribed to {key}")
            case ev.Unsubscribed(key=key):
                self.active.discard(key)
            case ev.SubscriptionRejected(key=key, errors=errors):
                self.active.discard(key)
                self.rejected += 1
                self.say(f"subscription {key} rejected: {describe_errors(errors)}", "red")
            case ev.ServerError(errors=errors):
                self.warn("server-error", f"server error: {describe_errors(errors)}", "red")
            case ev.GapAnnounced(key=key, last_seq=last_seq, text=text):
                after = f" after seq {last_seq}" if last_seq is not None else ""
                self.say(
                    f"GAP on {key}: the server could not replay the signals{after} "
                    f"({terminal_safe(text)}); the hole is reported when the next signal "
                    "arrives", "bold red",
                )
            case ev.GapReported():
                self.say(self._describe_gap(event), "bold red")
            case ev.GapFilled(key=key, last_seq=last_seq):
                self.say(f"the gap on {key} after seq {last_seq} was filled by a later replay: "
                         "nothing is missing", "green")
            case ev.SequenceJump(key=key, expected=expected, received=received, suspect=suspect):
                if suspect:
                    text = (f"WARNING: {key} jumped from seq {expected - 1} to {received}, "
                            "implausibly far: delivered, but the cursor stays at "
                            f"{expected - 1} unless the next message continues from it")
                else:
                    text = (f"WARNING: {key} jumped from seq {expected - 1} to {received}: "
                            f"{received - expected} message(s) may be missing")
                self.warn("jump", text, "bold yellow")
            case ev.SequenceBackwards(key=key, cursor=cursor, received=received):
                self.warn("backwards", f"WARNING: {key} went back from seq {cursor} to "
                          f"{received} outside a replay: not delivered (a duplicate, unless "
                          "nothing newer follows: then the server restarted its numbering)",
                          "bold yellow")
            case ev.SequenceReset(key=key, last_seq=last_seq, next_seq=next_seq):
                self.warn("reset", f"SEQUENCE RESET on {key}: seq {next_seq} came after "
                          f"{last_seq} and the old numbering did not go on: the server "
                          f"restarted its numbering; delivering {event.released} held "
                          "message(s) and following the new numbering", "bold red")
            case ev.DuplicateDropped(key=key, seq_id=seq_id):
                self.duplicates += 1
                if self.verbose:
                    self.say(f"dropped duplicate {key} seq {seq_id}")
            case ev.UnexpectedStream(strategy_id=strategy_id, channel=channel):
                where = f"{terminal_safe(channel, 40)}:{strategy_id}"
                self.warn("unexpected", f"dropped a message for {where}, which was not "
                          "subscribed")
            case ev.UnknownMessage(message=message):
                self._on_unknown(message.msg_type)
            case ev.MalformedFrame(reason=reason, size=size):
                self.warn("malformed", f"skipped malformed frame ({size} bytes): "
                          f"{terminal_safe(reason)}")
            case _:
                pass
        self._refresh_status()

    def _on_reconnecting(self, event: ev.Reconnecting) -> None:
        cause = terminal_safe(event.after.detail or event.after.reason.value)
        connection = f"connection {event.shard + 1}"
        if event.delay is None:
            self.say(f"{connection} paused: {cause}; it resumes where the output stopped once "
                     "the reader catches up", "yellow")
        else:
            self.say(f"{connection}: {cause}; reconnecting in {event.delay:.1f} s "
                     f"(attempt {event.attempt})", "yellow")

    def _on_unknown(self, msg_type: str) -> None:
        # Remember the cleaned, capped name: hostile names that clean up alike are one kind.
        name = terminal_safe(msg_type, 60)
        if name in self._unknown_types:
            return
        if len(self._unknown_types) >= MAX_REMEMBERED_TYPES:
            self.warn("unknown", "skipped a message of yet another unknown type")
            return
        self._unknown_types.add(name)
        self.say(f"skipped message of unknown type '{name}' (further ones of this type are "
                 "skipped quietly)", "yellow")

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
        heartbeat = self.last_heartbeat or "none yet"
        if self.connections_up:
            state = "connected"
        else:
            state = "reconnecting" if self.reconnecting else "connecting"
        return (
            f"{state} | subscriptions {len(self.active)} active, {self.rejected} rejected | "
            f"messages {self.stream_messages} | duplicates {self.duplicates} | "
            f"last heartbeat {heartbeat}"
        )

    def _refresh_status(self, force: bool = False) -> None:
        if self._live is None:
            return
        now = time.monotonic()
        if force or now - self._last_refresh >= STATUS_REFRESH_INTERVAL:
            self._last_refresh = now
            self._live.update(Text(self.status_text(), style="dim"), refresh=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
