"""Server faults: down at start (onetime fails clearly, watch retries) and restarted mid-watch.

Each test gets its own server (not the session one), so stopping it disturbs nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from integration.consul_double import ConsulDouble
from integration.harness import EXPECT, KEYS, Confd, read, wait_for
from integration.servers import EtcdServer, RedisServer, free_port
from integration.stores import SERVERS, ConsulStore, EtcdStore, RedisStore, Store


class Server(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def restart(self) -> None: ...


@pytest.fixture(params=SERVERS)
def fresh(request: pytest.FixtureRequest) -> Iterator[tuple[Server, Store]]:
    """A server of each kind, created but NOT started, and the store adapter reaching it."""
    server: Server
    store: Store
    if request.param == "etcd":
        server = etcd = EtcdServer()
        store = EtcdStore(etcd)
    elif request.param == "redis":
        server = red = RedisServer()
        store = RedisStore(red)
    else:
        server = double = ConsulDouble()
        double.port = free_port()
        store = ConsulStore(double)
    try:
        yield server, store
    finally:
        close = getattr(store, "close", None)
        if close:
            close()
        cleanup = getattr(server, "cleanup", server.stop)
        cleanup()


def address(store: Store) -> str:
    """The node address confd is given (it must appear in a connection error)."""
    return store.args()[store.args().index("--node") + 1].removeprefix("http://")


def test_onetime_with_server_down_fails_naming_the_node(
    fresh: tuple[Server, Store], confd: Confd
) -> None:
    _, store = fresh
    done = confd.onetime(store)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert address(store) in output, output
    assert not (confd.out / "basic.conf").exists()


def test_watch_retries_until_the_server_starts(
    fresh: tuple[Server, Store], confd: Confd
) -> None:
    server, store = fresh
    process = confd.watch(store)
    basic = confd.out / "basic.conf"
    wait_for(lambda: address(store) in confd.log(), "a logged connection error", confd.log)
    assert process.poll() is None, confd.log()
    server.start()
    store.load(KEYS)
    wait_for(
        lambda: read(basic) == (EXPECT / "basic.conf").read_text(),
        "render once the server is up",
        confd.log,
        timeout=40,
    )


def test_watch_reconnects_after_a_server_restart(
    fresh: tuple[Server, Store], confd: Confd, tmp_path: Path
) -> None:
    server, store = fresh
    server.start()
    store.load(KEYS)
    process = confd.watch(store)
    basic = confd.out / "basic.conf"
    wait_for(lambda: "host=127.0.0.1\n" in read(basic), "first render", confd.log)
    server.restart()
    store.load({**KEYS, "/database/host": "10.7.7.7"})  # Redis keeps no data across restarts
    wait_for(lambda: "host=10.7.7.7\n" in read(basic), "render after restart", confd.log, 40)
    assert process.poll() is None, confd.log()


def test_watch_raises_database_error_when_the_server_goes_away(
    fresh: tuple[Server, Store],
) -> None:
    import threading

    from confd.registry import default_registry
    from plugin_sdk.database import DatabaseError

    server, store = fresh
    server.start()
    store.load(KEYS)
    database = default_registry().create(store.name, {"nodes": address(store)})
    try:
        database.get_values(["/database"])
        changes = database.watch_prefix("/database", ["/database"], threading.Event())
        threading.Timer(0.3, server.stop).start()
        with pytest.raises(DatabaseError, match=address(store)):
            next(changes)
    finally:
        database.close()
