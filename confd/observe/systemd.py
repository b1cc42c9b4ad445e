"""sd_notify: tell systemd (Type=notify) when confd is ready, reloading or stopping.

Speaks the NOTIFY_SOCKET datagram protocol directly (no libsystemd needed), including
abstract socket names starting with `@`, and keeps the watchdog fed at half its interval.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

from confd.log import get_logger

log = get_logger(__name__)


class Notifier:
    """Sends `KEY=VALUE` lines to systemd; does nothing when NOTIFY_SOCKET is not set."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if raw.startswith("@"):
            self.address = b"\0" + raw[1:].encode()
        elif raw.startswith("/"):
            self.address = raw
        elif raw:
            log.warning("NOTIFY_SOCKET=%r is not a unix socket path; not notifying systemd", raw)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._watchdog_interval = _watchdog_interval(env)
        self._watchdog_stop = threading.Event()
        self._watchdog_thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        """True when systemd asked for notifications."""
        return self.address is not None

    def notify(self, **fields: object) -> bool:
        """Send one datagram of `KEY=VALUE` lines; returns False when it could not be sent."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.sendto(message, self.address)
                return True
            except OSError as exc:
                log.debug("sd_notify to %r failed: %s", self.address, exc)
                return False

    def ready(self, status: str = "") -> None:
        """READY=1 (after the first full pass), with an optional STATUS line."""
        self.notify(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> None:
        """A one-line STATUS shown by `systemctl status`."""
        self.notify(STATUS=text)

    def reloading(self) -> None:
        """RELOADING=1 at the start of a SIGHUP reload (follow with `ready()`)."""
        self.notify(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> None:
        """STOPPING=1 when shutdown begins."""
        self.notify(STOPPING=1)

    def start_watchdog(self, healthy: Callable[[], bool] = lambda: True) -> None:
        """Send WATCHDOG=1 at half of WATCHDOG_USEC while `healthy()` holds.

        A wedged daemon (healthy() false) stops feeding the watchdog so systemd restarts it.
        """
        if self.address is None or self._watchdog_interval is None or self._watchdog_thread:
            return
        interval = self._watchdog_interval / 2

        def feed() -> None:
            while not self._watchdog_stop.wait(interval):
                if healthy():
                    self.notify(WATCHDOG=1)
                else:
                    log.warning("not feeding the systemd watchdog: the daemon is not healthy")

        self.notify(WATCHDOG=1)
        self._watchdog_thread = threading.Thread(target=feed, name="sd-watchdog", daemon=True)
        self._watchdog_thread.start()

    def close(self) -> None:
        """Stop the watchdog thread and close the socket."""
        self._watchdog_stop.set()
        if self._watchdog_thread:
            self._watchdog_thread.join(1)
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds of WATCHDOG_USEC when it is meant for this process, else None."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; watchdog disabled", usec)
        return None
    return value / 1e6 if value > 0 else None
