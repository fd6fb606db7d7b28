"""stderr diagnostics: the key never shows, hostile repetition is rate-limited, memory of
what a server sent is bounded."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from rich.console import Console

from c2ws import events as ev
from c2ws import spec
from c2ws.events import ConnectionEnd, EndReason, SubscriptionKey
from c2ws.protocol import Envelope, ErrorDetail
from c2ws.render import diagnostics as diag
from c2ws.render import safe
from c2ws.render.diagnostics import Diagnostics

SECRET = "sk-live-0123456789abcdef"
KEY = SubscriptionKey(7, spec.CHANNEL_SIGNAL)


@pytest.fixture(autouse=True)
def secret() -> Iterator[None]:
    safe.keep_secret(SECRET)
    yield
    safe._secrets.discard(SECRET)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock | None = None) -> tuple[Diagnostics, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=400, color_system=None)
    return Diagnostics(console, verbose=True, clock=clock or Clock()), out


def envelope(msg_type: str, **payload: object) -> Envelope:
    return Envelope(msg_type=msg_type, payload=dict(payload), raw={"msg_type": msg_type})


def test_the_key_echoed_anywhere_never_reaches_stderr() -> None:
    diagnostics, out = make()
    echo = f"your key {SECRET} is wrong"
    diagnostics.handle(ev.ServerError((ErrorDetail("FORBIDDEN", echo),), envelope("error")))
    diagnostics.handle(ev.SubscriptionRejected(KEY, "r", (ErrorDetail("X", echo, SECRET),),
                                               envelope("error")))
    diagnostics.handle(ev.GapAnnounced(KEY, 3, echo, envelope("gap")))
    diagnostics.handle(ev.Reconnecting(0, 1, 0.5, ConnectionEnd(EndReason.SERVER_CLOSED, echo)))
    diagnostics.handle(ev.UnknownMessage(envelope(f"type-{SECRET}")))
    diagnostics.handle(ev.Traffic("<", f'{{"note":"{SECRET}"}}'.encode()))
    diagnostics.say(echo)
    text = out.getvalue()
    assert SECRET not in text
    assert text.count("****") == 8  # the rejection echoed it twice


def test_a_flood_of_one_warning_is_rate_limited_and_says_how_many_were_held_back() -> None:
    clock = Clock()
    diagnostics, out = make(clock)
    for received in range(1000):
        diagnostics.handle(ev.SequenceBackwards(KEY, 5000, received))
    assert out.getvalue().count("went back") == diag.WARNING_BURST
    clock.now += diag.WARNING_INTERVAL_SECONDS
    diagnostics.handle(ev.SequenceBackwards(KEY, 5000, 1))
    lines = out.getvalue().splitlines()
    assert len(lines) == diag.WARNING_BURST + 1
    assert f"({1000 - diag.WARNING_BURST} more like it not shown)" in lines[-1]


def gap_reported(seq: int) -> ev.GapReported:
    return ev.GapReported(KEY, seq, None, seq + 2, None, "Replay limit", envelope("gap"))


def test_a_flood_of_gaps_is_rate_limited_and_counted_at_the_end() -> None:
    """10,000 gap messages (and 10,000 reports of their holes) in an instant: the first
    of each are told in full, then one line says how many more there were."""
    diagnostics, out = make()
    for seq in range(10_000):
        diagnostics.handle(ev.GapAnnounced(KEY, seq, "Replay limit", envelope("gap")))
        diagnostics.handle(gap_reported(seq))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 * spec.GAP_WARNING_BURST
    diagnostics.close()
    lines = out.getvalue().splitlines()[2 * spec.GAP_WARNING_BURST:]
    assert lines == [
        f"c2ws: {10_000 - spec.GAP_WARNING_BURST:,} more gap announcements not shown",
        f"c2ws: {10_000 - spec.GAP_WARNING_BURST:,} more gaps not shown",
    ]


def test_a_long_flood_of_gaps_prints_about_one_line_per_interval() -> None:
    clock = Clock()
    diagnostics, out = make(clock)
    for seq in range(10_000):  # 100 s of gaps, one every 10 ms
        clock.now += 0.01
        diagnostics.handle(gap_reported(seq))
    lines = out.getvalue().splitlines()
    intervals = int(100 / diag.WARNING_INTERVAL_SECONDS)
    assert spec.GAP_WARNING_BURST < len(lines) <= spec.GAP_WARNING_BURST + intervals
    assert "more like it not shown)" in lines[-1]


def test_what_was_held_back_is_told_an_interval_later_without_another_warning() -> None:
    """A flood that stops: its count comes at the next event an interval later (a long
    unattended run does not wait for its end to say it)."""
    clock = Clock()
    diagnostics, out = make(clock)
    for seq in range(100):
        diagnostics.handle(gap_reported(seq))
    clock.now += diag.WARNING_INTERVAL_SECONDS / 2
    diagnostics.count_stream_messages(1)
    assert len(out.getvalue().splitlines()) == spec.GAP_WARNING_BURST
    clock.now += diag.WARNING_INTERVAL_SECONDS / 2
    diagnostics.count_stream_messages(1)
    assert out.getvalue().splitlines()[-1] == (
        f"c2ws: {100 - spec.GAP_WARNING_BURST} more gaps not shown")
    diagnostics.close()  # told once
    assert len(out.getvalue().splitlines()) == spec.GAP_WARNING_BURST + 1


def test_streams_not_subscribed_are_warned_about_at_a_bounded_rate() -> None:
    diagnostics, out = make()
    for strategy in range(10_000):
        diagnostics.handle(ev.UnexpectedStream(strategy, spec.CHANNEL_SIGNAL))
    assert len(out.getvalue().splitlines()) == diag.WARNING_BURST


def test_unknown_types_are_remembered_up_to_a_bound() -> None:
    diagnostics, out = make()
    for index in range(5000):
        diagnostics.handle(ev.UnknownMessage(envelope(f"strange.type.{index}" + "x" * 500)))
    assert len(diagnostics._unknown_types) == diag.MAX_REMEMBERED_TYPES
    assert all(len(name) <= 60 for name in diagnostics._unknown_types)
    assert len(out.getvalue().splitlines()) == diag.MAX_REMEMBERED_TYPES + diag.WARNING_BURST


def test_hostile_type_names_that_clean_up_alike_are_one_warning() -> None:
    diagnostics, out = make()
    for name in ("evil\x1b[2J", "evil\x1b[31m", "\x1b]0;title\x07evil", "evil"):
        diagnostics.handle(ev.UnknownMessage(envelope(name)))
    assert out.getvalue().count("unknown type") == 1
    assert "\x1b" not in out.getvalue()


def test_a_gap_report_names_both_ends_of_the_hole() -> None:
    diagnostics, out = make()
    diagnostics.handle(ev.GapReported(KEY, 8, "2026-01-01T00:00:08Z", 24, "2026-01-01T00:00:24Z",
                                      "Replay limit", envelope("gap")))
    text = out.getvalue()
    assert "GAP on strategy.signal:7: seq 8 < missing < 24" in text
    assert "between 2026-01-01T00:00:08Z and 2026-01-01T00:00:24Z" in text


def test_a_sequence_reset_is_said_loudly_with_both_numberings() -> None:
    diagnostics, out = make()
    diagnostics.handle(ev.SequenceReset(KEY, 1_000_000, None, 1, "2026-01-01T00:00:08Z", 3, 0))
    text = out.getvalue()
    assert "SEQUENCE RESET on strategy.signal:7: seq 1 came after 1000000" in text
    assert "delivering 3 held message(s)" in text


def test_a_reconnect_is_one_line_with_reason_attempt_and_wait() -> None:
    diagnostics, out = make()
    diagnostics.handle(ev.Reconnecting(1, 3, 2.25, ConnectionEnd(
        EndReason.SERVER_CLOSED, "the server closed the connection (code 1012: restart)", 1012)))
    assert out.getvalue() == (
        "c2ws: connection 2: the server closed the connection (code 1012: restart); "
        "reconnecting in 2.2 s (attempt 3)\n")


@pytest.mark.parametrize(
    ("retry_after", "delay", "said"),
    [
        (120.0, 30.0, "reconnecting in 30.0 s (attempt 1; the server asked for 120 s "
                      "(Retry-After), capped by --max-backoff)"),
        (3.0, 3.0, "reconnecting in 3.0 s (attempt 1; the server asked for 3 s (Retry-After))"),
    ],
)
def test_a_reconnect_says_when_it_follows_the_servers_retry_after(
    retry_after: float, delay: float, said: str
) -> None:
    diagnostics, out = make()
    end = ConnectionEnd(EndReason.BUSY, "the server refused the connection (HTTP 429): busy",
                        retry_after=retry_after)
    diagnostics.handle(ev.Reconnecting(0, 1, delay, end, retry_after))
    assert out.getvalue() == (
        f"c2ws: connection 1: the server refused the connection (HTTP 429): busy; {said}\n")


def test_the_status_line_says_how_many_of_several_connections_are_up() -> None:
    diagnostics, _ = make()
    diagnostics.connections_total = 10
    for shard in range(10):
        diagnostics.handle(ev.Connected(envelope("connection.connected"), shard))
    assert diagnostics.status_text().startswith("10/10 connections up |")
    for shard in (3, 7):
        diagnostics.handle(ev.ConnectionEnded(shard, ConnectionEnd(EndReason.BUSY), True))
    assert diagnostics.status_text().startswith("8/10 connections up |")
    single, _ = make()
    single.connections_total = 1
    single.handle(ev.Connected(envelope("connection.connected"), 0))
    assert single.status_text().startswith("connected |")


def test_a_ws_url_through_a_proxy_is_one_warning_naming_the_proxy_not_its_secrets() -> None:
    diagnostics, out = make()
    diagnostics.handle(ev.ProxySetting("http_proxy", "http", "proxy.example:3128", used=True,
                                       key_in_clear=True))
    text = out.getvalue()
    assert text.count("\n") == 1 and "WARNING: http_proxy" in text
    assert "proxy.example:3128" in text and "clear text" in text and "wss://" in text


def test_a_proxy_c2ws_cannot_use_is_said_and_a_wss_proxy_only_with_verbose() -> None:
    diagnostics, out = make()
    diagnostics.handle(ev.ProxySetting("ALL_PROXY", "socks5", "", used=False,
                                       key_in_clear=False))
    assert "ALL_PROXY names a socks5 proxy, which c2ws cannot use" in out.getvalue()
    quiet = Diagnostics(Console(file=(sink := io.StringIO()), width=400, color_system=None))
    quiet.handle(ev.ProxySetting("https_proxy", "http", "p:8080", used=True, key_in_clear=False))
    assert sink.getvalue() == ""


# --- issue 25: the status line tells the truth; JSON logs; -q -------------------------------


def test_the_status_line_says_0_of_n_while_disconnected_and_fits_80_columns() -> None:
    diagnostics, _ = make()
    signal_1, positions_1 = KEY, SubscriptionKey(7, spec.CHANNEL_POSITIONS)
    diagnostics.expect([[signal_1, positions_1]])
    diagnostics.handle(ev.Connected(envelope("connection.connected"), 0))
    for key in (signal_1, positions_1):
        diagnostics.handle(ev.SubscriptionConfirmed(key, "r", envelope("subscription.ack")))
    assert diagnostics.status_text() == "connected | subs 2/2 | msgs 0 | dups 0 | hb -"
    diagnostics.handle(ev.ConnectionEnded(0, ConnectionEnd(EndReason.LOST), True))
    diagnostics.handle(ev.Reconnecting(0, 1, 0.5, ConnectionEnd(EndReason.LOST)))
    assert diagnostics.status_text().startswith("reconnecting | subs 0/2 |")
    many = [[SubscriptionKey(n, spec.CHANNEL_SIGNAL) for n in range(shard * 100, shard * 100 + 100)]
            for shard in range(10)]
    diagnostics.expect(many)
    diagnostics.rejected = 999
    diagnostics.stream_messages = diagnostics.duplicates = 123_456_789_012
    diagnostics.last_heartbeat = "12:00:01"
    text = diagnostics.status_text()
    assert len(text) <= 80 and text.startswith("0/10 connections up | subs 0/1000, 999 rejected")


def test_json_logs_are_one_object_per_event_with_the_key_redacted() -> None:
    out = io.StringIO()
    diagnostics = Diagnostics(Console(file=out, width=80, color_system=None),
                              log_format="json", wall=lambda: 1764583200.25)
    diagnostics.handle(ev.Reconnecting(1, 2, 3.0, ConnectionEnd(EndReason.SERVER_CLOSED,
                                                                 f"bye {SECRET}")))
    diagnostics.handle(ev.SubscriptionRejected(KEY, "r", (ErrorDetail("FORBIDDEN", "no"),),
                                               envelope("error")))
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records == [
        {"time": "2025-12-01T10:00:00.250Z", "level": "warning",
         "event": "connection.reconnecting", "connection": 2, "strategy": None,
         "detail": "connection 2: bye ****; reconnecting in 3.0 s (attempt 2)"},
        {"time": "2025-12-01T10:00:00.250Z", "level": "error",
         "event": "subscription.rejected", "connection": None, "strategy": 7,
         "detail": "subscription strategy.signal:7 rejected: FORBIDDEN: no"},
    ]


def test_quiet_keeps_only_errors_and_what_was_asked_for() -> None:
    out = io.StringIO()
    diagnostics = Diagnostics(Console(file=out, width=400, color_system=None), quiet=True)
    diagnostics.handle(ev.Reconnecting(0, 1, 0.5, ConnectionEnd(EndReason.LOST)))
    diagnostics.say("an informative line")
    diagnostics.say("a report asked for", always=True)
    diagnostics.handle(ev.SubscriptionRejected(KEY, "r", (), envelope("error")))
    assert out.getvalue().splitlines() == [
        "c2ws: a report asked for",
        "c2ws: subscription strategy.signal:7 rejected: no reason given"]
