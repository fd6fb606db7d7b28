"""The reference server's REST API v4 (the endpoints of ``c2-rest-api.md``), sans-I/O.

:class:`OrderBook` keeps what the server published: every order (the newest state of
each ``SignalId``; a signal without one is kept under its seq_id, and its REST object
then has no ``SignalId`` either) and every strategy's net positions (the newest position
update per symbol; flat ones are left out).  :class:`RestService` answers a request from
it: path, query parameters and ``Authorization`` header in, status, headers and body
out; ``c2ws.server.app`` serves it on the WebSocket's port (plain HTTP GET).

What it implements (and so what ``c2ws positions``, ``orders``, ``--snapshot`` and
``--heal-gaps`` are tested against):

- ``GET /Strategies/GetStrategyOpenPositions?StrategyIds=N`` (several ids: comma
  separated), ``GET /Strategies/GetStrategyActiveOrders?StrategyIds=N`` and
  ``GET /Strategies/GetStrategyHistoricalOrders?StrategyId=N&StartDate=..&EndDate=..``
  with ``Cursor``, ``Limit`` (default and maximum 1000) and ``AscendingOrder``; ``GET
  /General/Hello``.
- The envelope ``Results`` / ``Pagination`` (``next_cursor`` URL-encoded, null on the
  last page) / ``ResponseStatus`` (``ErrorCode`` a string, ``"200"`` on success);
  ``key_case="camel"`` writes its keys as C2's own samples do.
- Bearer auth with the WebSocket's keys: 401; a strategy the keys may not see: 403
  (``ErrorCode`` "1002"); a missing or malformed parameter: HTTP 200 with ``ErrorCode``
  "1102" (an error inside a 200, as clients have seen); an unknown path: 404.
- History dates: ``PostedDate`` (the payload's, else the time the order was first
  published), filtered inclusively by StartDate/EndDate, oldest first.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

import orjson

from c2ws import protocol, spec
from c2ws.payload import PayloadView, symbol_candidates
from c2ws.protocol import JsonObject

PATH_POSITIONS: Final = "/Strategies/GetStrategyOpenPositions"
PATH_ACTIVE: Final = "/Strategies/GetStrategyActiveOrders"
PATH_HISTORY: Final = "/Strategies/GetStrategyHistoricalOrders"
PATH_HELLO: Final = "/General/Hello"
REST_PATHS: Final = frozenset({PATH_POSITIONS, PATH_ACTIVE, PATH_HISTORY, PATH_HELLO})
REST_PREFIXES: Final = ("/Strategies/", "/General/")

# Order statuses that are still working (GetStrategyActiveOrders).
_WORKING: Final = frozenset({"A", "0", "1", "6", "E"})
_CURSOR_PREFIX: Final = "c2ws/after="
# Orders kept per strategy (the oldest go first): enough for any test, bounded.
MAX_ORDERS_PER_STRATEGY: Final = 200_000


@dataclass
class _Strategy:
    # key (SignalId or "seq:N") -> index in ``orders``; orders in first-posted order
    index: dict[object, int] = field(default_factory=dict)
    orders: list[JsonObject] = field(default_factory=list)
    posted: list[float] = field(default_factory=list)
    positions: dict[str, JsonObject] = field(default_factory=dict)


def _signal_id(payload: Mapping[str, object]) -> int | None:
    value = PayloadView(payload).get("signalid")
    return protocol.parse_int(value)


def _symbol(payload: Mapping[str, object]) -> str:
    for value in symbol_candidates(PayloadView(payload)):
        return str(value)
    return ""


class OrderBook:
    """What the server published, for the REST endpoints (see the module docstring)."""

    def __init__(self) -> None:
        self._strategies: dict[int, _Strategy] = {}

    def record(self, channel: str, strategy_id: int, payload: JsonObject, seq_id: int,
               timestamp: str) -> None:
        """A stream message was published."""
        strategy = self._strategies.setdefault(strategy_id, _Strategy())
        if channel == spec.CHANNEL_POSITIONS:
            symbol = _symbol(payload)
            quantity = PayloadView(payload).get("quantity")
            strategy.positions.pop(symbol, None)
            if quantity not in (0, 0.0, "0", None):
                strategy.positions[symbol] = dict(payload)
            return
        signal_id = _signal_id(payload)
        key: object = signal_id if signal_id is not None else f"seq:{seq_id}"
        order = dict(payload)
        view = PayloadView(order)
        if view.get("posteddate") is None:
            order["PostedDate"] = timestamp
        if view.get("strategyid") is None:
            order["StrategyId"] = strategy_id
        at = strategy.index.get(key)
        if at is not None:
            # A new state of a known order: same place in the history, its first date.
            first_posted = strategy.orders[at].get("PostedDate")
            if first_posted is not None and "PostedDate" in order:
                order["PostedDate"] = first_posted
            strategy.orders[at] = order
            return
        posted = protocol.parse_timestamp(order.get("PostedDate"))
        strategy.index[key] = len(strategy.orders)
        strategy.orders.append(order)
        strategy.posted.append(posted if posted is not None else
                               (protocol.parse_timestamp(timestamp) or 0.0))
        if len(strategy.orders) > MAX_ORDERS_PER_STRATEGY:
            self._forget_oldest(strategy)

    @staticmethod
    def _forget_oldest(strategy: _Strategy) -> None:
        drop = len(strategy.orders) // 10
        del strategy.orders[:drop], strategy.posted[:drop]
        strategy.index = {k: i - drop for k, i in strategy.index.items() if i >= drop}

    def open_positions(self, strategy_id: int) -> list[JsonObject]:
        strategy = self._strategies.get(strategy_id)
        if strategy is None:
            return []
        return [dict(p) for p in sorted(strategy.positions.values(), key=_symbol)]

    def active_orders(self, strategy_id: int) -> list[JsonObject]:
        strategy = self._strategies.get(strategy_id)
        if strategy is None:
            return []
        active = []
        for order in strategy.orders:
            status = PayloadView(order).get("orderstatus")
            if isinstance(status, str) and status.strip().upper() in _WORKING:
                active.append({**order, "BrokerId": order.get("BrokerId")})
        return active

    def history(self, strategy_id: int, start: float, end: float | None
                ) -> list[JsonObject]:
        """The orders first posted from ``start`` to ``end`` (epoch seconds, inclusive),
        oldest first."""
        strategy = self._strategies.get(strategy_id)
        if strategy is None:
            return []
        return [order for order, posted in zip(strategy.orders, strategy.posted, strict=True)
                if posted >= start and (end is None or posted <= end)]


@dataclass(frozen=True)
class RestAnswer:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RestRequestRecord:
    """A REST request the server answered (for tests): path, parameters, status."""

    path: str
    params: dict[str, str]
    status: int


class RestService:
    """Answers REST requests from an :class:`OrderBook` (see the module docstring).

    ``api_keys``: the accepted keys; ``may_see(strategy_id)``: whether the keys may see
    a strategy (else 403); ``key_case``: ``"pascal"`` (``Results``) or ``"camel"``
    (``results``)."""

    def __init__(self, book: OrderBook, api_keys: Sequence[str], may_see: object,
                 *, key_case: str = "pascal") -> None:
        self.book = book
        self._keys = frozenset(api_keys)
        self._may_see = may_see
        self._camel = key_case == "camel"

    def answer(self, path: str, params: Mapping[str, str], authorization: str | None
               ) -> RestAnswer:
        from c2ws.server.core import bearer_key

        key = bearer_key(authorization)
        if key is None or key not in self._keys:
            return self._error(401, "401", "Invalid API key")
        if path == PATH_HELLO:
            return self._ok([{"Hello": "c2ws reference server"}])
        if path not in REST_PATHS:
            return self._error(404, "2013", f"No endpoint at {path}")
        if path == PATH_HISTORY:
            return self._history(params)
        ids = self._ids(params.get("StrategyIds"))
        if ids is None:
            return self._error(200, "1102", "StrategyIds: a comma-separated list of "
                                            "strategy ids is required", field="StrategyIds")
        refused = next((sid for sid in ids if not self._visible(sid)), None)
        if refused is not None:
            return self._error(403, "1002", f"Not authorized for strategy {refused}",
                               field="StrategyIds")
        if path == PATH_POSITIONS:
            return self._ok([p for sid in ids for p in self.book.open_positions(sid)])
        return self._ok([o for sid in ids for o in self.book.active_orders(sid)])

    def _visible(self, strategy_id: int) -> bool:
        return bool(self._may_see(strategy_id))  # type: ignore[operator]

    @staticmethod
    def _ids(text: str | None) -> list[int] | None:
        if not text:
            return None
        ids = [protocol.parse_int(part.strip()) for part in text.split(",")]
        if any(sid is None or sid <= 0 for sid in ids):
            return None
        return [sid for sid in ids if sid is not None]

    def _history(self, params: Mapping[str, str]) -> RestAnswer:
        strategy_id = protocol.parse_int(params.get("StrategyId", ""))
        if strategy_id is None or strategy_id <= 0:
            return self._error(200, "1102", "StrategyId is required", field="StrategyId")
        start = _date(params.get("StartDate"))
        if start is None:
            return self._error(200, "1102", "StartDate: YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DD "
                                            "is required", field="StartDate")
        end = None
        if params.get("EndDate"):
            end = _date(params["EndDate"], end_of_day=True)
            if end is None:
                return self._error(200, "1102", "EndDate: YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DD",
                                   field="EndDate")
        limit = protocol.parse_int(params.get("Limit", str(spec.REST_MAX_PAGE_LIMIT)))
        if limit is None or not 1 <= limit <= spec.REST_MAX_PAGE_LIMIT:
            return self._error(200, "1130", f"Limit: 1 to {spec.REST_MAX_PAGE_LIMIT}",
                               field="Limit")
        ascending = params.get("AscendingOrder", "true").strip().lower() != "false"
        offset = 0
        cursor = params.get("Cursor")
        if cursor:
            if not cursor.startswith(_CURSOR_PREFIX):
                return self._error(200, "1130", "Cursor: not a cursor this API gave",
                                   field="Cursor")
            parsed = protocol.parse_int(cursor[len(_CURSOR_PREFIX):].partition("+")[0])
            if parsed is None or parsed < 0:
                return self._error(200, "1130", "Cursor: not a cursor this API gave",
                                   field="Cursor")
            offset = parsed
        if not self._visible(strategy_id):
            return self._error(403, "1002", f"Not authorized for strategy {strategy_id}",
                               field="StrategyId")
        orders = self.book.history(strategy_id, start, end)
        if not ascending:
            orders.reverse()
        page = orders[offset: offset + limit]
        after = offset + len(page)
        # The cursor holds characters that must be URL-encoded ('/', '=', '+'): it is
        # sent encoded, as C2's is, so a client that does not decode it is caught.
        next_cursor = quote(f"{_CURSOR_PREFIX}{after}+{len(orders)}", safe="") \
            if after < len(orders) else None
        return self._ok(page, next_cursor)

    # --- the envelope ---

    def _key(self, name: str) -> str:
        return name[0].lower() + name[1:] if self._camel else name

    def _envelope(self, results: list[JsonObject], next_cursor: str | None, code: str,
                  message: str, errors: list[JsonObject]) -> bytes:
        k = self._key
        return orjson.dumps({
            k("Results"): results,
            k("Pagination"): {"prev_cursor": None, "next_cursor": next_cursor},
            k("ResponseStatus"): {k("ErrorCode"): code, k("Message"): message,
                                  k("Errors"): errors},
        })

    def _ok(self, results: list[JsonObject], next_cursor: str | None = None) -> RestAnswer:
        return RestAnswer(200, self._envelope(results, next_cursor, "200", "OK", []))

    def _error(self, status: int, code: str, message: str, *, field: str | None = None
               ) -> RestAnswer:
        k = self._key
        errors = [{k("FieldName"): field, k("Message"): message}] if field else []
        return RestAnswer(status, self._envelope([], None, code, message, errors))

    def fault(self, status: int, retry_after: int | None) -> RestAnswer:
        """A fault knob's answer: ``status`` with the envelope (and ``Retry-After``)."""
        import http

        headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
        phrase = http.HTTPStatus(status).phrase if 100 <= status <= 599 else "Error"
        answer = self._error(status, str(status), phrase)
        return RestAnswer(status, answer.body, headers)


def _date(text: str | None, *, end_of_day: bool = False) -> float | None:
    """StartDate/EndDate: ``YYYY-MM-DDTHH:MM:SSZ`` or ``YYYY-MM-DD`` (a whole day: the
    end date includes it)."""
    if not text:
        return None
    text = text.strip()
    if len(text) == 10:
        try:
            day = datetime.datetime.strptime(text, "%Y-%m-%d").replace(
                tzinfo=datetime.timezone.utc)
        except ValueError:
            return None
        return day.timestamp() + (86_399 if end_of_day else 0)
    return protocol.parse_timestamp(text)

