"""``--bell``: the terminal bell for new signals, on top of whichever renderer writes them."""

from __future__ import annotations

from rich.console import Console

from c2ws import spec
from c2ws.events import Event, StreamMessage
from c2ws.render import Renderer, fields


class Bell:
    """Rings once per batch that brought a new signal (or, ``fills_only``, a signal whose
    status says it executed): a burst of fifty signals is one bell, not fifty."""

    def __init__(self, console: Console, *, fills_only: bool = False) -> None:
        self._console = console
        self._fills_only = fills_only
        self._due = False
        self.rung = 0

    def handle(self, event: Event) -> None:
        if self._due or not isinstance(event, StreamMessage):
            return
        message = event.message
        if message.msg_type != spec.CHANNEL_SIGNAL:
            return
        if self._fills_only and not fields.is_fill(message.payload):
            return
        self._due = True

    def flush(self) -> None:
        if self._due:
            self._due = False
            self.rung += 1
            self._console.bell()

    def close(self) -> None:
        """Nothing to release."""


class WithBell:
    """``renderer``, plus the bell once each batch is out."""

    def __init__(self, renderer: Renderer, bell: Bell) -> None:
        self.renderer = renderer
        self.bell = bell

    def handle(self, event: Event) -> None:
        self.renderer.handle(event)
        self.bell.handle(event)

    def flush(self) -> None:
        self.renderer.flush()
        self.bell.flush()

    def close(self) -> None:
        self.renderer.close()
