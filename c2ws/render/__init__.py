"""Renderers turn engine events into output; they never see raw frames."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from c2ws.events import Event


class Renderer(Protocol):
    def handle(self, event: Event) -> None: ...

    def flush(self) -> None:
        """Everything handled so far is out (called once per batch, before acknowledging)."""

    def close(self) -> None: ...
