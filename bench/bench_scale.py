"""Scale: 1,000 template resources over 10,000 etcd keys under `confd --watch`.

Measures the first full pass (start to `/ready`; the compiled-template cache starts empty),
then for single-key changes: the time until that resource's file is replaced, how many
resources were re-rendered (`confd_renders_total`;
only the dependent one should be), how many watches confd holds on etcd (etcd's own gauges
of watch streams and of watched key ranges; one per distinct prefix is the design), and the
daemon's RSS at steady state.

Run: .venv/bin/python bench/bench_scale.py [--resources 1000] [--keys-per 10] [--prefixes 20]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from common import (
    CONFD,
    EtcdWriter,
    emit,
    http_get,
    prometheus_sum,
    rss_kib,
    summary,
    user_env,
    wait_until,
)

from testsupport.inotify import DirectoryEvents

TEMPLATE = """# resource {i}
{{% for kv in gets("/r{i:04d}/*") %}}{{{{ kv.key }}}} = {{{{ kv.value }}}}
{{% endfor %}}"""


def _layout(resources: int, prefixes: int) -> list[tuple[int, str]]:
    """(resource number, its prefix): resources spread evenly over `prefixes` prefixes."""
    return [(i, f"/scale/g{i % prefixes:02d}") for i in range(resources)]


def _confdir(root: Path, out: Path, layout: list[tuple[int, str]]) -> Path:
    confdir = root / "confdir"
    (confdir / "conf.d").mkdir(parents=True)
    (confdir / "templates").mkdir()
    for i, prefix in layout:
        (confdir / "templates" / f"r{i:04d}.tmpl").write_text(TEMPLATE.format(i=i))
        (confdir / "conf.d" / f"r{i:04d}.toml").write_text(
            f'[template]\nsrc = "r{i:04d}.tmpl"\ndest = "{out}/r{i:04d}.conf"\n'
            f'prefix = "{prefix}"\nkeys = ["/r{i:04d}"]\n'
        )
    return confdir


def measure(etcd: EtcdWriter, args: argparse.Namespace) -> dict[str, object]:
    from integration.servers import free_port, terminate

    layout = _layout(args.resources, args.prefixes)
    keys = [
        (f"{prefix}/r{i:04d}/k{j}", f"value-{i}-{j}") for i, prefix in layout
        for j in range(args.keys_per)
    ]
    started = time.perf_counter()
    etcd.put_many(keys)
    load_s = time.perf_counter() - started
    streams_before, watchers_before = etcd.watches()
    with tempfile.TemporaryDirectory(prefix="confd-bench-scale-") as tmp:
        root = Path(tmp)
        out = root / "out"
        out.mkdir()
        confdir = _confdir(root, out, layout)
        metrics = f"127.0.0.1:{free_port()}"
        log_path = root / "confd.log"
        cmd = [str(CONFD), "--watch", "--confdir", str(confdir), "--log-level", "warning",
               "--backend", "etcd", "--node", etcd.url, "--metrics-addr", metrics]
        started = time.perf_counter()
        with open(log_path, "w") as log:
            confd = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     env=user_env(CONFD_CACHE_DIR=str(root / "cache")))
        try:
            try:
                wait_until(lambda: http_get(f"http://{metrics}/ready", 1)[0] == 200,
                           "the first full pass (/ready)", timeout=300, step=0.05)
            except TimeoutError as exc:
                raise SystemExit(f"{exc}; confd's log:\n{log_path.read_text()[-3000:]}") from None
            first_pass_s = time.perf_counter() - started
            rendered = len(list(out.glob("r*.conf")))
            time.sleep(1.0)
            streams, watchers = etcd.watches()
            streams, watchers = streams - streams_before, watchers - watchers_before
            steady = rss_kib(confd.pid)
            events = DirectoryEvents(out)
            latencies, rerenders, missed = [], [], 0
            step = max(1, args.resources // args.changes)
            for n in range(args.changes):
                i, prefix = layout[(n * step + 7) % len(layout)]
                name, value = f"r{i:04d}.conf", f"changed-{n}"
                before = prometheus_sum(http_get(f"http://{metrics}/metrics")[1],
                                        "confd_renders_total")
                started = time.perf_counter()
                etcd.put(f"{prefix}/r{i:04d}/k3", value)
                deadline, seen = time.monotonic() + 10, False
                while not seen and events.wait({name}, deadline - time.monotonic()):
                    seen = value in (out / name).read_text()
                if not seen:
                    missed += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.3)  # any unrelated re-render would show up by now
                after = prometheus_sum(http_get(f"http://{metrics}/metrics")[1],
                                       "confd_renders_total")
                rerenders.append(int(after - before))
            events.close()
            memory = rss_kib(confd.pid)
        finally:
            terminate(confd, 15)
    return {
        "resources": args.resources,
        "keys": len(keys),
        "distinct_prefixes": len({prefix for _, prefix in layout}),
        "etcd_load_s": round(load_s, 2),
        "first_pass_s": round(first_pass_s, 2),
        "files_after_first_pass": rendered,
        "etcd_watch_streams_held": streams,
        "etcd_watchers_held": watchers,
        "one_key_change_ms": summary(latencies) if latencies else None,
        "changes": args.changes,
        "missed": missed,
        "rerendered_per_change": {"min": min(rerenders, default=0),
                                  "max": max(rerenders, default=0)},
        "daemon_rss_mib": {"after_first_pass": round(steady["rss"] / 1024, 1),
                           "after_changes": round(memory["rss"] / 1024, 1),
                           "peak": round(memory["peak"] / 1024, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resources", type=int, default=1000)
    parser.add_argument("--keys-per", type=int, default=10)
    parser.add_argument("--prefixes", type=int, default=20)
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    from integration.servers import EtcdServer

    with EtcdServer() as server:
        etcd = EtcdWriter(server)
        try:
            figures = measure(etcd, args)
        finally:
            etcd.close()
    emit("scale", figures)


if __name__ == "__main__":
    main()
