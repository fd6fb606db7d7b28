"""``c2ws config init``, ``show`` and ``path``: a commented config file, the effective
settings and where each came from, and where the file is."""


import os
import sys
from typing import Annotated

import typer

from c2ws.cli.app import App, Group, app
from c2ws.cli.options import ApiKeyFileOpt, ProfileOpt, QuietOpt, UrlOpt
from c2ws.exitcodes import ExitCode

config_app = App(
    cls=Group, name="config", no_args_is_help=True,
    help="Write, show and locate the config file: settings, profiles and where each "
         "setting comes from.",
)
app.add_typer(config_app, name="config")


@config_app.command("init")
def config_init(
    force: Annotated[
        bool, typer.Option("--force", help="Replace the config file if there is one.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a config file with every setting explained and commented out (mode 0600).

    It goes where 'c2ws config path' says; an existing file is left alone unless --force
    is given.
    """
    from c2ws.cli.settings import usage_error
    from c2ws.config import SettingsError, write_config_template
    from c2ws.config import config_path as path_of

    path = path_of(os.environ)
    try:
        write_config_template(path, replace=force)
    except SettingsError as exc:
        usage_error(exc)
    if quiet:
        return
    print(f"c2ws: wrote {path} (mode 0600): every setting in it is commented out; edit it, "
          "then 'c2ws config show' prints the settings in effect", file=sys.stderr)


@config_app.command("path")
def config_path(
    # Accepted by every command (a script may pass -q to any); this one says nothing on
    # stderr anyway.
    quiet: QuietOpt = False,
) -> None:
    """Print the path of the config file (C2WS_CONFIG, else the user config directory)."""
    from c2ws.config import config_path as path_of

    typer.echo(str(path_of(os.environ)))


@config_app.command("show")
def config_show(
    profile: ProfileOpt = None,
    api_key_file: ApiKeyFileOpt = None,
    url: UrlOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the settings as one JSON object.")
    ] = False,
    # Accepted by every command; on stderr this one says only why a file is refused.
    quiet: QuietOpt = False,
) -> None:
    """Print every setting, where it came from (flag, env, profile, config file, default),
    and the API key masked.

    A config file or key file a run would refuse (others can read it, say) is shown all
    the same, with why on stderr, and the exit status is 2.
    """
    from c2ws import spec
    from c2ws.cli.options import parse_channels
    from c2ws.cli.settings import usage_error
    from c2ws.config import Flags, SettingsError, read_private_file, resolve
    from c2ws.render.safe import redacted

    try:
        settings = resolve(Flags(profile=profile, url=url, api_key_file=api_key_file),
                           os.environ, refused_config_too=True)
    except SettingsError as exc:
        usage_error(exc)
    problems = [settings.config_refused] if settings.config_refused else []
    key = settings.api_key.value
    if key is not None and key.path is not None and not key.from_stdin:
        try:
            read_private_file(key.path, "API key file", spec.MAX_KEY_FILE_BYTES)
        except SettingsError as exc:
            problems.append(str(exc))
    try:
        # As a run would take them: full names, whether defaults or settings.
        channels = parse_channels(list(settings.channels.value) or None)
    except typer.BadParameter as exc:
        channels = list(settings.channels.value)
        problems.append(f"{exc.message} (from {settings.channels.source})")
    rows: list[tuple[str, object, str]] = [
        ("profile", settings.profile.value, settings.profile.source),
        ("url", settings.url.value, settings.url.source),
        ("api_key", key.describe() if key is not None else None, settings.api_key.source),
        ("strategies", list(settings.strategies.value), settings.strategies.source),
        ("channels", channels, settings.channels.source),
        ("output", settings.output.value or "auto", settings.output.source),
        ("tz", settings.tz.value, settings.tz.source),
    ]
    if as_json:
        import orjson

        document = {
            "config_file": str(settings.config_file),
            "config_found": settings.config_found,
            "config_refused": settings.config_refused,
            "profiles": list(settings.profiles),
            "settings": {name: {"value": value, "source": source}
                         for name, value, source in rows},
            "problem": "; ".join(problems) or None,
        }
        typer.echo(redacted(orjson.dumps(document).decode()))
    else:
        if not settings.config_found:
            found = " (not found)"
        elif settings.config_refused:
            found = " (refused: see below)"
        else:
            found = ""
        lines = [f"{'config file':<12} {settings.config_file}{found}"]
        for name, value, source in rows:
            lines.append(f"{name:<12} {_show(value)}  ({source})")
        lines.append(f"{'profiles':<12} {', '.join(settings.profiles) or '-'}")
        typer.echo(redacted("\n".join(lines)))
    for problem in problems:
        print(redacted(f"c2ws: {problem}"), file=sys.stderr)
    if problems:
        raise typer.Exit(ExitCode.USAGE)


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "-"
    return str(value)
