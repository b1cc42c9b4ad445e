"""Prometheus metrics and health endpoints (`--metrics-addr HOST:PORT`), off by default.

Serves `/metrics` (text exposition format 0.0.4), `/health` (503 while the render thread is
dead or a backend is failing, naming them) and `/ready` (503 until every resource has rendered
once, naming those that have not) from a small http.server thread. Imported only when the
endpoint is on: http.server and what it imports cost ~30 ms of start-up.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from confd.errors import ConfigError
from confd.log import get_logger
from confd.observe.metrics import Metrics

log = get_logger(__name__)


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
