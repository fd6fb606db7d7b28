"""Renderers turn session events into output; they never see raw frames."""

from __future__ import annotations

from typing import Protocol

from c2ws.events import Event


class Renderer(Protocol):
    def handle(self, event: Event) -> None: ...

    def close(self) -> None: ...
