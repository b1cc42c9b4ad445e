"""go-plugin's GRPCController (Shutdown) and GRPCBroker services on the plugin side."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from plugin_sdk.proto.confd_plugin import (
    grpc_broker_pb2_grpc,
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
)
from plugin_sdk.wakeup import Wakeup


class ControllerService(grpc_controller_pb2_grpc.GRPCControllerServicer):
    """`Shutdown` sets `stopping`; the serving loop then stops the server and exits."""

    def __init__(self, stopping: Wakeup) -> None:
        self._stopping = stopping

    def Shutdown(self, request: object, context: grpc.ServicerContext) -> object:
        self._stopping.set()
        return grpc_controller_pb2.Empty()


class BrokerService(grpc_broker_pb2_grpc.GRPCBrokerServicer):
    """Accepts the broker stream Go hosts open on connect; offers no brokered connections."""

    def StartStream(self, request_iterator: Iterator[object], context: grpc.ServicerContext):
        for _ in request_iterator:
            pass
        return
        yield  # pragma: no cover - makes this a generator
