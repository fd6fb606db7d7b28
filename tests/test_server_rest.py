"""The reference server speaks the REST API too (issue 24): on the WebSocket's port,
answered from what it published, with paging, ResponseStatus errors, auth by the same
key and fault knobs.  Real HTTP over 127.0.0.1 (httpx), no CLI."""

from __future__ import annotations

import datetime
from typing import Any

import httpx
import pytest

from c2ws import testing
from c2ws.rest.client import RestClient
from c2ws.rest.errors import RestAuthenticationFailed, RestForbidden, RestUnavailable
from c2ws.testing import TestServer

KEY = "server-rest-key-01"
EPOCH = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)

pytestmark = pytest.mark.c2_server_options(api_key=KEY, strategies=(11, 22))


def get(server: TestServer, path: str, key: str = KEY, **params: str) -> httpx.Response:
    return httpx.get(server.rest_url + path, params=params, timeout=10,
                     headers={"Authorization": f"Bearer {key}"})


def test_positions_are_the_book_of_what_was_published(server: TestServer) -> None:
    for _ in range(40):
        server.publish(11)  # synthetic orders; fills publish their positions
    book = server.open_positions(11)
    assert book and all(p["Quantity"] != 0 for p in book)
    with RestClient(server.rest_url, KEY) as rest:
        assert rest.open_positions(11) == book
    # A position that goes flat leaves the book.
    symbol = book[0]["C2Symbol"]["FullSymbol"]
    server.publish_position(11, {"StrategyId": 11, "Quantity": 0, "AvgPx": 0.0,
                                 "C2Symbol": {"FullSymbol": symbol}})
    assert symbol not in [p["C2Symbol"]["FullSymbol"] for p in server.open_positions(11)]


def test_history_pages_with_an_encoded_cursor_and_holds_every_field(
    server: TestServer,
) -> None:
    for n in range(25):
        server.publish(22, {"StrategyId": 22, "SignalId": 1000 + n, "Side": "1",
                            "OrderType": "1", "OrderQuantity": 1, "OrderStatus": "2",
                            "C2Symbol": {"FullSymbol": "@ESZ6"}})
    first = get(server, "/Strategies/GetStrategyHistoricalOrders", StrategyId="22",
                StartDate="2020-01-01", Limit="10").json()
    cursor = first["Pagination"]["next_cursor"]
    assert len(first["Results"]) == 10 and "%2F" in cursor and "/" not in cursor
    order = first["Results"][0]
    assert order["SignalId"] == 1000 and order["PostedDate"].endswith("Z")
    with RestClient(server.rest_url, KEY, page_limit=10) as rest:
        orders = list(rest.historical_orders(22, EPOCH, None))
    assert [o["SignalId"] for o in orders] == list(range(1000, 1025))
    cursors = [r.params.get("Cursor") for r in server.rest_requests()][1:]
    assert cursors[1:] == ["c2ws/after=10+25", "c2ws/after=20+25"]  # sent back decoded


def test_the_synthetic_feeds_orders_have_every_field_of_the_reference(
    server: TestServer,
) -> None:
    for _ in range(30):
        server.publish(11)
    (order, *_) = server.order_history(11)
    for name in ("SignalId", "OrderStatus", "FilledQuantity", "AvgFillPrice", "PostedDate",
                 "Side", "OrderType", "OpenClose", "OrderQuantity", "Limit", "Stop", "TIF",
                 "C2Symbol", "ExchangeSymbol", "OrderId", "SignalType", "ParentSignalId",
                 "CancelReplaceSignalId"):
        assert name in order
    working = get(server, "/Strategies/GetStrategyActiveOrders", StrategyIds="11").json()
    assert all(o["OrderStatus"] == "0" and "BrokerId" in o for o in working["Results"])


def test_errors_come_in_the_envelope(server: TestServer) -> None:
    wrong = get(server, "/Strategies/GetStrategyOpenPositions", key="wrong-key-000",
                StrategyIds="11")
    assert wrong.status_code == 401 and wrong.json()["ResponseStatus"]["ErrorCode"] == "401"
    forbidden = get(server, "/Strategies/GetStrategyOpenPositions", StrategyIds="33")
    assert forbidden.status_code == 403
    assert forbidden.json()["ResponseStatus"]["ErrorCode"] == "1002"
    missing = get(server, "/Strategies/GetStrategyHistoricalOrders", StrategyId="11")
    assert missing.status_code == 200  # an error inside a 200
    assert missing.json()["ResponseStatus"]["ErrorCode"] == "1102"
    with RestClient(server.rest_url, "wrong-key-000") as rest, \
            pytest.raises(RestAuthenticationFailed):
        rest.open_positions(11)
    with RestClient(server.rest_url, KEY) as rest:
        with pytest.raises(RestForbidden):
            rest.open_positions(33)
        with pytest.raises(RestUnavailable, match="1102"):
            rest.get(rest_query_without_start())


def rest_query_without_start() -> Any:
    from c2ws.rest.api import Query

    return Query("/Strategies/GetStrategyHistoricalOrders", (("StrategyId", "11"),))


def test_the_fault_knobs_answer_429_and_500_then_serve(server: TestServer) -> None:
    server.publish(11)
    server.fail_next_rest_requests(429, 500, retry_after=0)
    retries: list[Any] = []
    with RestClient(server.rest_url, KEY, on_retry=retries.append) as rest:
        rest.open_positions(11)
    assert [r.status for r in server.rest_requests()] == [429, 500, 200]
    assert len(retries) == 2


def test_camel_case_envelopes_are_read_alike() -> None:
    with testing.server(api_key=KEY, rest_key_case="camel") as srv:
        srv.publish(5, {"StrategyId": 5, "SignalId": 1, "OrderStatus": "0"})
        body = httpx.get(srv.rest_url + "/Strategies/GetStrategyActiveOrders",
                         params={"StrategyIds": "5"}, timeout=10,
                         headers={"Authorization": f"Bearer {KEY}"}).json()
        assert "results" in body and "responseStatus" in body
        with RestClient(srv.rest_url, KEY) as rest:
            assert [o["SignalId"] for o in rest.active_orders(5)] == [1]
