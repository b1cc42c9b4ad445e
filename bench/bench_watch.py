"""Watch latency: a value put in the store until the destination file shows it (`confd --watch`),
through etcd, Redis, and etcd served out of process as a plugin (`--isolate`); p50/p90/p99.
`etcd-tmpfs` is etcd with its data directory on tmpfs (/dev/shm): etcd fsyncs its WAL before
it answers a put, so on a disk part of every figure is the disk's flush, not confd.

Each change waits for its file before the next is made, so no two changes coalesce. The time
includes the store client's write round trip (`put_ms` shows it alone).

Run: .venv/bin/python bench/bench_watch.py [--changes 150]
     [--stores etcd,etcd-tmpfs,redis,etcd-plugin]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import CONFD, emit, rss_kib, summary, user_env, wait_until

from testsupport.inotify import DirectoryEvents

KEY = "/bench/watch/value"
Writer = Callable[[str, str], None]


def _etcd_writer(port: int) -> tuple[Writer, Callable[[], None]]:
    import grpc
    from pyetcd import etcdrpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    kv = etcdrpc.KVStub(channel)

    def put(key: str, value: str) -> None:
        kv.Put(etcdrpc.PutRequest(key=key.encode(), value=value.encode()), timeout=10)

    return put, channel.close


def _redis_writer(port: int) -> tuple[Writer, Callable[[], None]]:
    import redis

    client = redis.Redis(port=port, socket_timeout=10)
    return client.set, client.close


def _confdir(root: Path, out: Path) -> Path:
    confdir = root / "confdir"
    (confdir / "conf.d").mkdir(parents=True)
    (confdir / "templates").mkdir()
    (confdir / "templates" / "watch.tmpl").write_text('{{ getv("/bench/watch/value") }}\n')
    (confdir / "conf.d" / "watch.toml").write_text(
        f'[template]\nsrc = "watch.tmpl"\ndest = "{out}/watch.conf"\nkeys = ["/bench/watch"]\n'
    )
    return confdir


def _etcd_server(tmpfs: bool):  # -> integration.servers.EtcdServer
    """An etcd for the benchmark; with `tmpfs`, its data directory lives in /dev/shm."""
    from integration.servers import EtcdServer

    class TmpfsEtcd(EtcdServer):
        def __init__(self) -> None:
            super().__init__()
            self.data = Path(tempfile.mkdtemp(prefix="confd-bench-etcd-", dir="/dev/shm"))

        def command(self) -> list[str]:
            cmd = super().command()
            cmd[cmd.index("--data-dir") + 1] = str(self.data / "data")
            return cmd

        def cleanup(self) -> None:
            super().cleanup()
            shutil.rmtree(self.data, ignore_errors=True)

    return TmpfsEtcd() if tmpfs else EtcdServer()


def measure(name: str, args: list[str], put: Writer, changes: int) -> dict[str, object]:
    """Start `confd --watch` with `args`, make `changes` changes, and time each one."""
    from integration.servers import terminate

    with tempfile.TemporaryDirectory(prefix=f"confd-bench-watch-{name}-") as tmp:
        root = Path(tmp)
        out = root / "out"
        out.mkdir()
        dest = out / "watch.conf"
        put(KEY, "v0")
        log_path = root / "confd.log"
        cmd = [str(CONFD), "--watch", "--confdir", str(_confdir(root, out)),
               "--log-level", "warning", *args]
        with open(log_path, "w") as log:
            confd = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     env=user_env(CONFD_CACHE_DIR=str(root / "cache")))
        try:
            try:
                wait_until(lambda: dest.exists() and dest.read_text() == "v0\n",
                           f"{name}: first render of {dest}", timeout=60)
            except TimeoutError as exc:
                raise SystemExit(f"{exc}; confd's log:\n{log_path.read_text()[-3000:]}") from None
            time.sleep(0.5)  # let the watch settle after the first pass
            events = DirectoryEvents(out)
            latencies, after_put, puts, missed = [], [], [], 0
            for i in range(1, changes + 1):
                value = f"v{i}"
                started = time.perf_counter()
                put(KEY, value)
                written = time.perf_counter()
                puts.append((written - started) * 1000)
                deadline, seen = time.monotonic() + 5, False
                while not seen and events.wait({"watch.conf"}, deadline - time.monotonic()):
                    seen = dest.read_text() == value + "\n"
                if seen:
                    now = time.perf_counter()
                    latencies.append((now - started) * 1000)
                    after_put.append((now - written) * 1000)
                else:
                    missed += 1
                time.sleep(0.01)
            events.close()
            memory = rss_kib(confd.pid)
        finally:
            terminate(confd, 10)
    return {
        "changes": changes,
        "missed": missed,
        "latency_ms": summary(latencies) if latencies else None,
        "after_put_returned_ms": summary(after_put) if after_put else None,
        "put_ms": summary(puts),
        "daemon_rss_mib": round(memory["rss"] / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=150)
    parser.add_argument("--stores", default="etcd,etcd-tmpfs,redis,etcd-plugin")
    args = parser.parse_args()
    from integration.servers import RedisServer

    wanted = args.stores.split(",")
    results: dict[str, object] = {}
    servers: list[object] = []
    try:
        # (etcd data on tmpfs?, [(store name, extra confd flags)])
        for tmpfs, runs in ((False, [("etcd", []), ("etcd-plugin", ["--isolate"])]),
                            (True, [("etcd-tmpfs", [])])):
            runs = [(name, extra) for name, extra in runs if name in wanted]
            if not runs:
                continue
            etcd = _etcd_server(tmpfs)
            servers.append(etcd)
            etcd.start()
            put, close = _etcd_writer(etcd.port)
            try:
                for name, extra in runs:
                    results[name] = measure(
                        name, ["--backend", "etcd", "--node", etcd.url, *extra],
                        put, args.changes,
                    )
            finally:
                close()
        if "redis" in wanted:
            server = RedisServer()
            servers.append(server)
            server.start()
            put, close = _redis_writer(server.port)
            try:
                results["redis"] = measure(
                    "redis", ["--backend", "redis", "--node", f"127.0.0.1:{server.port}"],
                    put, args.changes,
                )
            finally:
                close()
    finally:
        for server in servers:
            server.cleanup()  # type: ignore[attr-defined]
    emit("watch", {"stores": results})


if __name__ == "__main__":
    main()
