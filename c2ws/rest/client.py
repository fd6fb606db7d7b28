"""The REST client: the rules of :mod:`c2ws.rest.api` over HTTP (httpx).

A thin shell: :mod:`c2ws.rest.api` builds each request and reads each answer; this module
sends, waits and retries, then raises the typed error of :mod:`c2ws.rest.errors`.

- Every request has a deadline (``timeout``: connect, read, write and pool waits).
- A 429 is retried after the wait its ``Retry-After`` asks for (else a jittered
  backoff), at most ``spec.REST_MAX_RATE_LIMIT_RETRIES`` times; a 5xx, a timeout or a
  network error at most ``spec.REST_MAX_SERVER_ERROR_RETRIES`` times.  No other answer is
  retried.  Redirects are not followed (they would carry the key elsewhere).
- Pages are walked until ``next_cursor`` is null or empty; a short page is no end.
- The key is sent only in the ``Authorization`` header and appears in no error: the
  server's words are redacted before they are kept.

httpx is imported when a client is made, never before: ``c2ws subscribe --help`` and
every command that makes no REST call start without it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from c2ws import spec
from c2ws.endings import EndReason
from c2ws.protocol import JsonObject
from c2ws.redaction import KeyRedactor, long_enough_to_redact
from c2ws.rest import api
from c2ws.rest.errors import (
    RestAuthenticationFailed,
    RestBusy,
    RestError,
    RestForbidden,
    RestUnavailable,
)

if TYPE_CHECKING:
    import datetime

    import httpx

_USER_AGENT: Final = "c2ws"


@dataclass(frozen=True)
class RestRetry:
    """A request is tried again after ``delay`` seconds: ``attempt`` counts the retries
    of this request from 1; ``reason`` is one line (redacted, not yet terminal-safe);
    ``retry_after``: what the server's Retry-After asked for, when it did."""

    path: str
    attempt: int
    delay: float
    reason: str
    retry_after: float | None = None


def missing_httpx() -> RestUnavailable:
    """The error when the ``rest`` extra is not installed."""
    return RestUnavailable("the REST API needs the 'rest' extra (httpx): "
                           "pip install 'c2ws[rest]'")


class RestClient:
    """One REST API, one key.  A context manager (closes its connections).

    ``transport``: an httpx transport (tests); ``sleep`` and ``rng``: how waits are taken
    and jittered (tests pass their own); ``on_retry``: told before each wait."""

    def __init__(
        self, base_url: str, api_key: str, *, timeout: float = spec.REST_TIMEOUT_SECONDS,
        page_limit: int = spec.REST_MAX_PAGE_LIMIT, transport: Any = None,
        sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
        on_retry: Callable[[RestRetry], None] | None = None,
    ) -> None:
        try:
            import httpx
        except ModuleNotFoundError:
            raise missing_httpx() from None
        from c2ws.delivery.backoff import Backoff

        if not 1 <= page_limit <= spec.REST_MAX_PAGE_LIMIT:
            raise ValueError(f"page_limit is from 1 to {spec.REST_MAX_PAGE_LIMIT}")
        self.base_url = api.check_rest_url(base_url)
        self.page_limit = page_limit
        self._redactor = KeyRedactor(api_key) if long_enough_to_redact(api_key) else None
        self._api_key = api_key
        self._sleep = sleep
        self._on_retry = on_retry
        self._backoff = Backoff(cap=spec.REST_MAX_RETRY_WAIT_SECONDS, rng=rng)
        headers = {**api.request_headers(api_key), "User-Agent": _USER_AGENT}
        self._http: httpx.Client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout),
            follow_redirects=False, transport=transport,
        )
        self._httpx = httpx

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- endpoints ------------------------------------------------------------------------

    def open_positions(self, strategy_id: int) -> list[JsonObject]:
        """``GetStrategyOpenPositions`` of one strategy: its ``PositionDTO`` objects."""
        return self.get(api.open_positions_query(strategy_id), strategy_id=strategy_id).results

    def active_orders(self, strategy_id: int) -> list[JsonObject]:
        """``GetStrategyActiveOrders`` of one strategy: its working orders."""
        return self.get(api.active_orders_query(strategy_id), strategy_id=strategy_id).results

    def historical_orders(
        self, strategy_id: int, start: datetime.datetime, end: datetime.datetime | None,
    ) -> Iterator[JsonObject]:
        """``GetStrategyHistoricalOrders`` of one strategy from ``start`` to ``end`` (None:
        now), oldest first, every page."""
        query = api.historical_orders_query(strategy_id, start, end, self.page_limit)
        for page in self.pages(query, strategy_id=strategy_id):
            yield from page.results

    # --- paging and retries ---------------------------------------------------------------

    def pages(self, query: api.Query, *, strategy_id: int | None = None) -> Iterator[api.Page]:
        """Every page of a paged query, following ``next_cursor`` to its end."""
        seen: set[str] = set()
        page = self.get(query, strategy_id=strategy_id)
        yield page
        for _ in range(spec.REST_MAX_PAGES - 1):
            cursor = page.next_cursor
            if cursor is None:
                return
            if cursor in seen:  # a server that sends us round in circles
                raise RestUnavailable(f"{query.describe()} sent a cursor it had sent before",
                                      path=query.path)
            seen.add(cursor)
            page = self.get(query.with_cursor(cursor), strategy_id=strategy_id)
            yield page
        if page.next_cursor is not None:
            raise RestUnavailable(f"{query.describe()} had more than {spec.REST_MAX_PAGES} "
                                  "pages", path=query.path)

    def get(self, query: api.Query, *, strategy_id: int | None = None) -> api.Page:
        """One page, retried as the module docstring says; raises a :class:`RestError`."""
        rate_limited = server_errors = 0
        while True:
            answer = self._send(query)
            if isinstance(answer, api.Page):
                return answer
            kind = answer.kind if isinstance(answer, api.Refusal) else api.Refused.SERVER_ERROR
            if kind is api.Refused.RATE_LIMITED:
                rate_limited += 1
                retries, limit = rate_limited, spec.REST_MAX_RATE_LIMIT_RETRIES
            elif kind in api.RETRIED:
                server_errors += 1
                retries, limit = server_errors, spec.REST_MAX_SERVER_ERROR_RETRIES
            else:
                retries, limit = 1, 0
            if retries > limit:
                raise self._error(query, answer, strategy_id)
            retry_after = answer.retry_after if isinstance(answer, api.Refusal) else None
            busy = kind in (api.Refused.RATE_LIMITED, api.Refused.BUSY)
            delay = self._backoff.delay(EndReason.BUSY if busy else EndReason.UNREACHABLE,
                                        retries, retry_after)
            if self._on_retry is not None:
                self._on_retry(RestRetry(query.path, retries, delay,
                                         self._describe(query, answer), retry_after))
            self._sleep(delay)

    def _send(self, query: api.Query) -> api.Page | api.Refusal | str:
        """The answer to one request, or (a string) why none came."""
        httpx = self._httpx
        try:
            with self._http.stream("GET", query.path, params=list(query.params)) as response:
                body = self._read(response)
                retry_after = self._retry_after(response)
                return api.read_answer(response.status_code, body, retry_after)
        except httpx.TimeoutException:
            return "timed out"
        except httpx.TransportError as exc:
            return self._redact(f"{type(exc).__name__}: {exc}" if str(exc)
                                else type(exc).__name__)
        except _BodyTooLarge as exc:
            return str(exc)

    @staticmethod
    def _read(response: httpx.Response) -> bytes:
        limit = (spec.REST_MAX_BODY_BYTES if 200 <= response.status_code <= 299
                 else spec.REST_MAX_ERROR_BODY_BYTES)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                if 200 <= response.status_code <= 299:
                    raise _BodyTooLarge(f"an answer larger than {limit} bytes")
                break  # an error's body: what fits is enough
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _retry_after(response: httpx.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        from c2ws.net.connection import retry_after_seconds

        return retry_after_seconds(value, time.time())

    def _redact(self, text: str) -> str:
        return self._redactor.redact_text(text) if self._redactor is not None else text

    def _describe(self, query: api.Query, answer: api.Refusal | str) -> str:
        if isinstance(answer, str):
            return self._redact(f"{query.describe()} failed: {answer}")
        return self._redact(api.refusal_text(query, answer))

    def _error(self, query: api.Query, answer: api.Refusal | str,
               strategy_id: int | None) -> RestError:
        text = self._describe(query, answer)
        if isinstance(answer, str):
            return RestUnavailable(f"{text} (REST API at {self.base_url})", path=query.path)
        status, code, path = answer.status, answer.code, query.path
        if answer.kind is api.Refused.AUTH:
            return RestAuthenticationFailed(f"{text}: the API key was refused", status=status,
                                            code=code, path=path)
        if answer.kind is api.Refused.FORBIDDEN:
            whose = f" strategy {strategy_id}" if strategy_id is not None else " this strategy"
            return RestForbidden(f"{text}: not authorized for{whose}", status=status, code=code,
                                 path=path, strategy_id=strategy_id)
        if answer.kind in (api.Refused.RATE_LIMITED, api.Refused.BUSY):
            return RestBusy(f"{text} (gave up after retrying)", status=status, code=code,
                            path=path)
        if answer.kind is api.Refused.SERVER_ERROR:
            text += " (gave up after retrying)"
        return RestUnavailable(text, status=status, code=code, path=path)


class _BodyTooLarge(Exception):
    pass
