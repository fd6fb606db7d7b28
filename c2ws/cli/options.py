"""What the commands share: option types, and parsing of strategy ids and channels."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from enum import Enum
from typing import Annotated, TypeVar

import typer

from c2ws import spec
from c2ws.render.clock import DisplayZone, UnknownZone

EnumT = TypeVar("EnumT", bound=Enum)
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")

CHANNEL_ALIASES = {
    "signal": spec.CHANNEL_SIGNAL,
    "signals": spec.CHANNEL_SIGNAL,
    spec.CHANNEL_SIGNAL: spec.CHANNEL_SIGNAL,
    "positions": spec.CHANNEL_POSITIONS,
    "position": spec.CHANNEL_POSITIONS,
    spec.CHANNEL_POSITIONS: spec.CHANNEL_POSITIONS,
}


def complete_channel(incomplete: str) -> list[str]:
    return [name for name in CHANNEL_ALIASES if name.startswith(incomplete)]


class OutputMode(str, Enum):
    auto = "auto"
    table = "table"
    ndjson = "ndjson"


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
OutputOpt = Annotated[
    OutputMode,
    typer.Option("-o", "--output", metavar="MODE", parser=choice(OutputMode, "'-o' / '--output'"),
                 help="auto (tables on a terminal, NDJSON otherwise), table or ndjson."),
]
TzOpt = Annotated[
    DisplayZone | None,
    typer.Option("--tz", metavar="local|utc|ZONE", parser=parse_zone, show_default=False,
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
