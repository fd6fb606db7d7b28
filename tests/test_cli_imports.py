"""The command line is a shell over the library: c2ws/cli/*.py imports only the public
names of c2ws and the modules listed here (checked on the source, every import
statement, including those inside functions and under TYPE_CHECKING)."""

from __future__ import annotations

import ast
from pathlib import Path

import c2ws

CLI = Path(__file__).resolve().parent.parent / "c2ws" / "cli"

# Modules of c2ws the command line may import, besides ``c2ws`` itself (its __all__).
ALLOWED = {
    "c2ws.events",  # what the engine reports (the renderers and on_event take these)
    "c2ws.errors",  # the typed errors
    "c2ws.exitcodes",  # the one map of errors to exit statuses
    "c2ws.config",  # settings: config file, profiles, the key and URL checks, the proxy
    "c2ws.cursors",  # the cursor stores (FileCursors is the --state file)
    "c2ws.spec",  # the documented constants: the options' defaults
    "c2ws.server.app",  # the reference server: serve and demo are its command line
}
# The renderers, the CLI itself, the REST API (public: c2ws.rest, issue 24), and watching
# a run from outside (public: c2ws.monitor, issue 25).
ALLOWED_PACKAGES = ("c2ws.render", "c2ws.cli", "c2ws.rest", "c2ws.monitor")


def imported(tree: ast.AST) -> list[tuple[str, str | None, int]]:
    """(module, name imported from it or None, line) of every import of c2ws."""
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names
                      if alias.name.split(".")[0] == "c2ws"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module.split(".")[0] == "c2ws"):
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
    return found


def allowed(module: str) -> bool:
    return module == "c2ws" or module in ALLOWED or any(
        module == package or module.startswith(package + ".") for package in ALLOWED_PACKAGES)


def acceptable(module: str, name: str | None) -> bool:
    """``from c2ws import name``: a public name or an allowed module; else the module."""
    if module == "c2ws" and name is not None:
        return name in c2ws.__all__ or allowed(f"c2ws.{name}")
    return allowed(module)


def test_the_cli_imports_only_the_public_surface() -> None:
    wrong = []
    files = sorted(CLI.glob("*.py"))
    assert len(files) > 10
    for path in files:
        for module, name, line in imported(ast.parse(path.read_text(), str(path))):
            if not acceptable(module, name):
                wrong.append(f"{path.name}:{line}: {module}" + (f" {name}" if name else ""))
    assert wrong == []


def test_the_rule_catches_what_it_is_meant_to() -> None:
    tree = ast.parse("from c2ws.engine import Engine\nimport c2ws.net.worker\n"
                     "from c2ws import stream, spec, Engine\n")
    verdicts = [acceptable(module, name) for module, name, _ in imported(tree)]
    assert verdicts == [False, False, True, True, False]
    assert allowed("c2ws") and not allowed("c2ws.delivery.state")
