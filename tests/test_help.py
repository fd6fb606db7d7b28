"""Every command's help as a user sees it at 80 and 120 columns: no Python type or
internal metavar leaks, every summary whole, README sections named as being in the
README, and every -o lists every format it accepts.

The help is rendered in-process (the same code path as ``c2ws X --help``, with COLUMNS
set as a terminal sets it, over the commands the man page walks): twenty subprocesses
would cost seconds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from c2ws.cli.manpage import command_contexts
from c2ws.cli.options import OutputMode

REPO = Path(__file__).resolve().parent.parent
WIDTHS = (80, 120)

# What Typer shows when it knows no better: Python types ("<list[str]>", "<str>"), a
# required argument in braces ("{FILE}"), an optional repeated one bracketed twice
# ("[[STRATEGY_ID]...]..."), a range in its own notation ("x>=0.1").
LEAKS = {
    "a Python type": re.compile(r"<[a-z]\w*(\[[^>]*\])?>"),
    "a metavar in braces": re.compile(r"\{[A-Z_]+\}"),
    "a metavar bracketed twice": re.compile(r"\[\[|\]\.\.\.\]"),
    "a range in Typer's notation": re.compile(r"\bx\s*[<>]=?"),
}


@pytest.fixture(params=WIDTHS, ids=[f"{w} columns" for w in WIDTHS])
def helps(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[
        tuple[str, Any, typer.Context, str]]:
    monkeypatch.setenv("COLUMNS", str(request.param))  # read when each help is formatted
    return [(path, command, ctx, command.get_help(ctx))
            for path, command, ctx in command_contexts()]


def words(text: str) -> str:
    return " ".join(text.split())


def test_every_command_is_rendered(helps: list[tuple[str, Any, typer.Context, str]]) -> None:
    paths = {path for path, *_ in helps}
    assert {"c2ws", "c2ws subscribe", "c2ws demo", "c2ws check", "c2ws replay", "c2ws serve",
            "c2ws completions", "c2ws config", "c2ws config init", "c2ws config show",
            "c2ws config path"} <= paths


def test_no_python_type_or_internal_metavar_shows(
    helps: list[tuple[str, Any, typer.Context, str]],
) -> None:
    found = [f"{path}: {what} {match.group()!r}"
             for path, _, _, text in helps
             for what, pattern in LEAKS.items()
             for match in pattern.finditer(text)]
    assert found == []


def test_arguments_show_as_their_metavar_says(
    helps: list[tuple[str, Any, typer.Context, str]],
) -> None:
    usage = {path: text.splitlines()[0] for path, _, _, text in helps}
    assert usage["c2ws check"] == "Usage: c2ws check [OPTIONS] [STRATEGY_ID...]"
    assert usage["c2ws replay"] == "Usage: c2ws replay [OPTIONS] FILE [STRATEGY_ID...]"
    assert usage["c2ws subscribe"] == "Usage: c2ws subscribe [OPTIONS] [STRATEGY_ID...]"


def test_every_group_shows_each_command_summary_whole(
    helps: list[tuple[str, Any, typer.Context, str]],
) -> None:
    groups = [(path, command, ctx, text) for path, command, ctx, text in helps
              if getattr(command, "commands", None)]
    assert {path for path, *_ in groups} == {"c2ws", "c2ws config"}
    for path, command, _, text in groups:
        listing = words(text.split("Commands:")[1])
        assert "..." not in listing, f"{path}: a summary is cut short"
        for name, sub in command.commands.items():
            summary = words(sub.get_short_help_str(limit=10_000))
            assert summary.endswith("."), f"{path} {name}: the summary is not a sentence"
            assert f"{name} {summary}" in listing, f"{path}: {name}'s summary is not whole"


def readme_sections() -> set[str]:
    text = (REPO / "README.md").read_text()
    return {heading.strip("` ") for heading in re.findall(r"(?m)^#{2,4} (.+)$", text)}


def test_a_readme_section_is_always_said_to_be_in_the_readme(
    helps: list[tuple[str, Any, typer.Context, str]],
) -> None:
    sections = readme_sections()
    assert "Running unattended" in sections
    unsaid = []
    for path, _, _, text in helps:
        flat = words(text)
        for match in re.finditer(r"['\"]([A-Z][^'\"]+)['\"]", flat):
            if match.group(1) in sections and "README" not in flat[match.end():match.end() + 20]:
                unsaid.append(f"{path}: {match.group()}")
    assert unsaid == []


def test_every_output_option_lists_every_format_it_accepts(
    helps: list[tuple[str, Any, typer.Context, str]],
) -> None:
    checked = []
    for path, command, ctx, _ in helps:
        for param in command.params:
            if "--output" in getattr(param, "opts", ()):
                record = param.get_help_record(ctx)
                assert record is not None
                missing = [mode.value for mode in OutputMode
                           if not re.search(rf"\b{mode.value}\b", record[1])]
                assert missing == [], f"{path} -o does not name {missing}"
                checked.append(path)
    assert {"c2ws subscribe", "c2ws demo", "c2ws replay"} <= set(checked)
