"""The server backends' own watches, driven directly through the Database contract; and the
backends that can only be polled (AWS, IMDS): they say so at once, and each read sees the store
as it is now, which is what the daemon's polling relies on."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator

import pytest

from integration.harness import KEYS
from integration.stores import NATIVE_WATCH, POLLED, SERVERS, Store
from plugin_sdk.database import Database, DatabaseError, StopSignal, WatchUnsupported


@pytest.fixture(params=NATIVE_WATCH)
def served(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[Database, Store]]:
    """A configured backend and the store it reads, holding the case keys."""
    from confd.backends.registry import default_registry
    from integration.conftest import make_store

    store = make_store(request.param, request, tmp_path)
    store.load(KEYS)
    node = store.args()[store.args().index("--node") + 1]
    database = default_registry().create(request.param, {"nodes": node})
    try:
        yield database, store
    finally:
        database.close()
        close = getattr(store, "close", None)
        if close:
            close()


def next_change(changes: Iterator[Collection[str] | None], timeout: float = 10) -> object:
    """The keys of the next item of a watch (a backend may yield a key->value mapping; the
    values are checked in tests/test_etcd_watch_values.py), read in a thread so a hang fails
    the test instead."""
    box: list[object] = []
    reader = threading.Thread(target=lambda: box.append(next(changes, "ended")), daemon=True)
    reader.start()
    reader.join(timeout)
    assert box, f"no change reported within {timeout}s"
    item = box[0]
    return set(item) if isinstance(item, Collection) and not isinstance(item, str) else item


def test_watch_reports_a_change_made_between_read_and_watch(served) -> None:
    database, store = served
    assert database.get_values(["/upstream"])["/upstream/app1"] == "10.0.1.10:8080"
    store.set("/upstream/app1", "10.0.1.99:8080")  # after the read, before the watch
    stop = threading.Event()
    changes = database.watch_prefix("/upstream", ["/upstream"], stop)
    assert next_change(changes) == {"/upstream/app1"}
    stop.set()


def later(delay: float, action) -> threading.Timer:
    """Run `action` on a thread after `delay` seconds; join it before the store is closed."""
    timer = threading.Timer(delay, action)
    timer.start()
    return timer


@pytest.mark.parametrize(
    ("action", "key"),
    [("set", "/upstream/app3"), ("set", "/upstream/app1"), ("delete", "/upstream/app2")],
)
def test_watch_yields_the_changed_key(served, action: str, key: str) -> None:
    database, store = served
    database.get_values(["/upstream"])
    stop = threading.Event()
    changes = database.watch_prefix("/upstream", ["/upstream"], stop)
    change = (lambda: store.set(key, "x")) if action == "set" else (lambda: store.delete(key))
    writer = later(0.3, change)
    assert next_change(changes) == {key}
    stop.set()
    writer.join(10)  # the put may answer after its event arrived: let it, before the teardown


def test_watch_ignores_keys_that_only_share_a_string_prefix(served) -> None:
    database, store = served
    database.get_values(["/app"])
    stop = threading.Event()
    changes = database.watch_prefix("/app", ["/app"], stop)
    writers = [later(0.2, lambda: store.set("/application/name", "elsewhere")),
               later(0.6, lambda: store.set("/app/name", "here"))]
    assert next_change(changes) == {"/app/name"}
    stop.set()
    for writer in writers:
        writer.join(10)


@pytest.mark.parametrize("signal", [threading.Event, StopSignal])
def test_watch_returns_soon_after_stop(served, signal: type[threading.Event]) -> None:
    """A plain Event is polled; the daemon's StopSignal wakes a backend that waits longer."""
    database, _ = served
    database.get_values(["/database"])
    stop = signal()
    changes = database.watch_prefix("/database", ["/database"], stop)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert next_change(changes) == "ended"
    assert time.monotonic() - started < 2.0


def test_get_values_reads_many_keys_at_once(served) -> None:
    database, _ = served
    values = database.get_values(["/database/host", "/database/port"] * 100 + ["/nested"])
    assert values == {
        "/database/host": "127.0.0.1",
        "/database/port": "3306",
        "/nested/east/app1": "10.0.1.10:8080",
        "/nested/west/app2": "10.0.1.11:8080",
    }


def test_unknown_setting_is_a_clear_error() -> None:
    from confd.backends.registry import default_registry

    for name in SERVERS:
        with pytest.raises(Exception, match=rf"backend '{name}' has no setting 'nodez'"):
            default_registry().create(name, {"nodez": "x"})


def test_database_error_is_what_a_down_server_raises() -> None:
    from confd.backends.registry import default_registry

    for name in NATIVE_WATCH:
        database = default_registry().create(name, {"nodes": "127.0.0.1:1"})
        with pytest.raises(DatabaseError, match="127.0.0.1:1"):
            database.get_values(["/x"])


@pytest.fixture(params=POLLED)
def polled(
    request: pytest.FixtureRequest, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Database, Store]]:
    """A configured polled backend (settings and environment as its store adapter gives them to
    confd) and the store it reads, holding the case keys."""
    from confd.backends.registry import default_registry
    from integration.conftest import make_store

    store = make_store(request.param, request, tmp_path)
    store.load(KEYS)
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)
    args = store.args()
    settings = dict(
        args[i + 1].split("=", 1) for i, arg in enumerate(args) if arg == "--backend-opt"
    )
    database = default_registry().create(request.param, settings)
    try:
        yield database, store
    finally:
        database.close()


def test_polled_backend_says_at_once_that_it_cannot_watch(polled) -> None:
    database, _ = polled
    started = time.monotonic()
    with pytest.raises(WatchUnsupported, match=database.name):
        next(database.watch_prefix("/upstream", ["/upstream"], threading.Event()))
    assert time.monotonic() - started < 1.0  # Go confd's WatchPrefix blocks until stopped


def as_stored(values: dict[str, str]) -> dict[str, str]:
    """`values` without imds's canonical `/meta-data/...` copies of the case keys."""
    return {key: value for key, value in values.items() if not key.startswith("/meta-data/")}


def test_polled_backend_reads_the_store_as_it_is_now(polled) -> None:
    database, store = polled
    assert as_stored(database.get_values(["/upstream"])) == {
        "/upstream/app1": "10.0.1.10:8080", "/upstream/app2": "10.0.1.11:8080",
    }  # fmt: skip
    store.set("/upstream/app1", "10.0.1.99:8080")
    store.delete("/upstream/app2")
    store.set("/upstream/app3", "10.0.1.12:8080")
    store.set("/upstreams/other", "not below /upstream")
    assert as_stored(database.get_values(["/upstream"])) == {
        "/upstream/app1": "10.0.1.99:8080", "/upstream/app3": "10.0.1.12:8080",
    }  # fmt: skip


def test_polled_backend_reads_many_keys_at_once(polled) -> None:
    database, _ = polled
    values = database.get_values(["/database/host", "/database/port"] * 100 + ["/nested"])
    assert as_stored(values) == {
        "/database/host": "127.0.0.1",
        "/database/port": "3306",
        "/nested/east/app1": "10.0.1.10:8080",
        "/nested/west/app2": "10.0.1.11:8080",
    }
