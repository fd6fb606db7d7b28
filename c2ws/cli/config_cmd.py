"""``c2ws config show`` and ``c2ws config path``: the effective settings, and where from."""


import os
import sys
from typing import Annotated

import typer

from c2ws.cli.app import App, Group, app
from c2ws.cli.options import ApiKeyFileOpt, ProfileOpt, UrlOpt
from c2ws.exitcodes import ExitCode

config_app = App(
    cls=Group, name="config", no_args_is_help=True,
    help="Show the effective settings (config file, profiles, environment) and where the "
         "config file is.",
)
app.add_typer(config_app, name="config")


@config_app.command("path")
def config_path() -> None:
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
) -> None:
    """Print every setting, where it came from (flag, env, profile, config file, default),
    and the API key masked.  Exit 2 when a setting cannot be used (say, a key file others
    can read)."""
    from c2ws import spec
    from c2ws.cli.settings import load_settings
    from c2ws.config import Flags, SettingsError, read_private_file
    from c2ws.render.safe import redacted

    settings = load_settings(Flags(profile=profile, url=url, api_key_file=api_key_file))
    problem: str | None = None
    key = settings.api_key.value
    if key is not None and key.path is not None and not key.from_stdin:
        try:
            read_private_file(key.path, "API key file", spec.MAX_KEY_FILE_BYTES)
        except SettingsError as exc:
            problem = str(exc)
    rows: list[tuple[str, object, str]] = [
        ("profile", settings.profile.value, settings.profile.source),
        ("url", settings.url.value, settings.url.source),
        ("api_key", key.describe() if key is not None else None, settings.api_key.source),
        ("strategies", list(settings.strategies.value), settings.strategies.source),
        ("channels", list(settings.channels.value or spec.CHANNELS), settings.channels.source),
        ("output", settings.output.value or "auto", settings.output.source),
        ("tz", settings.tz.value, settings.tz.source),
    ]
    if as_json:
        import orjson

        document = {
            "config_file": str(settings.config_file),
            "config_found": settings.config_found,
            "profiles": list(settings.profiles),
            "settings": {name: {"value": value, "source": source}
                         for name, value, source in rows},
            "problem": problem,
        }
        typer.echo(redacted(orjson.dumps(document).decode()))
    else:
        found = "" if settings.config_found else " (not found)"
        lines = [f"{'config file':<12} {settings.config_file}{found}"]
        for name, value, source in rows:
            lines.append(f"{name:<12} {_show(value)}  ({source})")
        lines.append(f"{'profiles':<12} {', '.join(settings.profiles) or '-'}")
        typer.echo(redacted("\n".join(lines)))
    if problem is not None:
        print(redacted(f"c2ws: {problem}"), file=sys.stderr)
        raise typer.Exit(ExitCode.USAGE)


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "-"
    return str(value)
