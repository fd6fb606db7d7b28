"""``c2ws check``: can this key connect, may it subscribe, and is the clock right?

Exit codes are those of ``subscribe``: 0 all good (a clock 20 s or more off is a warning),
3 the key was refused, 4 no connection, 5 server busy, 6 the connection was lost or
an answer never came, 7 a subscription was rejected or the clock is so far off that the
server rejects what c2ws sends.
"""


import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from c2ws import spec
from c2ws.cli.app import app
from c2ws.cli.options import (
    ApiKeyFileOpt,
    ApiKeyOpt,
    ColorOpt,
    ProfileOpt,
    UrlOpt,
    complete_channel,
    parse_channels,
    parse_strategy_ids,
    seconds,
)
from c2ws.exitcodes import ExitCode
from c2ws.render.color import ColorChoice

if TYPE_CHECKING:
    from rich.console import Console

    from c2ws import CheckResult, ClockEstimate


@app.command()
def check(
    strategy_ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="STRATEGY_ID", show_default=False,
                       help="Strategies to try subscribing to; default: the profile's."),
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option("-c", "--channel", metavar="CHANNEL", show_default=False,
                     help="signal or positions; repeatable. Default: both.",
                     autocompletion=complete_channel),
    ] = None,
    profile: ProfileOpt = None,
    api_key: ApiKeyOpt = None,
    api_key_file: ApiKeyFileOpt = None,
    url: UrlOpt = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="S",
                            parser=seconds("'--timeout'", minimum=0.1),
                            help="Give up after S seconds (at least 0.1).")
    ] = spec.CHECK_TIMEOUT_SECONDS,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="Print nothing; the exit code says it all "
                                                "(errors still go to stderr).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON object.")
    ] = False,
    color: ColorOpt = ColorChoice.auto,
) -> None:
    """Check the connection, the key and the subscriptions; report latency and clock offset.

    Example: c2ws check 12345678 -q && c2ws subscribe 12345678
    """
    from c2ws.cli.settings import load_api_key, load_settings
    from c2ws.config import Flags, check_url
    from c2ws.errors import ConfigError

    settings = load_settings(Flags(
        profile=profile, url=url, api_key=api_key, api_key_file=api_key_file,
        strategies=tuple(parse_strategy_ids(strategy_ids)) if strategy_ids else (),
        channels=tuple(parse_channels(channel)) if channel else (),
    ))
    channels = parse_channels(list(settings.channels.value) or None)
    key = load_api_key(settings, given_on_command_line=api_key is not None)
    try:
        check_url(settings.url.value)
        if not key:
            raise ConfigError("no API key: pass --api-key-file or --api-key, set C2_API_KEY, "
                              "or set api_key_file in a profile", param="--api-key")
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{exc.param}'") from None
    raise typer.Exit(run_check(settings.url.value, key, settings.strategies.value, channels,
                               timeout=timeout, quiet=quiet, as_json=as_json, color=color))


def run_check(
    url: str, api_key: str, strategies: Sequence[int], channels: Sequence[str], *,
    timeout: float, quiet: bool, as_json: bool, color: ColorChoice,
) -> int:
    """:func:`c2ws.check`, reported; returns the exit code."""
    import orjson

    import c2ws
    from c2ws.config import proxy_setting
    from c2ws.errors import C2wsError, ConfigError
    from c2ws.exitcodes import exit_code_for
    from c2ws.render.color import console_options
    from c2ws.render.consoles import DataConsole, MessageConsole
    from c2ws.render.diagnostics import describe_proxy
    from c2ws.render.safe import redacted, terminal_safe

    out = DataConsole(highlight=False, markup=False, emoji=False,
                      **console_options(color, os.environ, sys.stdout))
    err = MessageConsole(stderr=True, highlight=False, markup=False, emoji=False,
                         **console_options(color, os.environ, sys.stderr))

    def say(text: str, style: str = "") -> None:
        err.print(redacted(f"c2ws: {text}"), style=style, soft_wrap=True)

    proxy = proxy_setting(url)
    if proxy is not None and (proxy.key_in_clear or not proxy.used) and not quiet:
        say(*describe_proxy(proxy))
    try:
        result = c2ws.check(strategies, channels, api_key=api_key, url=url, timeout=timeout)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{exc.param or 'STRATEGY_ID'}'") \
            from None
    except C2wsError as error:
        code = exit_code_for(error)
        message = terminal_safe(str(error), 400)
        if as_json and not quiet:
            _print_json(orjson.dumps({"ok": False, "exit_code": int(code), "url": url,
                                      "error": redacted(message)}))
        say(f"check failed: {message}", "red")
        return int(code)
    code = ExitCode.OK if result.ok else ExitCode.NOTHING_TO_STREAM
    problems: list[str] = []
    if result.rejected:
        problems.append(f"{len(result.rejected)} of {len(result.subscriptions)} "
                        "subscription(s) rejected")
    clock = result.clock
    if clock is not None and result.clock_rejected:
        problems.append(f"{_describe_clock(clock)}: the server rejects client timestamps "
                        f"more than {spec.MAX_CLOCK_SKEW_SECONDS:g} s off; set this machine's "
                        "clock (NTP)")
    elif clock is not None and result.clock_off and not quiet:
        say(f"warning: {_describe_clock(clock)}; the server rejects client timestamps "
                f"more than {spec.MAX_CLOCK_SKEW_SECONDS:g} s off: set this machine's clock "
                "(NTP)", "yellow")
    if not quiet:
        if as_json:
            _print_json(orjson.dumps(_report_object(result, code)))
        else:
            _print_report(out, result)
    for problem in problems:
        say(problem, "red")
    return int(code)


def _print_json(data: bytes) -> None:
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.buffer.flush()


def _clock_value(clock: "ClockEstimate") -> str:
    """``30 s ahead of this machine's (± 0.5 s)``."""
    amount = abs(clock.offset)
    if amount < 1:
        return f"agrees with this machine's (± {amount + clock.uncertainty:.1f} s)"
    direction = "ahead of" if clock.offset > 0 else "behind"
    return f"{amount:.0f} s {direction} this machine's (± {clock.uncertainty:.1f} s)"


def _describe_clock(clock: "ClockEstimate") -> str:
    return f"the server's clock is {_clock_value(clock)}"


def _report_object(result: "CheckResult", code: ExitCode) -> dict[str, object]:
    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000, 3)

    clock = result.clock
    return {
        "ok": code is ExitCode.OK,
        "exit_code": int(code),
        "url": result.url,
        "connect_ms": ms(result.connect_seconds),
        "round_trip_ms": ms(result.round_trip_seconds),
        "round_trip_method": result.round_trip_method or None,
        "clock_offset_s": None if clock is None else round(clock.offset, 3),
        "clock_uncertainty_s": None if clock is None else round(clock.uncertainty, 3),
        "subscriptions": [
            {"strategy_id": check.key.strategy_id, "channel": check.key.channel,
             "allowed": check.allowed, "reason": check.reason or None}
            for check in result.subscriptions
        ],
    }


def _print_report(console: "Console", result: "CheckResult") -> None:
    from rich.text import Text

    from c2ws.render.safe import redacted

    def line(label: str, value: str, style: str = "") -> None:
        text = Text(f"{label:<14}")
        text.append(value, style=style)
        console.print(text, soft_wrap=True)

    line("endpoint", redacted(result.url))
    line("connected", f"yes, in {result.connect_seconds * 1000:.0f} ms (connect and upgrade)",
         "green")
    if result.round_trip_seconds is not None:
        line("round trip", f"{result.round_trip_seconds * 1000:.1f} ms "
                           f"({result.round_trip_method})")
    clock = result.clock
    if clock is not None:
        off = abs(clock.offset)
        style = ("red" if off >= spec.MAX_CLOCK_SKEW_SECONDS
                 else "yellow" if off >= spec.CLOCK_OFFSET_WARN_SECONDS else "")
        line("server clock", _clock_value(clock), style)
    for check in result.subscriptions:
        if check.allowed:
            line("allowed", str(check.key), "green")
        else:
            line("rejected", f"{check.key}: {check.reason}", "red")
