"""Make server-supplied text harmless before it reaches a terminal."""

from __future__ import annotations

import re

# C0 controls (tab excepted), DEL and the C1 range: enough to start an escape sequence.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def terminal_safe(text: str, limit: int = 200) -> str:
    """Control characters shown as U+FFFD-free escapes, length capped; never markup."""
    cleaned = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned
