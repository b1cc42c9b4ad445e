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
from plugin_sdk.transport import listen
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

    listening = listen(server)
    server.start()
    fields = ["1", str(version), listening.network, listening.address, "grpc"]
    if listening.cert_field:
        fields.append(listening.cert_field)
    sys.stdout.write("|".join(fields) + "\n")
    sys.stdout.flush()
    sys.stdout = capture.stream(STDOUT)  # type: ignore[assignment]
    sys.stderr = capture.stream(STDERR)  # type: ignore[assignment]
    log.debug(
        "plugin serving", extra={"network": listening.network, "address": listening.address}
    )

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
    listening.close()
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
