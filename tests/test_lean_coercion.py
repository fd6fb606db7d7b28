"""c2ws's coercion of option and argument values (typer_compat.LeanCoercion) against
Typer's own, the general path: for every parameter of every command and any value, the
same value out (type included) or the same error; and a run that needs no conversion
loads no pydantic (Typer's coercion library, 12 MiB of a run's memory)."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import given, settings
from hypothesis import strategies as st

from c2ws.cli import entry
from c2ws.cli.app import app
from c2ws.cli.typer_compat import GENERAL, LeanCoercion, _typer_runtime_param

REPO = Path(__file__).resolve().parent.parent


def _parameters() -> list[tuple[str, Any]]:
    entry.register_commands([])  # every command
    group = typer.main.get_command(app)
    found: list[tuple[str, Any]] = []

    def walk(command: Any, path: str) -> None:
        found.extend((f"{path} {param.name}", param) for param in command.params)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, f"{path} {name}")

    walk(group, "c2ws")
    return found


PARAMETERS = _parameters()


def _kind(param: Any) -> tuple[Any, ...]:
    """What decides a parameter's coercion: one parameter of each kind is enough."""
    info = param.type_descriptor.parameter_info
    parser = info.parser
    return (repr(param.type_descriptor.annotation), type(param).__name__, param.multiple,
            param.nargs, None if parser is None else parser.__qualname__)


KINDS = list({_kind(param): (name, param) for name, param in PARAMETERS}.values())

# Hostile text: non-ASCII, quotes, delimiters, line breaks, control and escape sequences.
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30) | (
    st.sampled_from(["", " ", "0", "-1", "1,2", "1e400", "nan", "inf", " 30 ", "1_000",
                     "local", "utc", "Europe/London", "\x1b[31m", "a\nb", "'\"", "ndjson",
                     "NDJSON", "never", "auto", "-"]))
ENUM_MEMBERS = st.sampled_from([member for _, param in PARAMETERS
                                if isinstance(annotation := param.type_descriptor.annotation,
                                              type) and issubclass(annotation, enum.Enum)
                                for member in annotation])
SCALARS = (st.none() | TEXT | st.booleans() | st.integers() | st.integers(min_value=2**63)
           | st.floats() | ENUM_MEMBERS | st.builds(Path, TEXT) | st.binary(max_size=8))
VALUES = SCALARS | st.lists(SCALARS, max_size=4) | st.lists(TEXT, max_size=4).map(tuple)


def outcome(call: Any) -> tuple[str, Any]:
    try:
        value = call()
    except Exception as exc:  # the error is the outcome: its type and its words
        return "error", (type(exc).__name__, str(exc))
    return "value", (type(value), value)


def same(left: tuple[str, Any], right: tuple[str, Any]) -> bool:
    if left[0] != right[0]:
        return False
    if left[0] == "value":
        (left_type, left_value), (right_type, right_value) = left[1], right[1]
        if left_type is float and right_type is float and left_value != left_value:
            return right_value != right_value  # nan
        return bool(left_type is right_type and left_value == right_value)
    return bool(left[1] == right[1])


@pytest.mark.parametrize(("name", "param"), KINDS, ids=[name for name, _ in KINDS])
@settings(max_examples=100, deadline=None)
@given(value=VALUES)
def test_lean_coercion_is_typers(name: str, param: Any, value: Any) -> None:
    ctx = typer.main.get_command(app).make_context("c2ws", [], resilient_parsing=True)
    lean = LeanCoercion(param)

    def general() -> Any:  # Typer's own coercion
        return _typer_runtime_param(param).coerce(value, param=param, ctx=ctx)

    expected = outcome(general)
    shortcut = outcome(lambda: lean.convert(value))
    if shortcut == ("value", (object, GENERAL)):
        return  # handed to Typer: the general path is the answer by construction
    assert same(shortcut, expected), (name, value, shortcut, expected)
    assert same(outcome(lambda: lean.coerce(value, param=param, ctx=ctx)), expected)


def test_the_shortcut_takes_what_a_run_gives() -> None:
    # What a plain run hands over: absent options, defaults, text, lists of text.
    taken = 0
    for _, param in PARAMETERS:
        lean = LeanCoercion(param)
        if lean.convert(None) is not GENERAL:
            taken += 1
        default = param.default
        if default is not None and not callable(default):
            assert lean.convert(default) is not GENERAL or param.type_descriptor.annotation \
                not in (str, int, float, bool), param.name
    assert taken == len(PARAMETERS)


LOADED_AT_EXIT = """\
import atexit, sys
atexit.register(lambda: print(sorted({{name.split('.')[0] for name in sys.modules
                                      if name.startswith(('pydantic', 'typer._adapters'))}}),
                              file=sys.stderr))
sys.argv = {argv!r}
from c2ws.cli import main
main()
"""


def test_a_demo_run_loads_no_pydantic() -> None:
    argv = ["c2ws", "demo", "-o", "ndjson", "-n", "3", "--rate", "50",
            "--tz", "utc", "--timeout", "30"]
    result = subprocess.run([sys.executable, "-c", LOADED_AT_EXIT.format(argv=argv)],
                            cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
    assert result.stderr.splitlines()[-1] == "[]", result.stderr


def test_subscribe_help_loads_only_the_declarations() -> None:
    # What a run needs once its arguments are parsed, --help does without (issue 15).
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print(sorted(m for m in sys.modules if m.startswith("
            "('c2ws.cli.params', 'c2ws.errors', 'c2ws.endings', 'c2ws.render.safe', "
            "'pydantic', 'rich'))), file=sys.stderr))\n"
            "sys.argv = ['c2ws', 'subscribe', '--help']\n"
            "from c2ws.cli import main\nmain()\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: c2ws subscribe" in result.stdout
    assert result.stderr == "[]\n"
