"""One truth for exit codes: the README's table, `c2ws subscribe --help`, the library
docs and the ExitCode enum with its error map (c2ws/exitcodes.py) all agree, and the
README's rule for a --timeout before any confirmed subscription is what a run does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import typer.main
from raw_server import free_port

from c2ws import errors
from c2ws.exitcodes import (
    EXIT_CODES,
    MEANINGS,
    SUMMARIES,
    TIMEOUT_BEFORE_CONFIRMED,
    ExitCode,
    markdown_table,
)

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def words(text: str) -> str:
    return " ".join(text.split())


def readme_section(title: str) -> str:
    start = README.index(f"\n### {title}\n")
    end = README.find("\n#", start + 1)
    return README[start:end]


def test_the_readme_table_is_the_one_exitcodes_py_generates() -> None:
    table = "\n".join(line for line in readme_section("Exit codes").splitlines()
                      if line.startswith("|"))
    assert table == markdown_table(), (
        "README.md's exit code table differs from c2ws/exitcodes.py: paste the output of "
        "'python -m c2ws.exitcodes' into the README's 'Exit codes' section"
    )


def test_every_status_has_a_meaning_and_a_summary_and_nothing_else_does() -> None:
    assert list(MEANINGS) == list(ExitCode) == list(SUMMARIES)
    assert all(len(summary) <= 70 for summary in SUMMARIES.values())
    rows = re.findall(r"(?m)^\| (\d+) \|", readme_section("Exit codes"))
    assert [int(code) for code in rows] == [int(code) for code in ExitCode]


def test_the_timeout_rule_is_stated_under_the_table() -> None:
    assert words(TIMEOUT_BEFORE_CONFIRMED) in words(readme_section("Exit codes"))


def test_subscribe_help_lists_every_status_with_its_summary() -> None:
    from c2ws.cli.app import app
    from c2ws.cli.entry import register_commands

    register_commands(["subscribe"])
    group = typer.main.get_command(app)
    subscribe = group.commands["subscribe"]  # type: ignore[attr-defined]
    text = subscribe.get_help(typer.Context(subscribe, info_name="subscribe"))
    listed = text.split("Exit codes:")[1]
    for code, summary in SUMMARIES.items():
        assert re.search(rf"(?m)^\s+{int(code)}\s+{re.escape(summary)}$", listed), code


def test_every_error_class_has_one_status_and_the_docs_say_which() -> None:
    concrete = {cls for cls in vars(errors).values()
                if isinstance(cls, type) and issubclass(cls, errors.C2wsError)
                and cls.__module__ == errors.__name__
                and cls not in (errors.C2wsError, errors.ConnectionFailed)}
    assert concrete == set(EXIT_CODES)
    expected = {cls.__name__: int(code) for cls, code in EXIT_CODES.items()}
    # README, Python API: "(`AuthenticationFailed` 3, `CannotConnect` 4, ...)"
    api = README[README.index("## Python API"):README.index("## Protocol notes")]
    named = dict(re.findall(r"`(\w+)` (\d+)", api))
    for pair in re.findall(r"`(\w+)`/`(\w+)` (\d+)", api):
        named.update({pair[0]: pair[2], pair[1]: pair[2]})
    readme_says = {name: int(code) for name, code in named.items() if name in expected}
    # docs/library.md: "| `CannotConnect` | 4 | ... |"
    library = (REPO / "docs" / "library.md").read_text()
    library_says = {name: int(code)
                    for name, code in re.findall(r"(?m)^\| `(\w+)` \| (\d+) \|", library)}
    without_internal = {name: code for name, code in expected.items() if code != ExitCode.ERROR}
    assert readme_says == without_internal
    assert library_says == expected


def test_a_timeout_while_no_connection_can_be_made_exits_4_as_the_readme_says() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("C2_", "C2WS_"))}
    env.update(C2_API_KEY="exit-code-test-key", C2WS_CONFIG=os.devnull)
    result = subprocess.run(
        [sys.executable, "-m", "c2ws", "subscribe", "1", "-o", "ndjson",
         "--url", f"ws://127.0.0.1:{free_port()}/ws", "--timeout", "1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == ExitCode.CONNECT_FAILED, result.stderr
    assert "timed out after 1 s before any subscription was confirmed" in result.stderr
    assert "refused" in result.stderr
    assert result.stdout == ""
