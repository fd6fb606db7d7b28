"""systemd's notification protocol (``Type=notify``), with the standard library: one
datagram per notification to the socket ``$NOTIFY_SOCKET`` names (sd_notify(3)).

``READY=1`` once every subscription was answered, ``WATCHDOG=1`` while heartbeats flow
(when the unit sets ``WatchdogSec=``, which systemd passes as ``$WATCHDOG_USEC``),
``STATUS=`` a short summary, ``STOPPING=1`` when the run ends.  Outside systemd (no
``$NOTIFY_SOCKET``) it does nothing.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping

__all__ = ["SystemdNotifier"]


class SystemdNotifier:
    """Sends notifications to ``environ["NOTIFY_SOCKET"]`` (a path, or ``@name`` in the
    abstract namespace); :attr:`enabled` is False without one.  A send that fails (the
    socket went away) turns it off: :attr:`failure` says why, once."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        address = environ.get("NOTIFY_SOCKET", "")
        self.failure: str | None = None
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        # The consumer (READY, STATUS) and the watchdog's thread both send.
        self._lock = threading.Lock()
        if address and hasattr(socket, "AF_UNIX"):
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        # The watchdog interval systemd expects pings within (WatchdogSec=), for this
        # process only when WATCHDOG_PID names it.
        self.watchdog: float | None = None
        pid = environ.get("WATCHDOG_PID")
        usec = environ.get("WATCHDOG_USEC", "")
        if self._socket is not None and usec.isdigit() and int(usec) > 0 and (
                not pid or pid == str(os.getpid())):
            self.watchdog = int(usec) / 1e6

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``assignments`` (``"READY=1"``, ``"STATUS=..."``) in one datagram; False
        when nothing could be sent."""
        # A newline would start another assignment: a status is one line.
        text = "\n".join(part.replace("\n", " ") for part in assignments)
        with self._lock:
            sock = self._socket
            if sock is None:
                return False
            try:
                sock.sendto(text.encode("utf-8", "replace"), self._address)
            except OSError as exc:
                where = self._address.lstrip("\0")
                self.failure = f"cannot notify systemd at {where}: {exc.strerror or exc}"
                self._socket = None
                sock.close()
                return False
        return True

    def close(self) -> None:
        with self._lock:
            sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()
