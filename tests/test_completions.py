"""completions/ holds exactly what `c2ws completions SHELL` prints, and it completes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FILES = {"bash": "c2ws.bash", "zsh": "_c2ws", "fish": "c2ws.fish"}


def c2ws(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", "c2ws", *args], cwd=REPO, text=True,
                            capture_output=True, timeout=60, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(("shell", "name"), FILES.items())
def test_committed_script_is_what_the_app_generates(shell: str, name: str) -> None:
    committed = (REPO / "completions" / name).read_text()
    assert committed == c2ws("completions", shell), (
        f"completions/{name} is stale: regenerate it with the command in the README"
    )


def test_the_bash_script_parses() -> None:
    subprocess.run(["bash", "-n", str(REPO / "completions" / FILES["bash"])], check=True)


def bash_candidates(words: str) -> list[str]:
    parts = words.split(" ")
    env = {"_C2WS_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(parts) - 1)}
    # Run as "c2ws" would be: the module, with the program name the scripts register.
    return c2ws(env=env).split()


def test_commands_options_and_values_complete() -> None:
    assert bash_candidates("c2ws su") == ["subscribe"]
    assert "--channel" in bash_candidates("c2ws subscribe --")
    assert bash_candidates("c2ws subscribe 1 -o ") == ["auto", "table", "ndjson", "json",
                                                        "csv", "tsv"]
    assert bash_candidates("c2ws replay f --color ") == ["auto", "always", "never"]
    assert bash_candidates("c2ws config ") == ["init", "path", "show"]
    assert bash_candidates("c2ws subscribe 1 -c strategy.") == [
        "strategy.signal", "strategy.positions"]


def test_tz_completes_zone_names_not_files() -> None:
    assert bash_candidates("c2ws subscribe 1 --tz u") == ["utc"]
    assert bash_candidates("c2ws demo --tz America/New_Y") == ["America/New_York"]
    every = bash_candidates("c2ws subscribe --tz ")
    assert every[:2] == ["local", "utc"] and "Europe/London" in every
    assert not {"README.md", "tests", "c2ws"} & set(every)
    assert not [name for name in every if name.startswith(("posix/", "right/"))]


# Loaded by a Tab, they would make it slow: pydantic is Typer's value coercion (0.1 s),
# the rest is what a run needs and a completion never does.
HEAVY_MODULES = ("pydantic", "rich", "websocket", "websockets", "orjson", "msgspec",
                 "c2ws.engine", "c2ws.streaming", "c2ws.net", "c2ws.server", "c2ws.render.table")

LOADED_AT_EXIT = """\
import atexit, sys
heavy = {heavy!r}
atexit.register(lambda: print(sorted(name for name in sys.modules
                                     if name.startswith(heavy)), file=sys.stderr))
sys.argv = ["c2ws"]
from c2ws.cli import main
main()
"""


@pytest.mark.parametrize(("words", "expected"), [
    ("c2ws subscribe 1 -o ", "ndjson"),
    ("c2ws demo --tz Europe/Lo", "Europe/London"),
    ("c2ws check --color ", "never"),
    ("c2ws config show --", "--json"),
])
def test_a_tab_loads_nothing_heavy(words: str, expected: str) -> None:
    code = LOADED_AT_EXIT.format(heavy=HEAVY_MODULES)
    env = {**os.environ, "_C2WS_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1)}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, text=True,
                            capture_output=True, timeout=60, env=env)
    assert expected in result.stdout.split(), result.stderr
    assert result.stderr == "[]\n"


def test_the_bash_script_works_without_the_bash_completion_package() -> None:
    # What the README's line does: source the script from ~/.bashrc, no bash-completion.
    script = (f"source {REPO / 'completions' / FILES['bash']}\n"
              "COMP_WORDS=(c2ws subscribe 1 --output ''); COMP_CWORD=4\n"
              "_c2ws_completion c2ws\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], cwd=REPO,
                            text=True, capture_output=True, timeout=60,
                            env={**os.environ, "PATH": path})
    assert result.stdout.split() == ["auto", "table", "ndjson", "json", "csv", "tsv"], (
        result.stderr)


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_requests_are_answered_too(shell: str) -> None:
    # They pass the line in _TYPER_COMPLETE_ARGS, from which c2ws takes the command to load.
    env = {"_C2WS_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    assert "ndjson" in c2ws(env={**env, "_TYPER_COMPLETE_ARGS": "c2ws subscribe -o "})
    assert "Europe/London" in c2ws(env={**env, "_TYPER_COMPLETE_ARGS": "c2ws demo --tz Eu"})
    assert "subscribe" in c2ws(env={**env, "_TYPER_COMPLETE_ARGS": "c2ws su"})
