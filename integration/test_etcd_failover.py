"""etcd failover: `confd --watch` given all three members of a real cluster rides through the
faults of a production cluster without a stale ending, a wrong value or a needless reload.

Each scenario runs one daemon while a writer puts increasing values every 50 ms (retrying through
elections): the leader SIGKILLed (the watch on a follower must stay up), the member carrying the
watch SIGKILLed, two of three members down for 3 s, and the watch's member paused with its
connections cut while the store is compacted (the watch resumes on a compacted revision). Each
ends on the last value written, shows values only in the order they were written, reloads only
on a change, and logs one line per state change (and nothing while a failover just works).

In process: a read answered by a member behind what a watch already reported is asked
elsewhere (etcd has had stale-read bugs; the daemon would otherwise keep the older value), and a
`--node` name resolving to several loopback addresses reaches every member behind it.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from pyetcd import etcdrpc

import builtin.etcd as etcd_backend
from builtin.etcd import EtcdDatabase
from integration.harness import Daemon, wait_for
from integration.servers import EtcdCluster
from testsupport.daemon_process import Confdir

PACE = 0.05  # seconds between the writer's puts
SETTLE = 15.0  # seconds the file may take to reach the last value once the cluster is whole


@pytest.fixture(scope="module")
def cluster() -> Iterator[EtcdCluster]:
    with EtcdCluster() as etcd:
        yield etcd


def heal(cluster: EtcdCluster) -> None:
    """Every member running (resumed, started again) and serving."""
    for index, member in enumerate(cluster.members):
        if not member.running:
            cluster.start(index, wait=False)
        else:
            cluster.resume(index)
    cluster.wait_healthy(timeout=30)


class Watched(Daemon):
    """`confd --watch` on every member, rendering one key into `out/value.conf` and appending
    each reloaded content to `out/reloads.log`; what the file showed, polled every 5 ms."""

    def __init__(self, workdir: Path, cluster: EtcdCluster, key: str) -> None:
        confdir = Confdir(workdir)
        self.dest, self.reloads = confdir.out / "value.conf", confdir.out / "reloads.log"
        confdir.resource("value.conf", f'{{{{ getv("{key}") }}}}\n', [key.rsplit("/", 1)[0]],
                         reload_cmd=f'"cat {self.dest} >> {self.reloads}"')
        nodes = [arg for url in cluster.urls for arg in ("--node", url)]
        super().__init__(workdir, ["--watch", "--backend", "etcd", *nodes,
                                   "--confdir", str(confdir.confdir)])
        self.shown: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._observe, daemon=True)
        self._thread.start()

    def value(self) -> int | None:
        try:
            text = self.dest.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def _observe(self) -> None:
        while not self._stop.wait(0.005):
            value = self.value()
            if value is not None and (not self.shown or self.shown[-1] != value):
                self.shown.append(value)

    def until(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        """Poll `condition` every 10 ms (the writer puts every 50 ms); fail with the log's tail."""
        wait_for(condition, what, lambda: f"confd's log (tail):\n{self.log()[-6000:]}", timeout,
                 step=0.01)

    def lines(self, pattern: str) -> list[str]:
        return [line for line in self.log().splitlines() if re.search(pattern, line)]

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(1)
        return super().stop()


class Writer:
    """Puts 1, 2, 3... (fixed width, compare-guarded) every PACE s from a thread."""

    def __init__(self, cluster: EtcdCluster, key: str) -> None:
        self.cluster, self.key = cluster, key
        self.acked = 0
        self._next = 1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def put(self) -> int:
        value, self._next = self._next, self._next + 1
        self.cluster.put(self.key, f"{value:06d}", timeout=30, newer=True)
        self.acked = value
        return value

    def _loop(self) -> None:
        while not self._stop.wait(PACE):
            self.put()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> int:
        """Stop writing; the last value acknowledged."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(35)
        return self.acked


@pytest.fixture
def scenario(
    cluster: EtcdCluster, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Watched, Writer]]:
    """A daemon watching its own key, showing the writer's first value, and the writer."""
    key = f"/failover/{request.node.name.removeprefix('test_')[:40]}/value"
    writer = Writer(cluster, key)
    cluster.put(key, f"{0:06d}")
    daemon = Watched(tmp_path, cluster, key)
    try:
        daemon.until(lambda: daemon.value() == 0, "the first render", 20)
        daemon.until(lambda: any(cluster.watch_streams(i) for i in range(3)), "the watch", 10)
        yield daemon, writer
    finally:
        writer.stop()
        daemon.stop()
        heal(cluster)


def watch_member(cluster: EtcdCluster) -> int:
    found = [i for i in range(len(cluster.members)) if cluster.watch_streams(i)]
    assert len(found) == 1, f"the daemon's watch is on members {found}"
    return found[0]


def follower_watch(cluster: EtcdCluster) -> int:
    """The member carrying the watch, the lead moved elsewhere if it had it."""
    member = watch_member(cluster)
    if cluster.leader() == member:
        cluster.lead((member + 1) % len(cluster.members))
    return member


def put_as_the_leader_dies(cluster: EtcdCluster, writer: Writer) -> int:
    """Put the writer's next value and SIGKILL the leader right after: the render this change
    causes reads while the leader dies, so its read meets the election. The value put."""
    leader = cluster.leader()
    value = writer.put()
    cluster.kill(leader)
    return value


def finish(cluster: EtcdCluster, daemon: Watched, writer: Writer) -> int:
    """Heal the cluster, write a little more, stop; check the daemon ends current, never went
    back, reloaded only on changes. Returns the last value."""
    heal(cluster)
    time.sleep(0.3)
    last = writer.stop()
    daemon.until(lambda: daemon.value() == last, f"the last value {last}", SETTLE)
    time.sleep(0.2)
    assert daemon.process.poll() is None, daemon.log()[-4000:]
    shown = daemon.shown
    assert all(a < b for a, b in zip(shown, shown[1:], strict=False)), (
        f"the file went back to an older value: {shown}"
    )
    reloads = [int(line) for line in daemon.reloads.read_text().split()]
    assert all(a < b for a, b in zip(reloads, reloads[1:], strict=False)), (
        f"a reload without a change, or out of order: {reloads}"
    )
    assert reloads[-1] == last
    assert "Traceback" not in daemon.log()
    return last


def test_leader_killed_under_a_watch_on_a_follower(
    cluster: EtcdCluster, scenario: tuple[Watched, Writer]
) -> None:
    daemon, writer = scenario
    follower_watch(cluster)
    put_as_the_leader_dies(cluster, writer)
    writer.start()
    daemon.until(lambda: writer.acked > 2 and daemon.value() == writer.acked,
                 "a value written after the election", 15)
    finish(cluster, daemon, writer)
    # The last write of all, right before its leader dies, is rendered too (Go confd's read
    # after such a write fails once and is never retried: it ends stale).
    member = follower_watch(cluster)
    last = put_as_the_leader_dies(cluster, writer)
    daemon.until(lambda: daemon.value() == last, "the write made right before the leader died",
                 SETTLE)
    # The watch never left its member, and reads that met the elections were retried silently.
    assert watch_member(cluster) == member
    assert daemon.lines(r"lost node|watch on .* failed|is back|ERROR") == []


def test_member_carrying_the_watch_killed(
    cluster: EtcdCluster, scenario: tuple[Watched, Writer]
) -> None:
    daemon, writer = scenario
    member = follower_watch(cluster)
    writer.start()
    time.sleep(0.3)
    cluster.kill(member)
    killed = cluster.members[member].url
    daemon.until(lambda: daemon.value() == writer.acked > 0, "a value written after the kill", 10)
    finish(cluster, daemon, writer)
    moved = daemon.lines(r"lost node")
    assert len(moved) == 1, moved
    assert killed in moved[0] and "WARN" in moved[0], moved
    others = [m.url for m in cluster.members if m.url != killed]
    assert any(f"failing over to {url}" in moved[0] for url in others), moved
    assert daemon.lines(r"watch on .* failed|is back|ERROR") == []


def test_two_of_three_members_down_for_three_seconds(
    cluster: EtcdCluster, scenario: tuple[Watched, Writer]
) -> None:
    daemon, writer = scenario
    member = watch_member(cluster)
    leader = cluster.leader()
    victims = [member, leader if leader != member else (member + 1) % 3]
    writer.start()
    time.sleep(0.3)
    before = writer.acked
    for victim in victims:
        cluster.kill(victim)
    time.sleep(3.0)
    for victim in victims:
        cluster.start(victim, wait=False)
    daemon.until(lambda: writer.acked > before + 2 and daemon.value() == writer.acked,
                 "a value written after quorum returned", 20)
    finish(cluster, daemon, writer)
    # The watch moved to the member left standing: one line per member lost under it (the
    # second victim may have taken the watch for the moment between the two kills); a render
    # caught by the outage is one error and one "works again", never a line per retry.
    lost = daemon.lines(r"lost node")
    urls = [cluster.members[v].url for v in victims]
    named = [next((u for u in urls if f"lost node {u} " in line), None) for line in lost]
    assert lost and None not in named and len(set(named)) == len(named), lost
    errors = daemon.lines(r"ERROR")
    assert len(errors) <= 1, errors
    if errors:
        assert "no node answered" in errors[0]
        assert len(daemon.lines(r"rendering works again|is back")) == 1


def test_paused_member_cut_off_while_the_store_is_compacted(
    cluster: EtcdCluster, scenario: tuple[Watched, Writer]
) -> None:
    daemon, writer = scenario
    member = follower_watch(cluster)
    writer.start()
    time.sleep(0.3)
    cluster.pause(member)  # its connection stays up: no client can tell it stopped
    time.sleep(0.8)
    compacted = cluster.compact()  # the watch's next revision is gone
    written = writer.acked
    cluster.cut(member)
    daemon.until(lambda: daemon.value() is not None and daemon.value() >= written,
                 "the values written during the pause", 10)
    time.sleep(1.0)
    cluster.resume(member)
    finish(cluster, daemon, writer)
    assert len(daemon.lines(r"lost node")) == 1
    assert daemon.lines(rf"revision {compacted} is compacted|is compacted"), (
        "the watch never met the compaction"
    )
    assert daemon.lines(r"watch on .* failed|is back|ERROR") == []


# -- in process ----------------------------------------------------------------------------


class _Stale(grpc.UnaryUnaryClientInterceptor):
    """Makes a member answer reads with an old reply, as a member behind the cluster would."""

    def __init__(self) -> None:
        self.reply: Any = None
        self.served = 0

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        call = continuation(details, request)
        if self.reply is None or not details.method.endswith("/Txn"):
            return call
        self.served += 1
        return _Replaced(call, self.reply)


class _Replaced(grpc.Future):
    """A finished call whose result is `reply`."""

    def __init__(self, call: Any, reply: Any) -> None:
        call.result()
        self._reply = reply

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        return self._reply

    def exception(self, timeout: float | None = None) -> Any:
        return None

    def traceback(self, timeout: float | None = None) -> Any:
        return None

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)


def test_a_read_from_a_member_behind_the_watch_is_asked_elsewhere(
    cluster: EtcdCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every connection counts as up, so the lagging member (preferred) is asked first.
    monkeypatch.setattr(etcd_backend, "_connectivity", lambda _: grpc.ChannelConnectivity.READY)
    key = "/failover/behind/value"
    cluster.put(key, "old")
    db = EtcdDatabase()
    db.configure({"nodes": ",".join(cluster.urls)})
    stop = threading.Event()
    try:
        assert db.get_values([key]) == {key: "old"}
        stale = _Stale()
        members = db._connect().members
        lagging = members[0]
        lagging.channel = grpc.intercept_channel(lagging.channel, stale)
        db._cluster._preferred = 0  # type: ignore[union-attr]
        stale.reply = etcdrpc.KVStub(lagging.channel).Txn(etcdrpc.TxnRequest(success=[
            etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=key.encode()))]))
        events = db.watch_prefix(key, [key], stop)
        cluster.put(key, "new")
        assert next(events) == {key: "new"}  # the watch saw it: older reads are wrong now
        assert db.get_values([key]) == {key: "new"}
        assert stale.served >= 1, "the lagging member was never asked"
    finally:
        stop.set()
        db.close()


def test_a_name_resolving_to_every_member_reaches_them_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hosts = ["127.0.0.1", "127.0.0.2", "::1"]
    with EtcdCluster(hosts=hosts, same_port=True) as multi:
        port = multi.members[0].port
        real = socket.getaddrinfo

        def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
            if host == "etcd.cluster.test":
                return [info for h in hosts for info in real(h, port, type=socket.SOCK_STREAM)]
            return real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        key = "/failover/dns/value"
        multi.put(key, "1")
        db = EtcdDatabase()
        db.configure({"nodes": f"http://etcd.cluster.test:{port}"})
        stop = threading.Event()
        try:
            assert db.get_values([key]) == {key: "1"}
            events = db.watch_prefix(key, [key], stop)
            multi.put(key, "2")
            assert next(events) == {key: "2"}
            carrying = [i for i in range(3) if multi.watch_streams(i)]
            assert len(carrying) == 1
            multi.kill(carrying[0])  # the address the watch used is gone: the next takes over
            multi.put(key, "3")
            assert next(events) == {key: "3"}
            assert db.get_values([key]) == {key: "3"}
        finally:
            stop.set()
            db.close()


def test_an_expired_token_is_renewed_by_reads_and_by_a_watch_moving_on() -> None:
    with EtcdCluster(extra=["--auth-token-ttl", "1"]) as secured:
        secured.enable_auth("s3cret")
        key = "/failover/auth/value"
        secured.put(key, "1")
        db = EtcdDatabase()
        db.configure({"nodes": ",".join(secured.urls), "username": "root", "password": "s3cret"})
        stop = threading.Event()
        try:
            assert db.get_values([key]) == {key: "1"}
            events = db.watch_prefix(key, [key], stop)
            secured.put(key, "2")
            assert next(events) == {key: "2"}
            members = db._connect().members
            expired = next(m.token for m in members if m.token)
            time.sleep(2.0)  # tokens live 1 s here: every member now holds an expired one
            for member in members:
                member.token = expired
            carrying = [i for i in range(3) if secured.watch_streams(i)]
            secured.kill(carrying[0])  # the watch's new stream is refused the old token
            secured.put(key, "3")
            assert next(events) == {key: "3"}
            assert db.get_values([key]) == {key: "3"}
        finally:
            stop.set()
            db.close()


def test_every_loss_of_the_member_under_a_watch_is_logged_once(
    cluster: EtcdCluster, caplog: pytest.LogCaptureFixture
) -> None:
    key = "/failover/lost-twice/value"
    cluster.put(key, "0")
    db = EtcdDatabase()
    db.configure({"nodes": ",".join(cluster.urls)})
    stop = threading.Event()
    events: list[Any] = []

    def follow() -> None:
        for item in db.watch_prefix(key, [key], stop):
            events.append(item)

    def put_and_see(value: str) -> None:
        cluster.put(key, value)
        wait_for(lambda: {key: value} in events, f"the event of {value}", timeout=10)

    try:
        db.get_values([key])
        threading.Thread(target=follow, daemon=True).start()
        put_and_see("1")
        with caplog.at_level("WARNING", logger="builtin.etcd"):
            first = watch_member(cluster)
            cluster.kill(first)  # lost once: the watch moves on
            put_and_see("2")
            cluster.start(first)
            others = [i for i in range(3) if i != first]
            for other in others:  # only the first member is left: the watch comes back to it
                cluster.kill(other)
            wait_for(lambda: cluster.watch_streams(first) == 1, "the watch back on its member",
                     timeout=10)
            for other in others:
                cluster.start(other, wait=False)
            cluster.wait_healthy()
            put_and_see("3")
            cluster.kill(first)  # lost again: news again
            put_and_see("4")
        url = cluster.members[first].url
        lost = [r.getMessage() for r in caplog.records if f"lost node {url} " in r.getMessage()]
        assert len(lost) == 2, [r.getMessage() for r in caplog.records]
    finally:
        stop.set()
        db.close()
        heal(cluster)
