"""``--exec CMD``: a command run once per message, the message's line on its stdin and
its fields in its environment; a message is durable once the command exited 0.

* **No shell**: CMD is split as a shell would split words (``shlex``) and run directly;
  pipes, redirections and ``$VAR`` need ``sh -c '...'``, written by the user.
* **Environment**: c2ws's own (less the API key: :data:`c2ws.spec.EXEC_WITHHELD_VARIABLES`)
  and the message's fields, from the typed messages (:func:`message_environment`):
  ``C2_MSG_TYPE``, ``C2_STRATEGY_ID``, ``C2_CHANNEL``, ``C2_SEQ_ID``, ``C2_TIMESTAMP``;
  for a signal ``C2_SIDE``, ``C2_SYMBOL``, ``C2_QUANTITY``... (every variable of a kind is
  set, empty when the field is absent).
* **Failures** (an exit status other than 0, a signal, ``--exec-timeout``, a command that
  cannot start) are run again ``--exec-retries`` times with a growing wait
  (:class:`RetryPolicy`), then the message is written to the ``--dead-letter`` file and
  the stream goes on, or, with ``--exec-fail stop`` given too, the run stops after it
  (exit 12; the buried message counts as handled).  Without a dead-letter file a failure
  stops the run before the message unless ``--exec-fail continue`` says to skip it (then
  stderr is the only trace).
* **A hung handler** is killed at ``--exec-timeout`` with its whole process group (it
  runs in a session of its own; SIGKILL).
* **Output**: each line the handler prints (stdout and stderr) goes to c2ws's stderr,
  prefixed with the message it handles, escaped for the terminal.
* **Heartbeats** never wait for it: they are answered by the socket threads; a slow
  handler only fills the backlog (``--max-buffer``, then the connection is closed and
  resumed later).
* **Exactly once?** At least once: a handler that was running when c2ws was killed
  (``kill -9``) was never seen to exit 0, so the message runs again after the restart (the
  handler itself is not killed with c2ws: it goes on in its own session).  Make a handler
  idempotent by ``C2_STRATEGY_ID``/``C2_CHANNEL``/``C2_SEQ_ID``.

The decisions (retry or give up, how long to wait) are :class:`RetryPolicy`, a plain
class; :class:`ExecSink` is the shell that runs the processes.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Final

from c2ws import spec
from c2ws.errors import ConfigError, SinkFailed
from c2ws.sinks import FailMode, Guarantee

if TYPE_CHECKING:
    from c2ws.events import SubscriptionKey
    from c2ws.messages import Message
    from c2ws.streaming import Batch

__all__ = ["ExecSink", "FailMode", "RetryPolicy", "message_environment", "parse_command"]

_READ_BYTES: Final = 64 * 1024


def parse_command(text: str) -> list[str]:
    """CMD as the words a shell would split it into (no shell runs it); a
    :class:`ConfigError` for an empty one, unbalanced quotes or a program not found."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"cannot split the command {text!r}: {exc}", param="--exec") from None
    if not words:
        raise ConfigError("the command is empty", param="--exec")
    if shutil.which(words[0]) is None:
        raise ConfigError(f"{words[0]!r} is not a program c2ws can run (not found on PATH, "
                          "or not executable); a shell command needs sh -c '...'",
                          param="--exec")
    return words


# --- the message's environment ----------------------------------------------------------------


def _text(value: object) -> str:
    """A field's value as an environment variable holds it ("" when absent)."""
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.name)
    if isinstance(value, datetime.datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value).replace("\x00", "")  # an environment string cannot hold NUL


_SIGNAL_FIELDS: Final = (
    ("C2_STRATEGY_NAME", "strategy_name"), ("C2_SIGNAL_ID", "signal_id"),
    ("C2_SIDE", "side"), ("C2_OPEN_CLOSE", "open_close"), ("C2_SYMBOL", "symbol"),
    ("C2_QUANTITY", "quantity"), ("C2_FILLED_QUANTITY", "filled_quantity"),
    ("C2_ORDER_TYPE", "order_type"), ("C2_TIME_IN_FORCE", "time_in_force"),
    ("C2_STATUS", "status"), ("C2_LIMIT_PRICE", "limit_price"),
    ("C2_STOP_PRICE", "stop_price"), ("C2_AVG_FILL_PRICE", "avg_fill_price"),
)
_POSITION_FIELDS: Final = (
    ("C2_STRATEGY_NAME", "strategy_name"), ("C2_SYMBOL", "symbol"),
    ("C2_QUANTITY", "quantity"), ("C2_AVG_PRICE", "avg_price"), ("C2_CURRENCY", "currency"),
)
_GAP_FIELDS: Final = (("C2_AFTER_SEQ_ID", "after_seq_id"), ("C2_BEFORE_SEQ_ID", "before_seq_id"))
_RESET_FIELDS: Final = (("C2_OLD_CURSOR", "old_cursor"), ("C2_FIRST_SEQ_ID", "first_seq_id"))


def message_environment(msg: Message) -> dict[str, str]:
    """The ``C2_*`` variables of one message (see the module docstring)."""
    from c2ws.messages import Gap, Position, SequenceReset, Signal

    raw = msg.raw
    msg_type = raw.get("msg_type") if isinstance(raw, dict) else None
    variables = {
        "C2_MSG_TYPE": _text(msg_type if isinstance(msg_type, str) else msg.channel),
        "C2_STRATEGY_ID": _text(msg.strategy_id),
        "C2_CHANNEL": _text(msg.channel),
        "C2_SEQ_ID": _text(msg.seq_id),
        "C2_TIMESTAMP": _text(msg.timestamp),
    }
    fields: tuple[tuple[str, str], ...] = ()
    if isinstance(msg, Signal):
        fields = _SIGNAL_FIELDS
    elif isinstance(msg, Position):
        fields = _POSITION_FIELDS
    elif isinstance(msg, Gap):
        fields = _GAP_FIELDS
    elif isinstance(msg, SequenceReset):
        fields = _RESET_FIELDS
    for name, attribute in fields:
        variables[name] = _text(getattr(msg, attribute, None))
    return variables


# --- when to try again ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retries`` more runs after a failed one, the first ``first_wait`` seconds after it,
    each next wait twice the last, at most ``max_wait``."""

    retries: int = spec.EXEC_DEFAULT_RETRIES
    first_wait: float = spec.EXEC_BACKOFF_FIRST_SECONDS
    max_wait: float = spec.EXEC_BACKOFF_MAX_SECONDS

    def wait_before(self, failures: int) -> float | None:
        """How long to wait before the next run after ``failures`` failed runs of one
        message; None: no more runs (give up)."""
        if failures > self.retries:
            return None
        return float(min(self.max_wait, self.first_wait * 2.0 ** (failures - 1)))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run of the handler ended: ``ok`` (exit 0), or ``failure`` in words."""

    ok: bool
    failure: str = ""


# --- the shell that runs the handlers ------------------------------------------------------


class ExecSink:
    """``--exec``: see the module docstring.  ``say(text, color)`` reports on stderr (the
    CLI's diagnostics); ``dead_letter``: a path, opened at :meth:`open` (a regular file of
    yours or a new one, 0600, appended to); ``sleep``/``clock``: for tests."""

    guarantee = Guarantee.AT_LEAST_ONCE
    # Each message is acknowledged once its handler exited 0, before the next one runs.
    one_message_at_a_time = True
    guarantee_detail = ("a handler running when c2ws is killed was never seen to exit 0: "
                        "its message runs again after the restart (the handler is not killed "
                        "with c2ws); make the handler idempotent by C2_STRATEGY_ID, "
                        "C2_CHANNEL and C2_SEQ_ID")

    def __init__(
        self, command: Sequence[str], *, say: Callable[[str, str], None],
        policy: RetryPolicy | None = None, timeout: float | None = None,
        fail: FailMode | None = None, dead_letter: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.command = list(command)
        self.name = f"--exec {shlex.join(self.command)}"
        self.say = say
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        # Never drop a message without a trace unless told to: without a dead-letter
        # file a failure stops the run by default.
        self.fail = fail or (FailMode.CONTINUE if dead_letter is not None else FailMode.STOP)
        self.dead_letter = dead_letter
        self._sleep = sleep
        self._clock = clock
        self._dead_fd: int | None = None
        self._written: list[Batch] = []
        self._environment = {name: value for name, value in os.environ.items()
                             if name not in spec.EXEC_WITHHELD_VARIABLES}

    # --- the seam ---

    def open(self, keys: Collection[SubscriptionKey]) -> Mapping[SubscriptionKey, int]:
        """Open the dead-letter file (:class:`ConfigError` when it cannot be used)."""
        if self.dead_letter is not None and self._dead_fd is None:
            from c2ws.localfiles import UnusableFile, open_own_file

            try:
                self._dead_fd, _ = open_own_file(self.dead_letter, append=True)
            except UnusableFile as exc:
                raise ConfigError(f"--dead-letter {exc}", param="--dead-letter") from None
            except OSError as exc:
                raise ConfigError(f"cannot open --dead-letter {self.dead_letter}: "
                                  f"{exc.strerror}", param="--dead-letter") from None
        return {}

    def write(self, batch: Batch) -> None:
        """Run the handler for each message in turn.  A message given up with
        ``--exec-fail stop`` raises :class:`SinkFailed`; the messages before it are
        durable (see :meth:`durable`)."""
        from c2ws.streaming import Batch

        events = batch.events
        for index, msg in enumerate(batch):
            try:
                stop = self._handle(msg)
            except BaseException:
                if index:
                    self._written.append(Batch(list(events[:index])))
                raise
            if stop is not None:  # dead-lettered, so handled; nothing after it runs
                self._written.append(Batch(list(events[:index + 1])))
                raise SinkFailed(stop)
        self._written.append(batch)

    def durable(self) -> list[Batch]:
        done, self._written = self._written, []
        return done

    def sync(self) -> None:
        """Each message is handled (or dead-lettered, synced) before write returns."""

    def close(self) -> None:
        fd, self._dead_fd = self._dead_fd, None
        if fd is not None:
            os.close(fd)

    # --- one message ---

    def _handle(self, msg: Message) -> str | None:
        """Run the handler for ``msg`` until it succeeds or its retries run out; None, or
        why the run stops after a message written to the dead-letter file
        (``--exec-fail stop`` given with ``--dead-letter``)."""
        label = _label(msg)
        failures = 0
        while True:
            outcome = self.run_once(msg, label)
            if outcome.ok:
                return None
            failures += 1
            wait = self.policy.wait_before(failures)
            if wait is None:
                break
            self.say(f"exec {label}: {outcome.failure}; running it again in {wait:g} s "
                     f"(retry {failures} of {self.policy.retries})", "yellow")
            self._sleep(wait)
        what = f"exec {label}: {outcome.failure}, {failures} run(s) in all"
        if self._dead_fd is not None:
            self._bury(msg, outcome, failures)
            buried = f"{what}; written to the dead-letter file {self.dead_letter}"
            if self.fail is FailMode.STOP:  # only when given: continue is the default here
                return f"{buried}; stopping (--exec-fail stop)"
            self.say(buried, "red")
            return None
        if self.fail is FailMode.CONTINUE:
            self.say(f"{what}; skipped (--exec-fail continue, no --dead-letter)", "red")
            return None
        raise SinkFailed(f"{what}; stopping (--exec-fail stop)")

    def run_once(self, msg: Message, label: str) -> Outcome:
        """Run the handler once for ``msg``: its line on stdin, its output to stderr line
        by line, killed (with its process group) at the timeout or when c2ws is stopped
        meanwhile (Ctrl-C, SIGTERM: the exception goes on)."""
        environment = {**self._environment, **message_environment(msg)}
        try:
            process = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, env=environment, start_new_session=True,
                close_fds=True)
        except OSError as exc:
            return Outcome(False, f"could not start {self.command[0]!r}: "
                                  f"{exc.strerror or exc}")
        deadline = None if self.timeout is None else self._clock() + self.timeout
        try:
            timed_out = self._exchange(process, msg.line + b"\n", label, deadline)
            if not timed_out:
                remaining = None if deadline is None else max(0.0, deadline - self._clock())
                try:
                    process.wait(remaining)
                except subprocess.TimeoutExpired:
                    timed_out = True
            if timed_out:
                _kill_group(process)
                process.wait()
                return Outcome(False, f"timed out after {self.timeout:g} s (--exec-timeout); "
                                      "killed with its process group")
        except BaseException:
            _kill_group(process)
            process.wait()
            raise
        code = process.returncode
        if code == 0:
            return Outcome(True)
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else -code
            return Outcome(False, f"killed by signal {name}")
        return Outcome(False, f"exit status {code}")

    def _exchange(
        self, process: subprocess.Popen[bytes], data: bytes, label: str,
        deadline: float | None,
    ) -> bool:
        """Write ``data`` to the handler's stdin (then close it) while passing its output
        on, until its output ends; True when the deadline came first."""
        assert process.stdin is not None and process.stdout is not None
        stdin, stdout = process.stdin.fileno(), process.stdout.fileno()
        os.set_blocking(stdin, False)
        pending = memoryview(data)
        partial = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdin, selectors.EVENT_WRITE)
            selector.register(stdout, selectors.EVENT_READ)
            try:
                while selector.get_map():
                    wait = None if deadline is None else deadline - self._clock()
                    if wait is not None and wait <= 0:
                        return True
                    for key, _ in selector.select(wait):
                        if key.fd == stdin:
                            try:
                                pending = pending[os.write(stdin, pending[:_READ_BYTES]):]
                            except BrokenPipeError:  # it does not read its stdin: fine
                                pending = pending[:0]
                            except BlockingIOError:
                                continue
                            if not pending:
                                selector.unregister(stdin)
                                process.stdin.close()
                        else:
                            chunk = os.read(stdout, _READ_BYTES)
                            if not chunk:
                                selector.unregister(stdout)
                                continue
                            partial = self._pass_on(partial + chunk, label)
            finally:
                if partial:
                    self._say_output(partial, label)
                with contextlib.suppress(OSError):
                    process.stdin.close()
                process.stdout.close()
        return False

    def _pass_on(self, data: bytes, label: str) -> bytes:
        """Say every whole line of ``data``; the rest (cut when too long) is returned."""
        *lines, rest = data.split(b"\n")
        for line in lines:
            self._say_output(line, label)
        if len(rest) > spec.EXEC_OUTPUT_LINE_BYTES:
            self._say_output(rest, label)
            return b""
        return rest

    def _say_output(self, line: bytes, label: str) -> None:
        from c2ws.render.safe import terminal_safe

        text = line[: spec.EXEC_OUTPUT_LINE_BYTES].decode("utf-8", "replace").rstrip("\r")
        self.say(f"exec {label}: {terminal_safe(text, spec.EXEC_OUTPUT_LINE_BYTES)}", "")

    def _bury(self, msg: Message, outcome: Outcome, failures: int) -> None:
        """Append the message to the dead-letter file, synced (then it is durable)."""
        import orjson

        fd = self._dead_fd
        assert fd is not None
        head = orjson.dumps({
            "c2ws_dead_letter": 1,
            "at": datetime.datetime.now(datetime.timezone.utc).isoformat().replace(
                "+00:00", "Z"),
            "command": self.command, "runs": failures, "failure": outcome.failure,
        })
        record = head[:-1] + b',"message":' + msg.line + b"}\n"
        view = memoryview(record)
        try:
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            raise SinkFailed(f"cannot write the dead-letter file {self.dead_letter}: "
                             f"{exc.strerror}") from None


def _label(msg: Message) -> str:
    """The message a handler's lines are about: ``strategy.signal:123 seq 45``."""
    raw = msg.raw
    msg_type = raw.get("msg_type") if isinstance(raw, dict) else None
    kind = "" if msg_type in (None, msg.channel) else f"{msg_type} "
    return f"{kind}{msg.channel}:{msg.strategy_id} seq {msg.seq_id}"


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the handler's process group (it leads a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
