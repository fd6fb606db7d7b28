"""The private parts of dependencies c2ws relies on are where it expects them, with the
shape it expects, in the installed versions; and only the two compat modules use them.

When an upgrade of websocket-client or Typer breaks one, this fails naming the name, the
version and the module to update, instead of c2ws failing in some command at run time."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import re
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from c2ws.cli import typer_compat
from c2ws.net import wsclient_compat

REPO = Path(__file__).resolve().parent.parent
WSCLIENT = ("websocket-client", "c2ws/net/wsclient_compat.py")
TYPER = ("typer", "c2ws/cli/typer_compat.py")


def resolve(module: str, path: str) -> object:
    found: object = importlib.import_module(module)
    for part in path.split("."):
        found = getattr(found, part)
    return found


def broken(dependency: tuple[str, str], name: str) -> str:
    package, compat = dependency
    return (f"{package} {version(package)} changed {name}: update {compat} "
            "(and the version range in pyproject.toml)")


def parameters(function: object) -> set[str]:
    assert callable(function)
    return set(inspect.signature(function).parameters)


# --- every private name each compat module lists exists ------------------------------------


@pytest.mark.parametrize(("dependency", "module", "path"), [
    *((WSCLIENT, module, path) for module, path in wsclient_compat.PRIVATE_NAMES),
    *((TYPER, module, path) for module, path in typer_compat.PRIVATE_NAMES),
], ids=lambda value: value if isinstance(value, str) else None)
def test_each_private_name_exists(dependency: tuple[str, str], module: str, path: str) -> None:
    try:
        resolve(module, path)
    except (ImportError, AttributeError):
        pytest.fail(broken(dependency, f"{module}.{path} (it is gone)"))


# --- and has the shape the compat module relies on ---------------------------------------------


def _parse_url() -> bool:
    from websocket import _url

    return bool(_url.parse_url("wss://c2.example:8443/ws") == ("c2.example", 8443, "/ws", True)
                and _url.parse_url("ws://c2.example/ws")[1] == 80)


def _get_proxy_info() -> bool:
    from websocket import _url

    wanted = {"hostname", "is_secure", "proxy_host", "proxy_port"}
    direct = _url.get_proxy_info("c2.example", True, proxy_host=None, proxy_port=0,
                                 no_proxy=["c2.example"])
    named = _url.get_proxy_info("c2.example", False, proxy_host="proxy.example", proxy_port=3128)
    # From the environment, with no no_proxy: every host goes through the proxy, local
    # ones included (websocket-client 1.8 exempted localhost and 127.0.0.1 by default).
    with only_environment(http_proxy="http://proxy.example:3128"):
        local = _url.get_proxy_info("127.0.0.1", False)
    return (wanted <= parameters(_url.get_proxy_info) and len(direct) == 3
            and direct[0] is None and tuple(named[:2]) == ("proxy.example", 3128)
            and tuple(local) == ("proxy.example", 3128, None))


@contextlib.contextmanager
def only_environment(**variables: str) -> Iterator[None]:
    """The proxy variables as given, none other, for the duration."""
    names = [name for name in os.environ if name.lower() in PROXY_VARIABLES]
    saved = {name: os.environ.pop(name) for name in names}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name in variables:
            os.environ.pop(name, None)
        os.environ.update(saved)


PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def _create_connection() -> bool:
    import websocket

    # The options upgrade() passes; create_connection hands the rest to WebSocket.connect.
    connect = parameters(websocket.WebSocket.connect)
    return {"url", "timeout"} <= parameters(websocket.create_connection) and (
        "options" in connect or {"socket", "header", "suppress_origin",
                                 "redirect_limit"} <= connect)


def _socket_options() -> bool:
    import websocket

    return all(isinstance(option, tuple) and len(option) == 3
               for option in websocket.DEFAULT_SOCKET_OPTION)


def _no_such_option() -> bool:
    from typer._click.exceptions import NoSuchOption, UsageError

    return issubclass(NoSuchOption, UsageError)


def _completion_init() -> bool:
    from typer._completion_classes import completion_init

    return parameters(completion_init) == set()


def _get_completion_script() -> bool:
    from typer._completion_shared import get_completion_script

    return parameters(get_completion_script) == {"prog_name", "complete_var", "shell"}


def _argument_display() -> bool:
    from typer.core import TyperArgument

    return (callable(TyperArgument._rich_display_name)
            and callable(TyperArgument._usage_display_name)
            and isinstance(inspect.getattr_static(TyperArgument, "display_name_raw"), property)
            and parameters(TyperArgument.display_type_rich) == {"self", "ctx"})


def _process_value() -> bool:
    from typer.core import TyperArgument, TyperOption

    # Overridden to return the value as typed when ctx.resilient_parsing (completion).
    return all(parameters(cls.process_value) == {"self", "ctx", "value"}
               for cls in (TyperArgument, TyperOption))


def _runtime_param() -> bool:
    from typer._coercion import RuntimeParam, TypeDescriptor
    from typer.core import _TyperParameter

    # LeanCoercion stands in for what get_runtime_param returns, and reads the
    # parameter's type descriptor.
    fields = set(TypeDescriptor.__dataclass_fields__)
    return (parameters(_TyperParameter.get_runtime_param) == {"self"}
            and parameters(RuntimeParam.coerce) == {"self", "value", "param", "ctx"}
            and {"annotation", "parameter_info", "file_annotation"} <= fields)


SHAPES: list[tuple[tuple[str, str], str, Callable[[], bool]]] = [
    (WSCLIENT, "websocket._url.parse_url", _parse_url),
    (WSCLIENT, "websocket._url.get_proxy_info", _get_proxy_info),
    (WSCLIENT, "websocket.create_connection", _create_connection),
    (WSCLIENT, "websocket.DEFAULT_SOCKET_OPTION", _socket_options),
    (TYPER, "typer._click.exceptions.NoSuchOption", _no_such_option),
    (TYPER, "typer._completion_classes.completion_init", _completion_init),
    (TYPER, "typer._completion_shared.get_completion_script", _get_completion_script),
    (TYPER, "typer.core.TyperArgument's display methods", _argument_display),
    (TYPER, "typer.core.TyperArgument/TyperOption.process_value", _process_value),
    (TYPER, "typer.core._TyperParameter.get_runtime_param", _runtime_param),
]


@pytest.mark.parametrize(("dependency", "name", "shape"), SHAPES,
                         ids=[name for _, name, _ in SHAPES])
def test_each_private_name_has_the_shape_c2ws_relies_on(
    dependency: tuple[str, str], name: str, shape: Callable[[], bool]
) -> None:
    try:
        fits = shape()
    except Exception as exc:  # any way it no longer fits is the same news
        pytest.fail(broken(dependency, f"{name} ({type(exc).__name__}: {exc})"))
    if not fits:
        pytest.fail(broken(dependency, name))


def test_the_compat_modules_work_against_the_installed_versions() -> None:
    assert wsclient_compat.parse_url("ws://127.0.0.1:9/ws") == ("127.0.0.1", 9, "/ws", False)
    for shell in ("bash", "zsh", "fish"):
        assert "_C2WS_COMPLETE" in typer_compat.completion_script(
            shell, prog_name="c2ws", complete_var="_C2WS_COMPLETE")


# --- nothing else in c2ws reaches into them ------------------------------------------------------

_WSCLIENT_IMPORT = re.compile(r"^\s*(?:import websocket\b(?!s)|from websocket\b(?!s))", re.M)
_TYPER_PRIVATE = re.compile(r"\btyper\._|\bclick\b")


def test_only_the_compat_modules_use_the_dependencies_internals() -> None:
    offenders = []
    for path in sorted((REPO / "c2ws").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        text = path.read_text()
        if relative != WSCLIENT[1] and _WSCLIENT_IMPORT.search(text):
            offenders.append(f"{relative} imports websocket-client")
        code = re.sub(r'""".*?"""|#[^\n]*', "", text, flags=re.S)  # not in docs
        if relative != TYPER[1] and _TYPER_PRIVATE.search(code):
            offenders.append(f"{relative} uses a private name of Typer or Click")
    assert offenders == [], "confine them to the compat modules: " + "; ".join(offenders)
