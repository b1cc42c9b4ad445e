"""`PluginDatabase`: a `Database` answered by a plugin over gRPC, restarted when it dies.

It behaves like an in-process backend: `get_values` retries once on a fresh process after a
crash, `watch_prefix` resumes on the new process (and yields once, since changes may have been
missed while it was down), `close` does Shutdown / 2 s / kill. Each start asks the plugin to
`Describe` itself, and settings it does not accept are refused before `Configure` with its own
list; an older plugin answers UNIMPLEMENTED and its `Configure` judges the settings alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence

import grpc

from confd.backends.plugin.describe import request_description
from confd.backends.plugin.launch import LaunchOptions
from confd.backends.plugin.process import PluginProcess
from confd.errors import PluginError
from confd.log import get_logger
from plugin_sdk.database import Database, DatabaseError, WatchUnsupported, when_stopped
from plugin_sdk.description import Description, check_settings
from plugin_sdk.proto.confd_plugin import database_pb2, database_pb2_grpc

log = get_logger("confd.backends.plugin")

_BACKOFF_START = 0.1
_BACKOFF_MAX = 5.0
_CALL_TIMEOUT = 60.0
_RESTARTS_PER_CALL = 4


class PluginDatabaseError(PluginError, DatabaseError):
    """A plugin's database refused a request, or the plugin could not be (re)started."""


class _Dead(Exception):
    """The plugin process went away under a call."""


class PluginDatabase(Database):
    """A database served by the plugin `options` describe (name, command, AutoMTLS, ...)."""

    can_watch = True

    def __init__(self, options: LaunchOptions) -> None:
        self.options = options
        self.name = options.name  # type: ignore[misc]  # instance name: the plugin's
        self.config: dict[str, str] = {}
        # What the plugin said of itself at its last start; None: it has no Describe.
        self.plugin_description: Description | None = None
        self.restarts = 0
        self._lock = threading.Lock()
        self._process: PluginProcess | None = None
        self._stub: database_pb2_grpc.DatabaseStub | None = None
        self._generation = 0
        self._failures = 0
        self._closed = threading.Event()
        self._calls: set[grpc.Future] = set()

    # -- lifecycle -------------------------------------------------------------------------

    def configure(self, config: Mapping[str, str]) -> None:
        """Start the plugin if needed and pass it `config`; its refusal is a clear error."""
        self.config = {str(k): str(v) for k, v in config.items()}
        with self._lock:
            if self._process is None:
                self._launch()
            else:
                self._check_settings()
                self._configure(self._stub)

    def _launch(self) -> None:
        """Start a process and configure it; caller holds the lock."""
        process = PluginProcess(self.options)
        process.start()
        stub = database_pb2_grpc.DatabaseStub(process.channel)
        try:
            self.plugin_description = self._describe(process)
            self._check_settings()
            self._configure(stub)
        except BaseException:
            process.stop()
            raise
        self._process, self._stub = process, stub
        self._generation += 1
        self._failures = 0

    def _describe(self, process: PluginProcess) -> Description | None:
        """The plugin's own description, or None from a plugin older than `Describe`."""
        try:
            description = request_description(process.channel)
        except grpc.RpcError as exc:
            raise self._error("Describe", exc) from None
        if description is None:
            log.debug("plugin %s has no Describe (an older plugin); its Configure alone "
                      "checks the settings", self.name)
            return None
        self.can_watch = description.can_watch  # type: ignore[misc]  # this plugin's
        return description

    def _check_settings(self) -> None:
        """Refuse settings the plugin does not accept, before `Configure` sees any of them."""
        if self.plugin_description is None:
            return
        problems = check_settings(self.name, self.plugin_description, self.config)
        if problems:
            raise PluginDatabaseError(f"plugin {self.name!r}: {'; '.join(problems)}")

    def _configure(self, stub: database_pb2_grpc.DatabaseStub | None) -> None:
        assert stub is not None
        try:
            stub.Configure(database_pb2.ConfigureRequest(config=self.config), timeout=30.0)
        except grpc.RpcError as exc:
            raise self._error("Configure", exc) from None

    def _current(self) -> tuple[int, database_pb2_grpc.DatabaseStub]:
        with self._lock:
            if self._closed.is_set():
                raise PluginDatabaseError(f"plugin {self.name!r} is closed")
            if self._process is None or self._stub is None:
                raise PluginDatabaseError(f"plugin {self.name!r} was never configured")
            return self._generation, self._stub

    def _restart(self, generation: int) -> None:
        """Replace the process of `generation` (once, however many callers saw it die)."""
        with self._lock:
            if self._closed.is_set():
                raise PluginDatabaseError(f"plugin {self.name!r} is closed")
            if generation != self._generation and self._process and self._process.alive():
                return
            delay = min(_BACKOFF_MAX, _BACKOFF_START * (2**self._failures))
            old = self._process
            tail = old.stderr_tail()[-3:] if old else []
            log.warning(
                "plugin %s exited; restarting in %.1f s%s", self.name, delay,
                f" (last stderr: {' | '.join(tail)})" if tail else "",
            )
            if old is not None:
                old.stop(graceful=False)
                self._process = self._stub = None
            if self._closed.wait(delay):
                raise PluginDatabaseError(f"plugin {self.name!r} is closed")
            try:
                self._launch()
            except PluginError:
                self._failures += 1
                raise
            self.restarts += 1
            log.info("plugin %s restarted (pid %s)", self.name, self._process.pid)

    def _is_dead(self, exc: grpc.RpcError) -> bool:
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            return True
        process = self._process
        if process is None:
            return True
        time.sleep(0.05)
        return not process.alive()

    def _error(self, method: str, exc: grpc.RpcError) -> PluginDatabaseError:
        code = exc.code()
        if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
            return PluginDatabaseError(f"plugin {self.name!r}: {exc.details()}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return PluginDatabaseError(f"plugin {self.name!r}: {method} timed out")
        return PluginDatabaseError(
            f"plugin {self.name!r}: {method} failed: {code.name}: {exc.details()}"
        )

    def _restart_for_call(self, generation: int, method: str) -> None:
        for attempt in range(_RESTARTS_PER_CALL):
            try:
                self._restart(generation)
                return
            except PluginError as exc:
                if attempt == _RESTARTS_PER_CALL - 1 or self._closed.is_set():
                    raise PluginDatabaseError(
                        f"plugin {self.name!r} died during {method} and could not be "
                        f"restarted: {exc}"
                    ) from None
                generation = self._generation

    # -- Database --------------------------------------------------------------------------

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        request = database_pb2.GetValuesRequest(keys=list(keys), lists=True)
        for attempt in range(2):
            generation, stub = self._current() if self._process else (self._generation, None)
            if stub is None:
                self._restart_for_call(generation, "GetValues")
                continue
            try:
                reply = stub.GetValues(request, timeout=_CALL_TIMEOUT)
            except grpc.RpcError as exc:
                if attempt == 0 and self._is_dead(exc) and not self._closed.is_set():
                    self._restart_for_call(generation, "GetValues")
                    continue
                raise self._error("GetValues", exc) from None
            return self._values_of(reply)
        raise PluginDatabaseError(f"plugin {self.name!r}: GetValues failed after a restart")

    def _values_of(self, reply: database_pb2.GetValuesResponse) -> dict[str, str]:
        """The reply's values: the parallel lists a current plugin sends, else (older plugins,
        which ignore `lists`) the map."""
        if not reply.list_keys:
            return dict(reply.values)
        if len(reply.list_keys) != len(reply.list_values):
            raise PluginDatabaseError(
                f"plugin {self.name!r}: GetValues sent {len(reply.list_keys)} keys but "
                f"{len(reply.list_values)} values"
            )
        return dict(zip(reply.list_keys, reply.list_values, strict=True))

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[Collection[str] | None]:
        request = database_pb2.WatchPrefixRequest(prefix=prefix, keys=list(keys))
        resumed = False
        while not stop.is_set() and not self._closed.is_set():
            if self._process is None:
                generation = self._generation
            else:
                generation, stub = self._current()
                if resumed:
                    yield None  # changes may have happened while the plugin was down
                    resumed = False
                try:
                    yield from self._stream(stub, request, stop)
                    return
                except _Dead:
                    pass
            try:
                self._restart(generation)
                resumed = True
            except PluginError as exc:
                log.warning("plugin %s: restart failed, retrying: %s", self.name, exc)

    def _stream(self, stub, request, stop: threading.Event) -> Iterator[Collection[str] | None]:
        call = stub.WatchPrefix(request)
        done = threading.Event()
        # close() ends the stream by stopping the plugin; a stop cancels it, woken by the
        # daemon's StopSignal, or seen by a thread looking at a plain Event
        forget = when_stopped(stop, call.cancel)
        if forget is None:
            threading.Thread(
                target=_cancel_when, args=(call, stop, self._closed, done), daemon=True
            ).start()
        try:
            for reply in call:
                yield list(reply.keys) or None
        except grpc.RpcError as exc:
            if stop.is_set() or self._closed.is_set():
                return
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise WatchUnsupported(
                    f"plugin {self.name!r} cannot watch; it is polled instead ({exc.details()})"
                ) from None
            if self._is_dead(exc):
                raise _Dead() from None
            raise self._error("WatchPrefix", exc) from None
        finally:
            done.set()
            if forget is not None:
                forget()
            call.cancel()
        if not (stop.is_set() or self._closed.is_set()):
            raise _Dead()  # the stream ended without being asked to: the plugin went away

    def close(self) -> None:
        """Shutdown the plugin (2 s grace, then kill); running watches return."""
        self._closed.set()
        with self._lock:
            process, self._process, self._stub = self._process, None, None
        if process is not None:
            process.stop()

    @property
    def process(self) -> PluginProcess | None:
        """The running plugin process (for `confd plugins describe` and tests)."""
        return self._process


def _cancel_when(call, stop: threading.Event, closed: threading.Event, done: threading.Event):
    while not done.is_set():
        if stop.wait(0.2) or closed.is_set():
            call.cancel()
            return
