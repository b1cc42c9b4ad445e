"""etcd watch events carry the new values, so a watch tells a real change from a put of the same
value without reading etcd again (one round trip less on every change)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
from pyetcd import etcdrpc

from builtin.etcd import EtcdDatabase
from integration.servers import EtcdServer


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.fixture
def kv(etcd: EtcdServer) -> Iterator[etcdrpc.KVStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{etcd.port}")
    try:
        yield etcdrpc.KVStub(channel)
    finally:
        channel.close()


class CountingEtcd(EtcdDatabase):
    """The real etcd backend, counting reads."""

    reads = 0

    def get_values(self, keys):
        self.reads += 1
        return super().get_values(keys)


@pytest.fixture
def database(etcd: EtcdServer) -> Iterator[CountingEtcd]:
    database = CountingEtcd()
    database.configure({"nodes": etcd.url})
    try:
        yield database
    finally:
        database.close()


def _put(kv: etcdrpc.KVStub, key: str, value: str) -> None:
    kv.Put(etcdrpc.PutRequest(key=key.encode(), value=value.encode()), timeout=10)


def _delete(kv: etcdrpc.KVStub, key: str) -> None:
    kv.DeleteRange(etcdrpc.DeleteRangeRequest(key=key.encode()), timeout=10)


def _next_event(database: EtcdDatabase, prefix: str, action) -> object:
    """Start a watch on `prefix`, run `action`, and return the first item the watch yields."""
    stop = threading.Event()
    database.get_values([prefix])  # the watch starts after this read, as the daemon's does
    events = database.watch_prefix(prefix, [prefix], stop)
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(next(events)), daemon=True)
    reader.start()
    action()
    reader.join(10)
    stop.set()
    assert got, "the watch yielded nothing within 10 s"
    return got[0]


def test_a_put_is_reported_with_its_value(database: CountingEtcd, kv) -> None:
    _put(kv, "/values/a", "old")
    event = _next_event(database, "/values", lambda: _put(kv, "/values/a", "new ✓"))
    assert dict(event) == {"/values/a": "new ✓"}


def test_a_delete_is_reported_with_no_value(database: CountingEtcd, kv) -> None:
    _put(kv, "/gone/a", "1")
    event = _next_event(database, "/gone", lambda: _delete(kv, "/gone/a"))
    assert dict(event) == {"/gone/a": None}
