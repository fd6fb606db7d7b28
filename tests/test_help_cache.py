"""``c2ws ... --help`` from the kept texts (c2ws/cli/help_cache.py): the same bytes Typer
prints, for every command, printed without loading Typer, and only where the bytes are
the same (80 columns or more, nothing but the command and the flag)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from c2ws.cli import help_cache
from c2ws.cli.help_texts import TEXTS

# The command line as its console script runs it, saying at the end (also after the
# SystemExit of Typer's path) whether Typer was loaded.
RUN_MAIN = ("import sys\nfrom c2ws.cli import main\nsys.argv[0] = 'c2ws'\ntry:\n    main()\n"
            "finally:\n    print('typer' in sys.modules, file=sys.stderr)")


def run_cli(*argv: str, columns: int = 100, **env: str) -> subprocess.CompletedProcess[bytes]:
    environ = {k: v for k, v in os.environ.items() if k != help_cache.BYPASS_VAR}
    environ.update(COLUMNS=str(columns), **env)
    return subprocess.run([sys.executable, "-c", RUN_MAIN, *argv], env=environ,
                          capture_output=True, timeout=120)


def test_every_command_is_kept_and_each_text_is_what_typer_prints_now() -> None:
    paths = help_cache.kept_paths()
    assert sorted(TEXTS) == sorted(paths), (
        "the kept help texts are stale: python -m c2ws.cli.help_cache > c2ws/cli/help_texts.py")
    stale = [path for path in paths if TEXTS[path] != help_cache.live_help(path)]
    assert not stale, (f"the help of {stale} changed: "
                       "python -m c2ws.cli.help_cache > c2ws/cli/help_texts.py")


def test_the_generated_module_is_what_the_generator_writes() -> None:
    with open(help_cache.__file__.replace("help_cache.py", "help_texts.py")) as kept:
        assert kept.read() == help_cache.module_source(TEXTS)


@pytest.mark.parametrize("argv", [["subscribe", "--help"], ["config", "show", "-h"],
                                  ["--help"]])
def test_the_command_line_prints_the_kept_help_without_loading_typer(argv: list[str]) -> None:
    done = run_cli(*argv)
    assert done.returncode == 0
    path = " ".join(["c2ws", *argv[:-1]])
    assert done.stdout.decode() == TEXTS[path]
    assert done.stderr == b"False\n"  # typer was never imported


@pytest.mark.parametrize(("argv", "columns", "why"), [
    (["subscribe", "--help"], 79, "a terminal narrower than 80 columns: click wraps shorter"),
    (["subscribe", "-o", "csv", "--help"], 100, "other arguments"),
    (["subscribe", "--count", "--help"], 100, "an option before the flag"),
    (["no-such-command", "--help"], 100, "a command not kept (Typer says it is unknown)"),
    (["subscribe", "--help", "1"], 100, "the flag not last"),
])
def test_anything_else_goes_through_typer(argv: list[str], columns: int, why: str) -> None:
    old = dict(os.environ)
    os.environ["COLUMNS"] = str(columns)
    try:
        assert help_cache.kept_help_for(argv) is None, why
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_a_narrow_terminal_gets_typer_s_own_wrapping() -> None:
    done = run_cli("subscribe", "--help", columns=60)
    assert done.returncode == 0
    assert done.stderr == b"True\n"
    assert done.stdout.decode() != TEXTS["c2ws subscribe"]
    # the description is wrapped for 60 columns (the exit-code table is kept as written)
    assert "  Subscribe to strategies and stream their signals and\n  positions." in (
        done.stdout.decode())


def test_the_bypass_variable_sends_help_through_typer() -> None:
    done = run_cli("subscribe", "--help", **{help_cache.BYPASS_VAR: "1"})
    assert done.returncode == 0 and done.stderr == b"True\n"
    assert done.stdout.decode() == TEXTS["c2ws subscribe"]


def test_columns_as_shutil_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    for value in ("120", "79", "0", "-3", "wide", ""):
        monkeypatch.setenv("COLUMNS", value)
        assert help_cache.terminal_columns() == shutil.get_terminal_size().columns, value
    monkeypatch.delenv("COLUMNS")
    assert help_cache.terminal_columns() == shutil.get_terminal_size().columns


def test_a_reader_that_left_ends_it_quietly() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE
    try:
        environ = {k: v for k, v in os.environ.items() if k != help_cache.BYPASS_VAR}
        environ["COLUMNS"] = "100"
        done = subprocess.run([sys.executable, "-c", RUN_MAIN, "subscribe", "--help"],
                              stdout=write_end, stderr=subprocess.PIPE, env=environ,
                              timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 0
    assert done.stderr == b"False\n"
