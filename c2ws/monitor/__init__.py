"""Watching a running stream from outside (issue 25): what a run has seen of its
connections, subscriptions and output (:mod:`c2ws.monitor.health`, sans-I/O), Prometheus
metrics and ``/healthz`` over HTTP (:mod:`c2ws.monitor.metrics`, the ``metrics`` extra)
and systemd's notification socket (:mod:`c2ws.monitor.notify`).

Everything here is fed on the consumer's thread from what :func:`c2ws.stream` gives it:
the events passed to ``on_event`` and the batches written.  The socket threads are not
involved (but for one process-wide count of the bytes they read)."""
