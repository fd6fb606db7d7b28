"""stderr diagnostics: the key never shows, hostile repetition is rate-limited, memory of
what a server sent is bounded."""

from __future__ import annotations

import io
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
