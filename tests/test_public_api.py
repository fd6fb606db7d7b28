"""The public surface of ``import c2ws``: what it exports, that each name says what it
is, and that importing it stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import c2ws

REPO = Path(__file__).resolve().parent.parent


def test_every_public_name_loads_and_has_a_docstring() -> None:
    assert set(c2ws.__all__) == set(c2ws._PUBLIC) | {"__version__"}
    for name in c2ws.__all__:
        value = getattr(c2ws, name)
        if name in ("__version__", "Message"):
            continue  # a string, and a type alias (documented in c2ws.messages)
        assert (value.__doc__ or "").strip(), f"c2ws.{name} has no docstring"
    assert c2ws.stream.__module__ == "c2ws.streaming"  # the function, not a module
    assert callable(c2ws.stream) and callable(c2ws.astream)


def test_import_c2ws_loads_nothing_else_of_the_package() -> None:
    code = ("import sys, c2ws; print(sorted(m for m in sys.modules "
            "if m.startswith('c2ws')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.strip() == "['c2ws']"


def test_the_package_ships_its_type_hints() -> None:
    assert (REPO / "c2ws" / "py.typed").exists()
    assert '"py.typed"' in (REPO / "pyproject.toml").read_text()
