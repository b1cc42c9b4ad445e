"""`serve(database)`: run a `Database` as a go-plugin compatible gRPC plugin.

Checks the magic cookie, negotiates the protocol version, listens on a unix socket (or
127.0.0.1 in the allowed port range), serves health, controller, stdio, broker and
`proto.Database`, prints the handshake line, and exits cleanly on Shutdown or SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterable
from concurrent import futures
from typing import NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from plugin_sdk import protocol
from plugin_sdk.controller import BrokerService, ControllerService
from plugin_sdk.database import Database
from plugin_sdk.hclog import setup_logging
from plugin_sdk.proto.confd_plugin import (
    database_pb2_grpc,
    grpc_broker_pb2_grpc,
    grpc_controller_pb2_grpc,
    grpc_stdio_pb2_grpc,
)
from plugin_sdk.service import DatabaseService
from plugin_sdk.stdio import STDERR, STDOUT, StdioCapture, StdioService
from plugin_sdk.wakeup import Wakeup

log = logging.getLogger("plugin_sdk")

_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]


def serve(
    database: Database, *, versions: Iterable[int] = protocol.APP_PROTOCOL_VERSIONS
) -> NoReturn:
    """Serve `database` to the confd (or any go-plugin) host that started this process.

    Never returns: exits 0 after Shutdown, 1 when run by hand or with no common version.
    """
    if os.environ.get(protocol.MAGIC_COOKIE_KEY) != protocol.MAGIC_COOKIE_VALUE:
        sys.stderr.write(protocol.NOT_A_PROGRAM)
        sys.exit(1)
    version = _negotiate(tuple(versions))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging()

    stopping = Wakeup()  # SIGTERM's handler sets it: a threading.Event could deadlock there
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    stopping.wake_on_signals()
    capture = StdioCapture()
    service = DatabaseService(database)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64), options=_OPTIONS)
    health_service = health.HealthServicer()
    health_service.set(protocol.HEALTH_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_service, server)
    grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(
        ControllerService(stopping), server
    )
    grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(StdioService(capture), server)
    grpc_broker_pb2_grpc.add_GRPCBrokerServicer_to_server(BrokerService(), server)
    database_pb2_grpc.add_DatabaseServicer_to_server(service, server)

    credentials, cert_field = _credentials()
    network, address, cleanup = _listen(server, credentials)
    server.start()
    fields = ["1", str(version), network, address, "grpc"]
    if cert_field:
        fields.append(cert_field)
    sys.stdout.write("|".join(fields) + "\n")
    sys.stdout.flush()
    sys.stdout = capture.stream(STDOUT)  # type: ignore[assignment]
    sys.stderr = capture.stream(STDERR)  # type: ignore[assignment]
    log.debug("plugin serving", extra={"network": network, "address": address})

    parent = os.getppid()
    while not stopping.wait(1.0):
        if os.getppid() != parent:  # the host died without saying goodbye
            break
    log.debug("plugin shutting down")
    service.stop_watches()
    capture.close()  # ends the host's stdio stream, so the grace below waits for real calls only
    server.stop(grace=1.0).wait(2.0)
    with contextlib.suppress(Exception):
        database.close()
    cleanup()
    sys.stdout.flush()
    os._exit(0)


def _negotiate(ours: tuple[int, ...]) -> int:
    raw = os.environ.get(protocol.ENV_PROTOCOL_VERSIONS, "")
    offered = {int(p) for p in raw.split(",") if p.strip().isdigit()}
    common = offered & set(ours) if offered else set(ours)
    if not common:
        sys.stderr.write(
            f"Incompatible API version with plugin. Plugin versions: "
            f"{','.join(map(str, ours))}, Client versions: {raw}\n"
        )
        sys.exit(1)
    return max(common)


def _credentials() -> tuple[grpc.ServerCredentials | None, str]:
    """TLS requiring the host's certificate when PLUGIN_CLIENT_CERT is set (AutoMTLS)."""
    client_pem = os.environ.get(protocol.ENV_CLIENT_CERT, "")
    if not client_pem:
        return None, ""
    from plugin_sdk.mtls import encode_der, make_certificate

    own = make_certificate()
    credentials = grpc.ssl_server_credentials(
        [(own.key_pem, own.cert_pem)],
        root_certificates=client_pem.encode(),
        require_client_auth=True,
    )
    return credentials, encode_der(own.cert_der)


def _listen(server: grpc.Server, credentials: grpc.ServerCredentials | None):
    """Bind a unix socket in PLUGIN_UNIX_SOCKET_DIR, or TCP in PLUGIN_MIN/MAX_PORT."""

    def bind(target: str) -> int:
        if credentials is None:
            return server.add_insecure_port(target)
        return server.add_secure_port(target, credentials)

    socket_dir = os.environ.get(protocol.ENV_UNIX_SOCKET_DIR, "")
    low = os.environ.get(protocol.ENV_MIN_PORT, "")
    high = os.environ.get(protocol.ENV_MAX_PORT, "")
    if socket_dir or not (low and high):
        made_dir = "" if socket_dir else tempfile.mkdtemp(prefix="plugin")
        path = tempfile.mktemp(prefix="plugin", dir=socket_dir or made_dir)  # noqa: S306
        if not bind(f"unix:{path}"):
            _fail(f"cannot listen on unix socket {path}")

        def cleanup() -> None:
            with contextlib.suppress(OSError):
                os.unlink(path)
            if made_dir:
                with contextlib.suppress(OSError):
                    os.rmdir(made_dir)

        return "unix", path, cleanup
    for port in range(int(low), int(high) + 1):
        try:
            if bind(f"127.0.0.1:{port}"):
                return "tcp", f"127.0.0.1:{port}", lambda: None
        except RuntimeError:
            continue
    _fail(f"no free port in {low}..{high}")


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"plugin: {message}\n")
    sys.exit(1)
