"""Everything c2ws takes from websocket-client, in one place.

c2ws uses the library for the HTTP upgrade only (it writes the request and checks the
server's ``Sec-WebSocket-Accept``), through its documented ``create_connection(...,
socket=...)``, and reuses its URL parsing and proxy rules (``no_proxy`` matching) so that
c2ws connects where websocket-client users expect.  Those two helpers are private
(``websocket._url``): an upgrade of websocket-client may move or change them, which is
why they are imported here and nowhere else, why pyproject.toml pins the versions tested
(``websocket-client>=1.9,<1.10``; 1.8 exempted localhost from every proxy setting), and
why tests/test_dependency_internals.py checks every name below against the installed
version and says what to update when one changed.
Frames are parsed and written by c2ws itself (c2ws/net/frames.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import websocket
from websocket import _url

# The private names this module uses, as (module, attribute): the dependency test
# imports each and checks its shape.
PRIVATE_NAMES: Final = (
    ("websocket._url", "parse_url"),
    ("websocket._url", "get_proxy_info"),
)

WebSocketException = websocket.WebSocketException

# TCP_NODELAY and keepalive probes, as websocket-client sets them on its own sockets.
DEFAULT_SOCKET_OPTIONS: Final[Sequence[tuple[int, ...]]] = tuple(
    tuple(option) for option in websocket.DEFAULT_SOCKET_OPTION
)


def parse_url(url: str) -> tuple[str, int, str, bool]:
    """(host, port, resource, secure) of a ws:// or wss:// URL; ValueError if it is none."""
    host, port, resource, secure = _url.parse_url(url)
    return str(host), int(port), str(resource), bool(secure)


def get_proxy_info(
    host: str, secure: bool, *, proxy_host: str | None = None, proxy_port: int = 0
) -> tuple[Any, Any, Any]:
    """websocket-client's proxy choice for ``host``: (proxy host, port, auth), the host
    None when the connection goes direct (``no_proxy`` applied)."""
    found = _url.get_proxy_info(host, secure, proxy_host=proxy_host, proxy_port=proxy_port)
    proxy, port, auth = found
    return proxy, port, auth


def upgrade(url: str, api_key: str, sock: Any) -> None:
    """The HTTP upgrade over ``sock`` (already connected: c2ws's own socket object), the
    Bearer key in its Authorization header.  Raises WebSocketException when the answer is
    not a valid upgrade, and whatever ``sock`` raises."""
    websocket.create_connection(
        url,
        timeout=None,
        socket=sock,
        header=[f"Authorization: Bearer {api_key}"],
        suppress_origin=True,
        # A redirect would carry the Bearer key to wherever it points (and the answer
        # never reaches websocket-client anyway: c2ws refuses it first).
        redirect_limit=0,
    )
