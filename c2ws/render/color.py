"""Whether to use color: ``--color``, then ``FORCE_COLOR`` / ``NO_COLOR``, then the terminal.

Precedence (first that applies wins):

1. ``--color always`` / ``--color never``;
2. ``FORCE_COLOR`` set (any value but ``0`` or ``false``): color even into a pipe;
   ``FORCE_COLOR=0``: no color (as Node.js and supports-color read it);
3. ``NO_COLOR`` set and not empty: no color (https://no-color.org);
4. ``auto``: color when the stream is a terminal (and TERM is not ``dumb``).

Whether a stream *is* a terminal (live tables, the status line) is never changed by
these: ``FORCE_COLOR`` colors a pipe, it does not make c2ws redraw one.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import IO, Any, Final

_FALSE_VALUES: Final = frozenset({"0", "false", "no", "off"})


class ColorChoice(str, Enum):
    auto = "auto"
    always = "always"
    never = "never"


def wants_color(choice: ColorChoice, env: Mapping[str, str], is_terminal: bool) -> bool:
    if choice is ColorChoice.always:
        return True
    if choice is ColorChoice.never:
        return False
    force = env.get("FORCE_COLOR")
    if force is not None:
        return force.strip().lower() not in _FALSE_VALUES
    if env.get("NO_COLOR", ""):
        return False
    return is_terminal and env.get("TERM", "") != "dumb"


def is_terminal(stream: IO[Any] | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (ValueError, OSError):  # closed
        return False


def console_options(
    choice: ColorChoice, env: Mapping[str, str], stream: IO[Any] | None
) -> dict[str, Any]:
    """Keyword arguments for a rich ``Console`` on ``stream`` that follow the rules above
    (rich's own reading of FORCE_COLOR would also make a pipe count as a terminal)."""
    terminal = is_terminal(stream)
    if not wants_color(choice, env, terminal):
        return {"force_terminal": terminal, "no_color": True, "color_system": None}
    return {
        "force_terminal": terminal,
        "no_color": False,
        # Detected from TERM/COLORTERM on a terminal; into a pipe, the 16 basic colors.
        "color_system": "auto" if terminal else "standard",
    }
