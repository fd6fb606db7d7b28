"""The typed errors of a REST call: each is also the :mod:`c2ws.errors` class of the same
ending, so it has that class's exit status (:mod:`c2ws.exitcodes` finds it by the
class's bases) and an ``except`` written for the stream catches it too::

    RestError                     (catch every REST failure)
    ├── RestAuthenticationFailed  AuthenticationFailed   3  HTTP 401, or a bad key's code
    ├── RestForbidden             SubscriptionsRejected  7  HTTP 403: not this strategy
    ├── RestBusy                  ServerBusy             5  HTTP 429 / 503, retries spent
    └── RestUnavailable           CannotConnect          4  network, timeout, 5xx (retries
                                                            spent), another status or code

``str()`` is one line and never holds the API key (the client redacts the server's
words before they get here).  ``status``: the HTTP status (None: no answer);
``code``: C2's ``ErrorCode`` when the body gave one; ``path``: the endpoint.
"""

from __future__ import annotations

from c2ws.endings import ConnectionEnd, EndReason
from c2ws.errors import (
    AuthenticationFailed,
    C2wsError,
    CannotConnect,
    ServerBusy,
    SubscriptionsRejected,
)

__all__ = [
    "RestAuthenticationFailed",
    "RestBusy",
    "RestError",
    "RestForbidden",
    "RestUnavailable",
]


class RestError(C2wsError):
    """Base of the REST errors (never raised as itself)."""

    status: int | None = None
    code: str | None = None
    path: str = ""

    def _describe(self, status: int | None, code: str | None, path: str) -> None:
        self.status, self.code, self.path = status, code, path


class RestAuthenticationFailed(AuthenticationFailed, RestError):
    """The REST API refused the key (HTTP 401, or C2's BAD_API_KEY_FMT)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 path: str = "") -> None:
        super().__init__(ConnectionEnd(EndReason.AUTH_FAILED, message), message)
        self._describe(status, code, path)


class RestForbidden(SubscriptionsRejected, RestError):
    """The key has no access to this strategy (HTTP 403, C2's FORBIDDEN).
    ``strategy_id``: the strategy refused, when one request asked for one."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 path: str = "", strategy_id: int | None = None) -> None:
        super().__init__(message)
        self._describe(status, code, path)
        self.strategy_id = strategy_id


class RestBusy(ServerBusy, RestError):
    """Rate limited (HTTP 429) or unavailable (503) after every retry."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 path: str = "") -> None:
        super().__init__(ConnectionEnd(EndReason.BUSY, message), message)
        self._describe(status, code, path)


class RestUnavailable(CannotConnect, RestError):
    """No usable answer: DNS, refused, TLS, a timeout, a server error after every retry,
    a redirect, or a status or error code that retrying cannot change (400, 404...)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 path: str = "") -> None:
        reason = EndReason.UNREACHABLE if status is None or status >= 500 else EndReason.REFUSED
        super().__init__(ConnectionEnd(reason, message), message)
        self._describe(status, code, path)
