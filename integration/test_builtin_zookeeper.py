"""ZooKeeper backend against a real ZooKeeper (Debian's jars): Go confd's read semantics, watches
re-armed on every event, reconnects after a restart or an expired session, and clear errors."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Mapping

import pytest
from kazoo.client import KazooClient

from builtin.zookeeper import ZooKeeperDatabase
from integration.servers import ZooKeeperServer, free_port, wait_serving
from plugin_sdk.database import DatabaseError, StopSignal


@pytest.fixture(scope="module")
def server() -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer() as zk:
        yield zk


@pytest.fixture
def zk(server: ZooKeeperServer) -> Iterator[KazooClient]:
    """A client that writes the test's znodes, on an empty tree (bar /zookeeper)."""
    client = KazooClient(hosts=server.address)
    client.start(10)
    for child in client.get_children("/"):
        if child != "zookeeper":
            client.delete(f"/{child}", recursive=True)
    yield client
    client.stop()
    client.close()


def put(client: KazooClient, key: str, value: str) -> None:
    if client.exists(key):
        client.set(key, value.encode())
    else:
        client.create(key, value.encode(), makepath=True)


@pytest.fixture
def database(server: ZooKeeperServer) -> Iterator[ZooKeeperDatabase]:
    db = ZooKeeperDatabase()
    db.configure({"nodes": server.address, "timeout": "3"})
    yield db
    db.close()


class Follower:
    """Runs a watch in a thread and folds what it yields into `state` (key -> value)."""

    def __init__(self, db: ZooKeeperDatabase, keys: list[str], state: dict[str, str],
                 stop: threading.Event | None = None) -> None:
        self.stop = StopSignal() if stop is None else stop  # the daemon's watches get one
        self.state = dict(state)
        self.items: queue.Queue[object] = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(db, keys), daemon=True)
        self.thread.start()

    def _run(self, db: ZooKeeperDatabase, keys: list[str]) -> None:
        try:
            for item in db.watch_prefix(keys[0], keys, self.stop):
                self.items.put(item)
        except BaseException as exc:  # handed to the test
            self.error = exc
        self.items.put("ended")

    def until(self, expected: Mapping[str, str], timeout: float = 10) -> None:
        """Fold items in until `state` equals `expected`; fail naming what differs."""
        deadline = time.monotonic() + timeout
        while self.state != expected:
            try:
                item = self.items.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"watch state {self.state} never became {expected}") from None
            assert item != "ended", f"the watch ended: {self.error!r}"
            assert isinstance(item, Mapping), item
            for key, value in item.items():
                if value is None:
                    self.state.pop(key, None)
                else:
                    self.state[key] = value

    def close(self) -> None:
        """Stop the watch; it must return well before its idle wait (5 s) would end."""
        self.stop.set()
        self.thread.join(2)
        assert not self.thread.is_alive(), "watch_prefix did not return after stop"


# --- reads: Go confd's nodeWalk ----------------------------------------------------------------


def test_leaves_give_values_and_a_znode_with_children_gives_none(zk, database) -> None:
    put(zk, "/app/name", "inside")
    put(zk, "/app/deep/x", "1")
    zk.create("/app/empty")
    zk.set("/app", b"ignored: /app has children")
    assert database.get_values(["/app"]) == {
        "/app/name": "inside",
        "/app/deep/x": "1",
        "/app/empty": "",
    }


def test_a_key_reads_its_subtree_only_not_a_string_prefix(zk, database) -> None:
    put(zk, "/app/name", "inside")
    put(zk, "/application/name", "outside")
    assert database.get_values(["/app", "/app/*"]) == {"/app/name": "inside"}


def test_a_requested_leaf_is_its_own_value(zk, database) -> None:
    put(zk, "/key", "foobar")
    assert database.get_values(["/key"]) == {"/key": "foobar"}


def test_a_missing_key_gives_nothing(zk, database) -> None:
    put(zk, "/key", "foobar")
    assert database.get_values(["/missing", "/key/below"]) == {}


def test_root_reads_every_leaf_including_zookeepers_own(zk, database) -> None:
    put(zk, "/a/b", "1")
    values = database.get_values(["/"])
    assert values["/a/b"] == "1"
    assert "/zookeeper/quota" in values  # as Go confd, which walks them too


def test_many_keys_in_one_read(zk, database) -> None:
    for n in range(60):
        put(zk, f"/many/g{n % 6}/k{n}", str(n))
    values = database.get_values(["/many"])
    assert values == {f"/many/g{n % 6}/k{n}": str(n) for n in range(60)}


# --- settings and errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"nodes": "zk1"}, "node 'zk1' is not host:port"),
        ({"nodes": "zk1:two"}, "node 'zk1:two' is not host:port"),
        ({"nodes": "zk1:2181/chroot"}, "is not host:port"),
        ({"nodes": ""}, "setting 'nodes' is empty"),
        ({"timeout": "0"}, "'timeout' and 'session_timeout' must be above 0"),
        ({"node": "zk1:2181"}, "backend 'zookeeper' has no setting 'node'"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(config: dict, message: str) -> None:
    with pytest.raises(DatabaseError, match=message):
        ZooKeeperDatabase().configure(config)


def test_unreachable_server_is_one_clear_error_at_once() -> None:
    node = f"127.0.0.1:{free_port()}"
    db = ZooKeeperDatabase()
    db.configure({"nodes": f"{node},no-such-host.invalid:2181"})
    started = time.monotonic()
    with pytest.raises(DatabaseError) as caught:
        db.get_values(["/app"])
    assert time.monotonic() - started < 2, "a refused connection must not wait for the timeout"
    message = str(caught.value)
    assert message.startswith("backend 'zookeeper': no server answered"), message
    assert f"{node}: connection refused" in message
    assert "no-such-host.invalid:2181: unknown host" in message
    db.close()


# --- watches -----------------------------------------------------------------------------------


def test_watch_reports_every_kind_of_change(zk, database) -> None:
    put(zk, "/w/a", "1")
    put(zk, "/w/dir/b", "2")
    follower = Follower(database, ["/w"], database.get_values(["/w"]))
    try:
        put(zk, "/w/a", "1b")  # data change
        follower.until({"/w/a": "1b", "/w/dir/b": "2"})
        put(zk, "/w/dir/c/d", "3")  # new children two levels down
        follower.until({"/w/a": "1b", "/w/dir/b": "2", "/w/dir/c/d": "3"})
        put(zk, "/w/a/sub", "4")  # a leaf gains a child: its own value goes
        follower.until({"/w/a/sub": "4", "/w/dir/b": "2", "/w/dir/c/d": "3"})
        zk.delete("/w/a/sub")  # ... and comes back (empty data) when the child goes
        follower.until({"/w/a": "1b", "/w/dir/b": "2", "/w/dir/c/d": "3"})
        zk.delete("/w/dir", recursive=True)
        follower.until({"/w/a": "1b"})
        put(zk, "/w/dir/b", "again")  # re-created after deletion: watched again
        follower.until({"/w/a": "1b", "/w/dir/b": "again"})
        put(zk, "/w/dir/b", "and again")
        follower.until({"/w/a": "1b", "/w/dir/b": "and again"})
    finally:
        follower.close()


def test_watch_rearms_so_a_burst_of_changes_ends_in_the_last_value(zk, database) -> None:
    put(zk, "/burst/k", "0")
    follower = Follower(database, ["/burst"], database.get_values(["/burst"]))
    try:
        for n in range(1, 201):
            zk.set("/burst/k", str(n).encode())
            if n % 50 == 0:
                zk.create(f"/burst/n{n}", b"x")
        follower.until({"/burst/k": "200", **{f"/burst/n{n}": "x" for n in (50, 100, 150, 200)}})
    finally:
        follower.close()


def test_watch_reports_a_change_between_read_and_watch(zk, database) -> None:
    put(zk, "/gap/k", "read")
    state = database.get_values(["/gap"])
    put(zk, "/gap/k", "changed before the watch")
    follower = Follower(database, ["/gap"], state)
    try:
        follower.until({"/gap/k": "changed before the watch"})
    finally:
        follower.close()


def test_watch_of_a_missing_key_sees_it_created(zk, database) -> None:
    follower = Follower(database, ["/later"], database.get_values(["/later"]))
    try:
        time.sleep(0.2)
        put(zk, "/later", "leaf")
        follower.until({"/later": "leaf"})
        zk.delete("/later")
        follower.until({})
        put(zk, "/later/x", "1")
        follower.until({"/later/x": "1"})
    finally:
        follower.close()


def test_watch_ignores_siblings_sharing_a_string_prefix(zk, database) -> None:
    put(zk, "/app/name", "inside")
    follower = Follower(database, ["/app"], database.get_values(["/app"]))
    try:
        put(zk, "/application/name", "elsewhere")
        put(zk, "/app/name", "here")
        follower.until({"/app/name": "here"})
        assert follower.items.empty()
    finally:
        follower.close()


def expire_session(server: ZooKeeperServer, database: ZooKeeperDatabase) -> None:
    """Expire the backend's ZooKeeper session the way ZooKeeper's own tests do: a second
    client joins the same session and closes it."""
    client = database._client
    assert client is not None
    twin = KazooClient(hosts=server.address, client_id=client.client_id)
    twin.start(10)
    twin.stop()
    twin.close()


def test_expired_session_is_replaced_and_changes_meanwhile_reported(
    server, zk, database
) -> None:
    put(zk, "/s/k", "before")
    follower = Follower(database, ["/s"], database.get_values(["/s"]))
    try:
        old = database._client.client_id  # type: ignore[union-attr]
        expire_session(server, database)
        put(zk, "/s/k", "while the session was lost")
        follower.until({"/s/k": "while the session was lost"})
        put(zk, "/s/k", "after")  # the watches of the new session are armed
        follower.until({"/s/k": "after"})
        assert database._client.client_id[0] != old[0]  # type: ignore[union-attr]
    finally:
        follower.close()


def test_watch_survives_a_server_restart_and_loses_nothing() -> None:
    with ZooKeeperServer() as server:
        writer = KazooClient(hosts=server.address)
        writer.start(10)
        put(writer, "/r/k", "0")
        db = ZooKeeperDatabase()
        db.configure({"nodes": server.address})
        follower = Follower(db, ["/r"], db.get_values(["/r"]))
        try:
            for n in range(1, 4):
                server.restart()
                writer.retry(put, writer, "/r/k", str(n))
                follower.until({"/r/k": str(n)}, timeout=15)
        finally:
            follower.close()
            db.close()
            writer.stop()
            writer.close()


def test_watch_ends_with_an_error_naming_the_node_when_the_server_stays_down() -> None:
    with ZooKeeperServer() as server:
        db = ZooKeeperDatabase()
        db.configure({"nodes": server.address, "timeout": "1", "session_timeout": "1"})
        follower = Follower(db, ["/x"], db.get_values(["/x"]))
        try:
            server.stop()
            assert follower.items.get(timeout=10) == "ended"
            assert isinstance(follower.error, DatabaseError)
            assert "connection lost watching '/x'" in str(follower.error)
            assert server.address in str(follower.error)
        finally:
            follower.close()
            db.close()


def test_close_ends_a_running_watch(zk, database) -> None:
    follower = Follower(database, ["/c"], {})
    time.sleep(0.3)
    database.close()
    follower.thread.join(2)
    assert not follower.thread.is_alive()


def test_a_watch_stopped_by_a_plain_event_looks_at_it_often(zk, database) -> None:
    """A caller without a StopSignal (no wake-up) still sees its watch end soon after a stop."""
    follower = Follower(database, ["/plain"], {}, stop=threading.Event())
    time.sleep(0.3)
    began = time.monotonic()
    follower.close()
    assert time.monotonic() - began < 1.0


def test_watch_across_an_ensemble_survives_the_leader_going_down() -> None:
    # Without a leader the followers drop their clients until a new one is elected: every
    # client reconnects, to whichever member serves first.
    members = ZooKeeperServer.ensemble(3)
    try:
        for member in members:
            member.start(wait=False)
        wait_serving(members)
        nodes = ",".join(m.address for m in members)
        writer = KazooClient(hosts=nodes)
        writer.start(10)
        put(writer, "/e/k", "0")
        db = ZooKeeperDatabase()
        db.configure({"nodes": nodes})
        follower = Follower(db, ["/e"], db.get_values(["/e"]))
        try:
            leader = next(m for m in members if "Mode: leader" in m.four_letter("srvr"))
            leader.stop()
            writer.retry(put, writer, "/e/k", "after the election")
            follower.until({"/e/k": "after the election"}, timeout=20)
            put(writer, "/e/new", "x")
            follower.until({"/e/k": "after the election", "/e/new": "x"})
        finally:
            follower.close()
            db.close()
            writer.stop()
            writer.close()
    finally:
        for member in members:
            member.cleanup()
