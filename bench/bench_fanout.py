"""Fan-out at scale (issue #13), side by side with Go confd: 1,000 resources on 20 shared etcd
prefixes, each reading its whole prefix (the workload is described in testsupport/fanout.py).

For confd (Jinja templates) and, when `../shared/peer/confd-go` exists, Go confd (the same
templates in Go syntax, `-watch -backend etcdv3`) on the same etcd, one after the other:

- first full render: start to every one of the 1,000 files moved into place (inotify). In each
  of `--rounds` rounds, one after the other: confd with an empty compiled-template cache (cold),
  confd again with the cache it left (warm), the same for confd on the Go templates, and Go
  confd; the median of each is the figure, every run is listed beside it. Each start renders
  into an empty folder: the files of the start before are moved aside, not deleted (on this
  machine's ext4, creating files soon after deleting thousands costs the kernel several times
  as much, which would tax whichever run came next);
- a change read by one resource (one of its own keys) and by 50 (its prefix's shared key): the
  time from the put to every dependent file replaced with the new value, p50/p99;
- CPU per change (the daemon's user + system time over the changes, settling included, divided
  by their number; its idle rate is reported beside it), etcd range operations per change
  (`etcd_mvcc_range_total`, ranges inside transactions included);
- etcd watchers and watch streams held, the daemon's RSS after the changes;
- ratios ours / Go for each figure.

Run: .venv/bin/python bench/bench_fanout.py [--resources 1000] [--prefixes 20] [--changes 20]
     [--rounds 3] [--peer PATH|none]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from common import (
    CONFD,
    REPO,
    EtcdWriter,
    cpu_seconds,
    emit,
    rss_kib,
    summary,
    user_env,
)

from testsupport.fanout import Resource, expected, layout, values, write_confdir
from testsupport.inotify import DirectoryEvents
from testsupport.peer import go_confd

PEER = go_confd() or REPO.parent / "shared" / "peer" / "confd-go"  # absent: no Go column
SETTLE_S = 0.3  # after each change: renders of other resources (Go re-renders the prefix) end


class Daemon:
    """One confd (ours or Go's) under measurement: started, sampled and always stopped."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.cmd, self.env, self.log = list(cmd), env, log
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.started = time.perf_counter()
            self.process = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{self.cmd[0]} exited {self.process.returncode}; its log:\n{tail}")

    def stop(self) -> None:
        from integration.servers import terminate

        if self.process is not None:
            terminate(self.process, 15)
            self.process = None


def first_render(daemon: Daemon, out: Path, resources: list[Resource],
                 data: dict[str, str]) -> float:
    """Start `daemon` and return the seconds until every file was moved into place, right."""
    names = {f"{r.name}.conf": r for r in resources}
    events = DirectoryEvents(out)
    try:
        daemon.start()
        missing = events.wait_all(set(names), 600)
        took = time.perf_counter() - daemon.started
    finally:
        events.close()
    daemon.alive()
    if missing:
        raise SystemExit(f"{len(missing)} files never rendered, e.g. {sorted(missing)[:3]}")
    wrong = [n for n, r in names.items() if (out / n).read_text() != expected(r, data)]
    if wrong:
        raise SystemExit(f"{len(wrong)} files differ from the expected output, e.g. {wrong[:3]}")
    return took


class Side(NamedTuple):
    """One daemon under comparison: its name, how to start it (into an output folder, with a
    compiled-template cache folder, or None: Go confd has none) and where it writes."""

    name: str
    make: Callable[[Path, Path | None], Daemon]
    out: Path
    cached: bool


def aside(out: Path) -> None:
    """Leave `out` empty for the next start: its files move to a sibling folder (deleted with
    the work directory at the end), so no start pays for the deletions of another."""
    n = 0
    while out.with_name(f"{out.name}.{n}").exists():
        n += 1
    out.rename(out.with_name(f"{out.name}.{n}"))
    out.mkdir()


def first_renders(sides: Sequence[Side], root: Path, resources: list[Resource],
                  data: dict[str, str], rounds: int) -> dict[str, dict[str, list[float]]]:
    """Time every side's first render, round by round (cold then warm for confd); returns the
    seconds of each run by side and kind. The last warm cache is left for the changes."""
    runs: dict[str, dict[str, list[float]]] = {side.name: {} for side in sides}
    for n in range(rounds):
        for side in sides:
            cache = root / f"cache-{side.name}-{n}" if side.cached else None
            for kind in ("cold", "warm") if side.cached else ("first",):
                daemon = side.make(side.out, cache)
                try:
                    took = first_render(daemon, side.out, resources, data)
                finally:
                    daemon.stop()
                runs[side.name].setdefault(kind, []).append(round(took, 3))
                aside(side.out)
    return runs


def changes(daemon: Daemon, etcd: EtcdWriter, out: Path, data: dict[str, str],
            picks: list[tuple[str, list[Resource]]], tag: str) -> dict[str, Any]:
    """Put each (key, dependents) of `picks` in turn; time until every dependent file holds the
    new value. Also CPU and etcd range operations per change."""
    latencies: list[float] = []
    missed = 0
    events = DirectoryEvents(out)
    ranges_before = etcd.metric("etcd_mvcc_range_total")
    cpu_before, wall_before = daemon.cpu(), time.perf_counter()
    try:
        for n, (key, dependents) in enumerate(picks):
            value = f"{tag}-{n}"
            data[key] = value
            files = {f"{r.name}.conf": r for r in dependents}

            def done(name: str, files: dict[str, Resource] = files) -> bool:
                return (out / name).read_text() == expected(files[name], data)

            started = time.perf_counter()
            etcd.put(key, value)
            left = events.wait_all(set(files), 30, done)
            if left:
                missed += 1
            else:
                latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(SETTLE_S)
    finally:
        events.close()
    daemon.alive()
    cpu = daemon.cpu() - cpu_before
    wall = time.perf_counter() - wall_before
    ranges = etcd.metric("etcd_mvcc_range_total") - ranges_before
    return {
        "changes": len(picks),
        "missed": missed,
        "latency_ms": summary(latencies) if latencies else None,
        "cpu_ms_per_change": round(cpu * 1000 / len(picks), 1),
        "wall_s": round(wall, 2),
        "etcd_ranges_per_change": round(ranges / len(picks), 1),
    }


def idle_cpu(daemon: Daemon, seconds: float = 3.0) -> float:
    """The daemon's CPU while nothing changes, in ms per second."""
    before = daemon.cpu()
    time.sleep(seconds)
    return round((daemon.cpu() - before) * 1000 / seconds, 2)


def measure(side: Side, etcd: EtcdWriter, resources: list[Resource], data: dict[str, str],
            cache: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    """One daemon after its first render (untimed here: `first_renders` times it): watchers,
    RSS and idle CPU, then changes read by 1 and by 50 resources."""
    figures: dict[str, Any] = {}
    streams_before, watchers_before = etcd.watches()
    daemon = side.make(side.out, cache)
    try:
        first_render(daemon, side.out, resources, data)
        time.sleep(1.0)
        streams, watchers = etcd.watches()
        figures["etcd_watch_streams"] = streams - streams_before
        figures["etcd_watchers"] = watchers - watchers_before
        figures["rss_after_first_render_mib"] = round(rss_kib(daemon.pid)["rss"] / 1024, 1)
        figures["idle_cpu_ms_per_s"] = idle_cpu(daemon)
        by_prefix: dict[str, list[Resource]] = {}
        for r in resources:
            by_prefix.setdefault(r.prefix, []).append(r)
        step = max(1, len(resources) // args.changes)
        one = [(resources[(n * step + 7) % len(resources)].own_key(3),
                [resources[(n * step + 7) % len(resources)]]) for n in range(args.changes)]
        prefixes = sorted(by_prefix)
        fifty = [(f"{prefixes[n % len(prefixes)]}/shared", by_prefix[prefixes[n % len(prefixes)]])
                 for n in range(args.changes)]
        figures["one_dependent"] = changes(daemon, etcd, side.out, data, one, f"{side.name}-one")
        figures["fifty_dependents"] = changes(daemon, etcd, side.out, data, fifty,
                                              f"{side.name}-fifty")
        figures["dependents_of_shared_key"] = len(fifty[0][1])
        memory = rss_kib(daemon.pid)
        figures["rss_mib"] = round(memory["rss"] / 1024, 1)
        figures["peak_rss_mib"] = round(memory["peak"] / 1024, 1)
    finally:
        daemon.stop()
    return figures


def with_first_renders(figures: dict[str, Any], runs: dict[str, list[float]]) -> dict[str, Any]:
    """`figures` headed by the first-render medians (`first_render_cold_s` and `_warm_s` for
    confd, `first_render_s` for Go confd) and every run's time."""
    names = {"cold": "first_render_cold_s", "warm": "first_render_warm_s",
             "first": "first_render_s"}
    head: dict[str, Any] = {names[kind]: round(statistics.median(times), 2)
                            for kind, times in runs.items()}
    head["first_render_runs_s"] = runs
    return {**head, **figures}


def ratios(ours: dict[str, Any], go: dict[str, Any]) -> dict[str, float | None]:
    """ours / Go for each compared figure (None when a side is missing)."""

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    def p(side: dict[str, Any], kind: str, q: str) -> float | None:
        latency = side[kind]["latency_ms"]
        return latency[q] if latency else None

    return {
        "first_render_cold": ratio(ours["first_render_cold_s"], go["first_render_s"]),
        "first_render_warm": ratio(ours["first_render_warm_s"], go["first_render_s"]),
        "fifty_p50": ratio(p(ours, "fifty_dependents", "p50"), p(go, "fifty_dependents", "p50")),
        "fifty_p99": ratio(p(ours, "fifty_dependents", "p99"), p(go, "fifty_dependents", "p99")),
        "fifty_cpu": ratio(ours["fifty_dependents"]["cpu_ms_per_change"],
                           go["fifty_dependents"]["cpu_ms_per_change"]),
        "one_p50": ratio(p(ours, "one_dependent", "p50"), p(go, "one_dependent", "p50")),
        "one_p99": ratio(p(ours, "one_dependent", "p99"), p(go, "one_dependent", "p99")),
        "one_cpu": ratio(ours["one_dependent"]["cpu_ms_per_change"],
                         go["one_dependent"]["cpu_ms_per_change"]),
        "rss": ratio(ours["rss_mib"], go["rss_mib"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resources", type=int, default=1000)
    parser.add_argument("--prefixes", type=int, default=20)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="first renders of each kind")
    parser.add_argument("--peer", default=str(PEER), help="Go confd binary, or 'none'")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    from integration.servers import EtcdServer, free_port

    resources = layout(args.resources, args.prefixes)
    data = values(resources)
    peer = Path(args.peer) if args.peer != "none" else None
    if peer is not None and not peer.exists():
        peer = None
    root = Path(tempfile.mkdtemp(prefix="confd-bench-fanout-"))
    results: dict[str, Any] = {
        "resources": len(resources), "prefixes": args.prefixes, "keys": len(data),
        "peer": str(peer) if peer else "absent",
    }
    try:
        with EtcdServer() as server:
            etcd = EtcdWriter(server)
            try:
                started = time.perf_counter()
                etcd.put_many(data.items())
                results["etcd_load_s"] = round(time.perf_counter() - started, 2)
                time.sleep(2.0)  # etcd's own work after the load is not the first render's
                def confd(name: str, go: bool) -> Side:
                    """confd --watch on a confdir of its own (Go templates: Go confd's very
                    confdir, as a Go confd user switching runs it)."""
                    out = root / f"out-{name}"
                    confdir = write_confdir(root / name, out, resources, go=go)

                    def start(out: Path, cache: Path | None) -> Daemon:
                        cmd = [str(CONFD), "--watch", "--confdir", str(confdir), "--backend",
                               "etcd", "--node", etcd.url, "--log-level", "warning",
                               "--metrics-addr", f"127.0.0.1:{free_port()}"]
                        env = user_env(CONFD_CACHE_DIR=str(cache))
                        return Daemon(cmd, env, root / f"{name}.log")

                    out.mkdir()
                    return Side(name, start, out, cached=True)

                sides = [confd("ours", go=False), confd("ours-go", go=True)]
                if peer is not None:
                    go_dir = write_confdir(root / "go", root / "out-go", resources, go=True)

                    def go(out: Path, cache: Path | None) -> Daemon:
                        cmd = [str(peer), "-watch", "-backend", "etcdv3", "-node", etcd.url,
                               "-confdir", str(go_dir), "-config-file",
                               str(go_dir / "confd.toml"), "-log-level", "warn"]
                        return Daemon(cmd, user_env(), root / "go.log")

                    (root / "out-go").mkdir()
                    sides.append(Side("go", go, root / "out-go", cached=False))
                runs = first_renders(sides, root, resources, data, args.rounds)
                keys = {"ours": "ours", "ours-go": "ours_go_templates", "go": "go"}
                for side in sides:
                    cache = root / f"cache-{side.name}-{args.rounds - 1}" if side.cached else None
                    results[keys[side.name]] = with_first_renders(
                        measure(side, etcd, resources, data, cache, args), runs[side.name])
                if peer is not None:
                    results["ours_over_go"] = ratios(results["ours"], results["go"])
                    results["ours_go_templates_over_go"] = ratios(
                        results["ours_go_templates"], results["go"])
            finally:
                etcd.close()
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    emit("fanout", results)


if __name__ == "__main__":
    main()
