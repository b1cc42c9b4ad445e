"""Testing kit for plugin authors (go-plugin's testing.go is the model): run a `Database`
through the real protocol in a test, and a conformance suite to run against a plugin.

`run_plugin(target, settings)` starts the plugin as a subprocess and yields confd's own host
for it (`PluginDatabase`: handshake, AutoMTLS, Describe, the settings check, Configure), so a
test sees exactly what confd sees. `target` is a `Database` subclass (or "module:Class"),
served by `python -m plugin_sdk.testing`, or the plugin's command (an installed
`confd-database-NAME`, or any executable, in any language).

`DatabaseConformance` is a test class to subclass (`class TestMine(DatabaseConformance)`):
set `plugin`, implement `make_store(tmp_path)` returning a `Store` the suite can write to, and
pytest runs every check: prefix semantics (`/app` holds `/app/x`, not `/application`), many
keys, values with newlines and unicode, a watch that yields within a second of a change and
stops within a second, a watch that reports a change made after the last read but before it
started, bad settings refused as `DatabaseError`, no secret in errors or logs.
Each `check_*` function is usable on its own and raises `ConformanceError` saying what is wrong.

This module uses confd's host (`confd.backends.plugin`), the one part of `plugin_sdk` that
does: the kit tests plugins against the host they will meet.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from plugin_sdk.database import Database, DatabaseError, WatchUnsupported, select_prefix

if TYPE_CHECKING:
    from plugin_sdk.description import Description

__all__ = [
    "ConformanceError",
    "DatabaseConformance",
    "Store",
    "check_bad_settings",
    "check_many_keys",
    "check_no_secret_in_errors",
    "check_prefix_semantics",
    "check_values",
    "check_watch",
    "check_watch_from_the_last_read",
    "plugin_command",
    "run_plugin",
]

# The values a store must carry unchanged (override `DatabaseConformance.values` for a store
# that cannot hold some of them, and say why in your test).
VALUES: dict[str, str] = {
    "/values/newlines": "first line\nsecond line\n",
    "/values/crlf": "a\r\nb",
    "/values/unicode": "grüße ✓ 日本語 🚀",
    "/values/empty": "",
    "/values/padded": "  spaces and\ttabs  ",
    "/values/quotes": "it's \"quoted\" \\ back\\slash",
    "/values/template": "{{ .x }} {% if y %} ${z}",
    "/values/long": "x" * 100_000,
}

Target = type[Database] | str | Sequence[str]


class ConformanceError(AssertionError):
    """A plugin does not behave as confd needs; the message says what it did instead."""


class Store(Protocol):
    """The store a plugin reads, as the conformance suite drives it (the author provides it)."""

    @property
    def settings(self) -> Mapping[str, str]:
        """Settings that point the plugin at this store."""
        ...

    def put(self, values: Mapping[str, str]) -> None:
        """Set these keys (absolute paths such as `/app/name`) to these values."""
        ...


# -- running a plugin -------------------------------------------------------------------------


def plugin_command(target: Target) -> list[str]:
    """The command that serves `target`: a class (or "module:Class") through this module's
    `__main__`, else `target` itself (a path, or an argv list)."""
    if isinstance(target, type):
        if "<locals>" in target.__qualname__ or target.__module__ == "__main__":
            raise TypeError(
                f"{target.__qualname__} must be defined at module level of an importable "
                "module, so the plugin process can import it"
            )
        target = f"{target.__module__}:{target.__qualname__}"
    if isinstance(target, str):
        if ":" in target and not os.path.exists(target):
            return [sys.executable, "-m", "plugin_sdk.testing", target]
        return [target]
    return [str(part) for part in target]


def _import_path() -> str:
    """PYTHONPATH for a plugin process: this process's path, so test modules import too."""
    entries = [p or os.getcwd() for p in sys.path]
    return os.pathsep.join(dict.fromkeys(p for p in entries if os.path.isdir(p)))


@contextlib.contextmanager
def run_plugin(
    target: Target,
    settings: Mapping[str, str] | None = None,
    *,
    name: str | None = None,
    auto_mtls: bool = True,
    start_timeout: float = 20.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Database]:
    """Start `target` as a plugin, configure it with `settings`, and yield confd's host for
    it (a `Database`); always stopped at the end. Bad settings raise `DatabaseError`."""
    from confd.backends.plugin.client import PluginDatabase
    from confd.backends.plugin.launch import LaunchOptions

    command = plugin_command(target)
    served = command[1:3] == ["-m", "plugin_sdk.testing"]
    if name is None:
        name = _name_of(_load(command[3]).name if served else "", command)
    # a class is imported by a child of this interpreter: give it this process's path; a
    # command (a console script, a Go binary) runs in its own environment, untouched
    extra = {"PYTHONPATH": _import_path()} if served else {}
    extra.update(env or {})
    database = PluginDatabase(
        LaunchOptions(name, command, auto_mtls=auto_mtls, start_timeout=start_timeout, env=extra)
    )
    try:
        database.configure(dict(settings or {}))
        yield database
    finally:
        database.close()


def _name_of(declared: str, command: Sequence[str]) -> str:
    """The backend name: the class's, else the executable's after `confd-database-`."""
    if declared:
        return declared
    base = Path(command[0]).name
    return base.removeprefix("confd-database-") if base.startswith("confd-database-") else "plugin"


def _load(spec: str) -> type[Database]:
    module_name, _, qualname = spec.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


# -- checks -----------------------------------------------------------------------------------


def _fail(what: str) -> ConformanceError:
    return ConformanceError(what)


def check_prefix_semantics(database: Database, store: Store) -> None:
    """`/app` holds `/app` and every key below it, never `/application` or `/apple`."""
    store.put({
        "/app/name": "demo",
        "/app/db/host": "db1",
        "/application/name": "not below /app",
        "/apple": "not below /app",
        "/ap": "not below /app",
    })
    below = {"/app/name": "demo", "/app/db/host": "db1"}
    cases: list[tuple[list[str], dict[str, str]]] = [
        (["/app"], below),
        (["/app/"], below),
        (["/app/db"], {"/app/db/host": "db1"}),
        (["/app/name"], {"/app/name": "demo"}),
        (["/app/name", "/apple"], {"/app/name": "demo", "/apple": "not below /app"}),
        (["/no/such/key"], {}),
    ]
    for keys, expected in cases:
        got = database.get_values(keys)
        if got != expected:
            outside = sorted(k for k in got if not any(select_prefix(k, r) for r in keys))
            missing = sorted(set(expected) - set(got))
            detail = []
            if outside:
                detail.append(f"keys outside the request: {outside}")
            if missing:
                detail.append(f"missing: {missing}")
            wrong = sorted(k for k in expected if k in got and got[k] != expected[k])
            if wrong:
                detail.append(f"wrong values for: {wrong}")
            raise _fail(
                f"get_values({keys}) returned {sorted(got)}, expected {sorted(expected)} ("
                + "; ".join(detail) + "). A key is below `/app` only when it is `/app` or "
                "starts with `/app/`: use plugin_sdk.select_prefix"
            )


def check_many_keys(database: Database, store: Store, count: int = 2_000) -> None:
    """`count` keys under one prefix come back complete, and by exact key too."""
    values = {f"/many/k{i:05d}": f"value-{i}" for i in range(count)}
    store.put(values)
    got = database.get_values(["/many"])
    if got != values:
        missing = sorted(set(values) - set(got))
        extra = sorted(set(got) - set(values))
        raise _fail(
            f"get_values(['/many']) returned {len(got)} of {count} keys (missing "
            f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {extra[:5]})"
        )
    some = sorted(values)[:: max(1, count // 200)]
    got = database.get_values(some)
    if got != {k: values[k] for k in some}:
        raise _fail(f"get_values of {len(some)} exact keys returned {len(got)} of them")


def check_values(database: Database, store: Store, values: Mapping[str, str] = VALUES) -> None:
    """Values come back byte for byte: newlines, unicode, empty, quotes, template syntax."""
    store.put(values)
    got = database.get_values(sorted(values))
    for key, value in values.items():
        if key not in got:
            raise _fail(f"{key} is missing from get_values (its value: {_show(value)})")
        if got[key] != value:
            raise _fail(f"{key} came back as {_show(got[key])}, expected {_show(value)}")


def _show(value: str) -> str:
    return repr(value) if len(value) <= 60 else f"{value[:40]!r}... ({len(value)} characters)"


class _Follow:
    """A watch followed in a thread: what it yields, raises or when it ends, timed."""

    def __init__(self, database: Database, prefix: str) -> None:
        self.stop = threading.Event()
        self.events: queue.Queue[tuple[str, Any, float]] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, args=(database, prefix), name="conformance-watch", daemon=True
        )
        self._thread.start()

    def _run(self, database: Database, prefix: str) -> None:
        try:
            for item in database.watch_prefix(prefix, [prefix], self.stop):
                self.events.put(("change", item, time.monotonic()))
            self.events.put(("end", None, time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - handed to the checking thread
            self.events.put(("error", exc, time.monotonic()))

    def next(self, timeout: float) -> tuple[str, Any, float] | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def end(self, timeout: float) -> tuple[str, Any, float] | None:
        """Set `stop`; the first non-change event and the seconds it took, or None."""
        stopped = time.monotonic()
        self.stop.set()
        deadline = stopped + timeout
        while (event := self.next(max(0.0, deadline - time.monotonic()))) is not None:
            kind, item, at = event
            if kind != "change":
                self._thread.join(1.0)
                return kind, item, at - stopped
        return None


def check_watch(
    database: Database,
    store: Store,
    description: Description | None = None,
    *,
    within: float = 1.0,
    settle: float = 0.3,
) -> str:
    """A watch yields within `within` s of a change under its prefix (naming that key if it
    names any), and returns within `within` s of `stop`. A database that cannot watch must
    say so with `WatchUnsupported`, and then not claim `can_watch` in `description`.
    Returns "watched" or "polled"."""
    store.put({"/watch/a": "1", "/watch/b": "1"})
    follow = _Follow(database, "/watch")
    try:
        early = follow.next(settle)  # the watch gets going; nothing may happen yet
        if early is not None:
            kind, item, _ = early
            if kind == "error" and isinstance(item, WatchUnsupported):
                if description is not None and description.can_watch:
                    raise _fail(f"can_watch is true but watch_prefix raised WatchUnsupported: "
                                f"{item}")
                return "polled"
            raise _fail(f"the watch {kind}ed before any change: {item!r}")
        changed_at = time.monotonic()
        store.put({"/watch/a": "2"})
        event = follow.next(within + 5)
        if event is None:
            raise _fail(f"no watch event within {within + 5:g} s of a change to /watch/a")
        kind, item, seen_at = event
        if kind != "change":
            raise _fail(f"the watch {kind}ed instead of reporting a change: {item!r}")
        if seen_at - changed_at > within:
            raise _fail(f"the watch reported the change after {seen_at - changed_at:.2f} s "
                        f"(at most {within:g} s)")
        _check_change(item, "/watch/a", "2", "/watch")
    finally:
        ended = follow.end(within + 5)
    if ended is None:
        raise _fail(f"the watch did not return within {within + 5:g} s of stop")
    kind, item, took = ended
    if kind == "error":
        raise _fail(f"the watch failed when stopped: {item!r}")
    if took > within:
        raise _fail(f"the watch returned {took:.2f} s after stop (at most {within:g} s)")
    return "watched"


def check_watch_from_the_last_read(
    database: Database, store: Store, *, within: float = 1.0
) -> None:
    """A change made after `get_values` but before `watch_prefix` starts is reported: confd
    reads a watch's baseline just before it watches, and renders from it until told of a
    change. (A database that cannot watch passes: confd polls it.)"""
    store.put({"/since/a": "1", "/since/b": "1"})
    database.get_values(["/since"])
    store.put({"/since/a": "2"})
    follow = _Follow(database, "/since")
    try:
        event = follow.next(within + 5)
        if event is None:
            raise _fail(f"a change made after get_values and before watch_prefix started was "
                        f"not reported within {within + 5:g} s: start the watch from the "
                        f"last read's revision or values, not from the store as it is now")
        kind, item, _ = event
        if kind == "error" and isinstance(item, WatchUnsupported):
            return
        if kind != "change":
            raise _fail(f"the watch {kind}ed instead of reporting a change: {item!r}")
        _check_change(item, "/since/a", "2", "/since")
    finally:
        follow.end(within + 5)


def _check_change(item: object, key: str, value: str, prefix: str) -> None:
    """`item`, a watch's report of `key` changed to `value`, is well formed and names it."""
    if item is None:
        return
    if isinstance(item, Mapping):
        if item.get(key, value) != value:
            raise _fail(f"the watch reported {key} = {item[key]!r}, it is {value!r}")
        keys: Collection[str] = list(item)
    elif isinstance(item, Collection) and not isinstance(item, str):
        keys = list(item)
    else:
        raise _fail(f"the watch yielded {item!r}: expected None, keys or a key->value mapping")
    if keys and key not in keys:
        raise _fail(f"the watch named {sorted(keys)} for a change of {key}")
    outside = sorted(k for k in keys if not select_prefix(k, prefix))
    if outside:
        raise _fail(f"the watch on {prefix} named keys outside it: {outside}")


def check_bad_settings(
    start: Any, good: Mapping[str, str], bad: Sequence[Mapping[str, str]] = ()
) -> list[str]:
    """`start(settings)` (a context manager, e.g. `run_plugin` bound to the plugin) must raise
    `DatabaseError` for an unknown setting (naming it) and for each of `bad` (each laid over
    `good`). Returns the error messages, for `check_no_secret_in_errors`."""
    messages = []
    unknown = "no_such_setting_" + uuid.uuid4().hex[:6]
    cases = [({**good, unknown: "1"}, unknown), *(({**good, **b}, "") for b in bad)]
    for settings, named in cases:
        try:
            with start(settings):
                pass
        except DatabaseError as exc:
            text = str(exc)
            if named and named not in text:
                raise _fail(f"the error for unknown setting {named!r} does not name it: "
                            f"{text}") from None
            if "Traceback" in text:
                raise _fail(f"the error for settings {sorted(settings)} is a traceback: "
                            f"{text}") from None
            messages.append(text)
        else:
            raise _fail(f"settings {sorted(settings)} were accepted; expected DatabaseError")
    return messages


def check_no_secret_in_errors(
    start: Any,
    good: Mapping[str, str],
    secrets: Collection[str],
    bad: Sequence[Mapping[str, str]] = (),
) -> None:
    """With every secret setting set to a marker, neither the errors for bad settings nor
    anything the plugin logs contains the marker."""
    marker = "conformance-secret-" + uuid.uuid4().hex
    with_secrets = {name: marker for name in secrets}
    logs = _Capture()
    with logs:
        messages = check_bad_settings(
            start, {**good, **with_secrets}, [{**b, **with_secrets} for b in bad]
        )
        try:
            with start({**good, **with_secrets}) as database:
                try:
                    database.get_values(["/app"])
                except DatabaseError as exc:
                    messages.append(str(exc))
        except DatabaseError as exc:
            messages.append(str(exc))
        time.sleep(0.2)  # the plugin's last stderr lines reach the host's relay
    for text in messages:
        if marker in text:
            raise _fail(f"an error shows a secret setting's value: {text}")
    for line in logs.lines:
        if marker in line:
            raise _fail(f"the plugin logged a secret setting's value: {line}")


class _Capture(logging.Handler):
    """Every log line the host relays from plugins while active."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._logger = logging.getLogger("confd.backends.plugin")
        self._level = self._logger.level

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __enter__(self) -> _Capture:
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)


# -- the suite --------------------------------------------------------------------------------


class DatabaseConformance:
    """Conformance tests for a plugin: subclass as `TestSomething(DatabaseConformance)`.

    Set `plugin` (a `Database` subclass, "module:Class", or the plugin's command), implement
    `make_store`, and list in `bad_settings` settings your plugin must refuse. Each test starts
    the plugin through confd's host; a `Database` class is also checked in process where the
    protocol would hide a fault (its own settings check, stopping a watch).
    """

    plugin: ClassVar[Any]
    bad_settings: ClassVar[Sequence[Mapping[str, str]]] = ()
    many_keys: ClassVar[int] = 2_000
    values: ClassVar[Mapping[str, str]] = VALUES
    within: ClassVar[float] = 1.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        plugin = cls.__dict__.get("plugin")
        if isinstance(plugin, type) and not any(s.secret for s in plugin.settings):
            # nothing to keep secret: the check is left out, not reported as skipped
            cls.test_no_secret_in_errors = None  # type: ignore[assignment]

    def make_store(self, tmp_path: Path) -> Store:
        """A fresh, empty store for one test, under `tmp_path`."""
        raise NotImplementedError("implement make_store(tmp_path) returning a Store")

    @contextlib.contextmanager
    def _open(self, tmp_path: Path) -> Iterator[tuple[Database, Store]]:
        store = self.make_store(tmp_path)
        with run_plugin(self.plugin, store.settings) as database:
            yield database, store

    def _start(self, settings: Mapping[str, str]):
        return run_plugin(self.plugin, settings)

    def _class(self) -> type[Database] | None:
        if isinstance(self.plugin, type):
            return self.plugin
        if isinstance(self.plugin, str) and ":" in self.plugin and not os.path.exists(
            self.plugin
        ):
            return _load(self.plugin)
        return None

    def test_prefix_semantics(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as (database, store):
            check_prefix_semantics(database, store)

    def test_many_keys(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as (database, store):
            check_many_keys(database, store, self.many_keys)

    def test_values_round_trip(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as (database, store):
            check_values(database, store, self.values)

    def test_watch_reports_a_change_and_stops(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as (database, store):
            description = getattr(database, "plugin_description", None)
            check_watch(database, store, description, within=self.within)
        cls = self._class()
        if cls is not None:  # the generator itself must honour `stop`, not just the host
            from plugin_sdk.description import describe

            (tmp_path / "in-process").mkdir()
            store = self.make_store(tmp_path / "in-process")
            local = cls()
            local.configure(dict(store.settings))
            try:
                check_watch(local, store, describe(cls), within=self.within)
            finally:
                local.close()

    def test_watch_reports_a_change_since_the_last_read(self, tmp_path: Path) -> None:
        with self._open(tmp_path) as (database, store):
            check_watch_from_the_last_read(database, store, within=self.within)

    def test_bad_settings_are_refused(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        check_bad_settings(self._start, store.settings, self.bad_settings)
        cls = self._class()
        if cls is not None:  # a Go host does not check settings: the plugin itself must
            unknown = "no_such_setting_in_process"
            try:
                cls().configure({**store.settings, unknown: "1"})
            except DatabaseError as exc:
                if unknown not in str(exc):
                    raise _fail(f"configure's error does not name {unknown!r}: {exc}") from None
            else:
                raise _fail(f"{cls.__name__}.configure accepted unknown setting {unknown!r}")

    def test_no_secret_in_errors(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        secrets = self._secrets(store)
        if not secrets:
            raise _fail("the plugin describes no secret setting: leave this check out with "
                        "`test_no_secret_in_errors = None` in your test class")
        check_no_secret_in_errors(self._start, store.settings, secrets, self.bad_settings)

    def _secrets(self, store: Store) -> list[str]:
        cls = self._class()
        if cls is not None:
            return [s.name for s in cls.settings if s.secret]
        with run_plugin(self.plugin, store.settings) as database:
            description = getattr(database, "plugin_description", None)
        return [s.name for s in description.settings if s.secret] if description else []


def _serve(spec: str) -> None:
    """`python -m plugin_sdk.testing module:Class`: serve that Database class."""
    from plugin_sdk.server import serve

    try:
        cls = _load(spec)
    except (ImportError, AttributeError) as exc:
        sys.stderr.write(f"[ERROR] plugin_sdk.testing: cannot import {spec}: {exc}\n")
        sys.exit(1)
    serve(cls())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m plugin_sdk.testing module:DatabaseClass\n")
        sys.exit(2)
    _serve(sys.argv[1])
