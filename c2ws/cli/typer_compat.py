"""Everything c2ws takes from Typer (and the Click it bundles) beyond its documented
API, in one place.

Typer documents custom command and group classes (``cls=``, ``typer.core.TyperGroup``);
c2ws goes further in three places, each relying on a private name:

- the completion scripts: Typer prints them only for the shell it detects, and registers
  its shells only along with its own ``--install-completion`` option, which c2ws leaves
  out (``c2ws completions SHELL`` does that job): ``typer._completion_shared`` and
  ``typer._completion_classes``;
- a negative number among the arguments is called a bad strategy id rather than an
  unknown option: Click's ``NoSuchOption``, which Typer bundles as ``typer._click``;
- help that shows an argument as its metavar says (``STRATEGY_ID...``, not its Python
  type), a ``--help`` flag that loads nothing to be parsed, and values left as typed
  while the shell completes: overrides of Typer's private ``_rich_display_name`` and
  ``_usage_display_name`` and of ``process_value``.

An upgrade of Typer may move or change any of these, which is why they are used here and
nowhere else, why pyproject.toml pins the versions tested (``typer>=0.29,<0.30``), and
why tests/test_dependency_internals.py checks every name below against the installed
version and says what to update when one changed.
"""

from typing import Any, Final

from typer._click.exceptions import NoSuchOption
from typer.core import TyperArgument, TyperOption

__all__ = ["PRIVATE_NAMES", "HelpFlag", "MetavarArgument", "NoSuchOption", "PlainOption",
           "completion_script", "register_completion_shells"]

# The private names this module uses, as (module, attribute path): the dependency test
# imports each and checks its shape.
PRIVATE_NAMES: Final = (
    ("typer._click.exceptions", "NoSuchOption"),
    ("typer._completion_classes", "completion_init"),
    ("typer._completion_shared", "get_completion_script"),
    ("typer.core", "TyperArgument._rich_display_name"),
    ("typer.core", "TyperArgument._usage_display_name"),
    ("typer.core", "TyperArgument.display_name_raw"),
    ("typer.core", "TyperArgument.display_type_rich"),
    ("typer.core", "TyperArgument.process_value"),
    ("typer.core", "TyperOption.process_value"),
)


def _completing(ctx: Any) -> bool:
    """The shell asked for candidates: the command line is parsed only to see where the
    cursor is (Click's "resilient parsing"), and no value is used."""
    return bool(getattr(ctx, "resilient_parsing", False))


class MetavarArgument(TyperArgument):
    """An argument shown as its metavar says ("STRATEGY_ID..."), not as the Python type
    it is parsed into ("{STRATEGY_ID}... <list[str]>"); left as typed while the shell
    completes (see :class:`PlainOption`)."""

    def process_value(self, ctx: Any, value: Any) -> Any:
        return value if _completing(ctx) else super().process_value(ctx, value)

    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.metavar is not None else super().display_type_rich(ctx)

    def _rich_display_name(self) -> str:
        name = self.display_name_raw
        return f"{name}..." if self.nargs != 1 else name

    def _usage_display_name(self) -> str:
        name = self._rich_display_name()
        return name if self.required else f"[{name}]"


class PlainOption(TyperOption):
    """An option whose value is left as typed while the shell completes.  Typer turns
    every value into its Python type through pydantic, whose import is most of the time
    a Tab takes (0.1 s of 0.17 s), for a value completion never uses; its callbacks
    (``--version`` prints and exits) are not run either."""

    def process_value(self, ctx: Any, value: Any) -> Any:
        return value if _completing(ctx) else super().process_value(ctx, value)


class HelpFlag(TyperOption):
    """``--help``: a flag, given or not.  Typer would run even its absent value through
    its pydantic-based coercion, loading pydantic (most of the time of ``c2ws X --help``)
    for a value that can only be a bool."""

    def process_value(self, ctx: Any, value: Any) -> Any:
        value = bool(value)
        if self.callback is not None:
            value = self.callback(ctx, self, value)
        return value


def register_completion_shells() -> None:
    """Typer's completion classes for bash, zsh and fish: the scripts' requests (the
    shell running ``c2ws`` with ``_C2WS_COMPLETE`` set) need them.  Imported here, not
    at the top: every other run of c2ws can do without loading them."""
    from typer._completion_classes import completion_init

    completion_init()


def completion_script(shell: str, *, prog_name: str, complete_var: str) -> str:
    """Typer's completion script for ``shell``, whatever shell this is run from."""
    from typer._completion_shared import get_completion_script

    script: str = get_completion_script(prog_name=prog_name, complete_var=complete_var,
                                        shell=shell)
    return script
