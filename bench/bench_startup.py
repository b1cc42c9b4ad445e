"""`confd --onetime --backend env` on the example confdir: wall time and peak RSS (median of
>= 10 runs), the interpreter floors it is built on, and an import audit (`python -X importtime`)
showing the env path loads no gRPC, store client or other module it does not use.

Also on the integration cases' confdir (8 resources, issue #13's start-up target: within 1.15x
of `python -c "import jinja2, click"` with a warm compiled-template cache), with the cache warm
and cold (an empty cache directory each run), interleaved with the floor so both see the same
machine. `--wheel` measures confd installed from a wheel as well (a throwaway venv that borrows
the dependencies of this one): an editable install pays its import finder on every start.

`--instructions` also counts the instructions (valgrind's callgrind, `PYTHONHASHSEED=0`) of
confd on the cases' confdir, warm, and of the floor: on a shared host the wall-time floor
moves by half between runs minutes apart, the instruction count does not.

Run: .venv/bin/python bench/bench_startup.py [--runs 15] [--wheel] [--instructions]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import re
import shutil
import subprocess
import sys
import sysconfig
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
CASES = REPO / "integration" / "cases"

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
    "locale": "click's gettext lookups of its --help and --version texts",
    "socket": "network",
    "confd.run.daemon": "--watch loop",
    "confd.backends.plugin": "plugin host",
    "confd.observe.metrics": "--metrics-addr",
    "confd.observe.endpoint": "--metrics-addr",
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


def cases_env(cache: Path) -> dict[str, str]:
    """The integration cases' keys as the env backend reads them, and a compiled-template cache."""
    keys = json.loads((CASES / "keys.json").read_text())
    values = {k.strip("/").upper().replace("/", "_"): v for k, v in keys.items()}
    return user_env(**values, HOSTNAME="localhost", CONFD_CACHE_DIR=str(cache))


def cases_command(confd: list[str]) -> list[str]:
    """`confd` (how this install starts it) rendering the cases' confdir once, quietly."""
    return [*confd, "--onetime", "--backend", "env", "--confdir", str(CASES / "confdir"),
            "--log-level", "warning"]


def versus_floor(python: str, confd: list[str], runs: int) -> dict[str, object]:
    """confd on the cases' confdir, warm and cold cache, each run next to a floor run."""
    with tempfile.TemporaryDirectory(prefix="confd-bench-cases-") as tmp:
        work = Path(tmp)
        cmd = cases_command(confd)
        floor_cmd = [python, "-c", "import jinja2, click"]
        warm_env = cases_env(work / "cache")
        for _ in range(2):
            timed_run(cmd, cwd=work, env=warm_env)
            timed_run(floor_cmd, env=warm_env)
        warm, cold, floor, failures = [], [], [], 0
        for n in range(runs):
            wall, _, status = timed_run(cmd, cwd=work, env=warm_env)
            warm.append(wall)
            failures += status != 0
            floor.append(timed_run(floor_cmd, env=warm_env)[0])
            cold_env = cases_env(work / f"cold-{n}")
            wall, _, status = timed_run(cmd, cwd=work, env=cold_env)
            cold.append(wall)
            failures += status != 0
    result = {"warm_ms": summary(warm, 1), "cold_ms": summary(cold, 1),
              "floor_ms": summary(floor, 1), "failed_runs": failures}
    result["warm_over_floor"] = round(result["warm_ms"]["p50"] / result["floor_ms"]["p50"], 3)
    result["cold_over_floor"] = round(result["cold_ms"]["p50"] / result["floor_ms"]["p50"], 3)
    return result


def instructions(python: str, confd: list[str]) -> dict[str, object]:
    """Instructions of confd on the cases' confdir (warm caches) and of the floor, counted
    by callgrind; `skipped` says why when valgrind is not installed."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return {"skipped": "valgrind is not installed (apt-get install valgrind)"}
    with tempfile.TemporaryDirectory(prefix="confd-bench-instructions-") as tmp:
        work = Path(tmp)
        env = cases_env(work / "cache")
        env["PYTHONHASHSEED"] = "0"  # the same dict layouts, so the same instructions, each run
        cmd = cases_command(confd)
        for _ in range(2):  # bytecode and both caches written
            timed_run(cmd, cwd=work, env=env)

        def count(argv: list[str]) -> int:
            run = subprocess.run([valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null",
                                  *argv], cwd=work, env=env, capture_output=True, text=True,
                                 check=False)
            found = re.search(r"Collected : (\d+)", run.stderr)
            if run.returncode != 0 or found is None:
                raise RuntimeError(f"callgrind of {argv[:3]} failed: {run.stderr[-500:]}")
            return int(found.group(1))

        ours, floor = count(cmd), count([python, "-c", "import jinja2, click"])
    return {"confd": ours, "floor": floor, "over_floor": round(ours / floor, 3)}


def wheel_venv(root: Path) -> Path:
    """A venv with confd installed from a wheel of this tree (`pip install --target`, which
    leaves this venv's editable install alone); its dependencies are this venv's, through a
    .pth line (site-packages' own .pth files, the editable finder's among them, are not read
    from a directory added that way). Returns its python."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(root / "dist"), str(REPO)], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")],
                   check=True)
    python = root / "venv" / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    purelib = Path(site.stdout.strip())
    [wheel] = (root / "dist").glob("*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(purelib), str(wheel)], check=True, capture_output=True)
    (purelib / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


# What the `confd` console script runs (its #! would name the python that installed it).
ENTRY = "import sys; from confd.cli.main import main; sys.argv[0] = 'confd'; sys.exit(main())"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--wheel", action="store_true",
                        help="also measure confd installed from a wheel")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions with callgrind (from the wheel with "
                             "--wheel)")
    args = parser.parse_args()
    env = user_env(**ENV)
    with tempfile.TemporaryDirectory(prefix="confd-bench-") as tmp:
        work = Path(tmp)
        (work / "demo-out").mkdir()
        env["CONFD_CACHE_DIR"] = str(work / "cache")
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
    cases = {"editable": versus_floor(sys.executable, [str(CONFD)], args.runs)}
    counted: dict[str, object] | None = None
    if args.instructions and not args.wheel:
        counted = {"install": "editable", **instructions(sys.executable, [str(CONFD)])}
    if args.wheel:
        root = Path(tempfile.mkdtemp(prefix="confd-bench-wheel-"))
        try:
            python = str(wheel_venv(root))
            cases["wheel"] = versus_floor(python, [python, "-c", ENTRY], args.runs)
            if args.instructions:
                counted = {"install": "wheel", **instructions(python, [python, "-c", ENTRY])}
        finally:
            shutil.rmtree(root, ignore_errors=True)
    emit("startup", {
        "command": "confd " + " ".join(ARGS),
        "runs": args.runs,
        "failed_runs": failures,
        "output_matches_expected": same,
        "wall_ms": wall,
        "peak_rss_mib": summary(peaks, 1),
        "floors_ms": floors,
        "confd_over_jinja2_click_ms": round(wall["p50"] - floors["import_jinja2_click"], 1),
        "cases_8_resources": cases,
        **({"cases_8_resources_instructions": counted} if counted is not None else {}),
        "imports": {
            "modules": len(names),
            "unused_imported": unused,
            "unused_checked": sorted(UNUSED),
            "importtime_cumulative_ms": {name: round(cum / 1000, 1) for name, cum in top},
        },
    })


if __name__ == "__main__":
    main()
