"""Spreading subscriptions over connections: at most 100 each, at most 10 per key."""

from __future__ import annotations

from collections.abc import Sequence

from c2ws import spec
from c2ws.events import SubscriptionKey


class TooManySubscriptions(ValueError):
    """More subscriptions than one API key may hold; the message says why and what to do."""


def plan_shards(
    keys: Sequence[SubscriptionKey],
    *,
    per_connection: int = spec.MAX_SUBSCRIPTIONS_PER_CONNECTION,
    max_connections: int = spec.MAX_CONNECTIONS_PER_KEY,
) -> list[list[SubscriptionKey]]:
    """Split ``keys`` (in order) into as few connections as the limit allows, as evenly as
    possible, so each carries about the same traffic."""
    if per_connection < 1 or max_connections < 1:
        raise ValueError("per_connection and max_connections must be at least 1")
    unique = list(dict.fromkeys(keys))
    if len(unique) > per_connection * max_connections:
        raise TooManySubscriptions(
            f"{len(unique)} subscriptions requested (strategies x channels); one API key may "
            f"hold at most {per_connection * max_connections} ({max_connections} connections "
            f"x {per_connection}): subscribe to fewer strategies, or one channel with -c"
        )
    if not unique:
        return []
    count = -(-len(unique) // per_connection)  # ceiling
    size, extra = divmod(len(unique), count)
    shards: list[list[SubscriptionKey]] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        shards.append(unique[start:end])
        start = end
    return shards
