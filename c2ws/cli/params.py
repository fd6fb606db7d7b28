"""What a ``subscribe`` or ``demo`` run was asked for, once its arguments are parsed:
:class:`StreamParams` (the stream), :class:`Unattended` (issue 25) and
:class:`SinkOptions` (issue 23).  Apart from the commands' declarations
(c2ws/cli/subscribe.py, c2ws/cli/sinks.py) so that ``c2ws subscribe --help`` does
not build these classes (a dataclass is about 1 ms of a start)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from c2ws import spec

if TYPE_CHECKING:
    from c2ws import Stream
    from c2ws.events import SubscriptionKey
    from c2ws.render.diagnostics import Diagnostics
    from c2ws.sinks import FailMode, Sink
    from c2ws.sinks.nats import NatsOptions


@dataclass(frozen=True)
class Unattended:
    """Issue 25: ``--metrics`` (where to serve them) and ``--strict``."""

    metrics: tuple[str, int] | None = None
    strict: bool = False


@dataclass(frozen=True)
class StreamParams:
    """What ``subscribe`` and ``demo`` ask of :func:`c2ws.stream` (the output decides the
    rest: see :func:`run_stream`)."""

    strategies: tuple[int, ...]
    channels: tuple[str, ...]
    url: str
    api_key: str
    max_buffer: int = spec.DEFAULT_MAX_BUFFER
    reconnect: bool = True
    max_retries: int | None = None
    max_backoff: float = spec.BACKOFF_MAX_SECONDS
    connect_timeout: float = spec.CONNECT_TIMEOUT_SECONDS
    silence_timeout: float = spec.CLIENT_STALE_AFTER_SECONDS
    traffic: bool = False
    count: int | None = None
    timeout: float | None = None
    fail_on_gap: bool = False
    # Issue 24: --heal-gaps, --snapshot (tables take snapshots anyway), --rest-url.
    heal_gaps: bool = False
    snapshot: bool = False
    rest_url: str | None = None
    # Issue 25: --strategies-file, and what it held at the start (besides strategies x
    # channels, which are always followed).
    strategies_file: Path | None = None
    subscriptions: tuple[SubscriptionKey, ...] = ()

    def keys(self) -> list[SubscriptionKey]:
        """Every subscription the run starts with, in the stream's order."""
        from c2ws.events import SubscriptionKey

        return list(dict.fromkeys([
            *(SubscriptionKey(sid, channel) for sid in self.strategies
              for channel in self.channels),
            *self.subscriptions]))

    def stream(self, **more: Any) -> Stream:
        """The stream (not started: nothing connects yet)."""
        import c2ws

        more.setdefault("snapshot", self.snapshot)
        more.setdefault("subscriptions", self.subscriptions)
        return c2ws.stream(
            self.strategies, self.channels, api_key=self.api_key, url=self.url,
            max_buffer=self.max_buffer, reconnect=self.reconnect,
            max_retries=self.max_retries, max_backoff=self.max_backoff,
            connect_timeout=self.connect_timeout, silence_timeout=self.silence_timeout,
            traffic=self.traffic, count=self.count, timeout=self.timeout,
            fail_on_gap=self.fail_on_gap, heal_gaps=self.heal_gaps, rest_url=self.rest_url,
            **more,
        )

    def check(self) -> Stream:
        """The stream, or the usage error (exit 2) naming the option at fault."""
        from c2ws.errors import ConfigError

        try:
            return self.stream()
        except ConfigError as exc:
            raise typer.BadParameter(str(exc), param_hint=f"'{exc.param or 'STRATEGY_ID'}'") \
                from None


@dataclass(frozen=True)
class SinkOptions:
    """Where messages go when it is not stdout."""

    exec_command: str | None = None
    exec_retries: int = spec.EXEC_DEFAULT_RETRIES
    exec_timeout: float | None = None
    exec_fail: FailMode | None = None
    dead_letter: Path | None = None
    to: str | None = None
    subject_prefix: str = spec.NATS_SUBJECT_PREFIX
    create_stream: str | None = None
    creds: Path | None = None
    nkey: Path | None = None
    user: str | None = None
    password: str | None = None
    tlscert: Path | None = None
    tlskey: Path | None = None
    tlsca: Path | None = None

    @property
    def active(self) -> bool:
        return self.exec_command is not None or self.to is not None

    def check(self, *, fields: tuple[str, ...]) -> None:
        """Usage errors (exit 2), before anything starts."""
        if self.exec_command is not None and self.to is not None:
            raise typer.BadParameter("one sink per run: --exec or --to, not both",
                                     param_hint="'--to'")
        exec_only = {"--exec-retries": self.exec_retries != spec.EXEC_DEFAULT_RETRIES,
                     "--exec-timeout": self.exec_timeout is not None,
                     "--exec-fail": self.exec_fail is not None,
                     "--dead-letter": self.dead_letter is not None}
        for option, given in exec_only.items():
            if given and self.exec_command is None:
                raise typer.BadParameter(f"{option} goes with --exec CMD", param_hint=option)
        nats_only = {"--create-stream": self.create_stream is not None,
                     "--subject-prefix": self.subject_prefix != spec.NATS_SUBJECT_PREFIX}
        for option, given in nats_only.items():
            if given and self.to is None:
                raise typer.BadParameter(f"{option} goes with --to nats://HOST:PORT",
                                         param_hint=option)
        if self.active and fields:
            raise typer.BadParameter("--fields shapes stdout; with --exec or --to each "
                                     "message goes whole", param_hint="'--fields'")
        if self.exec_command is not None:
            self.command()
        if self.to is not None:
            from c2ws.errors import ConfigError

            try:
                self.nats_options().check()
            except ConfigError as exc:
                raise typer.BadParameter(str(exc), param_hint=f"'{exc.param or '--to'}'"
                                         ) from None

    def nats_options(self) -> NatsOptions:
        from c2ws.sinks.nats import NatsOptions

        assert self.to is not None
        return NatsOptions(
            url=self.to, subject_prefix=self.subject_prefix, create_stream=self.create_stream,
            creds=self.creds, nkey=self.nkey, user=self.user, password=self.password,
            tlscert=self.tlscert, tlskey=self.tlskey, tlsca=self.tlsca)

    def command(self) -> list[str]:
        from c2ws.errors import ConfigError
        from c2ws.sinks.exec import parse_command

        assert self.exec_command is not None
        try:
            return parse_command(self.exec_command)
        except ConfigError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--exec'") from None

    def build(self, diagnostics: Diagnostics) -> Sink:
        """The sink (not opened yet)."""
        if self.exec_command is not None:
            from c2ws.sinks.exec import ExecSink, RetryPolicy

            return ExecSink(self.command(), say=diagnostics.say,
                            policy=RetryPolicy(retries=self.exec_retries),
                            timeout=self.exec_timeout, fail=self.exec_fail,
                            dead_letter=self.dead_letter)
        from c2ws.sinks.nats import NatsSink

        return NatsSink(self.nats_options(), say=diagnostics.say)
