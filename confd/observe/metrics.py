"""Prometheus metrics and health endpoints (`--metrics-addr HOST:PORT`), off by default.

Serves `/metrics` (text exposition format 0.0.4), `/health` (the daemon loop is alive) and
`/ready` (the first full pass is done) from a small http.server thread.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import defaultdict
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
        self.ready = False
        self.healthy = True

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
                "# HELP confd_ready 1 once the first full pass is done.",
                "# TYPE confd_ready gauge",
                f"confd_ready {int(self.ready)}",
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
            ok = self.metrics.healthy
            self._send(200 if ok else 503, "ok\n" if ok else "unhealthy\n")
        elif path == "/ready":
            ok = self.metrics.ready
            self._send(200 if ok else 503, "ready\n" if ok else "not ready\n")
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
