"""What the commands share: option types, and parsing of strategy ids and channels."""


import math
import os
import re
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from c2ws import spec
from c2ws.render.clock import DisplayZone, UnknownZone
from c2ws.render.color import ColorChoice

EnumT = TypeVar("EnumT", bound=Enum)
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")

CHANNEL_ALIASES = spec.CHANNEL_ALIASES


def complete_channel(incomplete: str) -> list[str]:
    return [name for name in CHANNEL_ALIASES if name.startswith(incomplete)]


def complete_zone(incomplete: str) -> list[str]:
    """``--tz``: local, utc and the IANA zone names this machine has."""
    return [name for name in ("local", "utc", *sorted(_zone_names()))
            if name.startswith(incomplete)]


def _zone_names() -> set[str]:
    """The zone files under the zoneinfo directories, by name only: a walk takes 2 ms
    where ``zoneinfo.available_timezones()``, which opens every file, takes 70 ms of a
    Tab's budget.  Zone names are capitalised path components ("America/New_York"); the
    rest there (zone.tab, tzdata.zi, localtime, posixrules) is not a zone, and posix/
    and right/ repeat the zones under other rules."""
    import zoneinfo

    names: set[str] = set()
    for base in zoneinfo.TZPATH:
        for root, dirs, files in os.walk(base):
            dirs[:] = [name for name in dirs if name not in ("posix", "right")]
            where = os.path.relpath(root, base)
            prefix = "" if where == os.curdir else where.replace(os.sep, "/") + "/"
            names.update(prefix + name for name in files)
    zones = {name for name in names if all(part[:1].isupper() for part in name.split("/"))}
    return zones or set(zoneinfo.available_timezones())  # no zoneinfo directory: tzdata


class OutputMode(str, Enum):
    auto = "auto"
    table = "table"
    ndjson = "ndjson"
    json = "json"
    csv = "csv"
    tsv = "tsv"


def parse_strategy_ids(values: list[str]) -> list[int]:
    ids: list[int] = []
    for value in values:
        for part in value.split(","):
            text = part.strip()
            if not (text.isascii() and text.isdigit()) or int(text) <= 0:
                raise typer.BadParameter(
                    f"{part!r} is not a strategy id (a positive integer)",
                    param_hint="'STRATEGY_ID'",
                )
            if int(text) not in ids:
                ids.append(int(text))
    return ids


def parse_channels(values: list[str] | None) -> list[str]:
    if not values:
        return list(spec.CHANNELS)
    channels: list[str] = []
    for value in values:
        for part in value.split(","):
            channel = CHANNEL_ALIASES.get(part.strip().lower())
            if channel is None:
                raise typer.BadParameter(
                    f"{part!r} is not a channel; use signal, positions, "
                    f"{spec.CHANNEL_SIGNAL} or {spec.CHANNEL_POSITIONS}",
                    param_hint="'-c' / '--channel'",
                )
            if channel not in channels:
                channels.append(channel)
    return channels


# --- values as people type them --------------------------------------------------------
# Typer's own checks answer in its validation library's words ("Input should be greater
# than or equal to 0"); these say what was wrong with the value and what to give instead.


def whole_number(
    option: str, *, minimum: int, maximum: int | None = None, hint: str = ""
) -> Callable[[object], int]:
    """A parser for an integer option: ``option`` as click names it ("'--port'")."""

    def parse(value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            if not _WHOLE_NUMBER.fullmatch(text):
                raise typer.BadParameter(f"{value!r} is not a whole number", param_hint=option)
            number = int(text)
        if number < minimum or (maximum is not None and number > maximum):
            allowed = (f"from {minimum} to {maximum}" if maximum is not None
                       else f"at least {minimum}")
            raise typer.BadParameter(f"{number} is out of range: give {allowed}{hint}",
                                     param_hint=option)
        return number

    return parse


def number(
    option: str, *, minimum: float, above: bool = False, unit: str = "", hint: str = ""
) -> Callable[[object], float]:
    """A parser for a decimal option; ``above``: ``minimum`` itself is refused."""
    what = f"a number of {unit}" if unit else "a number"

    def parse(value: object) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            result = float(value)
        else:
            try:
                result = float(str(value).strip())
            except ValueError:
                result = math.nan
        if not math.isfinite(result):
            raise typer.BadParameter(f"{value!r} is not {what}", param_hint=option)
        if result < minimum or (above and result == minimum):
            rule = f"more than {minimum:g}" if above else f"at least {minimum:g}"
            raise typer.BadParameter(
                f"{result:g} is too small: give {rule}{' ' + unit if unit else ''}{hint}",
                param_hint=option,
            )
        return result

    return parse


def seconds(
    option: str, *, minimum: float, above: bool = False, hint: str = ""
) -> Callable[[object], float]:
    """A parser for a duration in seconds."""
    return number(option, minimum=minimum, above=above, unit="seconds", hint=hint)


def choice(kind: type[EnumT], option: str) -> Callable[[object], EnumT]:
    """A parser for one of an Enum's values, any case."""

    def parse(value: object) -> EnumT:
        if isinstance(value, kind):
            return value
        text = str(value).strip().lower()
        for member in kind:
            if str(member.value).lower() == text:
                return member
        names = ", ".join(str(member.value) for member in kind)
        raise typer.BadParameter(f"{value!r} is not one of: {names}", param_hint=option)

    return parse


def parse_zone(value: object) -> DisplayZone:
    if isinstance(value, DisplayZone):
        return value
    try:
        return DisplayZone.parse(str(value))
    except UnknownZone as exc:
        raise typer.BadParameter(str(exc), param_hint="'--tz'") from None


# Options shared by subscribe and demo.
CountOpt = Annotated[
    int | None,
    typer.Option("-n", "--count", metavar="N", parser=whole_number("'-n' / '--count'", minimum=1),
                 help="Exit 0 after N signal/position messages (N >= 1)."),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", metavar="S",
                 parser=seconds("'--timeout'", minimum=0, above=True,
                                hint="; leave --timeout out to run until stopped"),
                 help="Stop after S seconds, S > 0 (exit 0; 124 if --count was not reached)."),
]
# Every mode -o accepts, said once for every command that takes it.
OUTPUT_HELP = ("auto (default): tables on a terminal, NDJSON otherwise; or table, ndjson, "
               "json (one array), csv, tsv.")
OutputOpt = Annotated[
    OutputMode,
    typer.Option("-o", "--output", metavar="MODE", parser=choice(OutputMode, "'-o' / '--output'"),
                 show_default=False, help=OUTPUT_HELP),
]
TzOpt = Annotated[
    DisplayZone | None,
    typer.Option("--tz", metavar="local|utc|ZONE", parser=parse_zone, show_default=False,
                 autocompletion=complete_zone,
                 help="Time zone of the table's times: local, utc or an IANA name such as "
                      "America/New_York. Default: local on a terminal, else UTC. NDJSON "
                      "keeps the server's timestamps."),
]
ProgressOpt = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", show_default=False,
                 help="NDJSON: a live status line on stderr. Default: only when stdout is "
                      "a file, never when it is a pipe (the reader may share the terminal)."),
]
BellOpt = Annotated[
    bool, typer.Option("--bell", help="Ring the terminal bell when a new signal arrives.")
]
BellFillsOpt = Annotated[
    bool, typer.Option("--bell-fills",
                       help="Ring the bell only for signals that report a fill (implies --bell).")
]
IncludeControlOpt = Annotated[
    bool,
    typer.Option("--include-control",
                 help="NDJSON: also print control traffic (connected, heartbeats, acks, errors)."),
]
MaxBufferOpt = Annotated[
    int,
    typer.Option("--max-buffer", metavar="N", parser=whole_number("'--max-buffer'", minimum=1),
                 help="Messages held for a slow stdout reader; past that, c2ws closes the "
                      "connection and resumes where the output stopped once the reader "
                      "catches up (exit 8 with --no-reconnect)."),
]
VerboseOpt = Annotated[
    bool, typer.Option("-v", "--verbose", help="Show protocol traffic on stderr (key redacted).")
]


# --- issue 25: running unattended ------------------------------------------------------------

QUIET_HELP = "Print nothing on stderr but errors."
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help=QUIET_HELP)]


class LogFormat(str, Enum):
    human = "human"
    json = "json"


LogFormatOpt = Annotated[
    LogFormat,
    typer.Option("--log-format", metavar="human|json", parser=choice(LogFormat, "'--log-format'"),
                 help="stderr as lines for people (default), or one JSON object per event "
                      "(time, level, event, connection, strategy, detail) for journald and "
                      "log shippers."),
]


# --- settings, formats and recordings (issue 14) -----------------------------------------

ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", metavar="NAME", show_default=False,
                 help="Settings profile from the config file (env C2WS_PROFILE)."),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", metavar="KEY", show_default=False,
                 help="C2 API key (sent as a Bearer token; never printed). Prefer the "
                      "C2_API_KEY variable or --api-key-file: arguments show in ps."),
]
ApiKeyFileOpt = Annotated[
    str | None,
    typer.Option("--api-key-file", metavar="PATH", show_default=False,
                 help="Read the API key from PATH (mode 600), or from stdin with '-'; "
                      "env C2WS_API_KEY_FILE."),
]
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", metavar="URL", show_default=False,
                 help=f"WebSocket endpoint (its path is /ws); env C2WS_URL. Default: "
                      f"{spec.DEFAULT_URL}"),
]
RecordOpt = Annotated[
    Path | None,
    typer.Option("--record", metavar="FILE", show_default=False,
                 help="Append every received frame (with receive time and connection, the "
                      "API key redacted) to FILE as NDJSON, for 'c2ws replay'."),
]
FieldsOpt = Annotated[
    str | None,
    typer.Option("--fields", metavar="A,B,...", show_default=False,
                 help="Print only these fields of each message (ndjson, json, csv, tsv): "
                      "time, strategy, side, qty, symbol... or a path like "
                      "payload.C2Symbol.FullSymbol."),
]
SymbolOpt = Annotated[
    list[str] | None,
    typer.Option("--symbol", metavar="SYM", show_default=False,
                 help="Only messages for this symbol (e.g. @ESZ6; case ignored); repeatable."),
]
ColorOpt = Annotated[
    ColorChoice,
    typer.Option("--color", metavar="WHEN", parser=choice(ColorChoice, "'--color'"),
                 help="auto, always or never. "
                      "auto: color on a terminal unless NO_COLOR is set (FORCE_COLOR forces "
                      "it)."),
]


def exit_codes_epilog() -> str:
    """The exit codes, for a command's help (Click keeps a paragraph after \\b as is)."""
    from c2ws.exitcodes import SUMMARIES

    lines = [f"  {int(code):<4} {summary}" for code, summary in SUMMARIES.items()]
    return "\n".join(["\b", "Exit codes:", *lines]) + "\n"


def parse_field_list(text: str | None) -> tuple[str, ...]:
    """``--fields a,b,c``: checked names, in order."""
    if text is None:
        return ()
    from c2ws.render.records import check_field_names

    try:
        return tuple(check_field_names([part.strip() for part in text.split(",")
                                        if part.strip()]))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--fields'") from None


def parse_symbols(values: list[str] | None) -> tuple[str, ...]:
    symbols: list[str] = []
    for value in values or ():
        symbols.extend(part.strip() for part in value.split(",") if part.strip())
    return tuple(symbols)


# Issue 24: the REST API's base URL (positions, orders, subscribe --snapshot/--heal-gaps).
RestUrlOpt = Annotated[
    str | None,
    typer.Option("--rest-url", metavar="URL", show_default=False,
                 help="REST API base URL; env C2WS_REST_URL. Default: derived from the "
                      "WebSocket URL (wss://H/ws gives https://H)."),
]
