"""What the commands share: option types, and parsing of strategy ids and channels."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from c2ws import spec
from c2ws.render.color import ColorChoice

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


# Options shared by subscribe and demo.
CountOpt = Annotated[
    int | None,
    typer.Option("-n", "--count", min=1, help="Exit 0 after N signal/position messages."),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", min=0.0,
                 help="Stop after S seconds (exit 0; 124 if --count was not reached)."),
]
OutputOpt = Annotated[
    OutputMode,
    typer.Option("-o", "--output",
                 help="auto: tables on a terminal, NDJSON otherwise.", case_sensitive=False),
]
IncludeControlOpt = Annotated[
    bool,
    typer.Option("--include-control",
                 help="NDJSON: also print control traffic (connected, heartbeats, acks, errors)."),
]
MaxBufferOpt = Annotated[
    int,
    typer.Option("--max-buffer", min=1,
                 help="Messages held for a slow stdout reader; past that, c2ws closes the "
                      "connection and resumes where the output stopped once the reader "
                      "catches up (exit 8 with --no-reconnect)."),
]
VerboseOpt = Annotated[
    bool, typer.Option("-v", "--verbose", help="Show protocol traffic on stderr (key redacted).")
]


# --- settings, formats and recordings (issue 14) -----------------------------------------

ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", metavar="NAME", show_default=False,
                 help="Settings profile from the config file (env C2WS_PROFILE)."),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", show_default=False,
                 help="C2 API key (sent as a Bearer token; never printed); env C2_API_KEY."),
]
ApiKeyFileOpt = Annotated[
    str | None,
    typer.Option("--api-key-file", metavar="PATH", show_default=False,
                 help="Read the API key from PATH (mode 600), or from stdin with '-'; "
                      "env C2WS_API_KEY_FILE."),
]
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", show_default=False,
                 help=f"WebSocket endpoint; env C2WS_URL. Default: {spec.DEFAULT_URL}"),
]
RecordOpt = Annotated[
    Path | None,
    typer.Option("--record", metavar="FILE", show_default=False,
                 help="Append every received frame (raw, with receive time and connection) "
                      "to FILE as NDJSON, for 'c2ws replay'."),
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
    typer.Option("--color", case_sensitive=False,
                 help="auto: color on a terminal unless NO_COLOR is set (FORCE_COLOR forces "
                      "it)."),
]


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
