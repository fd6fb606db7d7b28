"""Prometheus metrics and ``/healthz`` over HTTP, for ``--metrics HOST:PORT``.

The numbers are :class:`~c2ws.monitor.health.StreamHealth`'s, read when a scrape comes
(nothing is done per message for them but what the health keeps anyway); the exposition
format is ``prometheus-client``'s (the ``metrics`` extra, imported only by this module).

The server is one thread blocked in ``accept``: an idle run pays nothing for it (no
polling loop, unlike ``prometheus_client.start_http_server``).  It answers one request at
a time, each within :data:`c2ws.spec.METRICS_REQUEST_TIMEOUT_SECONDS`, and stops when the
socket is shut down (:meth:`MetricsServer.close`).

- ``GET /metrics``: the metrics below, and the process's own (``process_*``).
- ``GET /healthz``: ``200 ok`` while every connection has had a heartbeat within the
  heartbeat deadline; else ``503`` and why.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Final

from c2ws import spec
from c2ws.monitor.health import DROP_REASONS, HealthSnapshot, StreamHealth
from c2ws.net.driver import RECEIVED_BYTES

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = ["MetricsServer", "MetricsUnavailable", "parse_address", "registry_of"]

PREFIX: Final = "c2ws_"


class MetricsUnavailable(RuntimeError):
    """prometheus-client is not installed."""


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise MetricsUnavailable(
            "--metrics needs the 'metrics' extra: pip install 'c2ws[metrics]'") from None
    return prometheus_client


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9108`` for IPv6; ``:9108`` for every interface) as
    (host, port); ValueError saying what is wrong."""
    host, colon, port = text.rpartition(":")
    if not colon or not port.isascii() or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9108; port 0 to 65535)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _Collector:
    """The c2ws metrics of one run, made at each scrape from a health snapshot."""

    def __init__(self, health: StreamHealth, backlog: Callable[[], int],
                 received_bytes: Callable[[], int]) -> None:
        self._health = health
        self._backlog = backlog
        self._received_bytes = received_bytes

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self._health.snapshot()
        stream_labels = ["strategy_id", "channel"]

        def per_stream(name: str, doc: str, values: dict[Any, int]) -> Metric:
            family = CounterMetricFamily(PREFIX + name, doc, labels=stream_labels)
            for key, value in sorted(values.items()):
                family.add_metric([str(key.strategy_id), key.channel], value)
            return family

        yield per_stream("messages_written", "Signal and position messages written to the "
                         "output, per strategy and channel.", snap.written_per_stream)
        dropped = CounterMetricFamily(PREFIX + "messages_dropped", "Messages received and "
                                      "not written, per reason.", labels=["reason"])
        for reason in sorted(set(DROP_REASONS.values())):
            dropped.add_metric([reason], snap.dropped.get(reason, 0))
        yield dropped
        yield per_stream("gaps", "Gaps the server could not replay, per stream.", snap.gaps)
        yield per_stream("sequence_resets", "Sequence resets (the server restarted a "
                         "stream's numbering), per stream.", snap.resets)
        reconnects = CounterMetricFamily(PREFIX + "reconnects", "Reconnects, per cause (how "
                                         "the connection ended).", labels=["cause"])
        for cause, value in sorted(snap.reconnects.items()):
            reconnects.add_metric([cause], value)
        yield reconnects
        yield from self._connections(snap, GaugeMetricFamily)
        yield GaugeMetricFamily(PREFIX + "last_message_age_seconds", "Seconds since the last "
                                "message was written (since the start, before the first).",
                                value=snap.message_age())
        yield GaugeMetricFamily(PREFIX + "backlog_messages", "Messages received and not yet "
                                "written.", value=self._backlog())
        yield CounterMetricFamily(PREFIX + "received_bytes", "Bytes read from the WebSocket "
                                  "connections of this process.", value=self._received_bytes())
        yield CounterMetricFamily(PREFIX + "state_commits", "Commits of the cursors to the "
                                  "--state file.", value=snap.commits)
        subscriptions = GaugeMetricFamily(PREFIX + "subscriptions", "Subscriptions "
                                          "requested, active now, and rejected.",
                                          labels=["state"])
        subscriptions.add_metric(["requested"], snap.requested)
        subscriptions.add_metric(["active"], snap.active)
        subscriptions.add_metric(["rejected"], snap.rejected)
        yield subscriptions
        yield GaugeMetricFamily(PREFIX + "ready", "1 once every subscription was answered.",
                                value=int(snap.ready))
        yield GaugeMetricFamily(PREFIX + "healthy", "1 while every connection has heartbeats "
                                "(what /healthz says).", value=int(not snap.unhealthy()))

    @staticmethod
    def _connections(snap: HealthSnapshot, gauge: Any) -> Iterable[Metric]:
        up = gauge(PREFIX + "connection_up", "1 while the connection is up.",
                   labels=["connection"])
        age = gauge(PREFIX + "heartbeat_age_seconds", "Seconds since the connection's last "
                    "heartbeat (since the start, before the first).", labels=["connection"])
        for connection in snap.connections:
            label = [str(connection.shard + 1)]
            up.add_metric(label, int(connection.up))
            age.add_metric(label, snap.heartbeat_age(connection))
        return (up, age)


def registry_of(health: StreamHealth, *, backlog: Callable[[], int] = lambda: 0,
                received_bytes: Callable[[], int] = lambda: 0,
                process: bool = True) -> CollectorRegistry:
    """A registry of the run's metrics (and the process's own, ``process``)."""
    prometheus = _prometheus()
    registry = prometheus.CollectorRegistry(auto_describe=False)
    registry.register(_Collector(health, backlog, received_bytes))
    if process:
        prometheus.ProcessCollector(registry=registry)
    return registry  # type: ignore[no-any-return]


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` for ``health`` on ``host``:``port`` (see the
    module docstring).  :meth:`start` binds (an OSError says why it cannot) and starts
    the thread; :meth:`close` stops it."""

    def __init__(self, health: StreamHealth, host: str, port: int, *,
                 backlog: Callable[[], int] = lambda: 0,
                 received_bytes: Callable[[], int] = lambda: RECEIVED_BYTES.total) -> None:
        prometheus = _prometheus()
        self.health = health
        self.host, self.port = host, port
        self._registry = registry_of(health, backlog=backlog, received_bytes=received_bytes)
        self._generate = prometheus.generate_latest
        self.content_type: str = prometheus.CONTENT_TYPE_LATEST
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsServer:
        infos = socket.getaddrinfo(self.host or None, self.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(16)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="c2ws-metrics", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the server (the port it got, when asked for 0)."""
        host = self.host or "0.0.0.0"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # wakes the accept
        sock.close()
        if self._thread is not None:
            self._thread.join(spec.METRICS_REQUEST_TIMEOUT_SECONDS)

    def answer(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of ``path``."""
        path = path.partition("?")[0]
        if path == "/metrics":
            return 200, self.content_type, self._generate(self._registry)
        if path == "/healthz":
            problems = self.health.snapshot().unhealthy()
            if problems:
                return 503, "text/plain; charset=utf-8", ("; ".join(problems) + "\n").encode()
            return 200, "text/plain; charset=utf-8", b"ok\n"
        return 404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n"

    def _serve(self) -> None:
        while True:
            sock = self._socket
            if sock is None:
                return
            try:
                connection, client = sock.accept()
            except OSError:
                return  # shut down by close()
            try:
                _Handler(connection, client, self)  # type: ignore[arg-type]
            except Exception:
                pass
            finally:
                connection.close()


class _Handler(BaseHTTPRequestHandler):
    """One request, answered from :meth:`MetricsServer.answer` (GET and HEAD)."""

    server_version = "c2ws"
    timeout = spec.METRICS_REQUEST_TIMEOUT_SECONDS
    server: MetricsServer  # type: ignore[assignment]

    def do_GET(self) -> None:
        self._reply(body=True)

    def do_HEAD(self) -> None:
        self._reply(body=False)

    def _reply(self, *, body: bool) -> None:
        status, content_type, data = self.server.answer(self.path)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: stderr is the run's."""
