"""Redis with Sentinel: confd finds the master through real Sentinels (Debian's redis-sentinel)
and follows a failover without losing a write, reloading without a change, or a noisy log.

One cluster per module (a master, a replica, three Sentinels; about 5 s to start); the fault
test SIGKILLs its master, the other tests only need the Sentinels.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from builtin.redis import RedisDatabase
from integration.harness import Daemon, confdir_with, read, wait_for
from integration.servers import RedisSentinelCluster, free_port
from plugin_sdk.database import DatabaseError

PASSWORD = "pw-MASTER-6d21"
SENTINEL_PASSWORD = "pw-SENTINEL-0b7e"


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisSentinelCluster]:
    with RedisSentinelCluster(password=PASSWORD, sentinel_password=SENTINEL_PASSWORD) as started:
        yield started


def write(cluster: RedisSentinelCluster, port: int, value: str) -> None:
    with cluster.client(port) as client:
        client.set("/fault/value", value)


def test_watch_follows_a_failover_and_loses_nothing(
    cluster: RedisSentinelCluster, tmp_path: Path
) -> None:
    master = cluster.master_port()
    assert master == cluster.master.port
    write(cluster, master, "start")
    reloads = tmp_path / "reloads"
    confdir = confdir_with(tmp_path, {"app.conf": (
        '{{ getv("/fault/value") }}\n', f'reload_cmd = "echo reload >> {reloads}"\n'
    )})  # fmt: skip
    sentinels = [arg for s in cluster.sentinels for arg in ("--node", f"127.0.0.1:{s.port}")]
    daemon = Daemon(tmp_path, [
        "--watch", "--backend", "redis", *sentinels, "--password", PASSWORD,
        "--backend-opt", f"sentinel_master={cluster.master_name}",
        "--backend-opt", f"sentinel_password={SENTINEL_PASSWORD}", "--confdir", str(confdir),
    ])  # fmt: skip
    dest = tmp_path / "out" / "app.conf"
    try:
        wait_for(lambda: read(dest) == "start\n", "the first render", daemon.log)
        wait_for(lambda: "; watching" in daemon.log(), "the watch", daemon.log)
        write(cluster, master, "before-kill")
        wait_for(lambda: read(dest) == "before-kill\n", "a change on the first master",
                 daemon.log)
        cluster.kill_master()
        new_master = cluster.wait_for_failover(master)
        write(cluster, new_master, "after-failover")
        wait_for(lambda: read(dest) == "after-failover\n", "the write to the promoted replica",
                 daemon.log, timeout=30)
        write(cluster, new_master, "after-failover")  # the same value: no change, no reload
        write(cluster, new_master, "last")
        wait_for(lambda: read(dest) == "last\n", "the last write", daemon.log)
        assert daemon.stop() == 0
    finally:
        daemon.stop()
    log = daemon.log()
    assert read(reloads).splitlines() == ["reload"] * 4, log  # start + 3 changes, no more
    where = f"master {cluster.master_name!r}"
    assert log.count(f"lost {where} at 127.0.0.1:{master} (") == 1, log
    assert log.count(f"failed over to {where} at 127.0.0.1:{new_master}") == 1, log
    assert log.count("backend 'redis'") == 2, log  # nothing else from the backend
    assert "watch on redis" not in log, log  # the daemon never saw its watch fail
    assert "Traceback" not in log and PASSWORD not in log and SENTINEL_PASSWORD not in log


def open_database(cluster: RedisSentinelCluster, **settings: str) -> RedisDatabase:
    database = RedisDatabase()
    database.configure({"nodes": cluster.nodes, "sentinel_master": cluster.master_name,
                        "password": PASSWORD, "sentinel_password": SENTINEL_PASSWORD,
                        **settings})
    return database


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"sentinel_password": "wrong"}, "authentication failed (check sentinel_password)"),
        ({"sentinel_master": "nosuch"}, "does not monitor 'nosuch'"),
        ({"password": "wrong"}, "at 127.0.0.1:{port}: authentication failed"),
    ],
)
def test_sentinel_errors_name_the_sentinel_or_master_and_cause(
    cluster: RedisSentinelCluster, settings: dict[str, str], message: str
) -> None:
    database = open_database(cluster, **settings)
    try:
        with pytest.raises(DatabaseError) as caught:
            database.get_values(["/fault"])
    finally:
        database.close()
    text = str(caught.value)
    assert message.format(port=cluster.master_port()) in text, text
    if "sentinel" in message or "monitor" in message:
        assert all(f"127.0.0.1:{s.port}: " in text for s in cluster.sentinels), text
    assert "wrong" not in text and PASSWORD not in text and SENTINEL_PASSWORD not in text


def test_no_sentinel_answering_is_one_error_naming_each() -> None:
    ports = [free_port(), free_port()]
    database = RedisDatabase()
    database.configure({"nodes": ",".join(f"127.0.0.1:{p}" for p in ports),
                        "sentinel_master": "confd-master"})
    with pytest.raises(DatabaseError, match=(
        rf"no Sentinel names a reachable master 'confd-master' \(127.0.0.1:{ports[0]}: "
        rf"ConnectionError; 127.0.0.1:{ports[1]}: ConnectionError\)"
    )):
        database.get_values(["/x"])
