"""The etcd backend's watches share one gRPC stream per member, as etcd's own client does: 20
prefixes cost etcd one stream (and confd one reader thread), not 20. Checked on a real etcd
through its /metrics gauges: each change reaches the watch of its own prefix only, a stopped
watch's watchers are cancelled on the server while the others go on, and the stream closes with
its last watch.

An idle watch blocks until news instead of looking at its stop flag five times a second: the
daemon's `StopSignal` wakes it when set, and a read outage wakes it to probe for the outage's
end. Both are checked against the idle wait (5 s), which a broken wake-up would sit out."""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest
from pyetcd import etcdrpc

from builtin.etcd import EtcdDatabase
from integration.harness import wait_for
from integration.servers import EtcdServer
from plugin_sdk.database import IDLE_WAIT, DatabaseError, StopSignal

PREFIXES = [f"/shared{i}" for i in range(5)]


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.fixture
def database(etcd: EtcdServer) -> Iterator[EtcdDatabase]:
    database = EtcdDatabase()
    database.configure({"nodes": etcd.url})
    try:
        yield database
    finally:
        database.close()


def _put(etcd: EtcdServer, key: str, value: str) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{etcd.port}")
    try:
        etcdrpc.KVStub(channel).Put(etcdrpc.PutRequest(key=key.encode(), value=value.encode()),
                                    timeout=10)
    finally:
        channel.close()


def _gauges(etcd: EtcdServer) -> tuple[int, int]:
    """(watch streams, watchers) etcd serves now."""
    streams, watchers = etcd.metrics("etcd_debugging_mvcc_watch_stream_total",
                                     "etcd_debugging_mvcc_watcher_total")
    return int(streams), int(watchers)


def _expect(etcd: EtcdServer, streams: int, watchers: int, before: tuple[int, int],
            what: str) -> None:
    """Wait until etcd serves `streams` and `watchers` more than `before`."""
    wanted = (before[0] + streams, before[1] + watchers)
    wait_for(lambda: _gauges(etcd) == wanted, what, lambda: f"etcd serves {_gauges(etcd)}",
             timeout=10)


class _Watching:
    """A `watch_prefix` of `prefix` followed on a thread; what it yields lands in `changes`."""

    def __init__(self, database: EtcdDatabase, prefix: str) -> None:
        self.prefix = prefix
        self.stop = StopSignal()  # as the daemon's watches have
        self.changes: queue.SimpleQueue[dict[str, str | None] | None] = queue.SimpleQueue()
        database.get_values([prefix])  # the watch starts after this read, as the daemon's does
        events = database.watch_prefix(prefix, [prefix], self.stop)
        self.thread = threading.Thread(target=self._follow, args=(events,), daemon=True)
        self.thread.start()

    def _follow(self, events: Iterator[object]) -> None:
        for item in events:
            self.changes.put(None if item is None else dict(item))  # type: ignore[call-overload]

    def next_change(self, timeout: float = 10.0) -> dict[str, str | None] | None:
        return self.changes.get(timeout=timeout)

    def end(self, within: float = 10.0) -> None:
        self.stop.set()
        self.thread.join(within)
        assert not self.thread.is_alive(), f"the watch on {self.prefix} did not stop in {within}s"


@contextmanager
def watching(etcd: EtcdServer, database: EtcdDatabase,
             *prefixes: str) -> Iterator[tuple[list[_Watching], tuple[int, int]]]:
    """Watches of `prefixes` and etcd's gauges before them; ends them on the way out and
    checks that their stream closed with the last."""
    before = _gauges(etcd)
    watches = [_Watching(database, prefix) for prefix in prefixes]
    try:
        _expect(etcd, 1, len(prefixes), before, f"{len(prefixes)} watcher(s) on one stream")
        yield watches, before
    finally:
        for watch in watches:
            watch.end()
    _expect(etcd, 0, 0, before, "the stream closed with its last watch")


def test_watches_share_one_stream_and_each_gets_its_own_changes(
    etcd: EtcdServer, database: EtcdDatabase
) -> None:
    with watching(etcd, database, *PREFIXES) as (watches, before):
        for n, watch in enumerate(watches):
            _put(etcd, f"{watch.prefix}/k", f"v{n}")
        for n, watch in enumerate(watches):
            assert watch.next_change() == {f"{watch.prefix}/k": f"v{n}"}
        assert all(watch.changes.empty() for watch in watches), "a change reached a stranger"

        for watch in watches[:2]:
            watch.end()
        _expect(etcd, 1, 3, before, "the stopped watches' watchers cancelled, the stream kept")
        _put(etcd, f"{watches[4].prefix}/k", "after")
        assert watches[4].next_change() == {f"{watches[4].prefix}/k": "after"}


def test_a_watch_leaving_before_etcd_answers_leaves_no_watcher_behind(
    etcd: EtcdServer, database: EtcdDatabase
) -> None:
    with watching(etcd, database, "/stays") as ([staying], before):
        member = database._connect().members[0]
        for n in range(50):  # join and leave at once: most leave before their "created"
            sink: queue.SimpleQueue[object] = queue.SimpleQueue()
            stream = database._watch_stream(member, ())
            request = etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(
                key=f"/brief{n}".encode()))
            assert stream.join(sink, [(f"/brief{n}", request)])
            stream.leave(sink)
        _expect(etcd, 1, 1, before, "every brief watcher cancelled once etcd answered it")
        _put(etcd, "/stays/k", "still here")
        assert staying.next_change() == {"/stays/k": "still here"}


def test_a_stopped_watch_returns_at_once_not_after_its_idle_wait(
    etcd: EtcdServer, database: EtcdDatabase
) -> None:
    with watching(etcd, database, "/stopping") as ([watch], _):
        time.sleep(0.3)  # well into its idle wait
        began = time.monotonic()
        watch.end(within=IDLE_WAIT / 2)
        assert time.monotonic() - began < 1.0


def test_a_read_outage_wakes_idle_watches_to_probe_for_its_end(etcd: EtcdServer) -> None:
    """A read that no member answers starts an outage; the watches, idle until then, look every
    0.2 s and probe the store, and each yields None ("read everything again") once it answers,
    long before their idle wait would have ended."""
    database = EtcdDatabase()
    database.configure({"nodes": etcd.url, "timeout": "0.5"})
    assert etcd.process is not None
    try:
        with watching(etcd, database, "/outage1", "/outage2") as (watches, _):
            began = time.monotonic()
            etcd.process.send_signal(signal.SIGSTOP)
            try:
                with pytest.raises(DatabaseError, match="no node answered"):
                    database.get_values(["/outage1"])
            finally:
                etcd.process.send_signal(signal.SIGCONT)
            for watch in watches:
                assert watch.next_change(timeout=IDLE_WAIT) is None
            assert time.monotonic() - began < IDLE_WAIT - 1.0
    finally:
        database.close()
