"""etcd failover soak: `confd --watch` on a 3-member etcd cluster through many faults, and Go confd
(`../shared/peer/confd-go`, etcd's own Go client v3) through the same faults in the same run.

Scenarios, each run a fresh fault under one long-lived daemon while a writer puts a new value
every 50 ms (retrying through elections, as a client must):
- `leader`: SIGKILL the leader (a follower carries the daemon's watch), restart it after 2 s.
- `member`: SIGKILL the member carrying the daemon's watch (a follower), restart it after 2 s.
- `quorum`: SIGKILL two members (on even runs the watch's member and the leader, on odd runs the
  two others) for 3 s, then start both again.
- `pause`: SIGSTOP the watch's member (a follower), compact the store 1 s later, then cut its
  client connections (`ss -K`), SIGCONT it at 3 s: the watch resumes on a compacted revision.
- `lastwrite`: one write, and its leader SIGKILLed right after it; no write follows, so a daemon
  whose read after that write fails and is never retried ends stale (Go confd does).

Staleness beyond what the cluster itself imposes, per write sent after the fault: (the file
shows the value) - (the moment a client could first see it: its put acknowledged; for `pause` the
cut; for `lastwrite` the first read served after the election). Per run: `excess_first_s` for
the first such write (the failover's own cost) and `excess_s` the worst of them (also every
render, fork and reload queued behind); `first_new_s`, fault -> the file shows a value written
after the fault (`cluster_first_ack_s`: fault -> the first such put acknowledged); `recovery_s`
(quorum), the first put acknowledged after the two members restart (quorum is back) -> the file
shows it. A run `ends stale` when the file does not reach the last acknowledged value within
10 s of the writes stopping (it then counts in no timing); it is `wrong` when the file ever goes
back to an older value; `reloads_without_change` counts reload_cmd runs (it appends the file to
a log) that repeat the previous content. `ours_vs_go` holds p50/p90 differences and p50 ratios.

Run: .venv/bin/python bench/bench_failover.py [--runs 13]
     [--scenarios leader,member,quorum,pause,lastwrite]
     [--peer ../shared/peer/confd-go | --peer none] [--ours "CMD"] [--logs DIR]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import CONFD, REPO, emit, machine, summary, user_env

from integration.servers import EtcdCluster, ServerError, terminate
from testsupport.inotify import DirectoryEvents
from testsupport.peer import go_confd

KEY = "/failover/value"
PACE = 0.05  # seconds between the writer's puts
SETTLE = 10.0  # seconds the file may take to reach the last value before the run ends stale
SCENARIOS = ("leader", "member", "quorum", "pause", "lastwrite")
PEER = go_confd() or REPO.parent / "shared" / "peer" / "confd-go"  # absent: no Go column


# -- the daemons -----------------------------------------------------------------------------


@dataclass
class Daemon:
    """One daemon under test: how to start it on a confdir, and its template syntax."""

    name: str
    command: Callable[[Path, list[str]], list[str]]
    template: str

    def confdir(self, root: Path, out: Path) -> Path:
        confdir = root / f"confdir-{self.name}"
        (confdir / "conf.d").mkdir(parents=True)
        (confdir / "templates").mkdir()
        (confdir / "templates" / "value.tmpl").write_text(self.template)
        dest, reloads = out / "value.conf", out / "reloads.log"
        (confdir / "conf.d" / "value.toml").write_text(
            f'[template]\nsrc = "value.tmpl"\ndest = "{dest}"\nkeys = ["/failover"]\n'
            f'reload_cmd = "cat {dest} >> {reloads}"\n'
        )
        return confdir


def ours(prefix: list[str]) -> Daemon:
    def command(confdir: Path, urls: list[str]) -> list[str]:
        nodes = [arg for url in urls for arg in ("--node", url)]
        return [*prefix, "--watch", "--backend", "etcd", *nodes, "--confdir", str(confdir),
                "--log-level", "debug"]

    return Daemon("ours", command, 'value={{ getv("/failover/value") }}\n')


def go(binary: Path) -> Daemon:
    def command(confdir: Path, urls: list[str]) -> list[str]:
        nodes = [arg for url in urls for arg in ("-node", url)]
        return [str(binary), "-backend", "etcdv3", *nodes, "-watch", "-confdir", str(confdir),
                "-log-level", "debug"]

    return Daemon("go", command, 'value={{getv "/failover/value"}}\n')


# -- what the file showed and what the writer wrote -----------------------------------------


class FileLog(threading.Thread):
    """Every content the destination takes, with the time it appeared (inotify, no polling)."""

    def __init__(self, dest: Path) -> None:
        super().__init__(daemon=True)
        self.dest = dest
        self.seen: list[tuple[float, int]] = []
        self._events = DirectoryEvents(dest.parent)
        self._done = threading.Event()
        self.start()

    def value(self) -> int | None:
        try:
            text = self.dest.read_text()
        except FileNotFoundError:
            return None
        return int(text.strip().removeprefix("value=")) if text.startswith("value=") else None

    def run(self) -> None:
        last = None
        while not self._done.is_set():
            value = self.value()
            if value is not None and value != last:
                self.seen.append((time.monotonic(), value))
                last = value
            self._events.wait({self.dest.name}, 0.1)

    def first_at_least(self, value: int, after: float = 0.0) -> float | None:
        """When the file first showed `value` or a newer one (at or after `after`)."""
        for when, shown in self.seen:
            if shown >= value and when >= after:
                return when
        return None

    def close(self) -> None:
        self._done.set()
        self.join(1)
        self._events.close()


@dataclass
class Writer:
    """Puts increasing values every PACE seconds from its own thread; records each ack."""

    cluster: EtcdCluster
    next_value: int
    acks: list[tuple[int, float, float]] = field(default_factory=list)  # value, sent, acked
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def put(self) -> int:
        value = self.next_value
        self.next_value += 1
        sent = time.monotonic()
        self.cluster.put(KEY, f"{value:09d}", timeout=60, newer=True)
        self.acks.append((value, sent, time.monotonic()))
        return value

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.put()
            except ServerError as exc:  # a minute of failed retries: say so, keep writing
                print(f"writer: {exc}", file=sys.stderr, flush=True)
            self._stop.wait(PACE)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(70)


# -- one fault ----------------------------------------------------------------------------


def watch_member(cluster: EtcdCluster, timeout: float = 10) -> int:
    """The member serving the daemon's watch stream (only the daemon watches)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [i for i in range(len(cluster.members)) if cluster.watch_streams(i)]
        if len(found) == 1:
            return found[0]
        time.sleep(0.05)
    raise TimeoutError("no single member serves the daemon's watch")


def follower_watch(cluster: EtcdCluster) -> int:
    """The watch's member, after moving the lead elsewhere if it led."""
    member = watch_member(cluster)
    if cluster.leader() == member:
        cluster.lead((member + 1) % len(cluster.members))
    return member


def inject(cluster: EtcdCluster, scenario: str, run: int) -> dict[str, float]:
    """Make the fault; returns its moments (`fault`, and `cut`, `heal` where they apply)."""
    moments: dict[str, float] = {}
    if scenario in ("leader", "member"):
        member = follower_watch(cluster)
        victim = cluster.leader() if scenario == "leader" else member
        moments["fault"] = time.monotonic()
        cluster.kill(victim)
        time.sleep(2.0)
        moments["heal"] = time.monotonic()
        cluster.start(victim, wait=False)
    elif scenario == "quorum":
        member = watch_member(cluster)
        if run % 2 == 0:
            leader = cluster.leader()
            other = leader if leader != member else (member + 1) % 3
            victims = [member, other]
        else:
            victims = [i for i in range(3) if i != member]
        moments["fault"] = time.monotonic()
        for victim in victims:
            cluster.kill(victim)
        time.sleep(3.0)
        moments["heal"] = time.monotonic()
        for victim in victims:
            cluster.start(victim, wait=False)
    elif scenario == "pause":
        member = follower_watch(cluster)
        moments["fault"] = time.monotonic()
        cluster.pause(member)
        time.sleep(1.0)
        cluster.compact()
        time.sleep(0.2)
        moments["cut"] = time.monotonic()
        cluster.cut(member)
        time.sleep(1.8)
        moments["heal"] = time.monotonic()
        cluster.resume(member)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    cluster.wait_healthy(timeout=30)
    return moments


def readable_again(cluster: EtcdCluster, timeout: float = 20) -> float:
    """When a linearizable read succeeds again on some member (after an election)."""
    import grpc
    from pyetcd import etcdrpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for index, member in enumerate(cluster.members):
            if not member.running:
                continue
            try:
                etcdrpc.KVStub(cluster._channel(index)).Range(
                    etcdrpc.RangeRequest(key=KEY.encode()), timeout=0.05)
            except grpc.RpcError:
                continue
            return time.monotonic()
        time.sleep(0.005)
    raise TimeoutError(f"no etcd member serves a read {timeout}s after the fault")


def _clock(when: float) -> str:
    """UTC wall-clock time with milliseconds, as in a log line."""
    return time.strftime("%H:%M:%S", time.gmtime(when)) + f".{int(when * 1000) % 1000:03d}"


def measure_run(
    cluster: EtcdCluster, writer: Writer, files: FileLog, scenario: str, run: int
) -> dict[str, object]:
    before = writer.put()
    if files.first_at_least(before) is None:
        deadline = time.monotonic() + SETTLE
        while files.first_at_least(before) is None and time.monotonic() < deadline:
            time.sleep(0.01)
    seen_before = len(files.seen)
    acks_before = len(writer.acks)
    if scenario == "lastwrite":  # one write, its leader SIGKILLed at once, nothing after it
        follower_watch(cluster)
        leader = cluster.leader()
        moments = {"fault": time.monotonic()}
        writer.put()
        cluster.kill(leader)
        moments["cut"] = readable_again(cluster)  # no client reads anything before this
        time.sleep(max(0.0, moments["fault"] + 2.0 - time.monotonic()))
        cluster.start(leader, wait=False)
        cluster.wait_healthy(timeout=30)
    else:
        writer.start()
        time.sleep(0.3)
        moments = inject(cluster, scenario, run)
        time.sleep(0.5)
        writer.stop()
    last = writer.acks[-1][0]
    deadline = time.monotonic() + SETTLE
    while files.value() != last and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    fault = moments["fault"]
    visible_from = moments.get("cut", fault)
    # Puts sent after the fault: one in flight at the fault may be committed without the member
    # under the watch having it until a new leader sends it on, which no client can hurry.
    fault_writes = [a for a in writer.acks[acks_before:] if a[1] >= fault]
    excess = []
    worst: tuple[float, int, float, float] | None = None
    for value, _, acked in fault_writes:
        shown = files.first_at_least(value)
        if shown is not None:
            excess.append(max(0.0, shown - max(acked, visible_from)))
            if worst is None or excess[-1] > worst[0]:
                worst = (excess[-1], value, acked - fault, shown - fault)
    first_new = cluster_first = recovery = None
    after_fault = [a for a in writer.acks[acks_before:] if a[1] >= fault]
    if after_fault:
        cluster_first = after_fault[0][2] - fault
        shown = files.first_at_least(after_fault[0][0])
        first_new = None if shown is None else shown - fault
    if "heal" in moments and scenario == "quorum":
        after_heal = [a for a in writer.acks if a[2] >= moments["heal"]]
        if after_heal:  # quorum is back when a write is acknowledged again
            shown = files.first_at_least(after_heal[0][0])
            recovery = None if shown is None else shown - after_heal[0][2]
    shown = files.seen[seen_before:]
    backwards = [(round(t1 - fault, 3), a, round(t2 - fault, 3), b)
                 for (t1, a), (t2, b) in zip(shown, shown[1:], strict=False) if b < a]
    return {
        "excess_first": excess[0] if excess else None,
        "excess": max(excess) if excess else None,
        "first_new": first_new,
        "cluster_first_ack": cluster_first,
        "recovery": recovery,
        "stale": files.value() != last,
        "wrong": backwards or False,
        "worst": worst and tuple(round(x, 3) for x in worst),
        "at": _clock(time.time() - (time.monotonic() - fault)),  # to find it in the logs
    }


def soak(
    daemon: Daemon, cluster: EtcdCluster, scenario: str, runs: int, logs: Path | None
) -> dict[str, object]:
    """`runs` faults of one scenario under one daemon; its figures."""
    root = Path(tempfile.mkdtemp(prefix=f"confd-bench-failover-{daemon.name}-"))
    out = root / "out"
    out.mkdir()
    confdir = daemon.confdir(root, out)
    writer = Writer(cluster, next_value=1)
    cluster.put(KEY, f"{0:09d}")
    log_path = root / "daemon.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(daemon.command(confdir, cluster.urls), stdout=log,
                                   stderr=subprocess.STDOUT, env=user_env(), cwd=root)
    files = FileLog(out / "value.conf")
    results = []
    try:
        deadline = time.monotonic() + 30
        while files.value() != 0:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"{daemon.name}: no first render; log:\n{log_path.read_text()}")
            time.sleep(0.02)
        for run in range(runs):
            result = measure_run(cluster, writer, files, scenario, run)
            results.append(result)
            print(f"{daemon.name} {scenario} {run + 1}/{runs}: "
                  + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in result.items()), file=sys.stderr, flush=True)
    finally:
        terminate(process, 10)
        files.close()
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(log_path, logs / f"{daemon.name}-{scenario}.log")
        reload_lines = (out / "reloads.log").read_text().splitlines() if (
            out / "reloads.log").exists() else []
        shutil.rmtree(root, ignore_errors=True)
    repeats = sum(1 for a, b in zip(reload_lines, reload_lines[1:], strict=False) if a == b)

    def stats(name: str) -> dict[str, float | int] | None:
        samples = [r[name] for r in results if r[name] is not None]
        return summary(samples, 3) if samples else None  # type: ignore[arg-type]

    return {
        "runs": len(results),
        "excess_first_s": stats("excess_first"),
        "excess_s": stats("excess"),
        "first_new_s": stats("first_new"),
        "cluster_first_ack_s": stats("cluster_first_ack"),
        "recovery_s": stats("recovery"),
        "ended_stale": sum(1 for r in results if r["stale"]),
        "wrong": sum(1 for r in results if r["wrong"]),
        "reloads": len(reload_lines),
        "reloads_without_change": repeats,
    }


def compare(ours_: dict[str, object], go_: dict[str, object]) -> dict[str, object]:
    """Ours against Go: p50 difference and ratio of each timing."""
    found: dict[str, object] = {}
    for name in ("excess_first_s", "excess_s", "first_new_s", "recovery_s"):
        a, b = ours_.get(name), go_.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            found[name] = {
                "p50_diff": round(a["p50"] - b["p50"], 3),
                "p90_diff": round(a["p90"] - b["p90"], 3),
                "p50_ratio": round(a["p50"] / b["p50"], 2) if b["p50"] else None,
            }
    first = found.get("excess_first_s")
    if isinstance(first, dict):
        found["within_0.05s_of_go"] = first["p50_diff"] <= 0.05
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=13, help="faults per scenario and daemon")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--peer", default=str(PEER), help="Go confd binary, or 'none'")
    parser.add_argument("--ours", default=str(CONFD), help="command that runs our confd")
    parser.add_argument("--logs", type=Path, default=None, help="keep each daemon's log here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the cluster on the way out
    daemons = [ours(shlex.split(args.ours))]
    peer = Path(args.peer)
    if args.peer != "none" and peer.exists() and os.access(peer, os.X_OK):
        daemons.append(go(peer))
    figures: dict[str, object] = {"machine": machine(), "runs_per_scenario": args.runs}
    if len(daemons) == 1:
        figures["go"] = f"not measured: {args.peer} is absent"
    scenarios: dict[str, dict[str, object]] = {}
    with EtcdCluster() as cluster:
        for scenario in args.scenarios.split(","):
            per: dict[str, object] = {}
            for daemon in daemons:
                per[daemon.name] = soak(daemon, cluster, scenario, args.runs, args.logs)
            if "go" in per:
                per["ours_vs_go"] = compare(per["ours"], per["go"])  # type: ignore[arg-type]
            scenarios[scenario] = per
    figures["scenarios"] = scenarios
    emit("failover", figures)


if __name__ == "__main__":
    main()
