"""confd --watch on a 3-server ZooKeeper ensemble: the leader is killed and later a second
member, the session moves to a live server, and the file ends current with a reload for each
real change only (a reload_cmd counts them), as the etcd and Redis Sentinel fault tests do."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from integration.servers import ZooKeeperServer, wait_serving
from testsupport.daemon_process import Confdir, ConfdProcess, read, wait_until


@pytest.fixture(scope="module")
def ensemble() -> Iterator[list[ZooKeeperServer]]:
    members = ZooKeeperServer.ensemble(3)
    try:
        for member in members:
            member.start(wait=False)
        wait_serving(members)
        yield members
    finally:
        for member in members:
            member.cleanup()


def put(client: KazooClient, key: str, value: str) -> None:
    if client.exists(key):
        client.set(key, value.encode())
    else:
        client.create(key, value.encode(), makepath=True)


def test_watch_follows_the_ensemble_through_losing_its_leader(
    ensemble: list[ZooKeeperServer], tmp_path: Path
) -> None:
    nodes = [m.address for m in ensemble]
    writer = KazooClient(hosts=",".join(nodes))
    writer.start(20)
    put(writer, "/ens/value", "0")
    confdir, reloads = Confdir(tmp_path), tmp_path / "reloads"
    dest = confdir.resource("value.conf", 'value={{ getv("/ens/value") }}\n', ["/ens"],
                            reload_cmd=f'"echo reload >> {reloads}"')
    args = ["--watch", "--backend", "zookeeper", "--confdir", str(confdir.confdir)]
    for node in nodes:
        args += ["--node", node]
    proc = ConfdProcess(args)
    try:
        wait_until(lambda: read(dest) == "value=0\n", 30, lambda: proc.log)
        leader = next(m for m in ensemble if "Mode: leader" in m.four_letter("srvr"))
        leader.stop()
        writer.retry(put, writer, "/ens/value", "1")  # written once a new leader serves
        wait_until(lambda: read(dest) == "value=1\n", 40, lambda: proc.log)
        put(writer, "/ens/value", "1")  # the same value again: no reload
        writer.retry(put, writer, "/ens/value", "2")
        wait_until(lambda: read(dest) == "value=2\n", 30, lambda: proc.log)
        leader.start(wait=False)  # back as a follower; the ensemble has all three again
        wait_serving(ensemble)
        writer.retry(put, writer, "/ens/value", "3")
        wait_until(lambda: read(dest) == "value=3\n", 30, lambda: proc.log)
        time.sleep(1.0)  # any late, spurious render would show up now
        assert read(dest) == "value=3\n"
        assert (read(reloads) or "").count("reload") == 4, proc.log  # 0, 1, 2, 3
        assert proc.proc.poll() is None, proc.log
        assert "Traceback" not in proc.log
    finally:
        proc.kill()
        writer.stop()
        writer.close()
