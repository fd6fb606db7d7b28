"""c2ws: Collective2 signals and positions as a Python stream, and the ``c2ws`` command.

    import c2ws

    with c2ws.stream([12345678]) as s:      # key and URL as the CLI finds them
        for msg in s:                        # Signal | Position | Gap | SequenceReset
            print(msg.seq_id, msg.line)

The public names below load on first use: ``import c2ws`` (and the command line's
startup) imports nothing else of the package.  docs/library.md is the reference.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Each public name and the module that defines it.
_PUBLIC = {
    "stream": "c2ws.streaming",
    "Stream": "c2ws.streaming",
    "Batch": "c2ws.streaming",
    "StreamEnd": "c2ws.streaming",
    "Message": "c2ws.streaming",
    "check": "c2ws.probe",
    "CheckResult": "c2ws.probe",
    "SubscriptionCheck": "c2ws.probe",
    "ClockEstimate": "c2ws.probe",
    "replay": "c2ws.replaying",
    "Replay": "c2ws.replaying",
    "astream": "c2ws.aio",
    "AsyncStream": "c2ws.aio",
    "Signal": "c2ws.messages",
    "Position": "c2ws.messages",
    "Gap": "c2ws.messages",
    "SequenceReset": "c2ws.messages",
    "Side": "c2ws.messages",
    "OpenClose": "c2ws.messages",
    "OrderType": "c2ws.messages",
    "TimeInForce": "c2ws.messages",
    "OrderStatus": "c2ws.messages",
    "CommitGroups": "c2ws.cursors",
    "CursorStore": "c2ws.cursors",
    "FileCursors": "c2ws.cursors",
    "SqliteCursors": "c2ws.cursors",
    "StreamIdentity": "c2ws.cursors",
    "SubscriptionKey": "c2ws.events",
    "ConnectionHealth": "c2ws.engine",
    "HeldAside": "c2ws.delivery.dedupe",
    "errors": "c2ws.errors",
    "rest": "c2ws.rest",
}

__all__ = [
    "AsyncStream",
    "Batch",
    "CheckResult",
    "ClockEstimate",
    "CommitGroups",
    "ConnectionHealth",
    "CursorStore",
    "FileCursors",
    "Gap",
    "HeldAside",
    "Message",
    "OpenClose",
    "OrderStatus",
    "OrderType",
    "Position",
    "Replay",
    "SequenceReset",
    "Side",
    "Signal",
    "SqliteCursors",
    "Stream",
    "StreamEnd",
    "StreamIdentity",
    "SubscriptionCheck",
    "SubscriptionKey",
    "TimeInForce",
    "__version__",
    "astream",
    "check",
    "errors",
    "replay",
    "rest",
    "stream",
]

if TYPE_CHECKING:
    from c2ws import errors, rest
    from c2ws.aio import AsyncStream, astream
    from c2ws.cursors import (
        CommitGroups,
        CursorStore,
        FileCursors,
        SqliteCursors,
        StreamIdentity,
    )
    from c2ws.delivery.dedupe import HeldAside
    from c2ws.engine import ConnectionHealth
    from c2ws.events import SubscriptionKey
    from c2ws.messages import (
        Gap,
        OpenClose,
        OrderStatus,
        OrderType,
        Position,
        SequenceReset,
        Side,
        Signal,
        TimeInForce,
    )
    from c2ws.probe import CheckResult, ClockEstimate, SubscriptionCheck, check
    from c2ws.replaying import Replay, replay
    from c2ws.streaming import Batch, Message, Stream, StreamEnd, stream


# Public names that are modules.
_MODULES = frozenset({"errors", "rest"})


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'c2ws' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if name in _MODULES else getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
