"""Everything c2ws knows or assumes about the Collective2 REST API v4, in one module.

The reference is ``shared/reference/c2-rest-api.md``; each rule below says where it comes
from: **[docs]** C2's own documentation, **[clients]** only seen in third-party clients,
**[ours]** our inference.  If the real API turns out to differ, this module (and the
numbers in :mod:`c2ws.spec`) is the one place to change.

Sans-I/O: it builds requests (path, query parameters, headers) and reads answers (status,
headers, body bytes) into pages or refusals; :mod:`c2ws.rest.client` sends them.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

import orjson

from c2ws import spec
from c2ws.payload import normalise_key
from c2ws.protocol import JsonObject

# --- where ----------------------------------------------------------------------------

ENV_REST_URL: Final = "C2WS_REST_URL"

# [clients] the order history and the working orders; [clients] open positions.
HISTORICAL_ORDERS: Final = "/Strategies/GetStrategyHistoricalOrders"
ACTIVE_ORDERS: Final = "/Strategies/GetStrategyActiveOrders"
OPEN_POSITIONS: Final = "/Strategies/GetStrategyOpenPositions"
# [docs] checks the key, the rate limit and the headers: a cheap probe.
HELLO: Final = "/General/Hello"

# [docs] The WebSocket lives at /ws on the REST API's host.
_WS_PATH: Final = "/ws"
_SCHEMES: Final = {"wss": "https", "ws": "http"}


class RestUrlError(ValueError):
    """A REST base URL c2ws cannot use (``str()`` says why, in one line)."""


def rest_url_of(ws_url: str) -> str:
    """The REST base URL of a WebSocket URL: ``wss://H/ws`` gives ``https://H``,
    ``ws://H:P/ws`` gives ``http://H:P`` [docs: same host].  A path before the final
    ``/ws`` is kept (a proxy's prefix); query and fragment are not."""
    try:
        parts = urlsplit(ws_url)
        scheme = _SCHEMES.get(parts.scheme.lower())
        netloc, path = parts.netloc, parts.path
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise RestUrlError(f"{ws_url!r} is not a ws:// or wss:// URL") from None
    if scheme is None or not netloc:
        raise RestUrlError(f"{ws_url!r} is not a ws:// or wss:// URL with a host")
    path = path.rstrip("/")
    if path.endswith(_WS_PATH):
        path = path[: -len(_WS_PATH)]
    return urlunsplit((scheme, netloc, path, "", ""))


def check_rest_url(url: str) -> str:
    """``url`` as a base URL (no trailing slash) if it is an http:// or https:// URL with
    a host and nothing after its path; else :class:`RestUrlError`."""
    try:
        parts = urlsplit(url.strip())
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname \
            or not port_ok:
        raise RestUrlError(f"{url!r} is not an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise RestUrlError(f"{url!r}: a REST base URL has no query or fragment")
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), "", ""))


def resolve_rest_url(flag: str | None, env: Mapping[str, str], ws_url: str) -> str:
    """``--rest-url``, else ``C2WS_REST_URL``, else the one :func:`rest_url_of` derives
    from the WebSocket URL."""
    if flag:
        return check_rest_url(flag)
    from_env = env.get(ENV_REST_URL)
    if from_env:
        try:
            return check_rest_url(from_env)
        except RestUrlError as exc:
            raise RestUrlError(f"{exc} (from {ENV_REST_URL})") from None
    return rest_url_of(ws_url)


# --- requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One GET: ``path`` and its query parameters, in order.  ``paged``: the endpoint
    pages with Cursor/Limit."""

    path: str
    params: tuple[tuple[str, str], ...]
    paged: bool = False

    def with_cursor(self, cursor: str) -> Query:
        """The same query for the page at ``cursor`` [docs: send back decoded]."""
        params = tuple((k, v) for k, v in self.params if k != "Cursor")
        return replace(self, params=(*params, ("Cursor", cursor)))

    def describe(self) -> str:
        """``GET /path`` for messages (never a parameter: they hold nothing secret, but
        a cursor is noise)."""
        return f"GET {self.path}"


def request_headers(api_key: str) -> dict[str, str]:
    """[docs] Bearer auth on every request (never the key in the query string);
    ``Content-Type: application/json`` is marked required, ``Accept`` must allow JSON
    (406 otherwise)."""
    return {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }


def open_positions_query(strategy_id: int) -> Query:
    """[clients] ``StrategyIds`` (plural: one client notes ``StrategyId`` gives 400).
    [ours] One strategy per request: the separator for several is not documented, and a
    403 then names the strategy it refuses."""
    return Query(OPEN_POSITIONS, (("StrategyIds", str(strategy_id)),))


def active_orders_query(strategy_id: int) -> Query:
    """[clients] As :func:`open_positions_query`: ``StrategyIds``, one per request."""
    return Query(ACTIVE_ORDERS, (("StrategyIds", str(strategy_id)),))


def historical_orders_query(
    strategy_id: int, start: datetime.datetime, end: datetime.datetime | None,
    limit: int = spec.REST_MAX_PAGE_LIMIT,
) -> Query:
    """[clients] ``StrategyId``, ``StartDate``, ``EndDate`` (UTC); [docs] ``Limit`` (at
    most 1000) and ``AscendingOrder`` (true: oldest first, the order c2ws writes).  The
    window is widened to whole seconds (the start down, the end up) so no order of its
    first or last second is left out.  ``end`` None: up to now (no EndDate sent)."""
    if not 1 <= limit <= spec.REST_MAX_PAGE_LIMIT:
        raise ValueError(f"a page limit is from 1 to {spec.REST_MAX_PAGE_LIMIT}")
    params = [("StrategyId", str(strategy_id)), ("StartDate", format_date(start))]
    if end is not None:
        params.append(("EndDate", format_date(end, round_up=True)))
    params += [("Limit", str(limit)), ("AscendingOrder", "true")]
    return Query(HISTORICAL_ORDERS, tuple(params), paged=True)


_DATE_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"


def format_date(moment: datetime.datetime, *, round_up: bool = False) -> str:
    """[clients] ``YYYY-MM-DDTHH:MM:SSZ`` in UTC (a naive datetime is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    moment = moment.astimezone(datetime.timezone.utc)
    if round_up and moment.microsecond:
        moment = moment.replace(microsecond=0) + datetime.timedelta(seconds=1)
    return moment.strftime(_DATE_FORMAT)


def parse_date(value: object) -> datetime.datetime | None:
    """A REST date (``PostedDate``, ``OpenedDate``...) as an aware UTC datetime; None for
    anything else.  [ours] ISO 8601 with or without a fraction and an offset; no offset
    means UTC (the docs say the API speaks UTC).  Total."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


# --- answers --------------------------------------------------------------------------


class Refused(Enum):
    """Why an answer is not a page, and so what c2ws does about it."""

    AUTH = "auth"  # 401, or a bad key's error code: not retried (exit 3)
    FORBIDDEN = "forbidden"  # 403: no access to this strategy; not retried (exit 7)
    RATE_LIMITED = "rate-limited"  # 429: retried after Retry-After, else a backoff (exit 5)
    BUSY = "busy"  # 503: retried like a 5xx, Retry-After honoured (exit 5)
    SERVER_ERROR = "server-error"  # 5xx, or not the JSON envelope: retried (exit 4)
    REJECTED = "rejected"  # any other status or error code: not retried (exit 4)


RETRIED: Final = frozenset({Refused.RATE_LIMITED, Refused.BUSY, Refused.SERVER_ERROR})


@dataclass(frozen=True)
class Page:
    """One answer's ``Results`` (the objects as received) and where the next page is
    (None: this was the last)."""

    results: list[JsonObject]
    next_cursor: str | None = None


@dataclass(frozen=True)
class Refusal:
    """An answer that is no page: ``status`` (the HTTP status), ``code`` (C2's
    ``ErrorCode``, when the body gave one), ``message`` (the server's words, not yet
    safe for a terminal nor redacted), ``retry_after`` (seconds, when a header asked)."""

    kind: Refused
    status: int
    code: str | None
    message: str
    retry_after: float | None = None


# [docs] ErrorCode is a string; "200" is success.  The C2 codes of the docs that say
# the same as an HTTP status, and the statuses [docs] lists.
_OK_CODE: Final = "200"
_CODE_KINDS: Final = {
    "401": Refused.AUTH,
    "2014": Refused.AUTH,  # BAD_API_KEY_FMT
    "403": Refused.FORBIDDEN,
    "1002": Refused.FORBIDDEN,  # FORBIDDEN
    "429": Refused.RATE_LIMITED,
    "503": Refused.BUSY,
}


def _status_kind(status: int) -> Refused:
    if status == 401:
        return Refused.AUTH
    if status == 403:
        return Refused.FORBIDDEN
    if status == 429:
        return Refused.RATE_LIMITED
    if status == 503:
        return Refused.BUSY
    if 500 <= status <= 599:
        return Refused.SERVER_ERROR
    return Refused.REJECTED


def _lookup(obj: Mapping[str, object], name: str) -> object:
    """``obj[name]`` in any key case (``Results``, ``results``, ``RESULTS``...) [docs:
    never depend on key case]; None when absent."""
    wanted = normalise_key(name)
    for key, value in obj.items():
        if isinstance(key, str) and normalise_key(key) == wanted:
            return value
    return None


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _code(value: object) -> str | None:
    """ErrorCode as text: a string [docs], or a number some server may send."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))
    text = _text(value)
    return text or None


def _status_message(status_obj: Mapping[str, object]) -> str:
    """``Message`` and each ``Errors[].FieldName: Message``, in one line."""
    parts = [_text(_lookup(status_obj, "Message"))]
    errors = _lookup(status_obj, "Errors")
    if isinstance(errors, list):
        for error in errors[: spec.MAX_ERROR_DETAILS]:
            if isinstance(error, Mapping):
                name, text = _text(_lookup(error, "FieldName")), _text(_lookup(error, "Message"))
                if text and text != parts[0]:
                    parts.append(f"{name}: {text}" if name else text)
    return "; ".join(part for part in parts if part)[: spec.REST_MAX_ERROR_TEXT_CHARS]


def read_answer(status: int, body: bytes, retry_after: float | None = None) -> Page | Refusal:
    """The page an answer holds, or why it holds none.  Total: any status and bytes.

    - [docs] The envelope: ``Results``, ``Pagination.next_cursor``, ``ResponseStatus``
      (``ErrorCode``, ``Message``, ``Errors[]``), in any key case.
    - [clients] An error may come inside HTTP 200: ``ErrorCode`` not "200".
    - [docs] ``next_cursor`` comes URL-encoded: it is decoded here, to be sent back as
      it was meant.  Null, empty or missing means the last page; a short page does not.
    - [ours] A 2xx whose body is not the JSON envelope (a proxy's page) is retried like a
      5xx; a redirect is not followed (it would carry the key elsewhere): refused."""
    try:
        document = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        document = None
    envelope = document if isinstance(document, dict) else None
    status_obj = _lookup(envelope, "ResponseStatus") if envelope is not None else None
    status_obj = status_obj if isinstance(status_obj, dict) else None
    code = _code(_lookup(status_obj, "ErrorCode")) if status_obj is not None else None
    message = _status_message(status_obj) if status_obj is not None else ""
    if not 200 <= status <= 299:
        kind = _status_kind(status)
        if kind is Refused.REJECTED and code is not None:
            kind = _CODE_KINDS.get(code, kind)
        if 300 <= status <= 399:
            message = message or "a redirect (not followed: it would carry the API key)"
        return Refusal(kind, status, code, message or _reason(status), retry_after)
    if envelope is None:
        return Refusal(Refused.SERVER_ERROR, status, None,
                       "the answer is not the REST API's JSON envelope", retry_after)
    if code is not None and code != _OK_CODE:
        known = _CODE_KINDS.get(code)
        if known is None:
            known = _status_kind(int(code)) if code.isdigit() and len(code) == 3 else (
                Refused.REJECTED)
        return Refusal(known, status, code, message or f"error code {code}", retry_after)
    results = _lookup(envelope, "Results")
    if results is None:
        results = []
    if not isinstance(results, list):
        return Refusal(Refused.SERVER_ERROR, status, code, "Results is not a list", retry_after)
    objects = [item for item in results if isinstance(item, dict)]
    pagination = _lookup(envelope, "Pagination")
    cursor = _lookup(pagination, "next_cursor") if isinstance(pagination, dict) else None
    return Page(objects, _cursor(cursor))


def _cursor(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    text = _text(value)
    return unquote(text) if text else None


def _reason(status: int) -> str:
    import http

    try:
        return f"HTTP {status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def refusal_text(query: Query, refusal: Refusal) -> str:
    """One line on a refusal, for an error or a warning (not yet terminal-safe)."""
    said = f"HTTP {refusal.status}"
    if refusal.code is not None and refusal.code != str(refusal.status):
        said += f", error code {refusal.code}"
    message = refusal.message if refusal.message != _reason(refusal.status) else ""
    return f"{query.describe()} answered {said}" + (f": {message}" if message else "")


# --- results --------------------------------------------------------------------------

SIGNAL_ID: Final = "signalid"  # [clients] SignalId on history and active orders


def signal_id_of(order: Mapping[str, object]) -> int | None:
    """An order's ``SignalId`` in any key case (``SignalId``, ``signalId``,
    ``signal_id``), as an integer (a number or its digits as text); None when it has
    none.  [ours] The key to dedupe a backfill against the stream: never ``OrderId``,
    which numbers something else."""
    from c2ws.protocol import parse_int

    for key, value in order.items():
        if isinstance(key, str) and normalise_key(key) == SIGNAL_ID:
            return parse_int(value)
    return None


def posted_date_of(order: Mapping[str, object]) -> datetime.datetime | None:
    """[clients] An order's ``PostedDate`` (any key case) as an aware UTC datetime."""
    value = _lookup(order, "PostedDate")
    return parse_date(value)


def strategy_ids_of(strategies: Sequence[int]) -> list[int]:
    """The ids in order, each once."""
    return list(dict.fromkeys(strategies))
