"""The REST client (issue 24): the rules of c2ws/rest/api.py, and the client over an
httpx mock transport (no sockets): retries, paging, typed errors, the key never shown."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from c2ws.exitcodes import ExitCode, exit_code_for
from c2ws.rest import api, parse_time
from c2ws.rest.client import RestClient, RestRetry
from c2ws.rest.errors import (
    RestAuthenticationFailed,
    RestBusy,
    RestForbidden,
    RestUnavailable,
)
from c2ws.rest.results import OpenPosition, Order

KEY = "rest-secret-key-0001"
BASE = "https://api.example.test"
REPO = Path(__file__).resolve().parent.parent
UTC = datetime.timezone.utc


def envelope(results: list[dict[str, Any]], cursor: str | None = None, code: str = "200",
             message: str = "OK", camel: bool = False) -> dict[str, Any]:
    def k(name: str) -> str:
        return name[0].lower() + name[1:] if camel else name
    return {k("Results"): results, k("Pagination"): {"next_cursor": cursor},
            k("ResponseStatus"): {k("ErrorCode"): code, k("Message"): message}}


def client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any
           ) -> tuple[RestClient, list[float], list[RestRetry]]:
    waits: list[float] = []
    retries: list[RestRetry] = []
    rest = RestClient(BASE, KEY, transport=httpx.MockTransport(handler), sleep=waits.append,
                      on_retry=retries.append, **kwargs)
    return rest, waits, retries


# --- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("ws", "rest"), [
    ("wss://api4-general.collective2.com/ws", "https://api4-general.collective2.com"),
    ("ws://127.0.0.1:8765/ws", "http://127.0.0.1:8765"),
    ("WSS://h.example/ws/", "https://h.example"),
    ("wss://proxy.example/c2/ws?x=1", "https://proxy.example/c2"),
    ("ws://[::1]:9000/ws", "http://[::1]:9000"),
])
def test_the_rest_url_is_derived_from_the_websocket_url(ws: str, rest: str) -> None:
    assert api.rest_url_of(ws) == rest


def test_rest_url_flag_then_environment_then_derived() -> None:
    ws = "wss://h.example/ws"
    assert api.resolve_rest_url("http://flag.example/", {"C2WS_REST_URL": "http://e"}, ws) \
        == "http://flag.example"
    assert api.resolve_rest_url(None, {"C2WS_REST_URL": "http://env.example"}, ws) \
        == "http://env.example"
    assert api.resolve_rest_url(None, {}, ws) == "https://h.example"
    for bad in ("ftp://x", "https://", "http://h/?q=1", "not a url"):
        with pytest.raises(api.RestUrlError):
            api.check_rest_url(bad)
    with pytest.raises(api.RestUrlError, match="C2WS_REST_URL"):
        api.resolve_rest_url(None, {"C2WS_REST_URL": "ftp://x"}, ws)


# --- answers ------------------------------------------------------------------------------


def test_the_envelope_is_read_in_any_key_case_and_the_cursor_decoded() -> None:
    for camel in (False, True):
        body = json.dumps(envelope([{"SignalId": 1}, 7], "a%2Fb%3D1", camel=camel)).encode()
        page = api.read_answer(200, body)
        assert page == api.Page([{"SignalId": 1}], "a/b=1")
    assert api.read_answer(200, json.dumps(envelope([], None)).encode()) == api.Page([], None)
    assert api.read_answer(200, json.dumps(envelope([], "")).encode()).next_cursor is None
    assert api.read_answer(200, b'{"Results": []}') == api.Page([], None)


@pytest.mark.parametrize(("status", "code", "kind"), [
    (200, "1002", api.Refused.FORBIDDEN),
    (200, "2014", api.Refused.AUTH),
    (200, "1102", api.Refused.REJECTED),
    (200, "500", api.Refused.SERVER_ERROR),
    (401, "401", api.Refused.AUTH),
    (403, "1002", api.Refused.FORBIDDEN),
    (429, "429", api.Refused.RATE_LIMITED),
    (503, None, api.Refused.BUSY),
    (502, None, api.Refused.SERVER_ERROR),
    (404, "2013", api.Refused.REJECTED),
    (302, None, api.Refused.REJECTED),
])
def test_an_error_is_read_from_the_status_or_inside_a_200(status: int, code: str | None,
                                                          kind: api.Refused) -> None:
    body = json.dumps(envelope([], code=code or str(status), message="nope")).encode() \
        if code else b"<html>busy</html>"
    refusal = api.read_answer(status, body)
    assert isinstance(refusal, api.Refusal) and refusal.kind is kind


def test_a_200_that_is_not_the_envelope_is_retried_like_a_server_error() -> None:
    refusal = api.read_answer(200, b"<html>proxy</html>")
    assert isinstance(refusal, api.Refusal) and refusal.kind is api.Refused.SERVER_ERROR


def test_history_query_widens_the_window_to_whole_seconds() -> None:
    start = datetime.datetime(2026, 11, 25, 9, 0, 1, 500_000, tzinfo=UTC)
    end = datetime.datetime(2026, 11, 25, 9, 30, 12, 1, tzinfo=UTC)
    query = api.historical_orders_query(7, start, end, limit=10)
    assert dict(query.params) == {"StrategyId": "7", "StartDate": "2026-11-25T09:00:01Z",
                                  "EndDate": "2026-11-25T09:30:13Z", "Limit": "10",
                                  "AscendingOrder": "true"}
    assert query.paged and dict(query.with_cursor("x").params)["Cursor"] == "x"


def test_signal_ids_are_read_in_any_key_case_never_from_order_id() -> None:
    assert api.signal_id_of({"SignalId": 5}) == 5
    assert api.signal_id_of({"signal_id": "6"}) == 6
    assert api.signal_id_of({"signalId": 7}) == 7
    assert api.signal_id_of({"OrderId": 8}) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-25", datetime.datetime(2026, 11, 25, tzinfo=UTC)),
    ("2026-11-25T09:30:00Z", datetime.datetime(2026, 11, 25, 9, 30, tzinfo=UTC)),
    ("2026-11-25T10:30:00+01:00", datetime.datetime(2026, 11, 25, 9, 30, tzinfo=UTC)),
    ("2h", datetime.datetime(2026, 11, 25, 7, 30, tzinfo=UTC)),
    ("3d", datetime.datetime(2026, 11, 22, 9, 30, tzinfo=UTC)),
    ("90s", datetime.datetime(2026, 11, 25, 9, 28, 30, tzinfo=UTC)),
])
def test_times_are_iso_8601_or_relative(text: str, expected: datetime.datetime) -> None:
    now = datetime.datetime(2026, 11, 25, 9, 30, tzinfo=UTC).timestamp()
    assert parse_time(text, now=now) == expected


def test_a_time_that_is_neither_names_its_option() -> None:
    from c2ws.errors import ConfigError

    with pytest.raises(ConfigError, match="is not a time") as raised:
        parse_time("yesterday", param="--until")
    assert raised.value.param == "--until"


# --- the client ---------------------------------------------------------------------------


def test_every_request_carries_the_bearer_key_and_json_headers_and_a_timeout() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=envelope([{"Quantity": 1}]))

    rest, _, _ = client(handler, timeout=7.0)
    assert rest.open_positions(12) == [{"Quantity": 1}]
    (request,) = seen
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/json"
    assert KEY not in str(request.url)
    assert dict(request.url.params) == {"StrategyIds": "12"}
    assert request.extensions["timeout"] == {"connect": 7.0, "read": 7.0, "write": 7.0,
                                             "pool": 7.0}


def test_a_429_waits_what_retry_after_asks_then_a_500_is_retried() -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "3"}, json=envelope([], code="429")),
               httpx.Response(500, text="oops"),
               httpx.Response(200, json=envelope([{"SignalId": 1}]))]
    rest, waits, retries = client(lambda request: answers.pop(0))
    assert rest.active_orders(5) == [{"SignalId": 1}]
    assert waits[0] == 3.0 and 0.0 <= waits[1] <= 0.5
    assert [r.retry_after for r in retries] == [3.0, None]
    assert "HTTP 429" in retries[0].reason and "HTTP 500" in retries[1].reason


def test_a_429_without_retry_after_backs_off_with_jitter() -> None:
    answers = [httpx.Response(429), httpx.Response(429),
               httpx.Response(200, json=envelope([]))]
    rest, waits, _ = client(lambda request: answers.pop(0))
    rest.open_positions(5)
    assert len(waits) == 2 and all(0 < wait <= 10.0 for wait in waits)


def test_server_errors_are_retried_a_bounded_number_of_times_then_exit_4() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(502)

    rest, waits, _ = client(handler)
    with pytest.raises(RestUnavailable) as raised:
        rest.open_positions(5)
    assert len(calls) == 4 and len(waits) == 3  # 1 + REST_MAX_SERVER_ERROR_RETRIES
    assert exit_code_for(raised.value) is ExitCode.CONNECT_FAILED
    assert "HTTP 502" in str(raised.value) and "gave up" in str(raised.value)


def test_rate_limits_that_never_end_are_exit_5() -> None:
    rest, waits, _ = client(lambda request: httpx.Response(429, headers={"Retry-After": "0"}))
    with pytest.raises(RestBusy) as raised:
        rest.open_positions(5)
    assert len(waits) == 5 and exit_code_for(raised.value) is ExitCode.SERVER_BUSY


@pytest.mark.parametrize(("status", "code", "error", "exit_code"), [
    (401, "401", RestAuthenticationFailed, ExitCode.AUTH_FAILED),
    (200, "2014", RestAuthenticationFailed, ExitCode.AUTH_FAILED),
    (403, "1002", RestForbidden, ExitCode.NOTHING_TO_STREAM),
    (200, "1002", RestForbidden, ExitCode.NOTHING_TO_STREAM),
    (400, "1102", RestUnavailable, ExitCode.CONNECT_FAILED),
    (200, "1130", RestUnavailable, ExitCode.CONNECT_FAILED),
])
def test_refusals_are_typed_not_retried_and_never_show_the_key(
    status: int, code: str, error: type[Exception], exit_code: ExitCode,
) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        # A server that echoes the key in its message.
        return httpx.Response(status, json=envelope([], code=code, message=f"bad {KEY}"))

    rest, _, _ = client(handler)
    with pytest.raises(error) as raised:
        rest.open_positions(77)
    assert len(calls) == 1
    assert exit_code_for(raised.value) is exit_code  # type: ignore[arg-type]
    assert KEY not in str(raised.value) and "****" in str(raised.value)
    if error is RestForbidden:
        assert raised.value.strategy_id == 77  # type: ignore[attr-defined]


def test_a_network_error_is_retried_then_exit_4_without_the_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused for {KEY}")

    rest, waits, _ = client(handler)
    with pytest.raises(RestUnavailable) as raised:
        rest.open_positions(5)
    assert len(waits) == 3 and KEY not in str(raised.value)
    assert exit_code_for(raised.value) is ExitCode.CONNECT_FAILED


def test_a_timeout_is_retried_then_exit_4() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    rest, _, _ = client(handler)
    with pytest.raises(RestUnavailable, match="timed out"):
        rest.open_positions(5)


def test_a_redirect_is_not_followed() -> None:
    rest, _, _ = client(lambda request: httpx.Response(
        302, headers={"Location": "https://elsewhere.example/"}))
    with pytest.raises(RestUnavailable, match="redirect"):
        rest.open_positions(5)


def test_every_page_is_walked_a_short_page_is_no_end_the_cursor_sent_back_decoded() -> None:
    seen: list[str | None] = []
    pages = {None: ([{"SignalId": 1}, {"SignalId": 2}], "p%2F2"),
             "p/2": ([{"SignalId": 3}], "p%2F3"),  # short, and not the last
             "p/3": ([{"SignalId": 4}], None)}

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("Cursor")
        seen.append(cursor)
        results, after = pages[cursor]
        return httpx.Response(200, json=envelope(results, after))

    rest, _, _ = client(handler, page_limit=2)
    start = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    orders = list(rest.historical_orders(9, start, None))
    assert [o["SignalId"] for o in orders] == [1, 2, 3, 4]
    assert seen == [None, "p/2", "p/3"]


def test_a_cursor_that_comes_round_again_ends_the_walk_with_an_error() -> None:
    rest, _, _ = client(lambda request: httpx.Response(200, json=envelope([{"a": 1}], "same")))
    with pytest.raises(RestUnavailable, match="cursor it had sent before"):
        list(rest.historical_orders(9, datetime.datetime(2026, 1, 1, tzinfo=UTC), None))


def test_typed_results_read_like_the_stream_messages() -> None:
    order = Order(7, {"signalId": "150", "side": "2", "orderStatus": "2", "orderQuantity": 3,
                      "c2Symbol": {"fullSymbol": "@ESZ6"}, "postedDate": "2026-11-25T09:00:01Z"})
    assert (order.signal_id, order.side.name, order.status.name, order.quantity,
            order.symbol, order.seq_id) == (150, "SELL", "FILLED", 3, "@ESZ6", None)
    assert order.posted_at == datetime.datetime(2026, 11, 25, 9, 0, 1, tzinfo=UTC)
    assert json.loads(order.line) == {"msg_type": "order", "strategy_id": 7,
                                      "payload": order.payload}
    position = OpenPosition(7, {"Quantity": -2, "AvgPx": 10.5, "C2Symbol": {"FullSymbol": "X"}})
    assert (position.quantity, position.avg_price, position.symbol) == (-2, 10.5, "X")
    import c2ws

    assert not isinstance(order, c2ws.Signal)


def test_subscribe_help_does_not_import_httpx_nor_the_rest_client() -> None:
    code = ("import sys, atexit\n"
            "atexit.register(lambda: print(sorted(m for m in sys.modules "
            "if m.split('.')[0] == 'httpx' or m.startswith('c2ws.rest')), file=sys.stderr))\n"
            "sys.argv = ['c2ws', 'subscribe', '--help']\n"
            "from c2ws.cli import main\nmain()\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"
