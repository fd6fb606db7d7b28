"""Renderers turn engine events into output; they never see raw frames."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from c2ws.events import Event, StreamMessage


class Renderer(Protocol):
    def handle(self, event: Event) -> None: ...

    def flush(self) -> None:
        """Everything handled so far is out (called once per batch, before acknowledging)."""

    def close(self) -> None: ...


def messages_handler(renderer: Renderer) -> Callable[[Sequence[StreamMessage]], None]:
    """How ``renderer`` takes a batch of stream messages and nothing else: its own
    ``handle_messages`` when it has one (NDJSON: one pass, no call per message), else
    ``handle`` for each."""
    handle_messages: Callable[[Sequence[StreamMessage]], None] | None = getattr(
        renderer, "handle_messages", None
    )
    if handle_messages is not None:
        return handle_messages

    def handle_each(messages: Sequence[StreamMessage]) -> None:
        handle = renderer.handle
        for message in messages:
            handle(message)

    return handle_each
