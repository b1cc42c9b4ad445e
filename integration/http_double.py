"""What the HTTP doubles of this folder (Consul, Vault) share: serving on 127.0.0.1, on the same
port across a restart, and stopping as a dying process would, open connections cut too.

A double subclasses `HttpDouble` and sets `handler` to its `DoubleHandler` subclass; the
handler reaches the double as `self.store`.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = ["DoubleHandler", "HttpDouble"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up (a stopped watch, a killed confd), and TLS handshakes that
        fail, are normal here."""
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class DoubleHandler(BaseHTTPRequestHandler):
    """A request handler that keeps its double's list of open connections, and is quiet."""

    store: Any  # the double serving it
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms ACK wait

    def setup(self) -> None:
        super().setup()
        with self.store._connections_lock:
            self.store._connections.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.store._connections_lock:
            self.store._connections.discard(self.connection)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass  # quiet: the tests read their own output


class HttpDouble:
    """A threaded HTTP server for one double; `server_context()` gives TLS when not None."""

    handler: type[DoubleHandler] = DoubleHandler

    def __init__(self) -> None:
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def server_context(self) -> ssl.SSLContext | None:
        """The TLS context to serve with (None: plain HTTP)."""
        return None

    def start(self) -> None:
        handler = type("Handler", (self.handler,), {"store": self})
        server = _Server(("127.0.0.1", self.port), handler)
        context = self.server_context()
        if context is not None:  # handshake on accept; a failed one drops the client
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def _stopping(self) -> None:
        """Called first by `stop`: wake requests the double holds (blocking queries)."""

    def stop(self) -> None:
        """Close the port and cut every open connection off without an answer."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping()
        with self._connections_lock:
            connections, self._connections = self._connections, set()
        for conn in connections:  # kept-alive connections die with the "process" too
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.shutdown()
        server.server_close()
        if self._thread:
            self._thread.join(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
