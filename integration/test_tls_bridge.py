"""The TLS bridge relays a connection to a TLS server, and closing it with that connection open
ends quietly (no asyncio traceback on stderr at exit)."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from pathlib import Path

import pytest

from integration.certs import write_tls_files
from plugin_sdk.tls_bridge import TlsBridge


def test_close_with_a_connection_open_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = write_tls_files(tmp_path, "localhost")
    listener = socket.create_server(("127.0.0.1", 0))
    server_context = files.server_context()

    def echo_once() -> None:
        conn, _ = listener.accept()
        with server_context.wrap_socket(conn, server_side=True) as tls:
            while data := tls.recv(100):
                tls.sendall(data)

    threading.Thread(target=echo_once, daemon=True).start()
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    bridge = TlsBridge(listener.getsockname(), connect_tls=client_context,
                       server_hostname="localhost")  # fmt: skip
    path = bridge.listen_unix(str(tmp_path / "bridge.sock"))
    with caplog.at_level(logging.DEBUG), socket.socket(socket.AF_UNIX) as plain:
        plain.settimeout(5)
        plain.connect(path)
        plain.sendall(b"ping")
        assert plain.recv(100) == b"ping"
        bridge.close()  # the relayed connection is still open
    listener.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
