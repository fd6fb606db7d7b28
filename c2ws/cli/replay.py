"""``c2ws replay FILE``: a recording (``--record``) or NDJSON output, rendered again by
the renderers of ``subscribe``, as fast as possible or at the pace it was recorded."""


import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from c2ws.cli.app import StdoutClosed, app
from c2ws.cli.options import (
    ColorOpt,
    CountOpt,
    FieldsOpt,
    IncludeControlOpt,
    OutputMode,
    OutputOpt,
    SymbolOpt,
    VerboseOpt,
    complete_channel,
    parse_channels,
    parse_field_list,
    parse_strategy_ids,
    parse_symbols,
)
from c2ws.cli.shared import silence_stdout
from c2ws.exitcodes import ExitCode
from c2ws.render.color import ColorChoice

if TYPE_CHECKING:
    from c2ws import events as ev
    from c2ws.cli.output import OutputSpec
    from c2ws.redaction import KeyRedactor


class _OutputFailed(Exception):
    """Writing stdout failed (not its reader leaving)."""


def parse_speed(text: str | None) -> float | None:
    """``--speed``: a factor of real time, or ``max`` (None: no waiting)."""
    if text is None or text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if not speed > 0 or speed == float("inf"):
        raise typer.BadParameter(f"{text!r} is not a positive number or 'max'",
                                 param_hint="'--speed'")
    return speed


class Pacer:
    """Waits so that entries come out ``speed`` times as fast as they were recorded."""

    def __init__(
        self, speed: float | None, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.speed = speed
        self._clock = clock
        self._sleep = sleep
        self._origin: tuple[float, float] | None = None  # (recorded time, our clock)

    def wait_for(self, at: float) -> None:
        if self.speed is None:
            return
        if self._origin is None:
            self._origin = (at, self._clock())
            return
        recorded, started = self._origin
        delay = started + (at - recorded) / self.speed - self._clock()
        if delay > 0:
            self._sleep(delay)


@app.command()
def replay(
    file: Annotated[
        str, typer.Argument(metavar="FILE", show_default=False,
                            help="A --record recording or NDJSON output; '-' for stdin."),
    ],
    strategy_ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="STRATEGY_ID", show_default=False,
                       help="Only these strategies (default: all)."),
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option("-c", "--channel", metavar="CHANNEL", show_default=False,
                     help="Only this channel (signal or positions); repeatable.",
                     autocompletion=complete_channel),
    ] = None,
    output: OutputOpt = OutputMode.auto,
    count: CountOpt = None,
    speed: Annotated[
        str | None,
        typer.Option("--speed", metavar="N|max", show_default=False,
                     help="N times as fast as recorded, or max. Default: real time for "
                          "tables, max otherwise."),
    ] = None,
    include_control: IncludeControlOpt = False,
    fields: FieldsOpt = None,
    symbol: SymbolOpt = None,
    color: ColorOpt = ColorChoice.auto,
    verbose: VerboseOpt = False,
) -> None:
    """Render a recording again: the same output the recorded run printed.

    With an API key set (C2_API_KEY, the config file), it is redacted from what an older
    recording holds.  Example: c2ws replay session.rec -o csv > signals.csv
    """
    from c2ws.cli.output import OutputSpec, check_output_spec, resolve_mode
    from c2ws.render.filters import MessageFilter

    strategies = parse_strategy_ids(strategy_ids) if strategy_ids else []
    channels = parse_channels(channel) if channel else []
    output_spec = OutputSpec(
        mode=output, include_control=include_control, fields=parse_field_list(fields),
        message_filter=MessageFilter.of(strategies=strategies, channels=channels,
                                        symbols=parse_symbols(symbol)),
        color=color, verbose=verbose,
    )
    check_output_spec(output_spec)
    pace = parse_speed(speed)
    if speed is None and sys.stdout is not None:
        pace = 1.0 if resolve_mode(output, sys.stdout) is OutputMode.table else None
    with ExitStack() as stack:
        source = sys.stdin.buffer if file == "-" else stack.enter_context(open_recording(file))
        raise typer.Exit(run_replay(file, source, output_spec, channels=channels, count=count,
                                    pacer=Pacer(pace),
                                    redactor=settings_key_redactor()))


def open_recording(file: str) -> IO[bytes]:
    """``file`` opened for reading: a regular file, or a pipe (``<(zcat rec.gz)``, a FIFO,
    whose open waits for its writer); a usage error that says what is there otherwise
    (before any output is written: a CSV header, say)."""
    from c2ws.localfiles import UnusableFile, open_for_reading
    from c2ws.render.safe import terminal_safe

    shown = terminal_safe(file, 200)
    try:
        fd = open_for_reading(Path(file), pipes=True)
    except UnusableFile as exc:
        message = f"{shown} {exc.problem}; give a recording file, or '-' for stdin"
    except FileNotFoundError:
        message = f"no such file: {shown}"
    except OSError as exc:
        message = f"cannot read {shown}: {exc.strerror or exc}"
    else:
        return os.fdopen(fd, "rb")
    raise typer.BadParameter(message, param_hint="'FILE'")


def settings_key_redactor() -> "KeyRedactor | None":
    """A redactor of the API key the settings name (C2_API_KEY, C2WS_API_KEY_FILE, the
    config file), if any: recordings made before c2ws redacted frames hold the key a
    server echoed.  Replay needs no key, so one that cannot be read is only a warning."""
    from c2ws.config import Flags, SettingsError, read_api_key, resolve
    from c2ws.engine import check_api_key
    from c2ws.errors import ConfigError
    from c2ws.redaction import KeyRedactor
    from c2ws.render.safe import keep_secret, redacted

    try:
        source = resolve(Flags(), os.environ).api_key.value
        if source is None:
            return None
        if source.from_stdin:
            raise SettingsError("it is to be read from stdin, which replay keeps for FILE '-'")
        key = read_api_key(source)
        keep_secret(key)  # for every line on stderr, whatever the frames hold
        check_api_key(key)
    except (SettingsError, ConfigError) as exc:
        print(redacted(f"c2ws: warning: not redacting the API key from the replay: {exc}"),
              file=sys.stderr)
        return None
    return KeyRedactor(key)


def run_replay(
    file: str, source: IO[bytes], output: "OutputSpec", *, channels: Sequence[str],
    count: int | None, pacer: Pacer, redactor: "KeyRedactor | None" = None,
) -> int:
    """Replay ``source``, the recording named ``file`` ('-': stdin); returns the exit
    code."""
    from c2ws import events as ev
    from c2ws.cli.output import build_output
    from c2ws.recording import Unusable, read_entries
    from c2ws.render.safe import terminal_safe
    from c2ws.replay import Replayer
    if sys.stdout is None:
        print("c2ws: stdout is closed; nothing to replay to", file=sys.stderr)
        return int(ExitCode.OK)
    now = [0.0]  # the recorded time of the frame being rendered (the table shows it)
    built = build_output(output, channels=channels, status_line=False, clock=lambda: now[0])
    renderer, diagnostics = built.renderer, built.diagnostics
    selects = output.message_filter.selects
    replayer = Replayer(redactor)
    delivered = 0
    usable = 0

    def write(events: list["ev.Event"], *, gaps_only: bool = False) -> bool:
        """Render; True once --count is reached."""
        nonlocal delivered
        try:
            for event in events:
                if gaps_only and not isinstance(event, ev.GapReported):
                    continue
                diagnostics.handle(event)
                renderer.handle(event)
                if isinstance(event, ev.StreamMessage) and selects(event):
                    delivered += 1
                    if count is not None and delivered >= count:
                        renderer.flush()
                        return True
            renderer.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _OutputFailed(exc.strerror or str(exc)) from None
        return False

    code = ExitCode.OK
    stdout_failed = False
    try:
        try:
            for entry in read_entries(source):
                at = getattr(entry, "at", None)
                events = replayer.feed(entry)
                if not isinstance(entry, Unusable):
                    usable += 1
                if at is not None:
                    pacer.wait_for(at)
                    now[0] = at
                if write(events):
                    write(replayer.finish(), gaps_only=True)
                    break
            else:
                write(replayer.finish())
            if replayer.skipped:
                reasons = "; ".join(replayer.skip_reasons)
                diagnostics.say(terminal_safe(f"skipped {replayer.skipped} unusable line(s) of "
                                              f"{file} ({reasons})", 400), "yellow")
            if not usable:
                diagnostics.say(terminal_safe(f"{file} holds no recording and no c2ws output "
                                              "(one JSON object per line expected)", 400), "red")
                code = ExitCode.USAGE
        except KeyboardInterrupt:
            code = ExitCode.INTERRUPTED
        except _OutputFailed as failure:
            diagnostics.say(f"cannot write to stdout: {failure}", "red")
            code, stdout_failed = ExitCode.OUTPUT_FAILED, True
        except BrokenPipeError:
            raise
        except OSError as exc:  # reading the recording
            diagnostics.say(terminal_safe(f"cannot read {file}: {exc.strerror or exc}", 400),
                            "red")
            code = ExitCode.USAGE
        try:
            # Closing writes too (JSON's closing bracket, what is buffered), except where a
            # write has failed: there the renderers' sink refuses, and nothing more is said.
            renderer.close()
        except BrokenPipeError:
            raise
        except OSError as exc:
            if not stdout_failed:
                diagnostics.say(f"cannot write to stdout: {exc.strerror or exc}", "red")
                code, stdout_failed = ExitCode.OUTPUT_FAILED, True
    except BrokenPipeError:
        raise StdoutClosed from None
    finally:
        diagnostics.close()
    if stdout_failed:
        silence_stdout()  # the interpreter's last flush must not try again (exit 120)
    return int(code)
