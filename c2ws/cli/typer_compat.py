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
  ``_usage_display_name`` and of ``process_value``;
- values that need no conversion (an absent option, a default of its own type, text
  for a ``str``, an option with a ``parser=``) are taken without Typer's pydantic
  coercion, whose import is 12 MiB of every run's memory and 0.1 s of its start: an
  override of the private ``get_runtime_param`` (:class:`LeanCoercion`), which hands
  every other value to Typer's own.

An upgrade of Typer may move or change any of these, which is why they are used here and
nowhere else, why pyproject.toml pins the versions tested (``typer>=0.29,<0.30``), and
why tests/test_dependency_internals.py checks every name below against the installed
version and says what to update when one changed.
"""

from typing import Any, Final, get_args, get_origin

from typer._click.exceptions import NoSuchOption
from typer.core import TyperArgument, TyperOption, _TyperParameter

__all__ = ["PRIVATE_NAMES", "HelpFlag", "LeanCoercion", "MetavarArgument", "NoSuchOption",
           "PlainOption", "completion_script", "register_completion_shells"]

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
    ("typer.core", "_TyperParameter.get_runtime_param"),
    ("typer._coercion", "RuntimeParam.coerce"),
    ("typer._coercion", "TypeDescriptor"),
)


def _completing(ctx: Any) -> bool:
    """The shell asked for candidates: the command line is parsed only to see where the
    cursor is (Click's "resilient parsing"), and no value is used."""
    return bool(getattr(ctx, "resilient_parsing", False))


# What LeanCoercion.convert returns when Typer's own coercion must decide.
GENERAL: Final = object()


def _typer_runtime_param(param: Any) -> Any:
    """Typer's coercion of ``param`` (built on first use: it loads pydantic)."""
    return _TyperParameter.get_runtime_param(param)


class LeanCoercion:
    """Typer's coercion of one parameter (``RuntimeParam.coerce``: the value as typed,
    or the default, into what the command function takes) without pydantic where no
    conversion is needed; Typer's own for every other value, so that each value becomes
    what Typer would make of it and each error reads as Typer's (tests/test_cli.py's
    differential test holds the two to that)."""

    def __init__(self, param: Any) -> None:
        self._param = param

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        converted = self.convert(value)
        if converted is GENERAL:
            return _typer_runtime_param(self._param).coerce(value, param=param, ctx=ctx)
        return converted

    def convert(self, value: Any) -> Any:
        """``value`` as Typer would coerce it, or :data:`GENERAL` for Typer to decide."""
        param = self._param
        many = param.multiple or param.nargs == -1
        if value is None:
            return () if many else None
        descriptor = param.type_descriptor
        if descriptor.file_annotation is not None:
            return GENERAL
        annotation, parser = descriptor.annotation, descriptor.parameter_info.parser
        if many:
            # A list of text as typed: Typer makes each item a str, then a list of them.
            if (isinstance(value, (list, tuple)) and parser is None
                    and get_origin(annotation) is list and get_args(annotation) == (str,)
                    and all(type(item) is str for item in value)):
                return list(value)
            return GENERAL
        if parser is not None:
            # Typer runs the parser and takes what it returns as it is; a ValueError or
            # AssertionError it would report in pydantic's words: let it.
            try:
                return parser(value)
            except (ValueError, AssertionError):
                return GENERAL
        if type(value) is annotation and annotation in (str, int, float, bool):
            return value
        return GENERAL


class MetavarArgument(TyperArgument):
    """An argument shown as its metavar says ("STRATEGY_ID..."), not as the Python type
    it is parsed into ("{STRATEGY_ID}... <list[str]>"); left as typed while the shell
    completes (see :class:`PlainOption`)."""

    def process_value(self, ctx: Any, value: Any) -> Any:
        return value if _completing(ctx) else super().process_value(ctx, value)

    def get_runtime_param(self) -> Any:
        return LeanCoercion(self)

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

    def get_runtime_param(self) -> Any:
        return LeanCoercion(self)


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
