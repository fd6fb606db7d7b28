"""Make server-supplied text harmless before it reaches a terminal.

Used for every string a server chose: table cells, error messages, close reasons.
Rich never interprets it as markup either: callers print it as ``Text``.
"""

from __future__ import annotations

import re
from typing import Final

ELLIPSIS: Final = "…"
DEFAULT_LIMIT: Final = 200

# Control sequences are removed whole: what is left of one after stripping just the
# ESC byte ("[2J") would still be noise in a cell.  OSC/DCS strings run until their
# terminator or, if it never comes (a truncated value), to the end of the text.
_CONTROL_SEQUENCE: Final = re.compile(
    r"""
      (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])    # OSC, DCS, SOS, PM, APC ...
      .*? (?:\x07|\x1b\\|\x9c|$)                 # ... up to BEL, ST or the end
    | [\x1b\x9b]\[? [0-?]* [ -/]* [@-~]          # CSI (7-bit ESC[ or 8-bit 0x9b), 2-byte ESC x
    """,
    re.VERBOSE | re.DOTALL,
)
# Layout-breaking whitespace becomes a space; other C0, DEL and C1 controls, and the
# bidi overrides that can make text read differently from what it is ("Trojan
# source"), become U+FFFD so tampering stays visible.
_LINE_BREAKING: Final = re.compile(r"[\t\n\v\f\r\x85\u2028\u2029]")
_UNPRINTABLE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Bounds the regex work on a huge value before it is capped to a cell.
_PRE_CAP_FACTOR: Final = 8



def terminal_safe(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """``text`` with no control sequences or line breaks, capped at ``limit`` characters."""
    if len(text) > limit * _PRE_CAP_FACTOR:
        text = text[: limit * _PRE_CAP_FACTOR]
    text = _CONTROL_SEQUENCE.sub("", text)
    text = _LINE_BREAKING.sub(" ", text)
    text = _UNPRINTABLE.sub("\ufffd", text)
    return cap(text.strip(), limit)


def cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


# --- secrets ------------------------------------------------------------------------------

REDACTED: Final = "****"
_secrets: set[str] = set()


def keep_secret(secret: str) -> None:
    """Never let ``secret`` (the API key) reach stderr, whoever echoes it: every line c2ws
    writes there passes through :func:`redacted`.  A secret too short to be a key is
    not kept: replacing it would mangle unrelated text (and show where it was)."""
    from c2ws.redaction import long_enough_to_redact

    if long_enough_to_redact(secret):
        _secrets.add(secret)


def redacted(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text
