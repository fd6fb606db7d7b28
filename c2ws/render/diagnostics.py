"""What c2ws tells the person on stderr: rejections, gaps, warnings and a status line.

stdout carries data only; everything here goes to stderr.  Server-supplied text is
passed through :func:`terminal_safe` and printed without markup interpretation.
"""

from __future__ import annotations

import time
from collections import Counter

from rich.console import Console
from rich.live import Live
from rich.text import Text

from c2ws import events as ev
from c2ws.protocol import ErrorDetail
from c2ws.render.safe import terminal_safe

STATUS_REFRESH_INTERVAL = 0.25


def describe_errors(errors: tuple[ErrorDetail, ...]) -> str:
    parts = []
    for error in errors:
        where = f" ({error.field})" if error.field else ""
        parts.append(f"{error.code}{where}: {error.message}")
    return terminal_safe("; ".join(parts) or "no reason given", limit=400)


class Diagnostics:
    """Turns events into stderr lines; optionally keeps a one-line live status."""

    def __init__(
        self, console: Console, *, verbose: bool = False, status_line: bool = False
    ) -> None:
        self.console = console
        self.verbose = verbose
        self.stream_messages = 0
        self.duplicates = 0
        self.active = 0
        self.rejected = 0
        self.connected = False
        self.last_heartbeat: str | None = None
        self._unknown_types: Counter[str] = Counter()
        self._live: Live | None = None
        self._last_refresh = 0.0
        if status_line:
            self._live = Live(
                Text(""), console=console, auto_refresh=False, transient=True,
                redirect_stdout=False, redirect_stderr=False,
            )
            self._live.start()

    def say(self, text: str, style: str = "") -> None:
        """A line on stderr (``text`` must already be safe)."""
        self.console.print(Text(f"c2ws: {text}", style=style), soft_wrap=True, highlight=False)

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StreamMessage):
            self.stream_messages += 1
        elif isinstance(event, ev.HeartbeatAnswered):
            self.last_heartbeat = time.strftime("%H:%M:%S")
        elif isinstance(event, ev.Connected):
            self.connected = True
            if self.verbose:
                self.say("connected")
        elif isinstance(event, ev.SubscriptionConfirmed):
            self.active += 1
            if self.verbose:
                self.say(f"subscribed to {event.key}")
        elif isinstance(event, ev.Unsubscribed):
            self.active -= 1
        elif isinstance(event, ev.SubscriptionRejected):
            self.rejected += 1
            self.say(f"subscription {event.key} rejected: {describe_errors(event.errors)}", "red")
        elif isinstance(event, ev.ServerError):
            self.say(f"server error: {describe_errors(event.errors)}", "red")
        elif isinstance(event, ev.GapReported):
            where = f"{event.channel}:{event.strategy_id}"
            after = f" after seq {event.last_replayed}" if event.last_replayed is not None else ""
            self.say(
                f"GAP on {terminal_safe(where)}: the server could not replay the signals"
                f"{after} ({terminal_safe(event.text)}); fetch them from the REST API",
                "bold red",
            )
        elif isinstance(event, ev.SequenceJump):
            missing = event.received - event.expected
            self.say(
                f"WARNING: {event.key} jumped from seq {event.expected - 1} to "
                f"{event.received}: {missing} message(s) may be missing",
                "bold yellow",
            )
        elif isinstance(event, ev.DuplicateDropped):
            self.duplicates += 1
            if self.verbose:
                self.say(f"dropped duplicate {event.key} seq {event.seq_id}")
        elif isinstance(event, ev.UnknownMessage):
            msg_type = event.message.msg_type
            self._unknown_types[msg_type] += 1
            if self._unknown_types[msg_type] == 1:
                self.say(
                    f"skipped message of unknown type '{terminal_safe(msg_type, 60)}' "
                    "(further ones of this type are skipped quietly)",
                    "yellow",
                )
        elif isinstance(event, ev.MalformedFrame):
            self.say(f"skipped malformed frame ({event.size} bytes): {terminal_safe(event.reason)}",
                     "yellow")
        elif isinstance(event, ev.ConnectionStale):
            self.say(f"no traffic for {event.silent_for:.0f} s: connection presumed dead", "red")
        self._refresh_status()

    def status_text(self) -> str:
        heartbeat = self.last_heartbeat or "none yet"
        state = "connected" if self.connected else "connecting"
        return (
            f"{state} | subscriptions {self.active} active, {self.rejected} rejected | "
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
