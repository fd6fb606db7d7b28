"""docs/c2ws.1 is what `python -m c2ws.cli.manpage` prints, valid roff, complete, and
installed with the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from c2ws.cli.manpage import command_contexts, manpage
from c2ws.exitcodes import ExitCode

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "c2ws.1"


@pytest.fixture(scope="module")
def page() -> str:
    return manpage()


def test_the_committed_page_is_what_the_help_generates(page: str) -> None:
    assert PAGE.read_text() == page, (
        "docs/c2ws.1 is stale: regenerate it with "
        "'.venv/bin/python -m c2ws.cli.manpage > docs/c2ws.1' (README, Development)"
    )


def test_the_module_prints_the_page_whatever_was_imported_before() -> None:
    # Typer lists commands in the order their modules were first imported.
    code = ("import c2ws.cli.replay, c2ws.cli.config_cmd, c2ws.cli.check, runpy; "
            "runpy.run_module('c2ws.cli.manpage', run_name='__main__')")
    for command in ([sys.executable, "-m", "c2ws.cli.manpage"], [sys.executable, "-c", code]):
        result = subprocess.run(command, cwd=REPO, text=True, capture_output=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout == PAGE.read_text()


@pytest.mark.skipif(shutil.which("groff") is None, reason="needs groff")
def test_groff_reads_it_without_a_warning_and_it_says_everything(page: str) -> None:
    # -P-cbou: plain text, neither escape sequences nor overstruck bold and underline.
    result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-rLL=100n", "-P-cbou"],
                            input=page, text=True, capture_output=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    text = " ".join(result.stdout.split())
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS",
                    "ENVIRONMENT", "FILES", "SEE ALSO"):
        assert section in text
    for path, command, ctx in command_contexts():
        for param in command.get_params(ctx):
            names = ([*param.opts, *param.secondary_opts]
                     if param.param_type_name == "option" else [param.metavar])
            for name in names:
                assert name in text, f"{path}: {name}"
    for code in ExitCode:
        assert f" {int(code)} " in text
    assert "\\" not in text and "[[" not in text


def test_pip_installs_it_into_share_man_man1() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["data-files"]["share/man/man1"] == ["docs/c2ws.1"]


def test_the_readme_links_it_and_says_how_to_regenerate_it() -> None:
    readme = (REPO / "README.md").read_text()
    assert "[docs/c2ws.1](docs/c2ws.1)" in readme
    assert "python -m c2ws.cli.manpage > docs/c2ws.1" in readme
