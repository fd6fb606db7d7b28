"""The man page, ``c2ws.1``, made from the same help as ``c2ws COMMAND --help``.

``python -m c2ws.cli.manpage > docs/c2ws.1`` writes it; the package installs that file
into ``share/man/man1`` (pyproject.toml, ``data-files``) and tests/test_manpage.py fails
when it differs from what this prints.  Every command, its usage, help, arguments,
options and examples come from the Typer app; the exit statuses from
:mod:`c2ws.exitcodes`; the environment and files from :mod:`c2ws.config`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer
import typer.main

from c2ws import __version__, config
from c2ws.cli.app import app
from c2ws.cli.entry import COMMAND_MODULES, register_commands
from c2ws.exitcodes import MEANINGS, TIMEOUT_BEFORE_CONFIRMED

__all__ = ["command_contexts", "manpage"]

# Help marks a paragraph to be kept as it is (examples, tables) with this first line.
_VERBATIM = "\b"

ENVIRONMENT = (
    (config.ENV_API_KEY, "The API key (sent as a Bearer token; never printed)."),
    (config.ENV_API_KEY_FILE, "A file holding the API key (mode 600), or - for stdin."),
    (config.ENV_URL, "The WebSocket endpoint."),
    (config.ENV_PROFILE, "The settings profile of the config file."),
    (config.ENV_CONFIG, "The config file to read instead of the default one; /dev/null: "
                        "none."),
    ("XDG_CONFIG_HOME", "Where the default config file is: $XDG_CONFIG_HOME/c2ws/"
                        "config.toml (~/.config/c2ws/config.toml when unset)."),
    ("NO_COLOR, FORCE_COLOR", "No color, or color even when the output is no terminal "
                              "(--color auto)."),
    ("C2WS_DEBUG", "Show the traceback of an internal error."),
)


def command_contexts() -> Iterator[tuple[str, Any, typer.Context]]:
    """Every command and group of c2ws (the root first, then in the order ``c2ws --help``
    lists them), each with the context ``c2ws PATH --help`` builds."""
    register_commands([])
    root = typer.main.get_command(app)
    # Typer lists commands in the order their modules were imported, which a process
    # that imported one before (a test) changes: the page keeps the order of `c2ws
    # --help`, that of COMMAND_MODULES with groups (config) after the commands.
    order = {name: index for index, name in enumerate(COMMAND_MODULES)}

    def listed(group: Any, name: str) -> tuple[bool, int]:
        return bool(getattr(group.commands[name], "commands", None)), order.get(name, len(order))

    def walk(command: Any, name: str, parent: typer.Context | None,
             ) -> Iterator[tuple[str, Any, typer.Context]]:
        ctx = typer.Context(command, info_name=name, parent=parent,
                            **(command.context_settings or {}))
        yield ctx.command_path, command, ctx
        names = list(getattr(command, "commands", {}))
        if parent is None:
            names.sort(key=lambda sub: listed(command, sub))
        for sub_name in names:
            yield from walk(command.commands[sub_name], sub_name, ctx)

    yield from walk(root, "c2ws", None)


def manpage() -> str:
    """The whole page, in roff (man macros)."""
    commands = list(command_contexts())
    root, root_ctx = commands[0][1], commands[0][2]
    summary = root.get_short_help_str(limit=10_000).rstrip(".")
    lines = [
        f'.TH C2WS 1 "" "c2ws {__version__}" "User Commands"',
        # Ragged right, no hyphenation: option names and values must read as typed.
        ".ad l",
        ".nh",
        ".SH NAME",
        f"c2ws \\- {_escape(summary[0].lower() + summary[1:])}",
        ".SH SYNOPSIS",
    ]
    for path, command, ctx in commands[1:]:
        if not getattr(command, "commands", None):
            lines += [f".B {_escape(path)}", _escape(" ".join(command.collect_usage_pieces(ctx))),
                      ".br"]
    lines += [".SH DESCRIPTION", *_text(root.help or ""), *_text(root.epilog or "")]
    lines += [".SH OPTIONS", *_params(root, root_ctx)]
    lines.append(".SH COMMANDS")
    for path, command, ctx in commands[1:]:
        usage = " ".join([path, *command.collect_usage_pieces(ctx)])
        lines += [f'.SS "{_escape(usage)}"', *_text(command.help or ""), *_params(command, ctx)]
        if getattr(command, "commands", None):
            lines += [".PP", f"Commands: {_escape(', '.join(command.commands))} (below)."]
        lines += _text(command.epilog or "", leave_out="Exit codes:")
    lines += [".SH EXIT STATUS"]
    for code, meaning in MEANINGS.items():
        lines += [".TP", f".B {int(code)}", _markdown(meaning) + "."]
    lines += [".PP", _markdown(TIMEOUT_BEFORE_CONFIRMED)]
    lines.append(".SH ENVIRONMENT")
    for name, what in ENVIRONMENT:
        lines += [".TP", f".B {_escape(name)}", _escape(what)]
    lines += [
        ".SH FILES",
        ".TP",
        ".I $XDG_CONFIG_HOME/c2ws/config.toml",
        _escape("The config file (TOML): settings and profiles. 'c2ws config init' writes "
                "one to start from, 'c2ws config show' shows what is in effect and where "
                "each setting came from. A file that holds an api_key must be readable by "
                "its owner only (chmod 600)."),
        ".SH SEE ALSO",
        _escape("The README of c2ws: the sections Usage, Exactly once, Running unattended, "
                "Configuration, Output formats, jq cookbook, Security; docs/library.md for "
                "the Python API."),
    ]
    return "\n".join(lines) + "\n"


def _params(command: Any, ctx: typer.Context) -> list[str]:
    """The command's arguments and options, as ``--help`` lists them."""
    lines: list[str] = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        lines += [".TP", f".B {_escape(names)}", _escape(" ".join(help_text.split()))]
    return lines


def _text(help_text: str, *, leave_out: str | None = None) -> list[str]:
    """Help paragraphs: filled, or kept line by line where help keeps them; a verbatim
    paragraph whose first line is ``leave_out`` is left out (the exit codes of
    ``subscribe --help``: EXIT STATUS says them in full)."""
    lines: list[str] = []
    for paragraph in re.split(r"\n\s*\n", help_text.strip()):
        rows = paragraph.splitlines()
        if rows and rows[0].strip() == _VERBATIM:
            if leave_out is not None and len(rows) > 1 and rows[1].strip() == leave_out:
                continue
            lines += [".PP", ".nf", *(_escape(row) for row in rows[1:]), ".fi"]
        elif paragraph.strip():
            lines += [".PP", _escape(" ".join(paragraph.split()))]
    return lines


def _markdown(text: str) -> str:
    """README wording: `code` in bold."""
    return re.sub(r"`([^`]*)`", r"\\fB\1\\fR", _escape(text))


def _escape(text: str) -> str:
    """Text as roff reads it literally: backslashes and hyphens (minus signs, so that an
    option copied from the page is typed right), and no line starting as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line
                     for line in text.split("\n"))


if __name__ == "__main__":
    print(manpage(), end="")
