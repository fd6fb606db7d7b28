"""The C2 REST API v4 from Python: what is open now, and what happened before.

::

    import c2ws.rest

    for position in c2ws.rest.open_positions([12345678]):
        print(position.symbol, position.quantity, position.avg_price)
    for order in c2ws.rest.orders([12345678], since="3d"):
        print(order.posted_at, order.side.name, order.quantity, order.symbol, order.status)

The key, the WebSocket URL and the profile are found as for :func:`c2ws.stream`
(``C2_API_KEY``, ``C2WS_URL``, ``C2WS_PROFILE``, the config file); the REST base URL is
derived from the WebSocket URL (``wss://H/ws`` → ``https://H``) unless ``rest_url`` or
``C2WS_REST_URL`` names it.  Errors are those of :mod:`c2ws.rest.errors` (each also the
:mod:`c2ws.errors` class of its exit status).  Needs the ``rest`` extra (httpx), imported
only when a call is made.  Every REST rule and assumption is in :mod:`c2ws.rest.api`.
"""

from __future__ import annotations

import datetime
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

from c2ws.errors import ConfigError

if TYPE_CHECKING:
    from c2ws.rest.client import RestClient, RestRetry
    from c2ws.rest.results import OpenPosition, Order

__all__ = [
    "active_orders",
    "client",
    "open_positions",
    "orders",
    "parse_time",
]


def client(
    *, api_key: str | None = None, url: str | None = None, rest_url: str | None = None,
    profile: str | None = None, page_limit: int | None = None,
    on_retry: Callable[[RestRetry], None] | None = None,
) -> RestClient:
    """A :class:`~c2ws.rest.client.RestClient` for the key and URLs resolved as the
    command line resolves them (close it, or use it in ``with``).  ``page_limit``: orders
    per page of the history (1 to 1000, the default)."""
    from c2ws import spec
    from c2ws.rest.api import RestUrlError, resolve_rest_url
    from c2ws.rest.client import RestClient

    if api_key is None or url is None:
        from c2ws.config import Flags, connection_of

        url, api_key = connection_of(Flags(profile=profile, url=url, api_key=api_key),
                                     os.environ)
    from c2ws.config import check_api_key

    check_api_key(api_key)
    try:
        base = resolve_rest_url(rest_url, os.environ, url)
    except RestUrlError as exc:
        raise ConfigError(str(exc), param="--rest-url") from None
    limit = spec.REST_MAX_PAGE_LIMIT if page_limit is None else page_limit
    if not 1 <= limit <= spec.REST_MAX_PAGE_LIMIT:
        raise ConfigError(f"page_limit must be from 1 to {spec.REST_MAX_PAGE_LIMIT}",
                          param="--page-limit")
    return RestClient(base, api_key, page_limit=limit, on_retry=on_retry)


def _ids(strategies: Iterable[int | str] | int | str) -> list[int]:
    from c2ws.streaming import subscription_keys

    return list(dict.fromkeys(key.strategy_id for key in subscription_keys(strategies,
                                                                           "signal")))


def open_positions(strategies: Iterable[int | str] | int | str, **settings: object
                   ) -> list[OpenPosition]:
    """The open positions of each strategy now (``GetStrategyOpenPositions``), strategy
    by strategy in the order given.  ``settings``: those of :func:`client`."""
    from c2ws.rest.results import OpenPosition

    ids = _ids(strategies)
    with client(**settings) as rest:  # type: ignore[arg-type]
        return [OpenPosition(sid, obj) for sid in ids for obj in rest.open_positions(sid)]


def active_orders(strategies: Iterable[int | str] | int | str, **settings: object
                  ) -> list[Order]:
    """The working orders of each strategy now (``GetStrategyActiveOrders``)."""
    from c2ws.rest.results import Order

    ids = _ids(strategies)
    with client(**settings) as rest:  # type: ignore[arg-type]
        return [Order(sid, obj) for sid in ids for obj in rest.active_orders(sid)]


def orders(
    strategies: Iterable[int | str] | int | str, *,
    since: datetime.datetime | str | None = None, until: datetime.datetime | str | None = None,
    active: bool = False, **settings: object,
) -> list[Order]:
    """The order history of each strategy from ``since`` to ``until`` (None: now),
    oldest first, every page (``GetStrategyHistoricalOrders``); or, with ``active``, the
    working orders.  ``since``/``until``: aware datetimes, or text as
    :func:`parse_time` reads it (ISO 8601, or ``2h``, ``3d`` ago)."""
    if active:
        if since is not None or until is not None:
            raise ConfigError("active orders take no time window", param="--active")
        return active_orders(strategies, **settings)
    if since is None:
        raise ConfigError("give since (the start of the window), or active=True",
                          param="--since")
    from c2ws.rest.results import Order

    now = time.time()
    start = parse_time(since, now=now, param="--since")
    end = None if until is None else parse_time(until, now=now, param="--until")
    if end is not None and end < start:
        raise ConfigError("until is before since", param="--until")
    ids = _ids(strategies)
    with client(**settings) as rest:  # type: ignore[arg-type]
        return [Order(sid, obj) for sid in ids for obj in rest.historical_orders(sid, start, end)]


_RELATIVE: Final = re.compile(r"([0-9]{1,7})\s*([smhdw])", re.IGNORECASE)
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_time(value: datetime.datetime | str, *, now: float | None = None,
               param: str = "--since") -> datetime.datetime:
    """A moment: an aware datetime as it is (a naive one is UTC), ISO 8601 text (a date,
    or a date and time; no offset means UTC), or a relative one: ``90s``, ``15m``,
    ``2h``, ``3d``, ``1w`` ago.  :class:`ConfigError` naming ``param`` for anything
    else."""
    from c2ws.rest.api import parse_date

    if isinstance(value, datetime.datetime):
        moment = value
    else:
        text = value.strip()
        relative = _RELATIVE.fullmatch(text)
        if relative is not None:
            seconds = int(relative.group(1)) * _UNIT_SECONDS[relative.group(2).lower()]
            current = time.time() if now is None else now
            return datetime.datetime.fromtimestamp(current - seconds, datetime.timezone.utc)
        parsed = parse_date(text + "T00:00:00Z" if len(text) == 10 else text)
        if parsed is None:
            raise ConfigError(f"{value!r} is not a time: give ISO 8601 (2026-11-25, "
                              "2026-11-25T09:30:00Z) or how long ago (90s, 15m, 2h, 3d, 1w)",
                              param=param)
        moment = parsed
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)
