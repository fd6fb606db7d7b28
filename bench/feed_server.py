"""The benchmark's feed: a C2-like WebSocket server in its own process, on raw sockets.

    python bench/feed_server.py [--host 127.0.0.1]

Driven by the harness over stdin/stdout, one JSON object per line.  It listens once and
serves one connection per job, in order (a ``resume`` job: one or more, see below):

stdin  ``{"cmd": "job", "id": ..., "mode": "blast"|"paced"|"idle", "count": N,
          "rate": R, "heartbeat": seconds, "settle": seconds, "strategy": ID,
          "close_after": bool, "timeout": seconds, "resume": bool,
          "heartbeat_after": bool, "connections": N}``, ``{"cmd": "cancel"}``,
       ``{"cmd": "quit"}``
stdout ``{"event": "listening", "port": P}`` once, then per job ``armed`` (frames encoded,
       accepting; ``stale_connections_dropped``: connections left waiting by an earlier
       job's client, closed unserved: see drop_stale_connections), ``upgraded``,
       ``subscribed``, ``streaming`` (first frame about to be written), ``streamed`` (the
       last frame handed to the kernel), ``closed`` (with the counters: heartbeats sent
       and their send times, acks, server CPU seconds, ..., ``connections``, ``resumes``
       and ``gaps_sent``).  Each event but ``armed`` and ``closed`` names its
       ``connection`` (1, 2, ...); a resumed subscription adds ``resumed``.

Protocol, just enough for a client: any ``Authorization: Bearer`` key is accepted at the
upgrade, ``connection.connected`` follows, every ``subscription.request`` gets a
``subscription.ack`` echoing its ``request_id``, a ``heartbeat`` goes out every
``heartbeat`` seconds and ``heartbeat.ack`` replies are counted, pings get pongs.  The
stream starts ``settle`` seconds after the last ack:

* blast: all ``count`` frames, pre-encoded into one blob, as fast as the socket takes them;
* paced: frame i is due at start + i/rate; its ``BenchSentNs`` is stamped with
  CLOCK_MONOTONIC just before it is written (a late frame goes out at once, stamped late,
  so a slow client never shows up as server lateness in its own latency);
* idle: no stream, heartbeats only.  With ``connections`` N > 1 the job serves N
  connections at once (a client spreading its subscriptions over several), each with
  its own heartbeats; ``subscribed`` counts the subscriptions of all of them, and the
  job ends when every one has ended.

A blast ends with a heartbeat when ``heartbeat_after`` is set (the harness sets it for
every blast): C2 sends one every 30 s whatever the stream does, and a client that
buffers its output until it hears from the server (the lean bare loop flushes before
it answers a heartbeat) must not be measured waiting for the next one.

Control frames only ever go between whole stream frames.  The stream frames of a job are
encoded before it is armed and cached for the next job of the same size.

A ``resume`` job (blast only) serves reconnections, like C2 after a disconnect: when a
connection ends, the same job accepts the next one (until it is cancelled or times out),
upgrades it, acks its subscription and goes on with the stream.  Frame k of the blob is
seq_id k, so going on is an offset into it:

* ``resume_from`` = N in the ``subscription.request``: the stream goes on at seq_id N+1.
  The server retains the last ``RETAINED`` (1000, the replay limit) frames it has put on
  a connection; when N+1 is older than those, a ``gap`` shaped like C2's (and like
  c2ws's reference server's: ``from`` = N, the missing range in ``message``) comes first
  and the stream goes on at the oldest retained frame.  The replay is at most 1000
  frames, sent at blast speed, and the rest of the stream follows as live delivery;
  since the window is the replay limit, the "limit exceeded" gap never arises.
* no ``resume_from`` (or 0): live only, the stream goes on after the last frame sent.

The ``closed`` event comes once, at the end of the job, with the counters summed over
its connections.  Jobs without ``resume`` serve one connection, as always.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import select
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import wire

BLAST_SLICE_BYTES = 256 * 1024
HANDSHAKE_LIMIT_BYTES = 16 * 1024
MAX_RECORDED_HEARTBEATS = 100_000
# What a resume job retains behind its send position, and the most it replays (C2's
# replay limit, c2ws.spec.REPLAY_LIMIT: the bench does not import the package it measures).
RETAINED = 1000


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class JobEnded(Exception):
    """The connection of the job is over: ``normal`` when the client left or was told to."""

    def __init__(self, reason: str, *, normal: bool = False) -> None:
        super().__init__(reason)
        self.normal = normal


@dataclass
class Job:
    id: str
    mode: str
    count: int = 0
    rate: float = 1000.0
    heartbeat: float = 30.0
    settle: float = 0.3
    strategy: int = 12345678
    close_after: bool = False
    timeout: float = 120.0
    resume: bool = False
    # blast: a heartbeat right after the last frame (see "A blast ends" above).
    heartbeat_after: bool = False
    # idle: serve this many connections at once (a client spreading its subscriptions).
    connections: int = 1

    @classmethod
    def from_command(cls, command: dict[str, Any]) -> Job:
        known = {name: command[name] for name in cls.__dataclass_fields__ if name in command}
        return cls(**known)


@dataclass
class Counters:
    heartbeats_sent: list[int] = field(default_factory=list)
    heartbeat_acks: int = 0
    subscriptions: int = 0
    other_messages: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    first_send_ns: int | None = None
    last_send_ns: int | None = None
    lateness_ns: list[int] = field(default_factory=list)


@dataclass
class Progress:
    """A job's stream over its connections."""

    reached: int = 0  # frames put on a connection so far: seq_ids 1..reached went out
    connections: int = 0
    resumes: list[int] = field(default_factory=list)  # the resume_from values seen
    gaps_sent: int = 0


class Connection:
    """One client connection: a write queue of whole frames and a parser for its frames.
    The counters are the job's, shared by its connections."""

    def __init__(
        self,
        sock: socket.socket,
        job: Job,
        control: Control,
        counters: Counters,
        deadline_ns: int,
        number: int = 1,
    ) -> None:
        self.sock = sock
        self.job = job
        self.control = control
        self.counters = counters
        self.number = number
        self.reader = wire.ClientFrameReader()
        self.queue: deque[memoryview] = deque()
        self.queued_bytes = 0
        self.message_number = 0
        self.last_ack_ns: int | None = None
        self.resume_from: int | None = None  # of the last subscription.request
        self.next_heartbeat_ns = time.monotonic_ns() + int(job.heartbeat * 1e9)
        self.deadline_ns = deadline_ns

    # -- output --

    def enqueue(self, frame: bytes | memoryview) -> None:
        view = memoryview(frame)
        self.queue.append(view)
        self.queued_bytes += len(view)

    def control_frame(self, msg_type: str, **fields: object) -> None:
        self.message_number += 1
        self.enqueue(
            wire.server_frame(wire.control_message(msg_type, self.message_number, **fields))
        )

    def flush_some(self) -> None:
        """Write what the socket takes now without blocking."""
        while self.queue:
            head = self.queue[0]
            try:
                sent = self.sock.send(head)
            except BlockingIOError:
                return
            except (BrokenPipeError, ConnectionResetError) as error:
                raise JobEnded(f"client went away: {error}", normal=True) from error
            except OSError as error:
                raise JobEnded(f"send failed: {error}") from error
            self.counters.bytes_sent += sent
            self.queued_bytes -= sent
            if sent == len(head):
                self.queue.popleft()
            else:
                self.queue[0] = head[sent:]
                return

    def drain(self) -> None:
        """Until everything queued is in the kernel's hands."""
        self.flush_some()
        while self.queue:
            self.service(1_000_000_000)

    # -- input --

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionResetError as error:
            raise JobEnded(f"client went away: {error}", normal=True) from error
        except OSError as error:
            raise JobEnded(f"recv failed: {error}") from error
        if not data:
            raise JobEnded("client closed the connection", normal=True)
        for frame in self.reader.feed(data):
            self.on_frame(frame)

    def on_frame(self, frame: wire.ClientFrame) -> None:
        if frame.opcode == wire.OP_CLOSE:
            self.enqueue(wire.server_frame(frame.payload[:2], wire.OP_CLOSE))
            self.flush_some()
            raise JobEnded("client sent a close frame", normal=True)
        if frame.opcode == wire.OP_PING:
            self.enqueue(wire.server_frame(frame.payload, wire.OP_PONG))
            return
        if frame.opcode not in (wire.OP_TEXT, wire.OP_BINARY):
            return
        try:
            message = json.loads(frame.payload)
            msg_type = message.get("msg_type")
        except (ValueError, AttributeError):
            self.counters.other_messages += 1
            return
        if msg_type == "heartbeat.ack":
            self.counters.heartbeat_acks += 1
        elif msg_type == "subscription.request":
            self.counters.subscriptions += 1
            payload = message.get("payload") if isinstance(message.get("payload"), dict) else {}
            # resume_from applies to signals: a positions request (c2ws sends both) does
            # not reset it.
            signals = payload.get("channel") == "strategy.signal"
            if signals and payload.get("action") == "subscribe":
                self.resume_from = parse_seq(payload.get("resume_from"))
            self.control_frame(
                "subscription.ack",
                request_id=message.get("request_id"),
                payload={key: payload.get(key) for key in ("action", "channel", "strategy_id")},
            )
            self.last_ack_ns = time.monotonic_ns()
            emit(
                "subscribed",
                id=self.job.id,
                subscriptions=self.counters.subscriptions,
                connection=self.number,
            )
        else:
            self.counters.other_messages += 1

    # -- the loop --

    def service(self, timeout_ns: int) -> None:
        """Wait up to ``timeout_ns`` for the socket or the harness, handling what comes."""
        now = time.monotonic_ns()
        if now >= self.deadline_ns:
            raise JobEnded("job timeout")
        if now >= self.next_heartbeat_ns:
            self.control_frame("heartbeat")
            if len(self.counters.heartbeats_sent) < MAX_RECORDED_HEARTBEATS:
                self.counters.heartbeats_sent.append(now)
            self.next_heartbeat_ns += int(self.job.heartbeat * 1e9)
        self.flush_some()
        wait_ns = max(0, min(timeout_ns, self.next_heartbeat_ns - now, self.deadline_ns - now))
        writers = [self.sock] if self.queue else []
        readable, writable, _ = select.select(
            [self.sock, self.control.fd], writers, [], wait_ns / 1e9
        )
        if self.control.fd in readable:
            self.control.read()
            if self.control.cancelled:
                raise JobEnded("cancelled by the harness", normal=True)
        if self.sock in readable:
            self.on_readable()
        if writable:
            self.flush_some()


class Control:
    """The harness's commands on stdin, read without blocking the connection."""

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno()
        self.pending: deque[dict[str, Any]] = deque()
        self.cancelled = False
        self.quit = False
        self._partial = b""

    def read(self) -> None:
        data = os.read(self.fd, 65536)
        if not data:
            self.quit = self.cancelled = True
            return
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            command = json.loads(line)
            if command.get("cmd") == "cancel":
                self.cancelled = True
            elif command.get("cmd") == "quit":
                self.quit = self.cancelled = True
            else:
                self.pending.append(command)


class StreamCache:
    def __init__(self) -> None:
        self._key: tuple[int, int] | None = None
        self._stream: wire.Stream | None = None

    def get(self, count: int, strategy: int) -> wire.Stream:
        if self._key != (count, strategy) or self._stream is None:
            self._stream = None  # free the previous blob before building the next
            self._stream = wire.build_stream(count, strategy)
            self._key = (count, strategy)
        return self._stream


class NotAnUpgrade(JobEnded):
    """A plain HTTP request (a client's REST call, such as c2ws's positions snapshot for
    its table): answered 404 and left out of the job, which waits for its upgrade."""


def handshake(sock: socket.socket, deadline: float) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk or len(request) > HANDSHAKE_LIMIT_BYTES:
            raise JobEnded("no complete upgrade request")
        request += chunk
    head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    headers = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("upgrade", "").lower() != "websocket":
        sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        raise NotAnUpgrade("a plain HTTP request")
    if not headers.get("authorization", "").lower().startswith("bearer "):
        sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        raise JobEnded("upgrade without a Bearer key")
    key = headers.get("sec-websocket-key", "").encode()
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + wire.accept_key(key) + b"\r\n\r\n"
    )


def drop_stale_connections(listener: socket.socket) -> int:
    """Close every connection already waiting to be accepted; how many there were.

    A job's clients are started once it is armed, so a connection waiting before that is
    left from an earlier job: a client that reconnected after its job had ended (c2ws
    closing for backlog during a plain blast).  Accepted, it would be taken for this
    job's client while the real one waited unserved, and so on, job after job."""
    dropped = 0
    listener.setblocking(False)
    try:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return dropped
            sock.close()
            dropped += 1
    finally:
        listener.setblocking(True)


def run_job(job: Job, listener: socket.socket, control: Control, cache: StreamCache) -> None:
    stream = cache.get(job.count, job.strategy) if job.mode in ("blast", "paced") else None
    stale = drop_stale_connections(listener)
    emit(
        "armed",
        id=job.id,
        envelope_bytes=stream.envelope_bytes if stream else 0,
        frame_bytes=len(stream.blob) if stream else 0,
        stale_connections_dropped=stale,
    )
    cpu_before = time.process_time()
    deadline = time.monotonic() + job.timeout
    counters = Counters()
    progress = Progress()
    error: str | None = None
    try:
        if job.resume and job.mode != "blast":
            raise JobEnded(f"resume is for blast jobs, not {job.mode}")
        if job.connections > 1:
            if job.mode != "idle":
                raise JobEnded(f"several connections are for idle jobs, not {job.mode}")
            serve_idle_connections(job, listener, control, counters, progress, deadline)
        while job.connections <= 1:
            try:
                sock = accept(listener, control, deadline)
            except JobEnded as ended:
                if progress.connections and control.cancelled:
                    break  # a resume job the harness ended between connections
                if progress.connections:
                    raise JobEnded(f"{ended} (waiting for a reconnection)") from None
                raise
            progress.connections += 1
            try:
                ended = serve_connection(sock, job, control, stream, counters, progress,
                                         deadline)
            except NotAnUpgrade:
                progress.connections -= 1
                continue
            if not ended.normal:
                error = str(ended)
                break
            if not job.resume or control.cancelled:
                break
    except JobEnded as ended:
        error = str(ended)
    except OSError as failure:
        error = f"{type(failure).__name__}: {failure}"
    lateness = sorted(counters.lateness_ns)
    emit(
        "closed",
        id=job.id,
        error=error,
        cpu_s=time.process_time() - cpu_before,
        heartbeats_sent=counters.heartbeats_sent,
        heartbeat_acks=counters.heartbeat_acks,
        subscriptions=counters.subscriptions,
        other_messages=counters.other_messages,
        frames_sent=counters.frames_sent,
        bytes_sent=counters.bytes_sent,
        first_send_ns=counters.first_send_ns,
        last_send_ns=counters.last_send_ns,
        lateness_p50_us=lateness[len(lateness) // 2] / 1e3 if lateness else None,
        lateness_p99_us=lateness[int(len(lateness) * 0.99)] / 1e3 if lateness else None,
        connections=progress.connections,
        resumes=progress.resumes,
        gaps_sent=progress.gaps_sent,
    )


def serve_connection(
    sock: socket.socket,
    job: Job,
    control: Control,
    stream: wire.Stream | None,
    counters: Counters,
    progress: Progress,
    deadline: float,
) -> JobEnded:
    """One connection of a job, from the upgrade to its end (returned, not raised).  A
    failed upgrade raises: it ends the job."""
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        handshake(sock, time.monotonic() + 10)
        emit("upgraded", id=job.id, connection=progress.connections)
        sock.setblocking(False)
        # A resume job's connections share its deadline; otherwise the connection has
        # the job's timeout from its upgrade on.
        remaining = deadline - time.monotonic() if job.resume else job.timeout
        deadline_ns = time.monotonic_ns() + int(remaining * 1e9)
        connection = Connection(sock, job, control, counters, deadline_ns, progress.connections)
        connection.control_frame("connection.connected")
        try:
            serve(connection, stream, progress)
        except JobEnded as ended:
            return ended
    raise AssertionError("serve() only ends by JobEnded")


def serve_idle_connections(
    job: Job,
    listener: socket.socket,
    control: Control,
    counters: Counters,
    progress: Progress,
    deadline: float,
) -> None:
    """An idle job of ``job.connections`` connections at once: each is upgraded, acks
    its subscriptions and gets its own heartbeats, until every connection has ended
    (after the last one was accepted), the harness cancels, or the deadline."""
    open_connections: dict[socket.socket, Connection] = {}
    deadline_ns = time.monotonic_ns() + int((deadline - time.monotonic()) * 1e9)
    while True:
        now = time.monotonic_ns()
        if now >= deadline_ns:
            raise JobEnded("job timeout")
        for connection in open_connections.values():
            if now >= connection.next_heartbeat_ns:
                connection.control_frame("heartbeat")
                if len(counters.heartbeats_sent) < MAX_RECORDED_HEARTBEATS:
                    counters.heartbeats_sent.append(now)
                connection.next_heartbeat_ns += int(job.heartbeat * 1e9)
        ended: list[socket.socket] = []
        for sock, connection in open_connections.items():
            try:
                connection.flush_some()
            except JobEnded as end:
                if not end.normal:
                    raise
                ended.append(sock)
        for sock in ended:
            open_connections.pop(sock).sock.close()
        if not open_connections and progress.connections >= job.connections:
            return
        wait_ns = deadline_ns - now
        for connection in open_connections.values():
            wait_ns = min(wait_ns, connection.next_heartbeat_ns - now)
        readers: list[Any] = [control.fd, *open_connections]
        if progress.connections < job.connections:
            readers.append(listener)
        writers = [sock for sock, connection in open_connections.items() if connection.queue]
        readable, _, _ = select.select(readers, writers, [], max(0, wait_ns) / 1e9)
        if control.fd in readable:
            control.read()
            if control.cancelled:
                return
        if listener in readable:
            sock, _ = listener.accept()
            progress.connections += 1
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                handshake(sock, time.monotonic() + 10)
            except NotAnUpgrade:
                sock.close()
                progress.connections -= 1
                continue
            except (JobEnded, OSError):
                sock.close()
                raise
            emit("upgraded", id=job.id, connection=progress.connections)
            sock.setblocking(False)
            connection = Connection(
                sock, job, control, counters, deadline_ns, progress.connections
            )
            connection.control_frame("connection.connected")
            open_connections[sock] = connection
        for sock in readable:
            connection = open_connections.get(sock)
            if connection is None:
                continue
            try:
                connection.on_readable()
            except JobEnded as end:
                if not end.normal:
                    raise
                open_connections.pop(sock).sock.close()


def parse_seq(value: object) -> int | None:
    """A ``resume_from``: an integer or its string (the docs' type), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def resume_point(connection: Connection, progress: Progress) -> int:
    """The index of this connection's first stream frame (seq_id = index + 1): after
    ``resume_from``, or after a ``gap`` at the oldest retained frame, or live."""
    resume_from = connection.resume_from
    if not resume_from or resume_from < 0:
        return progress.reached  # live only
    progress.resumes.append(resume_from)
    oldest = max(0, progress.reached - RETAINED)  # index of the oldest retained frame
    start = min(resume_from, progress.reached)  # at or beyond the newest: nothing to replay
    gap = start < oldest
    if gap:
        # The shape of c2ws/server/core.py's gap for a resume_from older than its history.
        connection.control_frame(
            "gap",
            payload={
                "strategy_id": None,
                "channel": f"strategy.signal:{connection.job.strategy}",
                "from": str(resume_from),
                "message": f"Signals {resume_from + 1} to {oldest} are no longer retained",
            },
        )
        progress.gaps_sent += 1
        start = oldest
    emit(
        "resumed",
        id=connection.job.id,
        connection=connection.number,
        resume_from=resume_from,
        first_seq=start + 1,
        replayed=progress.reached - start,
        gap=gap,
    )
    return start


def accept(listener: socket.socket, control: Control, deadline: float) -> socket.socket:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise JobEnded("no client connected")
        readable, _, _ = select.select([listener, control.fd], [], [], remaining)
        if control.fd in readable:
            control.read()
            if control.cancelled:
                raise JobEnded("cancelled before a client connected")
        if listener in readable:
            sock, _ = listener.accept()
            return sock


def serve(connection: Connection, stream: wire.Stream | None, progress: Progress) -> None:
    job = connection.job
    # Subscriptions first; the stream starts once acks have stopped coming for `settle`.
    while connection.last_ack_ns is None or (
        time.monotonic_ns() - connection.last_ack_ns < job.settle * 1e9
    ):
        wait = (
            0.05e9
            if connection.last_ack_ns is None
            else (connection.last_ack_ns + job.settle * 1e9 - time.monotonic_ns())
        )
        connection.service(int(max(0, wait)))
    if stream is not None and job.mode == "blast":
        start = resume_point(connection, progress) if job.resume else 0
        blast(connection, stream, start, progress)
        if job.heartbeat_after:
            connection.control_frame("heartbeat")
            connection.flush_some()
    elif stream is not None and job.mode == "paced":
        paced(connection, stream)
    if job.close_after:
        connection.enqueue(wire.server_frame(b"\x03\xe8", wire.OP_CLOSE))
        connection.drain()
        connection.sock.shutdown(socket.SHUT_WR)
    while True:  # hold the connection (heartbeats, acks) until the client goes away
        connection.service(1_000_000_000)


def blast(connection: Connection, stream: wire.Stream, start: int, progress: Progress) -> None:
    """Frames ``start`` to the end, as fast as the socket takes them."""
    blob = memoryview(stream.blob)
    boundaries = stream.boundaries
    counters = connection.counters
    frame_count = len(boundaries) - 1
    next_frame = start
    emit("streaming", id=connection.job.id, connection=connection.number)
    began_ns = time.monotonic_ns()
    if counters.first_send_ns is None:
        counters.first_send_ns = began_ns
    while next_frame < frame_count or connection.queue:
        if next_frame < frame_count and connection.queued_bytes < BLAST_SLICE_BYTES:
            # A slice of whole frames, so a heartbeat or an ack can go out after it.
            start = boundaries[next_frame]
            last = max(
                next_frame + 1, bisect.bisect_right(boundaries, start + BLAST_SLICE_BYTES) - 1
            )
            last = min(last, frame_count)
            connection.enqueue(blob[start : boundaries[last]])
            counters.frames_sent += last - next_frame
            next_frame = last
            if next_frame > progress.reached:
                progress.reached = next_frame
        connection.flush_some()
        if next_frame >= frame_count and not connection.queue:
            break
        more = next_frame < frame_count and connection.queued_bytes < BLAST_SLICE_BYTES
        connection.service(0 if more else 1_000_000_000)
    counters.last_send_ns = time.monotonic_ns()
    emit(
        "streamed",
        id=connection.job.id,
        first_ns=began_ns,
        last_ns=counters.last_send_ns,
        frames=frame_count - start,
        connection=connection.number,
    )


def paced(connection: Connection, stream: wire.Stream) -> None:
    blob = stream.blob
    boundaries, stamps = stream.boundaries, stream.stamp_offsets
    counters = connection.counters
    interval_ns = 1e9 / connection.job.rate
    emit("streaming", id=connection.job.id, connection=connection.number)
    start_ns = time.monotonic_ns()
    counters.first_send_ns = start_ns
    for index in range(len(boundaries) - 1):
        due = start_ns + int(index * interval_ns)
        now = time.monotonic_ns()
        while now < due:
            connection.service(due - now)
            now = time.monotonic_ns()
        begin, stamp = boundaries[index], stamps[index]
        now = time.monotonic_ns()
        connection.enqueue(
            blob[begin:stamp]
            + b"%019d" % now
            + blob[stamp + wire.STAMP_WIDTH : boundaries[index + 1]]
        )
        counters.lateness_ns.append(now - due)
        counters.frames_sent += 1
        connection.flush_some()
    connection.drain()
    counters.last_send_ns = time.monotonic_ns()
    emit(
        "streamed",
        id=connection.job.id,
        first_ns=counters.first_send_ns,
        last_ns=counters.last_send_ns,
        frames=counters.frames_sent,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, 0))
    listener.listen(16)
    emit("listening", port=listener.getsockname()[1], pid=os.getpid())
    control = Control()
    cache = StreamCache()
    while not control.quit:
        if not control.pending:
            readable, _, _ = select.select([control.fd], [], [], 600)
            if not readable:
                break  # nobody has asked for anything in 10 minutes: the harness is gone
            control.read()
            continue
        command = control.pending.popleft()
        control.cancelled = False
        run_job(Job.from_command(command), listener, control, cache)


if __name__ == "__main__":
    main()
