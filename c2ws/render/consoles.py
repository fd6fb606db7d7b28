"""rich Consoles that leave the handling of a closed pipe to c2ws.

rich's default answer to a broken pipe is ``SystemExit(1)``; c2ws documents its own:
a closed stdout ends the run cleanly with exit 0, a closed stderr silences messages.
"""

from __future__ import annotations

import errno

from rich.console import Console


class DataConsole(Console):
    """For stdout (tables): a closed pipe surfaces as BrokenPipeError like NDJSON's."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "stdout was closed by its reader")


class MessageConsole(Console):
    """For stderr: once nobody reads it, messages are dropped; the data keeps flowing."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
