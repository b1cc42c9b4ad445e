"""Prometheus metrics and health endpoints (`--metrics-addr HOST:PORT`), off by default.

Serves `/metrics` (text exposition format 0.0.4), `/health` (503 while the render thread is
dead or a backend is failing, naming them) and `/ready` (503 until every resource has rendered
once, naming those that have not) from a small http.server thread.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from confd.errors import ConfigError

log = logging.getLogger(__name__)

_COUNTERS = {
    "confd_renders_total": ("resource", "Template renders that succeeded, by resource."),
    "confd_render_failures_total": ("resource", "Renders, checks or writes that failed."),
    "confd_reloads_total": ("resource", "Destination files replaced and reloaded."),
    "confd_backend_errors_total": ("backend", "Errors reading or watching a backend."),
    "confd_watch_reconnects_total": ("prefix", "Watches re-established after an error."),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters and gauges of one confd process; safe to update from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[str, float]] = {
            name: defaultdict(float) for name in _COUNTERS
        }
        self._last_success: dict[str, float] = {}
        self._pending: set[str] = set()  # resources not rendered yet
        self._expected = False
        self._stopping = False
        self._failing: dict[str, str] = {}  # "backend:prefix" -> error
        self.worker_alive = True

    def expect(self, resources: Iterable[str]) -> None:
        """The resources of a (re)load: those never rendered keep `/ready` at 503."""
        with self._lock:
            names = set(resources)
            self._pending = {n for n in names if n not in self._last_success}
            self._expected = True

    def stopping(self) -> None:
        """The daemon is shutting down: not ready any more."""
        self._stopping = True

    @property
    def ready(self) -> bool:
        """True once every resource of the current configuration rendered at least once."""
        with self._lock:
            return self._ready()

    def _ready(self) -> bool:  # the lock held
        return self._expected and not self._pending and not self._stopping

    def not_ready(self) -> list[str]:
        """The resources that have not rendered yet."""
        with self._lock:
            return sorted(self._pending)

    @property
    def healthy(self) -> bool:
        """The render thread runs and no backend is failing."""
        with self._lock:
            return self.worker_alive and not self._failing

    def backend_state(self, backend: str, where: str, error: BaseException | None) -> None:
        """A watch on `where` (`backend:prefix`) failed (`error`) or recovered (None)."""
        with self._lock:
            if error is None:
                self._failing.pop(where, None)
            else:
                self._failing[where] = f"{type(error).__name__}: {error}"

    def problems(self) -> list[str]:
        """Why `/health` fails: a dead render thread, each failing backend watch."""
        with self._lock:
            found = [] if self.worker_alive else ["the render thread has stopped"]
            found += [f"{where}: {error}" for where, error in sorted(self._failing.items())]
        return found

    def _inc(self, name: str, label: str) -> None:
        with self._lock:
            self._counters[name][label] += 1

    def rendered(self, resource: str, reloaded: bool = False) -> None:
        """A render succeeded (and, when `reloaded`, replaced its destination)."""
        with self._lock:
            self._counters["confd_renders_total"][resource] += 1
            if reloaded:
                self._counters["confd_reloads_total"][resource] += 1
            self._last_success[resource] = time.time()
            self._pending.discard(resource)

    def render_failed(self, resource: str) -> None:
        """A render, check command, write or reload failed."""
        self._inc("confd_render_failures_total", resource)

    def backend_error(self, backend: str) -> None:
        """Reading or watching `backend` failed."""
        self._inc("confd_backend_errors_total", backend)

    def watch_reconnected(self, prefix: str) -> None:
        """A watch on `prefix` came back after an error."""
        self._inc("confd_watch_reconnects_total", prefix)

    def value(self, name: str, label: str) -> float:
        """The current value of counter `name` for `label` (0 when never counted)."""
        with self._lock:
            return self._counters[name].get(label, 0.0)

    def exposition(self) -> str:
        """Everything in the Prometheus text format."""
        lines: list[str] = []
        with self._lock:
            for name, (label, help_text) in _COUNTERS.items():
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
                for key, count in sorted(self._counters[name].items()):
                    lines.append(f'{name}{{{label}="{_escape(key)}"}} {count:g}')
            lines += [
                "# HELP confd_last_success_timestamp_seconds Unix time of the last good render.",
                "# TYPE confd_last_success_timestamp_seconds gauge",
            ]
            for key, stamp in sorted(self._last_success.items()):
                lines.append(
                    f'confd_last_success_timestamp_seconds{{resource="{_escape(key)}"}} {stamp:.3f}'
                )
            lines += [
                "# HELP confd_ready 1 once every resource has rendered at least once.",
                "# TYPE confd_ready gauge",
                f"confd_ready {int(self._ready())}",
            ]
        return "\n".join(lines) + "\n"


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[::1]:PORT` or `:PORT` (all interfaces) as (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--metrics-addr: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class MetricsServer:
    """The HTTP endpoint for a `Metrics`; `port` is the bound port (useful with port 0)."""

    def __init__(self, metrics: Metrics, address: str) -> None:
        host, port = parse_address(address)
        handler = type("_Handler", (_Handler,), {"metrics": metrics})
        server_class = _Server6 if ":" in host else ThreadingHTTPServer
        try:
            self._server = server_class((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"--metrics-addr {address}: cannot listen ({exc})") from exc
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="metrics-http", daemon=True
        )

    def start(self) -> MetricsServer:
        """Serve in a background thread."""
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", self._server.server_address[0], self.port)
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    metrics: Metrics

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, self.metrics.exposition(), "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/health":
            problems = self.metrics.problems()
            body = "".join(f"{p}\n" for p in problems)
            self._send(503 if problems else 200, f"unhealthy\n{body}" if problems else "ok\n")
        elif path == "/ready":
            if self.metrics.ready:
                self._send(200, "ready\n")
            else:
                pending = "".join(f"not rendered yet: {n}\n" for n in self.metrics.not_ready())
                self._send(503, "not ready\n" + pending)
        else:
            self._send(404, "not found\n")

    def _send(self, code: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("metrics: " + format, *args)
