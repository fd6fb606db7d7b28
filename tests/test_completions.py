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
    assert bash_candidates("c2ws config ") == ["path", "show"]
    assert bash_candidates("c2ws subscribe 1 -c strategy.") == [
        "strategy.signal", "strategy.positions"]
