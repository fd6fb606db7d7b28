"""``c2ws replay FILE``: a recording (``--record``) or NDJSON output, rendered again by
the renderers of ``subscribe``, as fast as possible or at the pace it was recorded.

A shell over :func:`c2ws.replay`: it reads, redacts, paces and counts; this module
renders its batches and events and maps how it ended to an exit code."""


import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from c2ws.cli.app import StdoutClosed, app
from c2ws.cli.options import (
    ColorOpt,
    CountOpt,
    FieldsOpt,
    IncludeControlOpt,
    OutputMode,
    OutputOpt,
    QuietOpt,
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
    from c2ws import Replay
    from c2ws import events as ev
    from c2ws.cli.output import OutputSpec


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
    quiet: QuietOpt = False,
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
        color=color, verbose=verbose, quiet=quiet,
    )
    check_output_spec(output_spec)
    pace = parse_speed(speed)
    if speed is None and sys.stdout is not None:
        pace = 1.0 if resolve_mode(output, sys.stdout) is OutputMode.table else None
    key = settings_key(quiet=quiet)
    selects = output_spec.message_filter.selects_message
    recording = open_replay(file, api_key=key, count=count, speed=pace,
                            select=selects if output_spec.message_filter.active else None)
    with recording:
        raise typer.Exit(run_replay(file, recording, output_spec, channels=channels))


def open_replay(file: str, **options: Any) -> "Replay":
    """:func:`c2ws.replay` of ``file`` ('-': stdin): a regular file, or a pipe
    (``<(zcat rec.gz)``, a FIFO, whose open waits for its writer); a usage error that says
    what is there otherwise (before any output is written: a CSV header, say)."""
    import c2ws
    from c2ws.errors import ConfigError
    from c2ws.render.safe import terminal_safe

    shown = terminal_safe(file, 200)
    try:
        return c2ws.replay(sys.stdin.buffer if file == "-" else file, **options)
    except ConfigError as exc:
        if exc.param != "FILE":
            raise typer.BadParameter(str(exc), param_hint=f"'{exc.param}'") from None
        message = f"{terminal_safe(str(exc), 400)}; give a recording file, or '-' for stdin"
    except FileNotFoundError:
        message = f"no such file: {shown}"
    except OSError as exc:
        message = f"cannot read {shown}: {exc.strerror or exc}"
    raise typer.BadParameter(message, param_hint="'FILE'")


def settings_key(*, quiet: bool = False) -> str:
    """The API key the settings name (C2_API_KEY, C2WS_API_KEY_FILE, the config file), if
    any ("" when none): recordings made before c2ws redacted frames hold the key a server
    echoed, and the replay redacts it.  Replay needs no key, so one that cannot be read
    is only a warning."""
    from c2ws.config import Flags, SettingsError, check_api_key, read_api_key, resolve
    from c2ws.errors import ConfigError
    from c2ws.render.safe import keep_secret, redacted

    try:
        source = resolve(Flags(), os.environ).api_key.value
        if source is None:
            return ""
        if source.from_stdin:
            raise SettingsError("it is to be read from stdin, which replay keeps for FILE '-'")
        key = read_api_key(source)
        keep_secret(key)  # for every line on stderr, whatever the frames hold
        return check_api_key(key)
    except (SettingsError, ConfigError) as exc:
        if quiet:
            return ""
        print(redacted(f"c2ws: warning: not redacting the API key from the replay: {exc}"),
              file=sys.stderr)
        return ""


def run_replay(
    file: str, recording: "Replay", output: "OutputSpec", *, channels: Sequence[str],
) -> int:
    """Render ``recording``, the replay of ``file`` ('-': stdin); returns the exit code."""
    from c2ws.cli.output import build_output
    from c2ws.cli.run import ForwardEvents
    from c2ws.render.safe import terminal_safe

    if sys.stdout is None:
        print("c2ws: stdout is closed; nothing to replay to", file=sys.stderr)
        return int(ExitCode.OK)
    # The table shows the recorded time of the frame being rendered.
    built = build_output(output, channels=channels, status_line=False,
                         clock=lambda: recording.recorded_at or 0.0)
    renderer, diagnostics = built.renderer, built.diagnostics

    def render(events: Sequence["ev.Event"]) -> None:
        try:
            for event in events:
                diagnostics.handle(event)
                renderer.handle(event)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _OutputFailed(exc.strerror or str(exc)) from None

    forward = ForwardEvents()
    forward.target = lambda event: render((event,))
    recording.on_event = forward
    code = ExitCode.OK
    stdout_failed = False
    try:
        try:
            for batch in recording.batches(include_empty=True):
                render(batch.events)
                try:
                    renderer.flush()
                except BrokenPipeError:
                    raise
                except OSError as exc:
                    raise _OutputFailed(exc.strerror or str(exc)) from None
            if recording.skipped:
                reasons = "; ".join(recording.skip_reasons)
                diagnostics.say(terminal_safe(f"skipped {recording.skipped} unusable line(s) "
                                              f"of {file} ({reasons})", 400), "yellow")
            if not recording.usable:
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
