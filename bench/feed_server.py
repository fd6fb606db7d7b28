"""The benchmark's feed: a C2-like WebSocket server in its own process, on raw sockets.

    python bench/feed_server.py [--host 127.0.0.1]

Driven by the harness over stdin/stdout, one JSON object per line.  It listens once and
serves one connection per job, in order:

stdin  ``{"cmd": "job", "id": ..., "mode": "blast"|"paced"|"idle", "count": N,
          "rate": R, "heartbeat": seconds, "settle": seconds, "strategy": ID,
          "close_after": bool, "timeout": seconds}``, ``{"cmd": "cancel"}``, ``{"cmd": "quit"}``
stdout ``{"event": "listening", "port": P}`` once, then per job ``armed`` (frames encoded,
       accepting), ``upgraded``, ``subscribed``, ``streaming`` (first frame about to be
       written), ``streamed`` (the last frame handed to the kernel), ``closed`` (with the
       counters: heartbeats sent and their send times, acks, server CPU seconds, ...).

Protocol, just enough for a client: any ``Authorization: Bearer`` key is accepted at the
upgrade, ``connection.connected`` follows, every ``subscription.request`` gets a
``subscription.ack`` echoing its ``request_id``, a ``heartbeat`` goes out every
``heartbeat`` seconds and ``heartbeat.ack`` replies are counted, pings get pongs.  The
stream starts ``settle`` seconds after the last ack:

* blast: all ``count`` frames, pre-encoded into one blob, as fast as the socket takes them;
* paced: frame i is due at start + i/rate; its ``BenchSentNs`` is stamped with
  CLOCK_MONOTONIC just before it is written (a late frame goes out at once, stamped late,
  so a slow client never shows up as server lateness in its own latency);
* idle: no stream, heartbeats only.

Control frames only ever go between whole stream frames.  The stream frames of a job are
encoded before it is armed and cached for the next job of the same size.
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


class Connection:
    """One client connection: a write queue of whole frames and a parser for its frames."""

    def __init__(self, sock: socket.socket, job: Job, control: Control) -> None:
        self.sock = sock
        self.job = job
        self.control = control
        self.counters = Counters()
        self.reader = wire.ClientFrameReader()
        self.queue: deque[memoryview] = deque()
        self.queued_bytes = 0
        self.message_number = 0
        self.last_ack_ns: int | None = None
        self.next_heartbeat_ns = time.monotonic_ns() + int(job.heartbeat * 1e9)
        self.deadline_ns = time.monotonic_ns() + int(job.timeout * 1e9)

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
            self.control_frame(
                "subscription.ack",
                request_id=message.get("request_id"),
                payload={key: payload.get(key) for key in ("action", "channel", "strategy_id")},
            )
            self.last_ack_ns = time.monotonic_ns()
            emit("subscribed", id=self.job.id, subscriptions=self.counters.subscriptions)
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
    if not headers.get("authorization", "").lower().startswith("bearer "):
        sock.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        raise JobEnded("upgrade without a Bearer key")
    key = headers.get("sec-websocket-key", "").encode()
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + wire.accept_key(key) + b"\r\n\r\n"
    )


def run_job(job: Job, listener: socket.socket, control: Control, cache: StreamCache) -> None:
    stream = cache.get(job.count, job.strategy) if job.mode in ("blast", "paced") else None
    emit(
        "armed",
        id=job.id,
        envelope_bytes=stream.envelope_bytes if stream else 0,
        frame_bytes=len(stream.blob) if stream else 0,
    )
    cpu_before = time.process_time()
    connection: Connection | None = None
    error: str | None = None
    try:
        sock = accept(listener, control, time.monotonic() + job.timeout)
        with sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            handshake(sock, time.monotonic() + 10)
            emit("upgraded", id=job.id)
            sock.setblocking(False)
            connection = Connection(sock, job, control)
            connection.control_frame("connection.connected")
            try:
                serve(connection, stream)
            except JobEnded as ended:
                error = None if ended.normal else str(ended)
    except JobEnded as ended:
        error = str(ended)
    except OSError as failure:
        error = f"{type(failure).__name__}: {failure}"
    counters = connection.counters if connection else Counters()
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
    )


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


def serve(connection: Connection, stream: wire.Stream | None) -> None:
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
        blast(connection, stream)
    elif stream is not None and job.mode == "paced":
        paced(connection, stream)
    if job.close_after:
        connection.enqueue(wire.server_frame(b"\x03\xe8", wire.OP_CLOSE))
        connection.drain()
        connection.sock.shutdown(socket.SHUT_WR)
    while True:  # hold the connection (heartbeats, acks) until the client goes away
        connection.service(1_000_000_000)


def blast(connection: Connection, stream: wire.Stream) -> None:
    blob = memoryview(stream.blob)
    boundaries = stream.boundaries
    counters = connection.counters
    frame_count = len(boundaries) - 1
    next_frame = 0
    emit("streaming", id=connection.job.id)
    counters.first_send_ns = time.monotonic_ns()
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
        connection.flush_some()
        if next_frame >= frame_count and not connection.queue:
            break
        more = next_frame < frame_count and connection.queued_bytes < BLAST_SLICE_BYTES
        connection.service(0 if more else 1_000_000_000)
    counters.last_send_ns = time.monotonic_ns()
    emit(
        "streamed",
        id=connection.job.id,
        first_ns=counters.first_send_ns,
        last_ns=counters.last_send_ns,
        frames=counters.frames_sent,
    )


def paced(connection: Connection, stream: wire.Stream) -> None:
    blob = stream.blob
    boundaries, stamps = stream.boundaries, stream.stamp_offsets
    counters = connection.counters
    interval_ns = 1e9 / connection.job.rate
    emit("streaming", id=connection.job.id)
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
