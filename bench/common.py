"""What the benchmarks share: percentiles, a child's wall time and peak RSS, file-replacement
events (inotify), the machine description, and confd run the way a user runs it.

Benchmarks measure and print; they never fail because a machine is slow.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

VENV_BIN = Path(sys.executable).parent
CONFD = VENV_BIN / "confd"


def summary(samples: Sequence[float], digits: int = 2) -> dict[str, float | int]:
    """Median, p90, p99, min and max of `samples` (nearest-rank percentiles)."""
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered) + 0.5) - 1))]

    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), digits),
        "p90": round(rank(0.90), digits),
        "p99": round(rank(0.99), digits),
        "min": round(ordered[0], digits),
        "max": round(ordered[-1], digits),
    }


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a confd started by a user: no CONFD_* leftovers, bytecode cached."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFD_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # pip-installed confd runs from cached bytecode
    env.update(extra)
    return env


def timed_run(cmd: Sequence[str], **popen: object) -> tuple[float, int, int]:
    """Run `cmd` to completion: (wall ms, peak RSS KiB of that child, exit status).

    `os.wait4` gives the child's own rusage; RUSAGE_CHILDREN would keep the largest child so far.
    """
    started = time.perf_counter()
    process = subprocess.Popen(cmd, **popen)  # type: ignore[call-overload]
    _, status, usage = os.wait4(process.pid, 0)
    wall = (time.perf_counter() - started) * 1000
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss, process.returncode


def rss_kib(pid: int) -> dict[str, int]:
    """Resident set size now (VmRSS) and its peak (VmHWM) of a running process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(rest.split()[0])
    return {"rss": found.get("VmRSS", 0), "peak": found.get("VmHWM", 0)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a running process has used so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, object]:
    """The machine the figures come from: cores, CPU model, RAM, OS, Python, load."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def emit(name: str, figures: dict[str, object]) -> None:
    """Print one benchmark's figures as a single JSON document on stdout."""
    print(json.dumps({"benchmark": name, **figures}, indent=2))


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """Status and body of a GET (0 and the error text when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError as exc:
        return 0, str(exc)


def prometheus_sum(text: str, metric: str) -> float:
    """Sum of every sample of `metric` (all label sets) in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(metric) and line[len(metric) : len(metric) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


class EtcdWriter:
    """A benchmark's etcd client: puts (batched in transactions of 100) and the gauges and
    counters of etcd's /metrics. `server` is an integration.servers.EtcdServer."""

    def __init__(self, server: Any) -> None:
        import grpc
        from pyetcd import etcdrpc

        self.rpc = etcdrpc
        self.url = server.url
        self.channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        self.kv = etcdrpc.KVStub(self.channel)

    def put_many(self, items: Iterable[tuple[str, str]]) -> None:
        pairs = list(items)
        for start in range(0, len(pairs), 100):
            ops = [self.rpc.RequestOp(request_put=self.rpc.PutRequest(key=k.encode(),
                                                                      value=v.encode()))
                   for k, v in pairs[start : start + 100]]
            self.kv.Txn(self.rpc.TxnRequest(success=ops), timeout=30)

    def put(self, key: str, value: str) -> None:
        self.kv.Put(self.rpc.PutRequest(key=key.encode(), value=value.encode()), timeout=10)

    def metric(self, name: str) -> float:
        status, text = http_get(f"{self.url}/metrics")
        if status != 200:
            raise SystemExit(f"etcd /metrics answered {status}")
        return prometheus_sum(text, name)

    def watches(self) -> tuple[int, int]:
        """(watch streams, watchers): gRPC Watch calls open, and key ranges watched."""
        return (int(self.metric("etcd_debugging_mvcc_watch_stream_total")),
                int(self.metric("etcd_debugging_mvcc_watcher_total")))

    def close(self) -> None:
        self.channel.close()


def wait_until(condition: object, what: str, timeout: float = 60.0, step: float = 0.02) -> float:
    """Poll `condition()` until true; seconds it took. Raises naming `what` on timeout."""
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - started
