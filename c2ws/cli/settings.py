"""The command line's side of :mod:`c2ws.config`: resolve the settings of a command, read
its API key, and turn what cannot be used into a usage error (exit 2)."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer

from c2ws.config import Flags, Settings, SettingsError, read_api_key, resolve


def usage_error(exc: SettingsError) -> NoReturn:
    """A settings problem is a usage error (exit 2): one line naming what to fix."""
    from c2ws.exitcodes import ExitCode
    from c2ws.render.safe import redacted

    if exc.param:
        raise typer.BadParameter(str(exc), param_hint=f"'{exc.param}'") from None
    print(redacted(f"c2ws: {exc}"), file=sys.stderr)
    raise typer.Exit(ExitCode.USAGE)


def load_settings(flags: Flags) -> Settings:
    """The effective settings (flag > env > profile > config file > default)."""
    try:
        return resolve(flags, os.environ)
    except SettingsError as exc:
        usage_error(exc)


def load_api_key(settings: Settings, *, given_on_command_line: bool) -> str:
    """The API key the settings point at ("" when none), registered as a secret so that
    no stderr line can show it."""
    from c2ws.engine import check_api_key
    from c2ws.errors import ConfigError
    from c2ws.render.safe import keep_secret

    source = settings.api_key.value
    if source is None:
        return ""
    try:
        key = read_api_key(source)
    except SettingsError as exc:
        usage_error(exc)
    keep_secret(key)
    if given_on_command_line:
        print("c2ws: warning: an API key given with --api-key is visible to other users "
              "of this machine (ps, shell history); use --api-key-file or C2_API_KEY "
              "instead", file=sys.stderr)
    try:
        check_api_key(key)
    except ConfigError as exc:
        where = settings.api_key.source
        raise typer.BadParameter(f"{exc} (key from {where})", param_hint="'--api-key'") from None
    return key
