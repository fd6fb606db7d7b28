"""What the commands share: option types, and parsing of strategy ids and channels."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from c2ws import spec

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
