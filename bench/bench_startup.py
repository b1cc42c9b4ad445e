"""`confd --onetime --backend env` on the example confdir: wall time and peak RSS (median of
>= 10 runs), the interpreter floors it is built on, and an import audit (`python -X importtime`)
showing the env path loads no gRPC, store client or other module it does not use.

Run: .venv/bin/python bench/bench_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

from common import CONFD, REPO, emit, summary, timed_run, user_env

EXAMPLE = REPO / "examples" / "confdir"
EXPECTED = REPO / "examples" / "expected"
ENV = {
    "MYAPP_DATABASE_URL": "db.example.com",
    "MYAPP_DATABASE_USER": "rob",
    "MYAPP_DATABASE_PORT": "5432",
    "MYAPP_UPSTREAM_APP1": "10.0.0.1:8080",
    "MYAPP_UPSTREAM_APP2": "10.0.0.2:8080",
}
ARGS = ["--onetime", "--backend", "env", "--confdir", str(EXAMPLE), "--log-level", "warning"]

# Top-level packages the env path must never import, and why a user would care.
UNUSED = {
    "grpc": "gRPC (plugins, etcd)",
    "google": "protobuf",
    "pyetcd": "etcd client",
    "consul": "Consul client",
    "redis": "Redis client",
    "kazoo": "ZooKeeper client",
    "yaml": "YAML (file backend)",
    "watchfiles": "file watching",
    "cryptography": "AutoMTLS",
    "dns": "lookupSRV",
    "http": "metrics endpoint",
    "email": "http/urllib responses",
    "difflib": "--noop diffs",
    "socket": "network",
    "confd.run.daemon": "--watch loop",
    "confd.backends.plugin": "plugin host",
    "confd.observe.metrics": "--metrics-addr",
}


def _imports(stderr: str) -> list[tuple[str, int, int]]:
    """(module, nesting depth, cumulative us) for each `-X importtime` line, in import order."""
    rows = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2 and "self [us]" not in line:
            _, cumulative, name = line[len("import time:") :].split("|")
            depth = (len(name) - len(name.lstrip()) - 1) // 2
            rows.append((name.strip(), depth, int(cumulative)))
    return rows


def _floor(cmd: list[str], runs: int, env: dict[str, str]) -> float:
    walls = [timed_run(cmd, env=env)[0] for _ in range(runs)]
    return summary(walls, 1)["p50"]  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = user_env(**ENV)
    with tempfile.TemporaryDirectory(prefix="confd-bench-") as tmp:
        work = Path(tmp)
        (work / "demo-out").mkdir()
        cmd = [str(CONFD), *ARGS]
        for _ in range(2):  # warm-up: bytecode written, page cache filled
            timed_run(cmd, cwd=work, env=env)
        walls, peaks, failures = [], [], 0
        for _ in range(args.runs):
            wall, peak, status = timed_run(cmd, cwd=work, env=env)
            walls.append(wall)
            peaks.append(peak / 1024)
            failures += status != 0
        same = all(
            filecmp.cmp(work / "demo-out" / f.name, f, shallow=False)
            for f in EXPECTED.iterdir()
        )
        traced = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "confd", *ARGS],
            cwd=work, env=env, capture_output=True, text=True, check=False,
        )
    rows = _imports(traced.stderr)
    names = [name for name, _, _ in rows]
    unused = sorted(
        name for name in names
        if any(name == bad or name.startswith(bad + ".") for bad in UNUSED)
    )
    # Top-level imports, and confd's own modules wherever they nest.
    top = [(n, cum) for n, depth, cum in rows if depth == 0 or n.split(".")[0] == "confd"]
    python = sys.executable
    floors = {
        "python_-c_pass": _floor([python, "-c", "pass"], args.runs, env),
        "python_-S_-c_pass": _floor([python, "-S", "-c", "pass"], args.runs, env),
        "import_click": _floor([python, "-c", "import click"], args.runs, env),
        "import_jinja2": _floor([python, "-c", "import jinja2"], args.runs, env),
        "import_jinja2_click": _floor([python, "-c", "import jinja2, click"], args.runs, env),
    }
    wall = summary(walls, 1)
    emit("startup", {
        "command": "confd " + " ".join(ARGS),
        "runs": args.runs,
        "failed_runs": failures,
        "output_matches_expected": same,
        "wall_ms": wall,
        "peak_rss_mib": summary(peaks, 1),
        "floors_ms": floors,
        "confd_over_jinja2_click_ms": round(wall["p50"] - floors["import_jinja2_click"], 1),
        "imports": {
            "modules": len(names),
            "unused_imported": unused,
            "unused_checked": sorted(UNUSED),
            "importtime_cumulative_ms": {name: round(cum / 1000, 1) for name, cum in top},
        },
    })


if __name__ == "__main__":
    main()
