"""The `proto.Database` gRPC service, answering from a `Database`.

Errors keep their meaning across the wire: bad settings → INVALID_ARGUMENT, a failing store
→ FAILED_PRECONDITION, a store that cannot watch → UNIMPLEMENTED, anything else → INTERNAL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import grpc

from plugin_sdk.database import Database, DatabaseError, WatchUnsupported
from plugin_sdk.proto.confd_plugin import database_pb2, database_pb2_grpc

log = logging.getLogger("plugin_sdk")


class DatabaseService(database_pb2_grpc.DatabaseServicer):
    """Serves one `Database`; `stop_watches()` ends every running WatchPrefix stream."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._lock = threading.Lock()
        self._watches: set[threading.Event] = set()

    def stop_watches(self) -> None:
        with self._lock:
            for stop in self._watches:
                stop.set()

    def Describe(self, request, context: grpc.ServicerContext):
        """The database's name, description, settings and `can_watch`, from its class."""
        from plugin_sdk.description import describe, to_message

        return to_message(describe(self._database))

    def Configure(self, request, context: grpc.ServicerContext):
        try:
            self._database.configure(dict(request.config))
        except DatabaseError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception as exc:  # noqa: BLE001 - reported to the host, not raised here
            _internal(context, "Configure", exc)
        return database_pb2.ConfigureResponse()

    def GetValues(self, request, context: grpc.ServicerContext):
        try:
            values = self._database.get_values(list(request.keys))
        except DatabaseError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except Exception as exc:  # noqa: BLE001
            _internal(context, "GetValues", exc)
        reply = database_pb2.GetValuesResponse()
        if request.lists:  # the host reads parallel lists: a third of the protobuf work of a map
            reply.list_keys.extend(values.keys())
            reply.list_values.extend(values.values())
        else:  # an older host reads only the map
            reply.values.update(values)  # a third faster than values= for large maps (upb)
        return reply

    def WatchPrefix(self, request, context: grpc.ServicerContext) -> Iterator[object]:
        stop = threading.Event()
        context.add_callback(stop.set)
        with self._lock:
            self._watches.add(stop)
        try:
            for changed in self._database.watch_prefix(request.prefix, list(request.keys), stop):
                if stop.is_set():
                    break
                yield database_pb2.WatchPrefixResponse(keys=sorted(changed or ()))
        except WatchUnsupported as exc:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, str(exc))
        except DatabaseError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except Exception as exc:  # noqa: BLE001
            _internal(context, "WatchPrefix", exc)
        finally:
            with self._lock:
                self._watches.discard(stop)


def _internal(context: grpc.ServicerContext, method: str, exc: Exception) -> None:
    log.error("%s failed: %s: %s", method, type(exc).__name__, exc)
    context.abort(grpc.StatusCode.INTERNAL, f"{method}: {type(exc).__name__}: {exc}")
