"""The harness's handle on the feed server process (bench/feed_server.py)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
STRATEGY_ID = 12345678


class FeedError(RuntimeError):
    pass


class Job:
    """One connection's worth of feed; its events arrive from the server's stdout."""

    def __init__(self, server: FeedServer, job_id: str) -> None:
        self.server = server
        self.id = job_id
        self.events: dict[str, dict[str, Any]] = {}

    def wait(self, event: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        with self.server.changed:
            while event not in self.events:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.server.alive:
                    return self.events.get(event)
                self.server.changed.wait(min(remaining, 0.5))
            return self.events[event]

    def get(self, event: str) -> dict[str, Any] | None:
        with self.server.changed:
            return self.events.get(event)

    def finish(self, timeout: float = 15.0) -> dict[str, Any]:
        """The ``closed`` event; the job is cancelled if it does not come by itself."""
        closed = self.wait("closed", timeout)
        if closed is None:
            self.server.send({"cmd": "cancel"})
            closed = self.wait("closed", 10.0)
        if closed is None:
            raise FeedError(f"feed server did not close job {self.id}")
        return closed

    def end(self, timeout: float = 10.0) -> dict[str, Any]:
        """Cancel the job unless it has closed, and return its ``closed`` event: how a
        ``resume`` job ends, since it waits for a reconnection after each connection."""
        if self.get("closed") is None:
            self.server.send({"cmd": "cancel"})
        closed = self.wait("closed", timeout)
        if closed is None:
            raise FeedError(f"feed server did not close job {self.id}")
        return closed

    def wait_for(self, event: str, timeout: float, **fields: Any) -> dict[str, Any] | None:
        """The latest ``event`` once it carries ``fields`` (e.g. ``connection=2``)."""

        def found() -> bool:
            latest = self.events.get(event)
            return latest is not None and all(latest.get(k) == v for k, v in fields.items())

        with self.server.changed:
            self.server.changed.wait_for(lambda: found() or not self.server.alive, timeout)
            return self.events[event] if found() else None


class FeedServer:
    """Starts the feed server, submits jobs one at a time, routes its events to them."""

    def __init__(self, python: str = sys.executable, log_path: Path | None = None) -> None:
        self._log = open(log_path or "/dev/null", "ab")  # noqa: SIM115 (lives with the server)
        self.process = subprocess.Popen(
            [python, str(BENCH / "feed_server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=BENCH,
        )
        self.changed = threading.Condition()
        self.alive = True
        self.port: int | None = None
        self.pid: int | None = None
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._reader = threading.Thread(target=self._read_events, daemon=True)
        self._reader.start()
        with self.changed:
            self.changed.wait_for(lambda: self.port is not None or not self.alive, 30)
        if self.port is None:
            raise FeedError("feed server did not start (see its log)")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        self.process.stdin.flush()

    def start_job(self, mode: str, *, arm_timeout: float = 300.0, **params: Any) -> Job:
        """Submit a job and wait until its frames are encoded and the server accepts."""
        job = Job(self, f"{mode}-{next(self._ids)}")
        with self.changed:
            self._jobs[job.id] = job
        self.send({"cmd": "job", "id": job.id, "mode": mode, "strategy": STRATEGY_ID, **params})
        if job.wait("armed", arm_timeout) is None:
            raise FeedError(f"feed server did not arm job {job.id}")
        return job

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send({"cmd": "quit"})
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(10)
        self._log.close()

    def __enter__(self) -> FeedServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _read_events(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = json.loads(line)
            with self.changed:
                if event["event"] == "listening":
                    self.port, self.pid = event["port"], event["pid"]
                elif event.get("id") in self._jobs:
                    self._jobs[event["id"]].events[event["event"]] = event
                self.changed.notify_all()
        with self.changed:
            self.alive = False
            self.changed.notify_all()
