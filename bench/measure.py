"""One measurement of one client: start it against a feed job, watch it, stop it.

Every function returns a plain dict for results.json: the figures, or ``error`` with the
client's exit status and the tail of its stderr.  Times are CLOCK_MONOTONIC nanoseconds,
which the feed server process and this one share.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wire
from clients import Launch, Sink, child_env
from feedctl import BENCH, STRATEGY_ID, FeedServer, Job

PTY_ROWS, PTY_COLUMNS = 40, 160
READ_BYTES = 1 << 20
WCHAR_POLL_SECONDS = 0.002
# A file sink is read back every this often when nothing new is in it.
FOLLOW_POLL_SECONDS = 0.002
# /dev/null sink: the output is complete when the client has written this share of the
# stream's text and then nothing for QUIET_SECONDS (or nothing at all for GIVE_UP_QUIET).
EXPECTED_OUTPUT_SHARE = 0.95
QUIET_SECONDS = 0.3
GIVE_UP_QUIET_SECONDS = 3.0
# A throughput run whose client has written nothing for this long has stopped: it ends
# then, with what it saw, instead of at the run's deadline (minutes for a 200k blast).
STOPPED_WRITING_SECONDS = 30.0
STDERR_TAIL_BYTES = 600
# Ignore output-token matches that straddle reads: keep this much of the previous read.
TOKEN_TAIL_BYTES = 64
# A stream message's seq_id in a client's output line (raw envelope or re-encoded), and
# a gap message (c2ws writes the server's gap to stdout).  "after_seq_id" does not match.
SEQ_PATTERN = re.compile(rb'"seq_id": ?(\d+)')
GAP_TOKEN = re.compile(rb'"msg_type": ?"gap"')

Result = dict[str, Any]


class MeasureError(RuntimeError):
    pass


# --- the client process ---------------------------------------------------------------


@dataclass
class Running:
    launch: Launch
    sink: Sink
    proc: subprocess.Popen[bytes]
    home: tempfile.TemporaryDirectory[str]
    stderr_path: Path
    out_fd: int | None
    in_fd: int | None
    enter: bytes = b"\n"
    # A file the client appends to (sink "file"): read as it grows, like tail -f.
    follow: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def type_line(self, line: bytes) -> None:
        if self.in_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.in_fd, line.rstrip(b"\n") + self.enter)


def start(launch: Launch, sink: Sink) -> Running:
    home = tempfile.TemporaryDirectory(prefix="c2bench-")
    stderr_path = Path(home.name) / "stderr"
    env = child_env(launch.env, Path(home.name))
    argv = [argument.replace("{home}", home.name) for argument in launch.argv]
    if sink == "pty":
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", PTY_ROWS, PTY_COLUMNS, 0, 0))
        env.update({"TERM": "xterm-256color", "COLUMNS": str(PTY_COLUMNS), "LINES": str(PTY_ROWS)})
        proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        return Running(launch, sink, proc, home, stderr_path, master, master, b"\r")
    if sink == "file":
        # `>> file`: stdout opened for appending to a regular file, read back as it grows.
        output_path = Path(home.name) / "output"
        with open(stderr_path, "wb") as stderr, open(output_path, "ab") as output:
            proc = subprocess.Popen(
                argv,
                env=env,
                stderr=stderr,
                stdin=subprocess.PIPE if launch.needs_stdin else subprocess.DEVNULL,
                stdout=output,
            )
        in_fd = proc.stdin.fileno() if proc.stdin else None
        read_fd = os.open(output_path, os.O_RDONLY)
        running = Running(launch, sink, proc, home, stderr_path, read_fd, in_fd, follow=True)
        if launch.initial_input:
            running.type_line(launch.initial_input)
        return running
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            argv,
            env=env,
            stderr=stderr,
            stdin=subprocess.PIPE if launch.needs_stdin else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if sink == "null" else subprocess.PIPE,
        )
    out_fd = proc.stdout.fileno() if proc.stdout else None
    in_fd = proc.stdin.fileno() if proc.stdin else None
    running = Running(launch, sink, proc, home, stderr_path, out_fd, in_fd)
    if launch.initial_input:
        running.type_line(launch.initial_input)
    return running


def stop(running: Running) -> Result:
    """End the client (SIGTERM, then SIGKILL) and report how it had ended, if it had."""
    exited_by_itself = running.proc.poll()
    if exited_by_itself is None:
        running.proc.terminate()
        try:
            running.proc.wait(5)
        except subprocess.TimeoutExpired:
            running.proc.kill()
            running.proc.wait(5)
    for stream in (running.proc.stdin, running.proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    if running.sink in ("pty", "file") and running.out_fd is not None:
        with contextlib.suppress(OSError):
            os.close(running.out_fd)
    tail = ""
    with contextlib.suppress(OSError):
        tail = running.stderr_path.read_bytes()[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")
    running.home.cleanup()
    return {"exited_by_itself": exited_by_itself, "stderr_tail": tail}


@dataclass
class SeqTally:
    """Which of seq_ids 1..count a client wrote, how often, and in what order."""

    count: int
    seen: bytearray = field(init=False)
    unique: int = 0
    duplicates: int = 0
    out_of_order: int = 0  # a new seq_id below one written before it
    outside: int = 0  # a seq_id that is not in 1..count
    gap_lines: int = 0
    last: int = 0

    def __post_init__(self) -> None:
        self.seen = bytearray(self.count + 1)

    def take(self, lines: bytes, end: int) -> None:
        """Complete lines: ``lines[:end]``."""
        seen, count, last = self.seen, self.count, self.last
        for match in SEQ_PATTERN.finditer(lines, 0, end):
            seq = int(match.group(1))
            if not 0 < seq <= count:
                self.outside += 1
            elif seen[seq]:
                self.duplicates += 1
            else:
                seen[seq] = 1
                self.unique += 1
                if seq < last:
                    self.out_of_order += 1
                last = max(last, seq)
        self.last = last
        self.gap_lines += len(GAP_TOKEN.findall(lines, 0, end))

    @property
    def complete_in_order(self) -> bool:
        return (
            self.unique == self.count
            and not self.duplicates
            and not self.out_of_order
            and not self.outside
        )

    def first_missing(self) -> int | None:
        index = self.seen.find(0, 1)
        return None if index < 0 else index


@dataclass
class Pump:
    """Reads a client's output as it comes: counts messages, finds the end marker and the
    latency stamps (or tallies the seq_ids), and plays the shell user for the
    command-line tools."""

    running: Running
    want_stamps: bool = False
    seq_tally: SeqTally | None = None
    count: int = 0
    lines: int = 0  # newlines: the rows of a CSV/TSV output (plus its header)
    end_seen_ns: int | None = None
    eof: bool = False
    latencies_ns: list[int] = field(default_factory=list)
    _tail: bytes = b""
    _lines: bytes = b""
    _subscribed: bool = False

    def step(self, timeout: float) -> bool:
        """One read (waiting up to ``timeout`` s); False when nothing came."""
        fd = self.running.out_fd
        if fd is None or self.eof:
            time.sleep(timeout)
            return False
        if self.running.follow:
            return self._follow(fd, timeout)
        readable, _, _ = select.select([fd], [], [], max(0.0, timeout))
        if not readable:
            return False
        try:
            chunk = os.read(fd, READ_BYTES)
        except OSError:  # a pty whose other end is gone reads as EIO
            chunk = b""
        now = time.monotonic_ns()
        if not chunk:
            self.eof = True
            return False
        self._take(chunk, now)
        return True

    def _follow(self, fd: int, timeout: float) -> bool:
        """A read of the file the client appends to; at its current end, a pause of up
        to FOLLOW_POLL_SECONDS (a regular file is always "readable")."""
        chunk = os.read(fd, READ_BYTES)
        now = time.monotonic_ns()
        if chunk:
            self._take(chunk, now)
            return True
        if self.running.proc.poll() is not None:
            last = os.read(fd, READ_BYTES)  # written between that read and the exit
            if last:
                self._take(last, time.monotonic_ns())
                return True
            self.eof = True
            return False
        time.sleep(min(max(0.0, timeout), FOLLOW_POLL_SECONDS))
        return False

    def _take(self, chunk: bytes, now: int) -> None:
        tail, data = self._tail, self._tail + chunk
        self.lines += chunk.count(b"\n")
        self.count += data.count(wire.COUNT_TOKEN) - tail.count(wire.COUNT_TOKEN)
        if self.end_seen_ns is None and wire.END_MARKER in data:
            self.end_seen_ns = now
        launch = self.running.launch
        if launch.harness_acks_heartbeats:
            for _ in range(data.count(wire.HEARTBEAT_TYPE) - tail.count(wire.HEARTBEAT_TYPE)):
                self.running.type_line(wire.heartbeat_ack())
        if launch.subscribe_when and not self._subscribed and launch.subscribe_when in data:
            self._subscribed = True
            self.running.type_line(wire.subscription_request(STRATEGY_ID))
        self._tail = data[-TOKEN_TAIL_BYTES:]
        if self.want_stamps or self.seq_tally is not None:
            lines = self._lines + chunk
            cut = lines.rfind(b"\n")
            if cut >= 0:
                if self.want_stamps:
                    for match in wire.STAMP_PATTERN.finditer(lines, 0, cut):
                        self.latencies_ns.append(now - int(match.group(1)))
                if self.seq_tally is not None:
                    self.seq_tally.take(lines, cut)
                lines = lines[cut + 1 :]
            self._lines = lines

    def until(self, done: Any, deadline: float, quiet: float | None = None) -> bool:
        """Pump until ``done()`` is true (True), or EOF / the deadline / ``quiet``
        seconds without any output (False)."""
        last_output = time.monotonic()
        while not done():
            now = time.monotonic()
            if self.eof or now > deadline or (quiet is not None and now - last_output > quiet):
                return bool(done())
            if self.step(min(0.5, max(0.0, deadline - now))):
                last_output = time.monotonic()
        return True


def failure(message: str, running: Running | None = None, stopped: Result | None = None) -> Result:
    result: Result = {"error": message}
    if running is not None and stopped is None:
        stopped = stop(running)
    if stopped:
        result.update(stopped)
    return result


# --- /proc readings --------------------------------------------------------------------


def wchar(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return None
    match = re.search(r"^wchar: (\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def cpu_ns(pid: int) -> int | None:
    """CPU time of all the process's live threads: /proc/<pid>/task/*/schedstat (ns),
    falling back to /proc/<pid>/stat utime + stime (clock ticks)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        for task in tasks:
            with contextlib.suppress(OSError):
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        if total:
            return total
    except OSError:
        return None
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def faults(pid: int) -> tuple[int, int] | None:
    """(minor, major) page faults of the whole process so far (/proc/<pid>/stat)."""
    fields = _stat_fields(pid)
    return None if fields is None else (int(fields[7]), int(fields[9]))


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state first), None once the
    process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in KiB (empty once the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    found = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.MULTILINE))
    return {key: int(value) for key, value in found.items()}


# --- measurements -----------------------------------------------------------------------


def throughput(
    server: FeedServer,
    launch: Launch,
    sink: Sink,
    count: int,
    settle: float,
    end_by_marker: bool = False,
    max_seconds: float | None = None,
) -> Result:
    """Messages per second from the server's first stream frame to the last message out.

    pipe, pty and file: the moment the harness reads the last message (pipe: the count
    of ``BenchSentNs`` reaches ``count``; pty, file and ``end_by_marker``: the end
    marker appears, for outputs without the stamp field such as CSV).  null: the
    client's last write() (its /proc/<pid>/io wchar stops growing, polled every 2 ms).

    ``max_seconds`` (not for null): a client still short of the last message that long
    after its start is measured on what it has written by then (``partial``, with a
    note): a mode running at a few hundred messages per second would otherwise hold the
    run for minutes, and its rate is steady long before.

    The job serves reconnections (a ``resume`` job, as in the stall run): a client that
    closes during the blast (c2ws past ``--max-buffer`` when its reader falls behind on
    a loaded machine) and comes back with ``resume_from`` is served, and the run says so
    (``reconnections``, a note).  Messages lost on the way (a resume older than the feed
    server retains) make it an error: "client reconnected: ..." with what it saw.  A
    client that writes nothing for STOPPED_WRITING_SECONDS ends the run at once."""
    deadline = time.monotonic() + 30 + count / 1000
    job = server.start_job(
        "blast",
        count=count,
        settle=settle,
        heartbeat=30.0,
        heartbeat_after=True,
        timeout=deadline - time.monotonic() + 30,
        resume=True,
    )
    armed = job.get("armed") or {}
    running = start(launch, sink)
    cap = None if max_seconds is None else time.monotonic() + max_seconds
    output_bytes: int | None = None
    note = ""
    received = count
    if sink == "null":
        end_ns, output_bytes, note = _wait_output_quiet(
            running, job, armed["envelope_bytes"], deadline
        )
        if end_ns is None:
            return _failed_resume_job(job, failure(note, running))
    else:
        pump = Pump(running)
        by_marker = end_by_marker or sink in ("pty", "file")

        def complete() -> bool:
            if by_marker:
                return pump.end_seen_ns is not None
            # A client that reconnected past a gap never writes every message: the last
            # one (the end marker) ends its run too.
            return pump.count >= count or (pump.end_seen_ns is not None and _reconnecting(job))

        finished = pump.until(
            complete, deadline if cap is None else min(deadline, cap), STOPPED_WRITING_SECONDS
        )
        if finished and not by_marker and pump.count < count:
            # The rest of the last line (the marker comes before its stamp).
            pump.until(lambda: pump.count >= count, min(deadline, time.monotonic() + 2), 1.0)
        end_ns = pump.end_seen_ns if by_marker else time.monotonic_ns()
        seen = pump.count or pump.lines
        if not finished and cap is not None and time.monotonic() >= cap and seen:
            end_ns, received = time.monotonic_ns(), seen
            note = f"partial: {seen:,} of {count:,} messages in the {max_seconds:g} s cap"
        elif not finished or end_ns is None:
            if pump.eof:
                why = " (output closed)"
            elif time.monotonic() > deadline:
                why = " by the deadline"
            else:
                why = f" (then nothing for {STOPPED_WRITING_SECONDS:g} s)"
            return _failed_resume_job(job, failure(f"saw {seen} of {count} messages{why}", running))
        elif not by_marker and pump.count < count:
            return _failed_resume_job(
                job,
                failure(f"saw {pump.count} of {count} messages (the last one came out)", running),
            )
    stopped = stop(running)
    closed = job.end()
    first_ns = closed.get("first_send_ns")
    if not first_ns:
        return failure("the server never started the stream", stopped=stopped)
    elapsed = (end_ns - first_ns) / 1e9
    result: Result = {
        "msgs_per_s": received / elapsed,
        "seconds": elapsed,
        "count": count,
        "server_cpu_share": closed["cpu_s"] / elapsed if elapsed > 0 else None,
    }
    if received != count:
        result["partial"] = True
        result["received"] = received
    if output_bytes is not None:
        result["output_bytes"] = output_bytes
    if note:
        result["note"] = note
    return _reconnected(result, closed)


def _reconnecting(job: Job) -> bool:
    """The job's client has come back on a second connection."""
    return ((job.get("upgraded") or {}).get("connection") or 1) > 1


def _reconnected(result: Result, closed: dict[str, Any]) -> Result:
    """A throughput run whose client reconnected during the blast says so: how often, and
    from where it resumed (its figure includes the close and the resume)."""
    connections = closed.get("connections") or 0
    if connections <= 1:
        return result
    resumes = closed.get("resumes") or []
    gaps = closed.get("gaps_sent") or 0
    told = (
        f"client reconnected {connections - 1} time(s) during the blast, resumed from "
        f"seq {', '.join(map(str, resumes)) or 'nothing'}"
        + (f", past {gaps} gap(s)" if gaps else "")
    )
    result["reconnections"] = connections - 1
    if "error" in result:
        result["error"] = f"{told}: {result['error']}"
    else:
        result["note"] = f"{told}; {result['note']}" if result.get("note") else told
    return result


def _wait_output_quiet(
    running: Running, job: Job, expected: int, deadline: float
) -> tuple[int | None, int | None, str]:
    last = wchar(running.pid) or 0
    last_growth = time.monotonic_ns()
    while time.monotonic() < deadline:
        time.sleep(WCHAR_POLL_SECONDS)
        current = wchar(running.pid)
        now = time.monotonic_ns()
        if current is None or running.proc.poll() is not None:
            return None, last, f"client exited (status {running.proc.poll()}) after {last} bytes"
        if current != last:
            last, last_growth = current, now
            continue
        if job.get("streamed") is None:
            continue
        quiet = (now - last_growth) / 1e9
        if last >= expected * EXPECTED_OUTPUT_SHARE and quiet >= QUIET_SECONDS:
            return last_growth, last, ""
        if quiet >= GIVE_UP_QUIET_SECONDS:
            return (
                last_growth,
                last,
                (
                    f"wrote {last} bytes, less than {EXPECTED_OUTPUT_SHARE:.0%} of the stream's "
                    f"{expected}: the end is the last write before {GIVE_UP_QUIET_SECONDS:.0f} s "
                    "of silence"
                ),
            )
    return None, last, f"still writing at the deadline ({last} bytes)"


def _failed_job(job: Job, result: Result) -> Result:
    closed = job.finish(timeout=2.0)
    if closed.get("error"):
        result["server_error"] = closed["error"]
    return result


def _failed_resume_job(job: Job, result: Result) -> Result:
    """:func:`_failed_job` for a ``resume`` job, saying whether the client reconnected."""
    closed = job.end()
    if closed.get("error"):
        result["server_error"] = closed["error"]
    return _reconnected(result, closed)


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


LOADS = ("pinned", "free", "none")


@contextlib.contextmanager
def busy_core(load: str) -> Iterator[subprocess.Popen[bytes] | None]:
    """Another process keeping one core busy (a Python busy loop) for the duration:
    ``pinned`` to the highest-numbered CPU the harness may use, ``free`` wherever the
    scheduler puts it, ``none`` for no load."""
    if load == "none":
        yield None
        return
    busy = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if load == "pinned":
            os.sched_setaffinity(busy.pid, {max(os.sched_getaffinity(0))})
        yield busy
    finally:
        busy.kill()
        busy.wait(10)


def latency(
    server: FeedServer,
    launch: Launch,
    rate: float,
    count: int,
    settle: float,
    load: str = "none",
) -> Result:
    """Server send stamp to the harness's os.read of the line, at a paced ``rate``,
    while ``load`` (see busy_core) keeps a core busy."""
    expected_seconds = count / rate
    deadline = time.monotonic() + 20 + 3 * expected_seconds
    job = server.start_job(
        "paced",
        count=count,
        rate=rate,
        settle=settle,
        heartbeat=30.0,
        timeout=deadline - time.monotonic() + 30,
    )
    with busy_core(load) as busy:
        busy_before, busy_began = (cpu_ns(busy.pid) if busy else None), time.monotonic_ns()
        running = start(launch, "pipe")
        pump = Pump(running, want_stamps=True)
        pump.until(lambda: len(pump.latencies_ns) >= count, deadline)
        busy_after, busy_ended = (cpu_ns(busy.pid) if busy else None), time.monotonic_ns()
        stopped = stop(running)
    closed = job.finish()
    samples = sorted(value / 1e6 for value in pump.latencies_ns)
    if not samples:
        return failure(f"no stamped message came back ({pump.count} counted)", stopped=stopped)
    result: Result = {
        "p50_ms": percentile(samples, 0.50),
        "p99_ms": percentile(samples, 0.99),
        "p999_ms": percentile(samples, 0.999),
        "max_ms": samples[-1],
        "received": len(samples),
        "expected": count,
        "rate": rate,
        "server_lateness_p99_us": closed.get("lateness_p99_us"),
        "load": load,
    }
    if busy_before is not None and busy_after is not None:
        # How much of a core the busy loop really had: the load it put on the run.
        result["busy_core_share"] = (busy_after - busy_before) / (busy_ended - busy_began)
    if len(samples) < count:
        result["note"] = f"only {len(samples)} of {count} messages by the deadline"
    return result


def idle(
    server: FeedServer,
    launch: Launch,
    interval: float,
    seconds: float,
    warmup: float,
    trace: bool = False,
) -> Result:
    """CPU (and with ``trace``, syscalls) per heartbeat of a subscribed, otherwise idle
    client, over a window of ``seconds`` of heartbeats every ``interval`` seconds."""
    job = server.start_job("idle", heartbeat=interval, timeout=warmup + seconds + 60)
    running = start(launch, "pipe")
    pump = Pump(running)
    subscribed = pump.until(lambda: job.get("subscribed") is not None, time.monotonic() + 30)
    if not subscribed:
        return _failed_job(job, failure("never subscribed", running))
    pump.until(lambda: False, time.monotonic() + warmup)
    tracer: subprocess.Popen[bytes] | None = None
    trace_path = Path(running.home.name) / "strace.txt"
    trace_start = time.monotonic_ns()
    if trace:
        tracer = subprocess.Popen(
            ["strace", "-c", "-f", "-o", str(trace_path), "-p", str(running.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _wait_for_attach(tracer)
        pump.until(lambda: False, time.monotonic() + 0.1)  # the other threads
    cpu_before, window_start = cpu_ns(running.pid), time.monotonic_ns()
    pump.until(lambda: False, time.monotonic() + seconds)
    cpu_after, window_end = cpu_ns(running.pid), time.monotonic_ns()
    syscalls: dict[str, int] = {}
    if tracer is not None:
        # strace counted from its attach (just after trace_start) to this signal.
        window_start, window_end = trace_start, time.monotonic_ns()
        tracer.send_signal(signal.SIGINT)
        try:
            tracer.wait(15)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait(5)
        syscalls = parse_strace_summary(trace_path.read_text() if trace_path.exists() else "")
    alive = running.proc.poll() is None
    stopped = stop(running)
    closed = job.finish()
    beats = [t for t in closed["heartbeats_sent"] if window_start <= t < window_end]
    if not alive:
        return failure("client exited during the idle window", stopped=stopped)
    if not beats or cpu_before is None or cpu_after is None:
        return failure("no heartbeat in the window, or no CPU reading", stopped=stopped)
    result: Result = {
        "heartbeats": len(beats),
        "window_s": (window_end - window_start) / 1e9,
        "acks": closed["heartbeat_acks"],
        "heartbeats_sent": len(closed["heartbeats_sent"]),
    }
    if trace:
        result["syscalls_total"] = syscalls.get("total", 0)
        result["syscalls_per_heartbeat"] = syscalls.get("total", 0) / len(beats)
        result["syscalls_top"] = {
            name: calls / len(beats)
            for name, calls in sorted(syscalls.items(), key=lambda item: -item[1])
            if name != "total"
        }
        if not syscalls:
            result["note"] = "strace produced no summary"
    else:
        result["cpu_us_per_heartbeat"] = (cpu_after - cpu_before) / 1e3 / len(beats)
    return result


def idle_side_by_side(
    launchers: dict[str, Callable[[str], Launch]],
    interval: float,
    seconds: float,
    warmup: float,
) -> dict[str, Result]:
    """CPU per heartbeat of every client at once, each subscribed and otherwise idle on a
    feed server of its own, read over the same window.  A heartbeat costs tens of
    microseconds, mostly cache misses and wake-ups, which the machine's state (other
    tenants, clock speed) moves by 2x from one minute to the next: measured one after the
    other, clients compared each other's luck; side by side they share it.  Their
    combined load is a few percent of one core."""
    results: dict[str, Result] = {}
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(FeedServer()) for name in launchers}
        jobs = {
            name: server.start_job("idle", heartbeat=interval, timeout=warmup + seconds + 90)
            for name, server in servers.items()
        }
        running = {name: start(launchers[name](servers[name].url), "pipe")
                   for name in launchers}
        pumps = {name: Pump(run) for name, run in running.items()}
        _pump_together(
            pumps.values(),
            lambda: all(job.get("subscribed") is not None for job in jobs.values()),
            time.monotonic() + 30,
        )
        _pump_together(pumps.values(), lambda: False, time.monotonic() + warmup)
        subscribed = {name for name, job in jobs.items() if job.get("subscribed") is not None}
        before = {name: cpu_ns(run.pid) for name, run in running.items()}
        window_start = time.monotonic_ns()
        _pump_together(pumps.values(), lambda: False, time.monotonic() + seconds)
        after = {name: cpu_ns(run.pid) for name, run in running.items()}
        window_end = time.monotonic_ns()
        alive = {name: run.proc.poll() is None for name, run in running.items()}
        for name, run in running.items():
            stopped = stop(run)
            closed = jobs[name].finish()
            beats = [t for t in closed["heartbeats_sent"] if window_start <= t < window_end]
            cpu_before, cpu_after = before[name], after[name]
            if name not in subscribed:
                results[name] = failure("never subscribed", stopped=stopped)
            elif not alive[name]:
                results[name] = failure("client exited during the idle window", stopped=stopped)
            elif not beats or cpu_before is None or cpu_after is None:
                results[name] = failure("no heartbeat in the window, or no CPU reading",
                                        stopped=stopped)
            else:
                results[name] = {
                    "heartbeats": len(beats),
                    "window_s": (window_end - window_start) / 1e9,
                    "acks": closed["heartbeat_acks"],
                    "heartbeats_sent": len(closed["heartbeats_sent"]),
                    "cpu_us_per_heartbeat": (cpu_after - cpu_before) / 1e3 / len(beats),
                    "side_by_side": len(launchers),
                }
    return results


@dataclass(frozen=True)
class ScaleVariant:
    launch: Callable[[str], Launch]
    subscriptions: int  # acked subscriptions that make the client "subscribed"
    connections: int  # how many the feed job serves at once


def scale(
    variants: dict[str, ScaleVariant], interval: float, seconds: float, warmup: float,
    windows: int = 1,
) -> dict[str, Result]:
    """CPU over ``windows`` back-to-back windows of idle time, and memory, of each
    variant at once (each on a feed server of its own, side by side over the same windows
    as in idle_side_by_side): subscribed, no stream, a heartbeat every ``interval``
    seconds on every connection.  Reported per second, over all the windows and per
    window (with the page faults taken in it: a heartbeat after a long sleep may have to
    fault back in pages the host reclaimed meanwhile, which no client controls), since
    the variants see different numbers of heartbeats (one per connection per interval)."""
    results: dict[str, Result] = {}
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(FeedServer()) for name in variants}
        jobs = {
            name: servers[name].start_job(
                "idle",
                heartbeat=interval,
                connections=variant.connections,
                timeout=warmup + seconds + 120,
            )
            for name, variant in variants.items()
        }
        running = {
            name: start(variant.launch(servers[name].url), "pipe")
            for name, variant in variants.items()
        }
        pumps = {name: Pump(run) for name, run in running.items()}

        def acked(name: str) -> bool:
            event = jobs[name].get("subscribed")
            return event is not None and event["subscriptions"] >= variants[name].subscriptions

        _pump_together(pumps.values(), lambda: all(map(acked, variants)), time.monotonic() + 60)
        subscribed = {name for name in variants if acked(name)}
        _pump_together(pumps.values(), lambda: False, time.monotonic() + warmup)
        # Per window: (start ns, end ns, {name: (cpu ns before, after, faults before,
        # after)}).
        spans: list[tuple[int, int, dict[str, tuple[Any, ...]]]] = []
        for _ in range(max(1, windows)):
            cpu_at = {name: cpu_ns(run.pid) for name, run in running.items()}
            faults_at = {name: faults(run.pid) for name, run in running.items()}
            span_start = time.monotonic_ns()
            _pump_together(pumps.values(), lambda: False, time.monotonic() + seconds)
            cpu_end = {name: cpu_ns(run.pid) for name, run in running.items()}
            faults_end = {name: faults(run.pid) for name, run in running.items()}
            spans.append((span_start, time.monotonic_ns(), {
                name: (cpu_at[name], cpu_end[name], faults_at[name], faults_end[name])
                for name in running}))
        window_start, window_end = spans[0][0], spans[-1][1]
        before = {name: spans[0][2][name][0] for name in running}
        after = {name: spans[-1][2][name][1] for name in running}
        memory = {name: memory_kib(run.pid) for name, run in running.items()}
        # Acked by the end of the window (the job's own count goes on with the
        # unsubscriptions a client sends as it stops).
        acked_count = {
            name: (jobs[name].get("subscribed") or {}).get("subscriptions", 0)
            for name in variants
        }
        threads = {name: _thread_count(run.pid) for name, run in running.items()}
        alive = {name: run.proc.poll() is None for name, run in running.items()}
        window_s = (window_end - window_start) / 1e9
        for name, run in running.items():
            stopped = stop(run)
            closed = jobs[name].end()
            beats = [t for t in closed["heartbeats_sent"] if window_start <= t < window_end]
            cpu_before, cpu_after = before[name], after[name]
            if name not in subscribed:
                event = jobs[name].get("subscribed") or {}
                results[name] = failure(
                    f"{event.get('subscriptions', 0)} of {variants[name].subscriptions} "
                    "subscriptions acked",
                    stopped=stopped,
                )
            elif not alive[name]:
                results[name] = failure("client exited during the window", stopped=stopped)
            elif cpu_before is None or cpu_after is None:
                results[name] = failure("no CPU reading", stopped=stopped)
            else:
                per_window = []
                for start_ns, end_ns, readings in spans:
                    cpu_a, cpu_b, faults_a, faults_b = readings[name]
                    if cpu_a is None or cpu_b is None:
                        continue
                    per_window.append({
                        "window_s": (end_ns - start_ns) / 1e9,
                        "heartbeats": sum(start_ns <= t < end_ns
                                          for t in closed["heartbeats_sent"]),
                        "cpu_ms_per_s": (cpu_b - cpu_a) / 1e6 / ((end_ns - start_ns) / 1e9),
                        "major_faults": (None if faults_a is None or faults_b is None
                                         else faults_b[1] - faults_a[1]),
                        "minor_faults": (None if faults_a is None or faults_b is None
                                         else faults_b[0] - faults_a[0]),
                    })
                results[name] = {
                    "subscriptions": acked_count[name],
                    "connections": closed["connections"],
                    "threads": threads[name],
                    "heartbeats": len(beats),
                    "acks": closed["heartbeat_acks"],
                    "window_s": window_s,
                    "cpu_ms_per_s": (cpu_after - cpu_before) / 1e6 / window_s,
                    "windows": per_window,
                    "rss_kib": memory[name].get("VmRSS"),
                    "hwm_kib": memory[name].get("VmHWM"),
                }
    return results


def _thread_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


def _pump_together(pumps: Any, done: Callable[[], bool], deadline: float) -> bool:
    """Pump every client's output (answering heartbeats for those the harness types
    for) until ``done()`` (True) or the deadline (False)."""
    by_fd = {pump.running.out_fd: pump for pump in pumps if pump.running.out_fd is not None}
    while not done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bool(done())
        live = [fd for fd, pump in by_fd.items() if not pump.eof]
        if not live:
            time.sleep(min(0.05, remaining))
            continue
        readable, _, _ = select.select(live, [], [], min(0.5, remaining))
        for fd in readable:
            by_fd[fd].step(0)
    return True


def _wait_for_attach(tracer: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Until strace says it has attached (its first "Process N attached" line)."""
    assert tracer.stderr is not None
    fd, seen, deadline = tracer.stderr.fileno(), b"", time.monotonic() + timeout
    while b"attached" not in seen and time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if readable else b""
        if readable and not chunk:
            return
        seen += chunk


def parse_strace_summary(text: str) -> dict[str, int]:
    """``strace -c`` table: syscall -> calls, plus "total"."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or not parts[0].replace(".", "", 1).isdigit():
            continue
        name = parts[-1]
        # columns: % time, seconds, usecs/call, calls, [errors,] syscall
        try:
            calls = int(parts[3])
        except (IndexError, ValueError):
            continue
        counts[name] = calls
    return counts


def memory(server: FeedServer, launch: Launch, count: int, sample_at: int, settle: float) -> Result:
    """VmRSS when subscribed, after ``sample_at`` messages and after ``count`` (pipe)."""
    deadline = time.monotonic() + 60 + count / 1000
    job = server.start_job(
        "blast",
        count=count,
        settle=settle,
        heartbeat=30.0,
        heartbeat_after=True,
        timeout=deadline - time.monotonic() + 30,
    )
    running = start(launch, "pipe")
    pump = Pump(running)
    pump.until(lambda: job.get("streaming") is not None, time.monotonic() + 30)
    at_start = memory_kib(running.pid)
    if not pump.until(lambda: pump.count >= sample_at, deadline):
        return _failed_job(job, failure(f"saw {pump.count} of {sample_at} messages", running))
    at_sample = memory_kib(running.pid)
    if not pump.until(lambda: pump.count >= count, deadline):
        return _failed_job(job, failure(f"saw {pump.count} of {count} messages", running))
    at_end = memory_kib(running.pid)
    stop(running)
    job.finish()
    return {
        "count": count,
        "sample_at": sample_at,
        "rss_start_kib": at_start.get("VmRSS"),
        "rss_sample_kib": at_sample.get("VmRSS"),
        "rss_end_kib": at_end.get("VmRSS"),
        "hwm_end_kib": at_end.get("VmHWM"),
        "growth_mib": (at_end.get("VmRSS", 0) - at_sample.get("VmRSS", 0)) / 1024,
    }


def stalled(
    server: FeedServer,
    launch: Launch,
    count: int,
    stall_after: int,
    stall_seconds: float,
    settle: float,
) -> Result:
    """RSS while the reader of the client's stdout stops reading for ``stall_seconds``
    in the middle of a blast, whether the client survives it, and whether seq_ids
    1..count all came out exactly once and in order.

    The feed job serves reconnections with ``resume_from`` (a ``resume`` job), so a
    client that closes when too far behind and resumes (c2ws past ``--max-buffer``)
    is measured like one that blocks (one connection).  The run ends when the stream's
    last message (the end marker) has come out."""
    deadline = time.monotonic() + 60 + count / 1000 + stall_seconds
    job = server.start_job(
        "blast",
        count=count,
        settle=settle,
        heartbeat=30.0,
        heartbeat_after=True,
        timeout=deadline - time.monotonic() + 30,
        resume=True,
    )
    running = start(launch, "pipe")
    tally = SeqTally(count)
    pump = Pump(running, seq_tally=tally)
    if not pump.until(lambda: pump.count >= stall_after, deadline):
        return _failed_job(job, failure(f"saw {pump.count} of {stall_after} messages", running))
    before = memory_kib(running.pid).get("VmRSS")
    peak = before or 0
    stall_end = time.monotonic() + stall_seconds
    while time.monotonic() < stall_end and running.proc.poll() is None:
        peak = max(peak, memory_kib(running.pid).get("VmRSS", 0))
        time.sleep(0.05)
    exit_during = running.proc.poll()
    end_of_stall = memory_kib(running.pid).get("VmRSS")
    connections_in_stall = (job.get("upgraded") or {}).get("connection", 0)
    end_seen = pump.until(lambda: pump.end_seen_ns is not None, deadline)
    while end_seen and pump.step(0.2):
        pass  # anything written after the last message (a late duplicate) counts too
    after = memory_kib(running.pid).get("VmRSS")
    received = pump.count
    stopped = stop(running)
    closed = job.end()
    survived = exit_during is None and stopped["exited_by_itself"] is None
    result: Result = {
        "count": count,
        "stall_after": stall_after,
        "stall_s": stall_seconds,
        "rss_before_kib": before,
        "rss_peak_stall_kib": peak,
        "rss_end_of_stall_kib": end_of_stall,
        "rss_after_kib": after,
        "growth_during_stall_mib": (peak - (before or 0)) / 1024,
        "received": received,
        "exit_status_during_stall": exit_during,
        "survived": survived,
        "end_seen": end_seen,
        "unique_seq_ids": tally.unique,
        "missing_seq_ids": count - tally.unique,
        "first_missing_seq_id": tally.first_missing(),
        "duplicate_seq_ids": tally.duplicates,
        "out_of_order_seq_ids": tally.out_of_order,
        "seq_ids_outside_stream": tally.outside,
        "complete_in_order": tally.complete_in_order,
        "gap_lines": tally.gap_lines,
        "connections": closed.get("connections"),
        "connections_by_end_of_stall": connections_in_stall,
        "resumes": closed.get("resumes"),
        "gaps_sent": closed.get("gaps_sent"),
        "server_frames_sent": closed.get("frames_sent"),
    }
    if closed.get("error"):
        result["server_error"] = closed["error"]
    if not survived or not end_seen or not tally.complete_in_order:
        problems = []
        if exit_during is not None:
            problems.append(f"client exited during the stall (status {exit_during})")
        elif not survived:
            problems.append(f"client exited after the stall (status {stopped['exited_by_itself']})")
        if not end_seen:
            problems.append(f"the last message never came out ({received} of {count} lines)")
        if not tally.complete_in_order:
            problems.append(
                f"seq_ids: {count - tally.unique} missing, {tally.duplicates} doubled, "
                f"{tally.out_of_order} out of order"
                + (f", {tally.gap_lines} gap message(s) written" if tally.gap_lines else "")
            )
        result["note"] = "; ".join(problems)
        result["stderr_tail"] = stopped["stderr_tail"]
    return result


def server_ceiling(server: FeedServer, count: int) -> Result:
    """The feed server alone against a reader that discards bytes (bench/peers/discard.py)."""
    job = server.start_job(
        "blast", count=count, settle=0.05, close_after=True, heartbeat=30.0, timeout=120
    )
    done = subprocess.run(
        [sys.executable, str(BENCH / "peers" / "discard.py"), server.url, str(STRATEGY_ID)],
        capture_output=True,
        timeout=120,
    )
    closed = job.finish()
    if done.returncode != 0 or not closed.get("first_send_ns"):
        return {
            "error": done.stderr.decode(errors="replace")[-STDERR_TAIL_BYTES:]
            or str(closed.get("error"))
        }
    report = json.loads(done.stdout)
    elapsed = (report["eof_ns"] - closed["first_send_ns"]) / 1e9
    return {
        "msgs_per_s": count / elapsed,
        "mib_per_s": report["bytes"] / elapsed / 2**20,
        "seconds": elapsed,
        "count": count,
        "server_cpu_share": closed["cpu_s"] / elapsed,
    }


def startup(commands: dict[str, list[str]], runs: int) -> Result:
    """Median wall time of each command (hyperfine when installed, else an interleaved loop)."""
    hyperfine = shutil.which("hyperfine")
    with tempfile.TemporaryDirectory(prefix="c2bench-") as scratch:
        env = child_env({}, Path(scratch))
        if hyperfine:
            export = Path(scratch) / "hyperfine.json"
            argv = [
                hyperfine,
                "-N",
                "--warmup",
                str(3 if runs >= 10 else 1),
                "--runs",
                str(runs),
                "--export-json",
                str(export),
                "--style",
                "none",
            ]
            for name, command in commands.items():
                argv += ["--command-name", name, shlex.join(command)]
            done = subprocess.run(argv, capture_output=True, env=env, timeout=600)
            if done.returncode == 0:
                data = json.loads(export.read_text())
                return {
                    "tool": "hyperfine",
                    "runs": runs,
                    "median_ms": {
                        entry["command"]: entry["median"] * 1e3 for entry in data["results"]
                    },
                }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, command in commands.items():
                began = time.perf_counter()
                subprocess.run(
                    command,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    timeout=60,
                )
                samples[name].append((time.perf_counter() - began) * 1e3)
    return {
        "tool": "loop",
        "runs": runs,
        "median_ms": {name: sorted(values)[len(values) // 2] for name, values in samples.items()},
    }
