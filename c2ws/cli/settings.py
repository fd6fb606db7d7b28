"""The command line's side of :mod:`c2ws.config`: resolve the settings of a command, read
its API key, and turn what cannot be used into a usage error (exit 2)."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer

from c2ws.config import Flags, Settings, SettingsError, api_key_of, resolve


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


def load_api_key(settings: Settings, *, given_on_command_line: bool, quiet: bool = False) -> str:
    """The API key the settings point at ("" when none), read and checked as
    :func:`c2ws.stream` reads it (:func:`c2ws.config.api_key_of`), and registered as a
    secret so that no stderr line can show it."""
    from c2ws.errors import ConfigError
    from c2ws.render.safe import keep_secret

    if settings.api_key.value is None:
        return ""
    try:
        key = api_key_of(settings)
    except SettingsError as exc:
        usage_error(exc)
    except ConfigError as exc:
        if given_on_command_line and not quiet:
            _warn_command_line_key()
        raise typer.BadParameter(str(exc), param_hint="'--api-key'") from None
    keep_secret(key)
    if given_on_command_line and not quiet:
        _warn_command_line_key()
    return key


def _warn_command_line_key() -> None:
    print("c2ws: warning: an API key given with --api-key is visible to other users "
          "of this machine (ps, shell history); use --api-key-file or C2_API_KEY "
          "instead", file=sys.stderr)
