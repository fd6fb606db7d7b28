"""The output loop's batch path (a burst of nothing but stream messages is one batch of
the stream, and goes to the renderer in one call) against the per-event paths: the same
lines, counts, endings and acknowledgements, whatever the batch holds."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import json_values
from rich.console import Console

from c2ws import events as ev
from c2ws import spec, streaming
from c2ws.cli.heap import HeapTrimmer
from c2ws.cli.run import ForwardEvents, SubscribeRun
from c2ws.engine import Engine, EngineConfig
from c2ws.errors import C2wsError
from c2ws.events import SubscriptionKey
from c2ws.exitcodes import ExitCode
from c2ws.protocol import Envelope
from c2ws.render import messages_handler
from c2ws.render.diagnostics import Diagnostics
from c2ws.render.ndjson import NdjsonRenderer, line_of
from c2ws.streaming import Stream, StreamOptions

LOST = ev.ConnectionEnd(ev.EndReason.LOST, "lost")
KEYS = (SubscriptionKey(1, spec.CHANNEL_SIGNAL), SubscriptionKey(2, spec.CHANNEL_SIGNAL))


class HandleOnly:
    """An NDJSON renderer without handle_messages: the per-event path."""

    def __init__(self, renderer: NdjsonRenderer) -> None:
        self.renderer = renderer

    def handle(self, event: ev.Event) -> None:
        self.renderer.handle(event)

    def flush(self) -> None:
        self.renderer.flush()

    def close(self) -> None:
        self.renderer.close()


class ScriptEnded(C2wsError):
    """What the scripted engine raises once its batches are all taken."""


class Scripted(Engine):
    """The engine without sockets, handing over the scripted batches one per request
    (then ScriptEnded), and keeping what was acknowledged."""

    def __init__(self, config: EngineConfig, cursors: Any = None) -> None:
        super().__init__(config, cursors=cursors)
        self.script: list[list[ev.Event]] = []
        self.acknowledged: list[ev.Event] = []
        self.ever_confirmed = True

    def start(self) -> Engine:
        return self

    def stop(self) -> None:
        self.handoff.close()

    def next_batch(self, timeout: float | None, limit: int | None = None) -> list[ev.Event]:
        given_back = super().next_batch(0, limit)  # what the engine gave back (a reset)
        if given_back:
            return given_back
        if not self.script:
            raise ScriptEnded("script ended")
        self.handoff.put(self.script.pop(0))
        return super().next_batch(0, limit)

    def acknowledge(self, events: Sequence[ev.Event]) -> None:
        self.acknowledged.extend(e for e in ev.expand_runs(list(events))
                                 if isinstance(e, ev.StreamMessage))
        super().acknowledge(events)


def scripted_run(renderer: Any, batches: list[list[ev.Event]], *, cursors: Any = None,
                 **options: Any) -> tuple[SubscribeRun, Scripted]:
    config = EngineConfig(url="ws://127.0.0.1:1", api_key="run-batches-key", keys=list(KEYS))
    engines: list[Scripted] = []

    def factory(config: EngineConfig, cursors: Any = None) -> Scripted:
        engines.append(Scripted(config, cursors))
        engines[-1].script = [list(batch) for batch in batches]
        return engines[-1]

    events = ForwardEvents()
    stream = Stream(config, StreamOptions(auto_ack=False, on_event=events, **options),
                    cursors=cursors, engine_factory=factory)
    run = SubscribeRun(stream, renderer, Diagnostics(Console(file=io.StringIO())),
                       events=events, count=options.get("count"))
    stream.start()
    return run, engines[0]


def stream_message(key: SubscriptionKey, seq: int, lines: bool) -> ev.StreamMessage:
    raw: dict[str, Any] = {"msg_type": spec.CHANNEL_SIGNAL, "seq_id": seq,
                           "payload": {"StrategyId": key.strategy_id}}
    data = orjson.dumps(raw, option=orjson.OPT_INDENT_2 if lines else 0)
    message = Envelope(spec.CHANNEL_SIGNAL, raw["payload"], None, seq, raw=raw, data=data)
    return ev.StreamMessage(key, message, seq)


def stream_run(key: SubscriptionKey, first: int, size: int) -> ev.StreamRun:
    """``size`` messages of ``key`` from ``first`` on, as the session hands a burst over."""
    frames = [stream_message(key, seq, False).message.data for seq in range(first, first + size)]
    return ev.StreamRun(key, b"\n".join([*frames, b""]), size, first + size - 1)


def reset(key: SubscriptionKey, seq: int) -> ev.SequenceReset:
    """The numbering of ``key`` restarted after ``seq``, at 1."""
    return ev.SequenceReset(key, last_seq=seq, last_timestamp=None, next_seq=1,
                            next_timestamp=None, released=1, cursor=0)


def gap(key: SubscriptionKey, seq: int) -> ev.GapReported:
    payload: dict[str, Any] = {"message": "replay limit"}
    raw = {"msg_type": spec.MSG_GAP, "payload": payload}
    return ev.GapReported(key, last_seq=seq, last_timestamp=None, next_seq=seq + 50,
                          next_timestamp=None, text="replay limit",
                          message=Envelope(spec.MSG_GAP, payload, raw=raw))


@st.composite
def batches(draw: st.DrawFn) -> list[list[ev.Event]]:
    seq = 0
    found: list[list[ev.Event]] = []
    for _ in range(draw(st.integers(1, 6))):
        batch: list[ev.Event] = []
        for _ in range(draw(st.integers(1, 8))):
            seq += 1
            key = draw(st.sampled_from(KEYS))
            kind = draw(st.sampled_from(
                ["message"] * 6 + ["lines", "gap", "reset", "reconnecting", "run", "run"]))
            if kind == "run":
                size = draw(st.integers(2, 5))
                batch.append(stream_run(key, seq, size))
                seq += size - 1
            elif kind == "gap":
                batch.append(gap(key, seq))
            elif kind == "reset":
                batch.append(reset(key, seq))
            elif kind == "reconnecting":
                batch.append(ev.Reconnecting(0, 1, 0.5, LOST))
            else:
                batch.append(stream_message(key, seq, kind == "lines"))
        found.append(batch)
    return found


def run_output(renderer_of: Any, batches: list[list[ev.Event]], count: int | None,
               fail_on_gap: bool, symbol_of_key: int | None) -> tuple[bytes, list[Any], Any]:
    out = io.BytesIO()
    select = None if symbol_of_key is None else (lambda m: m.strategy_id == symbol_of_key)
    run, engine = scripted_run(renderer_of(NdjsonRenderer(out)), batches, count=count,
                               fail_on_gap=fail_on_gap, select=select)
    code = run.run()
    return out.getvalue(), engine.acknowledged, (code, run.delivered)


@settings(max_examples=1000)
@given(batches=batches(), count=st.one_of(st.none(), st.integers(1, 40)),
       fail_on_gap=st.booleans(), symbol_of_key=st.sampled_from([None, None, 1]))
def test_the_batch_path_writes_what_the_per_event_path_writes(
    batches: list[list[ev.Event]], count: int | None, fail_on_gap: bool,
    symbol_of_key: int | None,
) -> None:
    """The stream's burst path (a batch of nothing but stream messages, delivered whole)
    and the CLI's (one call to the renderer) against the per-event paths of both."""
    with_batch_path = run_output(lambda r: r, batches, count, fail_on_gap, symbol_of_key)
    with pytest.MonkeyPatch.context() as patch:
        # No batch is "only" messages: every one goes event by event, its runs expanded
        # (the CLI's batch path is stdout's sink's, issue 23).
        patch.setattr(streaming, "_MESSAGES", frozenset())
        per_event = run_output(HandleOnly, batches, count, fail_on_gap, symbol_of_key)
    assert with_batch_path == per_event


def test_fail_on_gap_stops_after_a_sequence_reset_and_the_message_after_it() -> None:
    """Exactly as after a gap: the reset line and the first message of the new numbering
    are written and acknowledged (the cursor is then in the new numbering), then exit 11."""
    key = KEYS[0]
    batches = [[stream_message(key, seq, False) for seq in (1, 2, 3)],
               [reset(key, 3), stream_message(KEYS[1], 7, False), stream_message(key, 1, False),
                stream_message(key, 2, False)]]
    out, acknowledged, (ending, _) = run_output(lambda r: r, batches, None, True, None)
    assert ending == ExitCode.GAP
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [line.get("seq_id") for line in lines] == [1, 2, 3, None, 7, 1]
    assert lines[3] == {"msg_type": "sequence.reset", "reset": {
        "strategy_id": 1, "channel": "strategy.signal", "after_seq_id": 3,
        "after_timestamp": None, "first_seq_id": 1, "first_timestamp": None, "released": 1}}
    assert acknowledged == batches[0] + [batches[1][1], batches[1][2]]
    _, _, (without, _) = run_output(lambda r: r, batches, None, False, None)
    assert without == ExitCode.ERROR  # the script's end, not a gap


def test_a_burst_goes_to_the_renderer_in_one_call() -> None:
    calls: list[int] = []

    class Counting(NdjsonRenderer):
        def handle(self, event: ev.Event) -> None:
            raise AssertionError("one call per message")

        def handle_messages(self, messages: Sequence[ev.StreamMessage]) -> None:
            raise AssertionError("NDJSON takes a burst as bytes")

        def handle_ndjson(self, data: bytes) -> None:
            calls.append(data.count(b"\n"))
            super().handle_ndjson(data)

    for burst in ([stream_message(KEYS[0], seq, lines=seq == 3) for seq in range(1, 6)],
                  [stream_run(KEYS[0], 1, 2), stream_message(KEYS[0], 3, True),
                   stream_run(KEYS[0], 4, 2)]):
        calls.clear()
        out = io.BytesIO()
        run, _ = scripted_run(Counting(out), [burst], count=5)
        assert run.run() == ExitCode.OK
        assert calls == [5]
        assert [orjson.loads(line)["seq_id"] for line in out.getvalue().splitlines()] == [
            1, 2, 3, 4, 5]


@pytest.mark.parametrize("renderer", [NdjsonRenderer(io.BytesIO()), HandleOnly(
    NdjsonRenderer(io.BytesIO()))])
def test_messages_handler_uses_the_renderers_own_batch_method_or_handle(renderer: Any) -> None:
    handler = messages_handler(renderer)
    if isinstance(renderer, NdjsonRenderer):
        assert handler == renderer.handle_messages
    handler([stream_message(KEYS[0], 1, lines=False)])
    renderer.flush()
    inner = renderer if isinstance(renderer, NdjsonRenderer) else renderer.renderer
    out = inner._out.stream
    assert isinstance(out, io.BytesIO) and out.getvalue().count(b"\n") == 1


@given(value=st.dictionaries(st.text(max_size=4), json_values, max_size=4),
       newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_a_frame_over_several_lines_is_written_as_one_line_meaning_the_same(
    value: dict[str, Any], newline: str
) -> None:
    """JSON allows a raw line break only as whitespace, so turning each into a space
    keeps the frame's meaning (and every other byte of it)."""
    frame = json.dumps({"msg_type": spec.CHANNEL_SIGNAL, **value}, indent=1).replace(
        "\n", newline).encode()
    message = Envelope(spec.CHANNEL_SIGNAL, {}, data=frame)  # passed through: no payload
    line = line_of(message)
    assert b"\n" not in line and b"\r" not in line and len(line) == len(frame)
    assert orjson.loads(line) == orjson.loads(frame)


def test_a_message_without_frame_bytes_is_encoded_from_raw() -> None:
    raw = {"msg_type": spec.CHANNEL_SIGNAL, "seq_id": 1}
    assert line_of(Envelope(spec.CHANNEL_SIGNAL, {}, raw=raw)) == orjson.dumps(raw)
    assert line_of(Envelope(spec.CHANNEL_SIGNAL, {}, raw=raw, data='{"as": "text"}')) == (
        orjson.dumps(raw))


@pytest.mark.parametrize("burst", [True, False], ids=["burst", "per-event"])
def test_a_batch_whose_write_is_cut_short_is_not_acknowledged(burst: bool) -> None:
    """stdout a raw file on a nearly full disk: the batch's write is short, then fails.
    Nothing of it is acknowledged (the cursor never passes a byte that is not on disk),
    and nothing more is written after the line cut short."""
    from test_sink import ShortWrites

    raw = ShortWrites(step=50, capacity=120)
    batch: list[ev.Event] = [stream_message(KEYS[0], seq, lines=False) for seq in (1, 2, 3)]
    if not burst:
        batch.append(gap(KEYS[0], 3))
    run, engine = scripted_run(NdjsonRenderer(raw), [batch])  # type: ignore[arg-type]
    assert run.run() == ExitCode.OUTPUT_FAILED
    assert engine.acknowledged == []
    assert len(raw.data) == 120
    raw.capacity = None  # space freed: still, closing writes nothing more
    with pytest.raises(OSError, match="No space left on device"):
        run.renderer.close()
    assert len(raw.data) == 120 and run.stdout_lost


def test_a_grouped_commit_failing_as_the_run_ends_is_an_output_failure() -> None:
    """Syncing the appended output before the last grouped commit of the state file
    fails (an I/O error) as the stream closes, after the last write: exit 9 with one line,
    never a traceback."""
    from c2ws.cursors import CommitGroups

    class SyncFails:
        commit_groups = CommitGroups()

        def load(self) -> dict[tuple[int, str], int]:
            return {}

        def commit(self, cursors: object) -> None:
            raise OSError(5, "Input/output error")

    out = io.BytesIO()
    batch: list[ev.Event] = [stream_message(KEYS[0], seq, lines=False) for seq in (1, 2)]
    run, engine = scripted_run(NdjsonRenderer(out), [batch], cursors=SyncFails(), count=2)
    said: list[str] = []
    run.diagnostics.say = lambda text, style="": said.append(text)  # type: ignore[method-assign]
    assert run.run() == ExitCode.OUTPUT_FAILED
    assert out.getvalue().count(b"\n") == 2 and len(engine.acknowledged) == 2
    assert said == ["cannot sync stdout: Input/output error; output ends at "
                    "strategy.signal:1 seq 2"]


def test_the_run_gives_the_heap_back_once_per_so_many_messages_written() -> None:
    """c2ws/cli/heap.py: the CLI's run feeds every batch it writes to its trimmer (here one
    that trims every 4 messages and counts): 10 messages written, two trims."""
    batches = [[stream_message(KEYS[0], seq, False) for seq in range(first, first + 5)]
               for first in (1, 6)]
    out = io.BytesIO()
    run, _ = scripted_run(NdjsonRenderer(out), batches, count=10)
    trims: list[None] = []
    run.heap = HeapTrimmer(4, trim=lambda: trims.append(None))
    assert run.run() == ExitCode.OK
    assert out.getvalue().count(b"\n") == 10
    assert len(trims) == 2
