"""Write-ahead (issue 22, p99 at 1k msg/s): a lone burst of stream messages is written to
stdout by the socket thread that read it when the output thread is waiting with
everything before done and the write cannot block (c2ws.sinks.ahead); the output thread
counts and acknowledges it afterwards.  Nothing may be lost, doubled or reordered by it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from c2ws import events as ev
from c2ws import spec
from c2ws import stream as library_stream
from c2ws.cli.run import ForwardEvents, SubscribeRun
from c2ws.cli.subscribe import _write_ahead
from c2ws.engine import Engine, EngineConfig
from c2ws.events import SubscriptionKey
from c2ws.exitcodes import ExitCode
from c2ws.net.handoff import Handoff
from c2ws.protocol import Envelope
from c2ws.render.diagnostics import Diagnostics
from c2ws.render.ndjson import NdjsonRenderer
from c2ws.render.sink import ByteSink
from c2ws.sinks.ahead import WriteAhead, unread_bytes, write_ahead_kind
from c2ws.sinks.output import OutputSink
from c2ws.streaming import Batch
from c2ws.testing import TestServer

KEY = "ahead-secret-key-1234"
STRATEGY = 12345678
SIGNALS = SubscriptionKey(STRATEGY, spec.CHANNEL_SIGNAL)
REPO = Path(__file__).resolve().parent.parent

# No heartbeat during a test: a heartbeat handed over beside a message is the consumer's
# to handle, and the in-process test counts exactly what was written ahead.
pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=(STRATEGY,),
                                           heartbeat_interval=30, heartbeat_grace=40,
                                           lifetime=120)


def wait_until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.001)


def message(seq: int, data: bytes | None = None) -> ev.StreamMessage:
    frame = data if data is not None else (
        b'{"msg_type":"signal","seq_id":%d,"payload":{"StrategyId":%d}}' % (seq, STRATEGY))
    return ev.StreamMessage(SIGNALS, Envelope(spec.CHANNEL_SIGNAL, {}, seq_id=seq, data=frame),
                            seq)


def run_of(first: int, count: int) -> ev.StreamRun:
    lines = b"".join(b'{"msg_type":"signal","seq_id":%d}\n' % n
                     for n in range(first, first + count))
    return ev.StreamRun(SIGNALS, lines, count, first + count - 1)


class Recorder:
    """A write-ahead that records what it was given, and says it wrote it (or not)."""

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.calls: list[list[Any]] = []

    def __call__(self, items: list[Any]) -> bool:
        self.calls.append(list(items))
        return self.accept


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    try:
        yield read_end, write_end
    finally:
        for fd in (read_end, write_end):
            with contextlib.suppress(OSError):
                os.close(fd)


def waiting_consumer(handoff: Handoff[Any]) -> tuple[threading.Thread, list[list[Any]]]:
    """A consumer thread blocked in take(), once it is."""
    taken: list[list[Any]] = []
    thread = threading.Thread(target=lambda: taken.append(handoff.take(30)), daemon=True)
    thread.start()
    wait_until(lambda: handoff._consumer_waiting)
    return thread, taken


# --- the hand-off ------------------------------------------------------------------------


def test_the_producer_writes_ahead_only_for_a_waiting_consumer_with_nothing_pending() -> None:
    handoff: Handoff[int] = Handoff(100)
    writer = handoff.write_ahead = Recorder()
    handoff.put([1, 2])  # nobody waiting: the consumer's part stays the consumer's
    assert writer.calls == []
    assert handoff.take(0) == [1, 2] and handoff.taken_written_ahead == 0
    thread, taken = waiting_consumer(handoff)
    handoff.put([3])  # waiting, but 1 and 2 are not done: they come first
    thread.join(10)
    assert taken == [[3]] and writer.calls == [] and handoff.taken_written_ahead == 0
    handoff.done([1, 2, 3])
    thread, taken = waiting_consumer(handoff)
    handoff.put([4, 5])
    handoff.put([6])  # the consumer has not taken 4 and 5 yet: not written ahead
    thread.join(10)
    assert writer.calls == [[4, 5]]
    assert taken == [[4, 5, 6]] and handoff.taken_written_ahead == 2
    assert handoff.backlog == 3  # written ahead is not done: the consumer finishes it


def test_a_refused_write_ahead_leaves_the_items_to_the_consumer() -> None:
    handoff: Handoff[int] = Handoff(100)
    writer = handoff.write_ahead = Recorder(accept=False)
    thread, taken = waiting_consumer(handoff)
    handoff.put([7])
    thread.join(10)
    assert writer.calls == [[7]] and taken == [[7]] and handoff.taken_written_ahead == 0


def test_items_written_ahead_are_never_discarded_as_unwritten() -> None:
    handoff: Handoff[int] = Handoff(100)
    handoff.write_ahead = Recorder()
    handoff._consumer_waiting = True  # (as a consumer about to take would be)
    handoff.put([1, 2])
    handoff._consumer_waiting = False
    handoff.put([3])
    assert handoff.take_written_ahead() == [1, 2]
    assert handoff.discard() == [3]
    handoff._consumer_waiting = True
    handoff.done([1, 2, 3])
    handoff.put([4])
    assert handoff.discard() == []  # written ahead: the stopping consumer counts it


def test_the_engine_hands_a_written_ahead_burst_over_alone() -> None:
    engine = Engine(EngineConfig(url="ws://127.0.0.1:9/ws", api_key="test-key-0001",
                                 keys=[SIGNALS]))
    engine.write_ahead(Recorder())
    handoff = engine.handoff
    handoff._consumer_waiting = True  # (as a consumer about to take would be)
    first = [message(1), run_of(2, 3)]
    handoff.put(first)
    handoff._consumer_waiting = False
    later = [message(5)]
    handoff.put(later)
    batch = engine.next_batch(0)
    assert batch == first and engine.written_ahead
    batch2 = engine.next_batch(0)
    assert batch2 == later and not engine.written_ahead
    engine.acknowledge(batch + batch2)
    assert engine.written == {SIGNALS: 5} and handoff.backlog == 0


def test_write_ahead_is_set_before_the_engine_starts() -> None:
    engine = Engine(EngineConfig(url="ws://127.0.0.1:9/ws", api_key="test-key-0001",
                                 keys=[SIGNALS]))
    engine._started = True
    with pytest.raises(RuntimeError):
        engine.write_ahead(Recorder())


@pytest.mark.parametrize("taken", [False, True], ids=["in-the-hand-off", "in-the-inbox"])
def test_a_stream_stopping_with_a_written_ahead_burst_counts_it_as_written(taken: bool) -> None:
    """An interruption may stop the stream after a burst was written ahead and before it
    was delivered: it is out, so it is delivered and acknowledged, never "not written"."""
    stream = library_stream([STRATEGY], "signal", api_key=KEY, url="ws://127.0.0.1:9/ws")
    engine = Engine(stream.config)  # never started: no connection
    engine.write_ahead(Recorder())
    stream._engine, stream._started = engine, True
    engine.handoff._consumer_waiting = True  # (as a consumer about to take would be)
    engine.handoff.put([message(1), run_of(2, 2)])
    engine.handoff._consumer_waiting = False
    if taken:
        stream._take(engine, 0)
        assert stream._inbox_written_ahead
    stream._stop_engine()
    assert (stream.delivered, stream.undelivered) == (3, 0)
    assert engine.written == {SIGNALS: 3} and engine.handoff.backlog == 0


# --- the writer ----------------------------------------------------------------------------


def rendered(events: list[ev.Event]) -> bytes:
    """What stdout's sink writes of ``events`` through the NDJSON renderer."""
    out = io.BytesIO()
    OutputSink(NdjsonRenderer(out)).write(Batch(list(events)))
    return out.getvalue()


frames = st.one_of(
    st.binary(max_size=120).filter(lambda b: b"\n" not in b and b"\r" not in b),
    st.builds(lambda a, b: a + b"\n" + b, st.binary(max_size=30), st.binary(max_size=30)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(frames.map(lambda f: ("message", f)),
                          st.integers(1, 4).map(lambda n: ("run", n))), min_size=1, max_size=8))
def test_the_bytes_written_ahead_are_the_bytes_the_renderer_writes(
        parts: list[tuple[str, Any]]) -> None:
    events: list[ev.Event] = []
    seq = 1
    for kind, value in parts:
        if kind == "message":
            events.append(message(seq, value))
            seq += 1
        else:
            events.append(run_of(seq, value))
            seq += value
    read_end, write_end = os.pipe()
    try:
        writer = WriteAhead(ByteSink(io.BytesIO()), write_end, "pipe")
        expected = rendered(events)
        wrote = writer(list(events))
        assert wrote == (len(expected) <= select.PIPE_BUF)
        if wrote:
            assert os.read(read_end, 65536) == expected
            assert writer.lines_written == len(Batch(list(events)))
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_pipe_holding_unread_bytes_is_left_to_the_output_thread(
        pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    writer = WriteAhead(ByteSink(io.BytesIO()), write_end, "pipe")
    os.write(write_end, b"x")
    assert unread_bytes(write_end) == 1
    assert not writer([message(1)])
    assert os.read(read_end, 100) == b"x"
    assert writer([message(2)])
    assert os.read(read_end, 1000) == rendered([message(2)])


def test_more_than_pipe_buf_is_left_to_the_output_thread(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    writer = WriteAhead(ByteSink(io.BytesIO()), write_end, "pipe")
    big = run_of(1, 200)
    assert len(big.ndjson) > select.PIPE_BUF
    assert not writer([big])
    assert unread_bytes(read_end) == 0


def test_only_stream_messages_are_written_ahead(pipe: tuple[int, int]) -> None:
    _, write_end = pipe
    writer = WriteAhead(ByteSink(io.BytesIO()), write_end, "pipe")
    gap = ev.GapReported(SIGNALS, 1, None, 5, None, "lost", Envelope(spec.MSG_GAP, {}))
    assert not writer([message(1), gap])
    assert not writer([ev.HeartbeatAnswered(Envelope(spec.MSG_HEARTBEAT, {}))])


def test_a_failed_write_hands_over_for_good_and_marks_nothing(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    sink = ByteSink(io.BytesIO())
    writer = WriteAhead(sink, write_end, "pipe")
    os.close(read_end)  # the reader left: EPIPE (Python ignores SIGPIPE)
    assert not writer([message(1)])
    assert sink.failure is None  # the output thread meets the error itself
    assert not writer([message(2)]) and writer.lines_written == 0


def test_nothing_is_written_ahead_after_stdout_failed(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    sink = ByteSink(io.BytesIO())
    sink.failure = OSError(28, "No space left on device")
    assert not WriteAhead(sink, write_end, "pipe")([message(1)])
    assert unread_bytes(read_end) == 0


def test_which_outputs_may_be_written_ahead(tmp_path: Path, pipe: tuple[int, int]) -> None:
    _, write_end = pipe
    assert write_ahead_kind(write_end) == "pipe"
    with open(os.devnull, "wb") as null:
        assert write_ahead_kind(null.fileno()) == "null"
        assert WriteAhead.of(ByteSink(null)) is not None
    with open(tmp_path / "out.ndjson", "wb") as regular:
        assert write_ahead_kind(regular.fileno()) is None  # a disk may make it wait
        assert WriteAhead.of(ByteSink(regular)) is None
    assert WriteAhead.of(ByteSink(io.BytesIO())) is None  # no descriptor


def test_the_sink_counts_a_written_ahead_batch_without_writing_it() -> None:
    out = io.BytesIO()
    befores: list[tuple[int, object]] = []
    sink = OutputSink(NdjsonRenderer(out), before=lambda n, e: befores.append((n, e)))
    batch = Batch([message(1), run_of(2, 2)])
    batch.written_ahead = True
    sink.write(batch)
    assert out.getvalue() == b"" and befores == [(3, None)]
    assert sink.durable() == [batch]


# --- the stream ------------------------------------------------------------------------------


class MemoryStore:
    """A cursor store (c2ws.cursors.CursorStore) kept in a dict."""

    def __init__(self) -> None:
        self.cursors: dict[tuple[int, str], int] = {}

    def load(self) -> dict[tuple[int, str], int]:
        return dict(self.cursors)

    def commit(self, cursors: Any) -> None:
        self.cursors = dict(cursors)


@pytest.mark.parametrize("options", [{"fail_on_gap": True}, {"select": lambda message: True},
                                     {"cursors": "memory"}])
def test_a_stream_that_decides_per_message_is_never_written_ahead(options: dict[str, Any]
                                                                  ) -> None:
    if options.get("cursors") == "memory":
        options = {"cursors": MemoryStore()}
    stream = library_stream([STRATEGY], api_key=KEY, url="ws://127.0.0.1:9/ws", **options)
    assert not stream.write_ahead(Recorder())


def test_with_a_count_only_a_burst_short_of_it_is_written_ahead() -> None:
    stream = library_stream([STRATEGY], api_key=KEY, url="ws://127.0.0.1:9/ws", count=5)
    writer = Recorder()
    assert stream.write_ahead(writer)
    assert stream._write_ahead is not None
    stream.delivered = 2
    assert stream._write_ahead([message(3), message(4)])  # 4 of 5: short of it
    assert not stream._write_ahead([run_of(3, 3)])  # the fifth ends the stream
    assert writer.calls == [[message(3), message(4)]]


def read_lines(fd: int, count: int, timeout: float = 20) -> list[bytes]:
    """``count`` lines from ``fd``, waiting for them."""
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(data.splitlines())} of {count} lines came"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, "the pipe closed"
            data += chunk
    return data.splitlines()


def waiting_with_nothing_pending(handoff: Handoff[Any]) -> bool:
    with handoff._lock:  # (a put writes ahead before it counts what it queued)
        return handoff.pending == 0 and handoff._consumer_waiting


@pytest.mark.parametrize("count", [None, 20])
def test_the_socket_thread_writes_a_quiet_streams_lines_and_the_run_counts_them(
        server: TestServer, pipe: tuple[int, int], count: int | None) -> None:
    """c2ws subscribe's run in this process over a pipe: each message published while the
    output thread waits is written by the socket thread (with a count, all but the last:
    the output thread ends the run there); the run delivers, counts and acknowledges
    every one, once, in order."""
    read_end, write_end = pipe
    out = os.fdopen(os.dup(write_end), "wb")
    renderer = NdjsonRenderer(ByteSink(out))
    events = ForwardEvents()
    stream = library_stream([STRATEGY], (spec.CHANNEL_SIGNAL,), api_key=KEY, url=server.url,
                            auto_ack=False, on_event=events, count=count)
    writer = _write_ahead(stream, renderer)
    assert writer is not None
    run = SubscribeRun(stream, renderer, Diagnostics(Console(file=io.StringIO())),
                       events=events, count=count)
    result: list[ExitCode] = []
    thread = threading.Thread(target=lambda: result.append(run.run()), daemon=True)
    thread.start()
    try:
        server.wait_for(lambda: any(len(r.subscriptions) == 1
                                    for r in server.connections(open_only=True)), timeout=15)
        published = []
        engine = stream._engine
        assert engine is not None
        for _ in range(20):
            # The output thread has counted the last one and waits again.
            wait_until(lambda: waiting_with_nothing_pending(engine.handoff))
            published.append(server.publish(STRATEGY))
            assert json.loads(read_lines(read_end, 1)[0]) == published[-1]
        if count is None:
            wait_until(lambda: waiting_with_nothing_pending(engine.handoff))
            assert writer.lines_written == 20
            stream.interrupt()
        thread.join(20)
        if count is not None:
            assert writer.lines_written == 19
    finally:
        stream.interrupt()
        thread.join(20)
    out.close()
    assert result == [ExitCode.OK]
    assert run.delivered == 20
    assert stream.cursors == {SIGNALS: published[-1]["seq_id"]}


def c2ws_process(server: TestServer, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("C2_API_KEY", "C2WS_URL")}
    env.update(C2_API_KEY=KEY, C2WS_URL=server.url)
    return subprocess.Popen([sys.executable, "-m", "c2ws", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def test_a_pipe_gets_every_message_once_in_order_lone_or_in_bursts(server: TestServer) -> None:
    """``c2ws subscribe -o ndjson`` into a pipe (write-ahead on), messages one at a time
    and in bursts, then Ctrl-C: every line once, in order, and nothing reported unwritten
    that was written."""
    process = c2ws_process(server, "subscribe", str(STRATEGY), "-c", "signal", "-o", "ndjson")
    assert process.stdout is not None and process.stderr is not None
    try:
        server.wait_for(lambda: any(len(r.subscriptions) == 1
                                    for r in server.connections(open_only=True)), timeout=15)
        fd = process.stdout.fileno()
        lines: list[bytes] = []
        published = []
        for round_ in range(6):
            published.append(server.publish(STRATEGY))
            lines += read_lines(fd, 1)
            burst = [server.publish(STRATEGY) for _ in range(50 * round_)]
            published += burst
            if burst:
                lines += read_lines(fd, len(burst))
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == ExitCode.INTERRUPTED, err
    assert rest == b""
    assert [json.loads(line) for line in lines] == published
    # Every line was read before the signal: none is reported unwritten.  (A batch the
    # output thread had flushed and not yet acknowledged when the signal came is still
    # said to be "being written": it cannot tell a flush from a delivery.)
    assert re.findall(rb"(\d+) more received message\(s\) were not written", err) in ([], [b"0"])
    assert b"Traceback" not in err
