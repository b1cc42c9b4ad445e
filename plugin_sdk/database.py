"""The `Database` contract every backend implements, built-in or plugin.

Backends import only this module (and their own client library), never the
daemon: the same class can be served in process or over the plugin protocol.
"""

from __future__ import annotations

import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

if TYPE_CHECKING:
    import logging

__all__ = [
    "IDLE_WAIT",
    "STOP_POLL",
    "Change",
    "Database",
    "DatabaseError",
    "Setting",
    "StopSignal",
    "WatchUnsupported",
    "backend_logger",
    "changed_values",
    "parse_settings",
    "idle_wait",
    "select_prefix",
    "when_stopped",
]


# What `watch_prefix` yields per change: the changed keys, a mapping of changed key to its new
# value (None: deleted) when the backend's events carry values, or None ("something changed").
Change = Collection[str] | Mapping[str, str | None] | None


class DatabaseError(Exception):
    """A backend failed: bad settings, unreachable server, refused request.

    Messages are written for the person running confd and never contain key
    values or secrets.
    """


class WatchUnsupported(DatabaseError):
    """Raised by `watch_prefix` of a backend that can only be polled."""


class StopSignal(threading.Event):
    """The `stop` a watch is given, which can also wake a backend blocked on its own queue:
    `when_stopped(stop, callback)` runs `callback` as it is set. A watch then waits for news
    without waking every fraction of a second to look at the flag (20 idle watches polling
    five times a second cost the daemon about 4 ms of CPU per second)."""

    def __init__(self) -> None:
        super().__init__()
        self._guard = threading.Lock()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._count = 0

    def set(self) -> None:
        super().set()
        with self._guard:
            callbacks, self._callbacks = list(self._callbacks.values()), {}
        for callback in callbacks:
            callback()

    def _add(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        with self._guard:
            if self.is_set():
                return None
            self._count += 1
            token = self._count
            self._callbacks[token] = callback

        def forget() -> None:
            with self._guard:
                self._callbacks.pop(token, None)

        return forget


STOP_POLL = 0.2  # s between looks at a plain Event stop: a watch must return within a second
IDLE_WAIT = 5.0  # s a watch woken by its StopSignal may wait for news between looks anyway


def idle_wait(stop: threading.Event) -> float:
    """How long a watch may wait for news before it looks at `stop` again: long for a
    `StopSignal` (whose `when_stopped` wakes the wait), short for a plain Event."""
    return IDLE_WAIT if isinstance(stop, StopSignal) else STOP_POLL


def when_stopped(stop: threading.Event, callback: Callable[[], None]) -> Callable[[], None] | None:
    """Have `callback` run when `stop` is set (at once if it is); returns what undoes that, or
    None when `stop` is a plain `threading.Event`, which the backend must then poll."""
    if not isinstance(stop, StopSignal):
        return None
    forget = stop._add(callback)
    if forget is None:
        callback()
        return lambda: None
    return forget


class Setting(NamedTuple):
    """One setting a backend accepts: shown by `confd backends`, checked by `configure`."""

    name: str
    type: type = str  # str, int, float, bool or list (comma-separated)
    default: Any = None
    help: str = ""
    secret: bool = False  # never logged or shown
    required: bool = False


_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off", ""}


def _convert(backend: str, setting: Setting, raw: str) -> Any:
    kind = setting.type
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(raw)
        if kind is list:
            return [part.strip() for part in raw.split(",") if part.strip()]
        if kind is int:
            return int(raw.strip())
        if kind is float:
            return float(raw.strip())
        return raw
    except ValueError:
        shown = "<hidden>" if setting.secret else repr(raw)
        raise DatabaseError(
            f"backend {backend!r}: setting {setting.name!r} must be {kind.__name__}, got {shown}"
        ) from None


def parse_settings(
    backend: str, declared: Sequence[Setting], config: Mapping[str, str]
) -> dict[str, Any]:
    """Validate `config` against `declared` settings and return typed values with defaults.

    Unknown names and badly typed values raise `DatabaseError` naming the backend and setting.
    """
    by_name = {s.name: s for s in declared}
    unknown = sorted(set(config) - set(by_name))
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise DatabaseError(
            f"backend {backend!r} has no setting {', '.join(map(repr, unknown))}"
            f" (settings: {known})"
        )
    values: dict[str, Any] = {}
    for setting in declared:
        if setting.name in config:
            values[setting.name] = _convert(backend, setting, config[setting.name])
        elif setting.required:
            raise DatabaseError(f"backend {backend!r}: setting {setting.name!r} is required")
        else:
            values[setting.name] = setting.default
    return values


def backend_logger(name: str) -> logging.LoggerAdapter:  # type: ignore[type-arg]
    """The logger of backend `name`: `confd.backends.NAME`, so its lines take confd's log
    format in process and reach the host as hclog JSON when served as a plugin; every
    message names the backend. (`logging` is imported here, by the backends that log, not
    by every start: the env backend's never does.)"""
    import logging

    return _backend_log()(logging.getLogger(f"confd.backends.{name}"), {"backend": name})


@functools.cache
def _backend_log() -> type[logging.LoggerAdapter]:  # type: ignore[type-arg]
    """The adapter class of `backend_logger`, made once the logging package is imported."""
    import logging

    class BackendLog(logging.LoggerAdapter):  # type: ignore[type-arg]
        """Prefixes each message with `backend 'NAME': `, as the backend's errors are."""

        def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
            text = str(msg)
            if not text.startswith(("backend ", "plugin ")):
                msg = f"backend {self.extra['backend']!r}: {text}"  # type: ignore[index]
            return msg, kwargs

    return BackendLog


def select_prefix(key: str, requested: str) -> bool:
    """True when `key` is `requested` or lies below it (`/app` holds `/app/x`, not `/apple`)."""
    if requested in ("", "/"):
        return True
    base = requested.rstrip("/")
    return key == base or key.startswith(base + "/")


_V = TypeVar("_V")


def changed_values(before: Mapping[str, _V], after: Mapping[str, _V]) -> dict[str, _V | None]:
    """Each key whose value differs between two snapshots, with its value in `after` (None:
    gone); for a backend that finds its changes by comparing what it read."""
    return {
        k: after.get(k) for k in before.keys() | after.keys() if before.get(k) != after.get(k)
    }


class LastReads:
    """What each key held at the last `get_values`, for a watch to start from (the contract of
    `Database.watch_prefix`: a change made since confd's last read must be reported).

    `remember(keys, values)` in `get_values` (or `update` with each key's values already
    apart); when a watch starts, `held(keys)` is what those keys held then, and
    `changed_since(keys, current)` the keys whose values in `current` differ from it. Both
    are None when one of `keys` was never read (the watch starts from the store as it is).
    Safe across threads.
    """

    def __init__(self) -> None:
        self._reads: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def remember(self, keys: Iterable[str], values: Mapping[str, str]) -> None:
        self.update({key: {k: v for k, v in values.items() if select_prefix(k, key)}
                     for key in keys})

    def update(self, reads: Mapping[str, dict[str, str]]) -> None:
        with self._lock:
            self._reads.update(reads)

    def held(self, keys: Sequence[str]) -> dict[str, str] | None:
        with self._lock:
            reads = [self._reads.get(key) for key in keys]
        if not keys or any(read is None for read in reads):
            return None
        return {k: v for read in reads if read for k, v in read.items()}

    def changed_since(self, keys: Sequence[str],
                      current: Mapping[str, str]) -> list[str] | None:
        before = self.held(keys)
        if before is None:
            return None
        now = {k: v for k, v in current.items() if any(select_prefix(k, r) for r in keys)}
        return sorted(changed_values(before, now))


def _named(database: Database, exc: DatabaseError) -> DatabaseError:
    """`exc` with `backend 'NAME': ` in front, unless it names a backend or plugin already."""
    message = str(exc)
    if database.name and not message.startswith(("backend ", "plugin ")):
        exc.args = (f"backend {database.name!r}: {message}", *exc.args[1:])
    return exc


def _naming(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Database, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except DatabaseError as exc:
            raise _named(self, exc) from exc.__cause__

    return call


def _naming_watch(method: Callable[..., Iterator[Change]]) -> Callable[..., Iterator[Change]]:
    @functools.wraps(method)
    def watch(self: Database, *args: Any, **kwargs: Any) -> Iterator[Change]:
        try:
            yield from method(self, *args, **kwargs)
        except DatabaseError as exc:
            raise _named(self, exc) from exc.__cause__

    return watch


class Database(ABC):
    """A key/value store confd reads from.

    Keys are absolute, `/`-separated paths (`/app/db/host`); values are strings.
    Subclasses set `name`, declare `settings`, and set `can_watch` when
    `watch_prefix` is implemented natively. A `DatabaseError` leaving `configure`,
    `get_values` or `watch_prefix` is named after the backend (`backend 'etcd': ...`) here,
    so a backend's messages need not spell its name.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    settings: ClassVar[tuple[Setting, ...]] = ()
    can_watch: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr in ("configure", "get_values"):
            if attr in cls.__dict__:
                setattr(cls, attr, _naming(cls.__dict__[attr]))
        if "watch_prefix" in cls.__dict__:
            cls.watch_prefix = _naming_watch(cls.__dict__["watch_prefix"])  # type: ignore[method-assign]

    def configure(self, config: Mapping[str, str]) -> None:
        """Validate and apply settings; raise `DatabaseError` for unknown or bad ones.

        The default stores typed values in `self.options`.
        """
        self.options: dict[str, Any] = parse_settings(self.name, self.settings, config)

    @abstractmethod
    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        """Every key equal to, or below, each requested key, with its value."""

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[Change]:
        """Block, and yield once per change under `prefix`.

        The daemon reads its baseline (`get_values` of `keys`) just before it calls this, and
        renders from that baseline until told of a change: a change made after that read must
        be reported, even one made before the watch was set up (the built-in backends start
        from the revision, index or values of their last read of these keys).

        Each item is the collection of changed keys when the backend knows them, else
        None ("something under the prefix changed"). A backend whose events carry the new
        values may yield a mapping of changed key to value (None: deleted): the daemon then
        compares them with what it rendered without reading the store. The iterator must return
        soon (within about a second) after `stop` is set: the daemon's is a `StopSignal`, whose
        `when_stopped` wakes a blocked wait; another caller's may be a plain Event to poll.
        Backends that can only be polled raise `WatchUnsupported`, and the daemon polls them
        instead.
        """
        raise WatchUnsupported(f"backend {self.name!r} cannot watch; it is polled instead")
        yield None  # pragma: no cover - makes this a generator

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections; also unblocks running watches."""
