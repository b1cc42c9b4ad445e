"""The whole benchmark suite: runs each bench_*.py as its own process (so one's imports and
memory never colour another's), prints each one's JSON, then a table against the targets of
issue #6, the fan-out figures of issue #13 beside Go confd's with their ratios, and writes
bench/results.json.

Run: bench/run [--only startup,plugin,watch,scale,syntax,failover,fanout] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import REPO, machine

BENCH = REPO / "bench"
# name -> (script, arguments, arguments with --quick)
SUITE: dict[str, tuple[str, list[str], list[str]]] = {
    "startup": ("bench_startup.py", ["--runs", "15", "--wheel", "--instructions"],
                ["--runs", "10"]),
    "plugin": ("bench_plugin.py", ["--spawns", "10", "--runs", "15"], ["--spawns", "5"]),
    "watch": ("bench_watch.py", ["--changes", "150"], ["--changes", "100"]),
    "scale": ("bench_scale.py", ["--changes", "30"], ["--changes", "10"]),
    "syntax": ("bench_syntax.py", ["--runs", "15"], ["--runs", "5"]),
    "failover": ("bench_failover.py", ["--runs", "13"], ["--runs", "2"]),
    "fanout": ("bench_fanout.py", ["--changes", "20"], ["--changes", "5", "--rounds", "1"]),
}


def _dig(data: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


# (benchmark, label, path into its JSON, target, unit); a None target is information only.
ROWS: list[tuple[str, str, tuple[str, ...], float | None, str]] = [
    ("startup", "onetime env, wall p50", ("wall_ms", "p50"), 90, "ms"),
    ("startup", "onetime env, peak RSS p50", ("peak_rss_mib", "p50"), None, "MiB"),
    ("startup", "floor: import jinja2, click", ("floors_ms", "import_jinja2_click"), None, "ms"),
    ("startup", "floor: python -c pass", ("floors_ms", "python_-c_pass"), None, "ms"),
    ("startup", "8 resources, warm cache / floor", ("cases_8_resources", "editable",
                                                     "warm_over_floor"), 1.15, "x"),
    ("startup", "8 resources, cold cache / floor", ("cases_8_resources", "editable",
                                                     "cold_over_floor"), None, "x"),
    ("startup", "wheel: 8 resources, warm / floor", ("cases_8_resources", "wheel",
                                                      "warm_over_floor"), 1.15, "x"),
    ("startup", "wheel: 8 resources, cold / floor", ("cases_8_resources", "wheel",
                                                      "cold_over_floor"), None, "x"),
    ("startup", "8 resources, warm: instructions / floor's", ("cases_8_resources_instructions",
                                                              "over_floor"), None, "x"),
    ("watch", "etcd (data on disk) watch p50", ("stores", "etcd", "latency_ms", "p50"), 4, "ms"),
    ("watch", "etcd (data on disk) watch p99", ("stores", "etcd", "latency_ms", "p99"), 10, "ms"),
    ("watch", "etcd (data on disk) put round trip p50", ("stores", "etcd", "put_ms", "p50"), None,
     "ms"),
    ("watch", "etcd (data on tmpfs) watch p50", ("stores", "etcd-tmpfs", "latency_ms", "p50"), 4,
     "ms"),
    ("watch", "etcd (data on tmpfs) watch p99", ("stores", "etcd-tmpfs", "latency_ms", "p99"), 10,
     "ms"),
    ("watch", "etcd (data on tmpfs) put round trip p50", ("stores", "etcd-tmpfs", "put_ms", "p50"),
     None, "ms"),
    ("watch", "redis watch p50", ("stores", "redis", "latency_ms", "p50"), None, "ms"),
    ("watch", "redis watch p99", ("stores", "redis", "latency_ms", "p99"), None, "ms"),
    ("watch", "etcd plugin watch p50", ("stores", "etcd-plugin", "latency_ms", "p50"), None, "ms"),
    ("watch", "etcd plugin watch p99", ("stores", "etcd-plugin", "latency_ms", "p99"), None, "ms"),
    ("syntax", "onetime Go confdir / same in Jinja", ("onetime_go_over_jinja",), 1.1, "x"),
    ("syntax", "render Go / Jinja, p50 of templates", ("render_go_over_jinja", "p50"), 1.5, "x"),
    ("syntax", "render Go / Jinja, worst template", ("render_go_over_jinja", "max"), 1.5, "x"),
    ("scale", "1,000 resources: first pass", ("first_pass_s",), None, "s"),
    ("scale", "one key change p50", ("one_key_change_ms", "p50"), 50, "ms"),
    ("scale", "one key change p99", ("one_key_change_ms", "p99"), 50, "ms"),
    ("scale", "re-rendered per change (max)", ("rerendered_per_change", "max"), 1, ""),
    ("scale", "etcd watch streams held", ("etcd_watch_streams_held",), None, ""),
    ("scale", "etcd watchers held", ("etcd_watchers_held",), None, ""),
    ("scale", "daemon RSS, steady", ("daemon_rss_mib", "after_changes"), 80, "MiB"),
    ("plugin", "GetValues 10k: plugin/in-process",
     ("get_values_10000_keys_ms", "ratio_median"), 2, "x"),
    ("plugin", "GetValues 10k in process", ("get_values_10000_keys_ms", "in_process", "median"),
     None, "ms"),
    ("plugin", "GetValues 10k via plugin", ("get_values_10000_keys_ms", "plugin", "median"),
     None, "ms"),
    ("plugin", "spawn-to-ready (AutoMTLS)", ("spawn_to_ready_ms", "automtls", "median"), 250,
     "ms"),
    ("plugin", "spawn-to-ready (plaintext)", ("spawn_to_ready_ms", "plaintext", "median"), 250,
     "ms"),
    ("plugin", "Python plugin, P-521 host: spawn-to-ready",
     ("python_plugin", "spawn_to_ready_ms", "automtls_p521_host", "median"), None, "ms"),
    ("plugin", "Python plugin, P-521 host: GetValues 10k",
     ("python_plugin", "get_values_10000_keys_ms", "automtls_p521_host", "median"), None, "ms"),
    ("plugin", "Python plugin watch (AutoMTLS)",
     ("python_plugin", "watch_latency_ms", "automtls", "median"), None, "ms"),
    ("plugin", "Python plugin watch (plaintext)",
     ("python_plugin", "watch_latency_ms", "plaintext", "median"), None, "ms"),
    ("plugin", "Python plugin watch (P-521 host)",
     ("python_plugin", "watch_latency_ms", "automtls_p521_host", "median"), None, "ms"),
    ("plugin", "Go plugin spawn-to-ready (AutoMTLS)",
     ("go_plugin", "spawn_to_ready_ms", "automtls_openssl_bridge", "median"), None, "ms"),
    ("plugin", "Go plugin spawn-to-ready (plaintext)",
     ("go_plugin", "spawn_to_ready_ms", "plaintext", "median"), None, "ms"),
    ("plugin", "Go plugin GetValues 10k (AutoMTLS)",
     ("go_plugin", "get_values_10000_keys_ms", "automtls_openssl_bridge", "median"), None, "ms"),
    ("plugin", "Go plugin GetValues 10k (plaintext)",
     ("go_plugin", "get_values_10000_keys_ms", "plaintext", "median"), None, "ms"),
    ("plugin", "Go plugin watch, 1 ms poll (AutoMTLS)",
     ("go_plugin", "watch_latency_ms", "automtls_openssl_bridge", "median"), None, "ms"),
    ("plugin", "Go plugin watch, 1 ms poll (plaintext)",
     ("go_plugin", "watch_latency_ms", "plaintext", "median"), None, "ms"),
]
# etcd failover (issue #15): staleness beyond the cluster's own outage, ours p50 and against Go
# confd's in the same run, and runs ending stale, per scenario.
for _scenario in ("leader", "member", "quorum", "pause", "lastwrite"):
    ROWS += [
        ("failover", f"etcd {_scenario}: staleness p50", ("scenarios", _scenario, "ours",
         "excess_first_s", "p50"), None, "s"),
        ("failover", f"etcd {_scenario}: ours - Go, p50", ("scenarios", _scenario,
         "ours_vs_go", "excess_first_s", "p50_diff"), 0.05, "s"),
        ("failover", f"etcd {_scenario}: runs ending stale", ("scenarios", _scenario, "ours",
         "ended_stale"), 0, ""),
    ]


# Issue #13, ours beside Go confd: (label, path into "ours", path into "go", path into
# "ours_over_go", target ratio, unit); a None target is information only.
VERSUS_GO: list[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], float | None,
                      str]] = [
    ("first render, cold cache", ("first_render_cold_s",), ("first_render_s",),
     ("first_render_cold",), 1.0, "s"),
    ("first render, warm cache", ("first_render_warm_s",), ("first_render_s",),
     ("first_render_warm",), 0.5, "s"),
    ("50 dependents: change p50", ("fifty_dependents", "latency_ms", "p50"),
     ("fifty_dependents", "latency_ms", "p50"), ("fifty_p50",), 1.0, "ms"),
    ("50 dependents: change p99", ("fifty_dependents", "latency_ms", "p99"),
     ("fifty_dependents", "latency_ms", "p99"), ("fifty_p99",), None, "ms"),
    ("50 dependents: CPU per change", ("fifty_dependents", "cpu_ms_per_change"),
     ("fifty_dependents", "cpu_ms_per_change"), ("fifty_cpu",), 1.0, "ms"),
    ("1 dependent: change p50", ("one_dependent", "latency_ms", "p50"),
     ("one_dependent", "latency_ms", "p50"), ("one_p50",), 0.2, "ms"),
    ("1 dependent: change p99", ("one_dependent", "latency_ms", "p99"),
     ("one_dependent", "latency_ms", "p99"), ("one_p99",), None, "ms"),
    ("1 dependent: CPU per change", ("one_dependent", "cpu_ms_per_change"),
     ("one_dependent", "cpu_ms_per_change"), ("one_cpu",), None, "ms"),
    ("RSS after the changes", ("rss_mib",), ("rss_mib",), ("rss",), 0.5, "MiB"),
    ("etcd watchers", ("etcd_watchers",), ("etcd_watchers",), (), None, ""),
    ("etcd watch streams", ("etcd_watch_streams",), ("etcd_watch_streams",), (), None, ""),
    ("etcd ranges per 1-dependent change", ("one_dependent", "etcd_ranges_per_change"),
     ("one_dependent", "etcd_ranges_per_change"), (), None, ""),
    ("etcd ranges per 50-dependent change", ("fifty_dependents", "etcd_ranges_per_change"),
     ("fifty_dependents", "etcd_ranges_per_change"), (), None, ""),
    ("idle CPU", ("idle_cpu_ms_per_s",), ("idle_cpu_ms_per_s",), (), None, "ms/s"),
]


def versus_go(figures: dict[str, Any]) -> str:
    """Issue #13's figures: ours, Go confd's, the ratio and its target."""
    lines = [f"{'fan-out (issue #13)':36} {'ours':>10} {'Go confd':>10} {'ours/Go':>8} "
             f"{'target':>8}  met", "-" * 82]
    ours, go, ratios = figures.get("ours", {}), figures.get("go"), figures.get("ours_over_go", {})
    for label, mine, theirs, ratio_path, target, unit in VERSUS_GO:
        value = _dig(ours, *mine)
        peer = _dig(go, *theirs) if go else None
        ratio = _dig(ratios, *ratio_path) if ratio_path else None
        if ratio is None and value is not None and peer:
            ratio = round(value / peer, 3)
        shown = "n/a" if value is None else f"{value:g}{unit}"
        theirs_shown = "absent" if go is None else "n/a" if peer is None else f"{peer:g}{unit}"
        ratio_shown = "" if ratio is None else f"{ratio:.2f}x"
        goal = "" if target is None else f"<={target:g}x"
        met = "" if target is None or ratio is None else ("yes" if ratio <= target else "NO")
        if label == "etcd watchers" and value is not None:
            goal, met = f"={figures.get('prefixes')}", \
                "yes" if value == figures.get("prefixes") else "NO"
        lines.append(f"{label:36} {shown:>10} {theirs_shown:>10} {ratio_shown:>8} {goal:>8}  {met}")
    return "\n".join(lines)


def _run(name: str, quick: bool) -> dict[str, Any]:
    script, full, fast = SUITE[name]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *(fast if quick else full)],
        capture_output=True, text=True, check=False, cwd=REPO,
    )
    took = round(time.monotonic() - started, 1)
    if done.returncode != 0:
        print(f"{name}: exit {done.returncode}\n{done.stderr[-3000:]}", file=sys.stderr)
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-500:]}", "took_s": took}
    print(done.stdout.rstrip(), flush=True)
    figures = json.loads(done.stdout)
    figures["took_s"] = took
    return figures


def table(results: dict[str, Any]) -> str:
    """One line per figure: value, target and whether it was met."""
    lines = [f"{'figure':40} {'value':>10} {'target':>10}  met", "-" * 67]
    for bench, label, path, target, unit in ROWS:
        if bench not in results:
            continue
        value = _dig(results[bench], *path)
        shown = "n/a" if value is None else f"{value:g}{unit}"
        goal = "" if target is None else f"<={target:g}{unit}"
        met = "" if target is None or value is None else ("yes" if value <= target else "NO")
        lines.append(f"{label:40} {shown:>10} {goal:>10}  {met}")
    return "\n".join(lines)


def _record(output: Path, results: dict[str, Any], *, full: bool) -> None:
    """Write the results; a partial run (--only) updates its own sections of an existing file
    and notes when and how they were taken, so the other figures are not lost."""
    if full or not output.exists():
        output.write_text(json.dumps(results, indent=2) + "\n")
        return
    recorded = json.loads(output.read_text())
    taken = {"command": results["command"], "machine": results["machine"]}
    for name in SUITE:
        if name in results:
            recorded[name] = results[name]
            recorded.setdefault("partial_runs", {})[name] = taken
    output.write_text(json.dumps(recorded, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(SUITE), help="comma-separated benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    parser.add_argument("--output", default=str(BENCH / "results.json"))
    args = parser.parse_args()
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "command": "bench/run " + " ".join(
        sys.argv[1:])}
    for name in args.only.split(","):
        if name not in SUITE:
            raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(SUITE)}")
        results[name] = _run(name, args.quick)
    results["total_s"] = round(time.monotonic() - started, 1)
    _record(Path(args.output), results, full=set(SUITE) <= set(args.only.split(",")))
    info = results["machine"]
    print(f"\n{info['nproc']} x {info['cpu']}, {info['ram_gib']} GiB, Python {info['python']},"
          f" load {info['loadavg']}, {info['date']}; {results['total_s']} s")
    print(table(results))
    if "fanout" in results and "error" not in results["fanout"]:
        print()
        print(versus_go(results["fanout"]))
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
