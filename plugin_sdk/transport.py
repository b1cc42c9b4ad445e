"""Where and how a plugin listens: a unix socket in PLUGIN_UNIX_SOCKET_DIR or 127.0.0.1 in
PLUGIN_MIN_PORT..PLUGIN_MAX_PORT, in plaintext (no PLUGIN_CLIENT_CERT) or under AutoMTLS.

Under AutoMTLS the session is TLS requiring exactly the host's certificate, carried by grpcio
when the host's certificate is one BoringSSL verifies (confd's P-384), else by Python's `ssl`
through `tls_bridge` in front of grpcio on a socket in a private 0700 directory (a go-plugin
host's P-521). When TLS cannot be set up the plugin exits 1 saying why: never plaintext.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

import grpc

from plugin_sdk import protocol


@dataclass
class Listening:
    """What the handshake line announces, and how to clean up after serving."""

    network: str  # "unix" or "tcp"
    address: str
    cert_field: str = ""  # handshake field 6: own certificate, base64 DER, or "" (plaintext)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                cleanup()


def listen(server: grpc.Server) -> Listening:
    """Bind `server` as the host asked (environment) and return what to announce."""
    client_pem = os.environ.get(protocol.ENV_CLIENT_CERT, "")
    if not client_pem:
        return _bind(lambda target: server.add_insecure_port(target))
    from plugin_sdk.mtls import encode_der, grpc_can_verify, make_certificate, pem_to_der

    try:
        client_der = pem_to_der(client_pem)
    except ValueError:
        fail(f"{protocol.ENV_CLIENT_CERT} holds no PEM certificate; cannot set up AutoMTLS")
    own = make_certificate()
    if grpc_can_verify(client_der):
        credentials = grpc.ssl_server_credentials(
            [(own.key_pem, own.cert_pem)],
            root_certificates=client_pem.encode(),
            require_client_auth=True,
        )
        listening = _bind(lambda target: server.add_secure_port(target, credentials))
    else:
        listening = _bridged(server, own, client_der)
    listening.cert_field = encode_der(own.cert_der)
    return listening


def _bridged(server: grpc.Server, own, client_der: bytes) -> Listening:
    """grpcio in plaintext on a private socket; the host reaches it only through OpenSSL."""
    from plugin_sdk.mtls import server_context
    from plugin_sdk.tls_bridge import BridgeError, TlsBridge

    private = tempfile.mkdtemp(prefix="plugin-grpc-")  # 0700: only this user gets in
    inner = os.path.join(private, "grpc.sock")
    if not server.add_insecure_port(f"unix:{inner}"):
        fail(f"cannot listen on unix socket {inner}")
    try:
        context = server_context(own, client_der, private)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        fail(f"cannot set up AutoMTLS with the host's certificate: {exc}")
    bridge = TlsBridge(inner, accept_tls=context, log=logging.getLogger("plugin_sdk"))

    def bind(target: str) -> int:
        if target.startswith("unix:"):
            bridge.listen_unix(target[len("unix:"):])
            return 1
        host, _, port = target.rpartition(":")
        try:
            bridge.listen_tcp(host, [int(port)])
        except BridgeError:
            return 0
        return 1

    listening = _bind(bind)
    listening.cleanups += [bridge.close, lambda: shutil.rmtree(private, ignore_errors=True)]
    return listening


def _bind(bind: Callable[[str], int]) -> Listening:
    """A unix socket in PLUGIN_UNIX_SOCKET_DIR, else TCP in PLUGIN_MIN/MAX_PORT, else a unix
    socket in a fresh temporary directory; `bind(target)` returns 0 when it cannot."""
    socket_dir = os.environ.get(protocol.ENV_UNIX_SOCKET_DIR, "")
    low = os.environ.get(protocol.ENV_MIN_PORT, "")
    high = os.environ.get(protocol.ENV_MAX_PORT, "")
    if socket_dir or not (low and high):
        made_dir = "" if socket_dir else tempfile.mkdtemp(prefix="plugin")
        path = tempfile.mktemp(prefix="plugin", dir=socket_dir or made_dir)  # noqa: S306
        if not bind(f"unix:{path}"):
            fail(f"cannot listen on unix socket {path}")
        listening = Listening("unix", path)
        listening.cleanups.append(lambda: os.unlink(path))
        if made_dir:
            listening.cleanups.append(lambda: os.rmdir(made_dir))
        return listening
    for port in range(int(low), int(high) + 1):
        try:
            if bind(f"127.0.0.1:{port}"):
                return Listening("tcp", f"127.0.0.1:{port}")
        except RuntimeError:
            continue
    fail(f"no free port in {low}..{high}")


def fail(message: str) -> NoReturn:
    """Tell the host (stderr, which it relays) why the plugin cannot serve, and exit 1."""
    sys.stderr.write(f"[ERROR] plugin: {message}\n")
    sys.stderr.flush()
    sys.exit(1)
