"""Fault injection: confd keeps working and loses nothing when its servers, plugins or itself
are killed.

- A server down at start: `--onetime` fails naming the node, `--watch` retries until it is up;
  a server restarted mid-watch is reconnected to (each test has its own server, so stopping
  it disturbs nothing else).
- etcd and Redis are SIGKILLed and restarted 20 times under one confd (one resource on each):
  the value written right after each restart, while confd is still reconnecting, is rendered.
- A database plugin is SIGKILLed mid-watch, repeatedly: it is restarted, the watch resumes and
  the next change is rendered.
- SIGTERM lands during bursts of renders of large files, many times: every destination holds a
  whole version (old or new), never a torn one, and no stage file is left.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from integration.consul_double import ConsulDouble
from integration.harness import EXPECT, KEYS, Confd, Daemon, confdir_with, read, wait_for
from integration.servers import EtcdServer, RedisServer, ZooKeeperServer, free_port
from integration.stores import (
    NATIVE_WATCH,
    SERVERS,
    ConsulStore,
    EtcdStore,
    RedisStore,
    Store,
    VaultStore,
    ZooKeeperStore,
)
from integration.vault_double import VaultDouble
from testsupport.plugins import install


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
    elif request.param == "zookeeper":
        server = zk = ZooKeeperServer()
        store = ZooKeeperStore(zk)
    elif request.param == "vault":
        server = vault = VaultDouble()
        vault.port = free_port()
        store = VaultStore(vault)
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
    confd.wait_watching()
    server.restart()
    store.load({**KEYS, "/database/host": "10.7.7.7"})  # Redis keeps no data across restarts
    wait_for(lambda: "host=10.7.7.7\n" in read(basic), "render after restart", confd.log, 40)
    assert process.poll() is None, confd.log()


@pytest.mark.parametrize("fresh", NATIVE_WATCH, indirect=True)  # a polled backend never watches
def test_watch_raises_database_error_when_the_server_goes_away(
    fresh: tuple[Server, Store],
) -> None:
    import threading

    from confd.backends.registry import default_registry
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


# -- repeated kills under a running confd ----------------------------------------------------

CYCLES = 20


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop()


def kill_and_restart(server: EtcdServer | RedisServer) -> None:
    """SIGKILL the server (no goodbye to clients) and start it again on the same port."""
    process = server.process
    assert process is not None, f"{server.name} is not running"
    process.kill()
    process.wait()
    server.process = None
    server.start()


@pytest.fixture
def killable_etcd() -> Iterator[EtcdServer]:
    """A private etcd (this test kills it; the session one is shared)."""
    with EtcdServer() as server:
        yield server


@pytest.fixture
def killable_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def test_server_restarts_lose_no_update(
    tmp_path: Path, killable_etcd: EtcdServer, killable_redis: RedisServer, daemons: list[Daemon]
) -> None:
    etcd, rds = EtcdStore(killable_etcd), RedisStore(killable_redis)
    etcd.load({"/fault/value": "etcd-start"})
    rds.load({"/fault/value": "redis-start"})
    confdir = confdir_with(tmp_path, {
        "etcd.conf": ('{{ getv("/fault/value") }}\n', ""),
        "redis.conf": ('{{ getv("/fault/value") }}\n',
                       f'[backend]\nname = "redis"\nnodes = ["127.0.0.1:{killable_redis.port}"]\n'),
    })  # fmt: skip
    # 200ms: the subject is lost updates, not the back-off (--watch-error-backoff is 2s)
    daemon = Daemon(tmp_path, ["--watch", "--backend", "etcd", "--node", killable_etcd.url,
                               "--confdir", str(confdir), "--watch-error-backoff", "200ms"])
    daemons.append(daemon)
    etcd_dest, redis_dest = tmp_path / "out" / "etcd.conf", tmp_path / "out" / "redis.conf"
    wait_for(lambda: read(etcd_dest) == "etcd-start\n" and read(redis_dest) == "redis-start\n",
             "the first render", daemon.log, 20, step=0.02)

    started = time.monotonic()
    lost: list[str] = []
    for cycle in range(1, CYCLES + 1):
        kill_and_restart(killable_etcd)
        kill_and_restart(killable_redis)  # no persistence: the restarted Redis is empty
        etcd.set("/fault/value", f"etcd-{cycle}")
        rds.set("/fault/value", f"redis-{cycle}")
        try:
            wait_for(lambda c=cycle: read(etcd_dest) == f"etcd-{c}\n"  # type: ignore[misc]
                     and read(redis_dest) == f"redis-{c}\n", f"cycle {cycle}", timeout=20,
                     step=0.02)
        except AssertionError:
            lost.append(f"cycle {cycle}: etcd.conf={read(etcd_dest)!r} "
                        f"redis.conf={read(redis_dest)!r}")
            break
    elapsed = time.monotonic() - started
    assert not lost, f"lost updates: {lost}; confd log tail:\n{daemon.log()[-6000:]}"
    assert daemon.process.poll() is None, f"confd exited; log:\n{daemon.log()[-6000:]}"
    print(f"{CYCLES} kill/restart cycles of etcd and Redis in {elapsed:.1f}s, 0 lost updates")
    assert "Traceback" not in daemon.log()
    assert daemon.stop() == 0


def plugin_pids(parent: int) -> list[int]:
    """PIDs of `confd-database-*` children of `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"confd-database-" in cmdline:
            found.append(int(entry.name))
    return found


def test_killed_plugin_is_restarted_and_next_change_rendered(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    plugins = tmp_path / "plugins"
    install(plugins, "jsonfile.py", "jsonfile")
    store = tmp_path / "store.json"

    def write(value: str) -> None:
        staged = store.with_suffix(".tmp")
        staged.write_text(json.dumps({"/fault/value": value}))
        os.replace(staged, store)

    write("start")
    confdir = confdir_with(tmp_path, {"app.conf": ('{{ getv("/fault/value") }}\n', "")})
    daemon = Daemon(tmp_path, ["--watch", "--backend", "jsonfile", "--plugin-dir", str(plugins),
                               "--backend-opt", f"path={store}", "--confdir", str(confdir)])
    daemons.append(daemon)
    dest = tmp_path / "out" / "app.conf"
    wait_for(lambda: read(dest) == "start\n", "the first render", daemon.log, 20, step=0.02)
    for cycle in range(1, 4):
        pids = plugin_pids(daemon.process.pid)
        assert len(pids) == 1, f"expected one plugin process, found {pids}"
        os.kill(pids[0], signal.SIGKILL)
        wait_for(lambda old=pids[0]: plugin_pids(daemon.process.pid) not in ([], [old]),  # type: ignore[misc]
                 f"plugin restart {cycle}", lambda: daemon.log()[-4000:], 20, step=0.02)
        write(f"after-kill-{cycle}")
        wait_for(lambda c=cycle: read(dest) == f"after-kill-{c}\n",  # type: ignore[misc]
                 f"render after kill {cycle}", lambda: daemon.log()[-4000:], 20, step=0.02)
    assert daemon.process.poll() is None
    assert "restarted" in daemon.log()
    assert daemon.stop() == 0
    assert plugin_pids(daemon.process.pid) == []


FILES = 12
SIZE = 256 * 1024
BURST_RUNS = 12
_VERSION = re.compile(r"\Abegin (\d+)\n(x+)\nend (\d+)\n\Z")


def test_sigterm_during_bursts_never_leaves_a_torn_file(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"

    def write(version: int) -> None:
        staged = values.with_suffix(".tmp")
        staged.write_text(f'fault:\n  value: "{version}"\n')
        os.replace(staged, values)

    template = (
        'begin {{ getv("/fault/value") }}\n' + "x" * SIZE
        + '\nend {{ getv("/fault/value") }}\n'
    )
    confdir = confdir_with(tmp_path, {f"f{i}.conf": (template, "") for i in range(FILES)})
    out = tmp_path / "out"
    interrupted = 0  # runs stopped before every file reached the burst's last version
    for run in range(BURST_RUNS):
        write(run * 100)
        daemon = Daemon(tmp_path, ["--watch", "--backend", "file", "--file", str(values),
                                   "--confdir", str(confdir)])
        try:
            wait_for(lambda r=run: all(  # type: ignore[misc]
                read(out / f"f{i}.conf").startswith(f"begin {r * 100}\n") for i in range(FILES)
            ), f"the start of run {run}", lambda d=daemon: d.log()[-3000:], 30, step=0.02)
            for step in range(1, 6):
                write(run * 100 + step)
                time.sleep(0.01 * (run % 4))
            time.sleep(0.005 * run)
            status = daemon.stop()
        finally:
            if daemon.process.poll() is None:
                daemon.process.kill()
                daemon.process.wait()
        assert status == 0, f"run {run}: confd exited {status}; log:\n{daemon.log()[-3000:]}"
        versions = set()
        for i in range(FILES):
            text = read(out / f"f{i}.conf")
            match = _VERSION.match(text)
            assert match, f"run {run}: f{i}.conf is torn ({len(text)} bytes)"
            assert match.group(1) == match.group(3) and len(match.group(2)) == SIZE
            assert run * 100 <= int(match.group(1)) <= run * 100 + 5
            versions.add(int(match.group(1)))
        interrupted += versions != {run * 100 + 5}
        leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
        assert leftovers == [], f"run {run}: stage files left after SIGTERM: {leftovers}"
    print(f"SIGTERM during bursts: {BURST_RUNS} runs, {interrupted} stopped mid-burst, "
          f"{FILES * BURST_RUNS} files whole")
