"""Go templates against their Jinja twins: `confd --onetime` on the Go template corpus as Go
confd writes it, and on the same confdir after `confd convert` (wall p50, both with a warm page
cache and bytecode), plus the render cost of each front end per template (in process).

Targets (issue #11): rendering a Go template costs <= 1.5x its Jinja equivalent; `--onetime`
on the Go confdir stays within 10 % of the same confdir in Jinja.

Run: .venv/bin/python bench/bench_syntax.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import CONFD, REPO, emit, summary, timed_run, user_env

CORPUS = REPO / "tests" / "gotemplates"


def build(root: Path) -> Path:
    """A confdir holding every corpus case that converts exactly, read from a file backend."""
    confdir = root / "confdir"
    (confdir / "conf.d").mkdir(parents=True)
    (confdir / "templates").mkdir()
    (root / "out").mkdir()
    values: dict[str, str] = {}
    for case in sorted(p.name for p in CORPUS.iterdir() if (p / "converted.j2").exists()):
        if (CORPUS / case / "jinja-differs.txt").exists():
            continue
        data = json.loads((CORPUS / case / "data.json").read_text())
        values.update({f"/{case}{k}": v for k, v in data.items()})
        shutil.copy(CORPUS / case / "template.tmpl", confdir / "templates" / f"{case}.tmpl")
        (confdir / "conf.d" / f"{case}.toml").write_text(
            f'[template]\nsrc = "{case}.tmpl"\ndest = "{root / "out" / case}"\n'
            f'prefix = "/{case}"\nkeys = ["/"]\n')
    (root / "values.json").write_text(json.dumps(_nest(values)))
    return confdir


def _nest(flat: dict[str, str]) -> dict:
    """The file backend's nested form of flat keys (a key both a value and a parent keeps
    its children; such keys do not occur in the corpus)."""
    tree: dict = {}
    for key, value in sorted(flat.items()):
        node = tree
        *parents, leaf = key.strip("/").split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def onetime(confdir: Path, values: Path, runs: int) -> dict:
    cmd = [str(CONFD), "--onetime", "--backend", "file", "--file", str(values), "--confdir",
           str(confdir), "--log-level", "warning"]
    env = user_env(TZ="UTC")
    for _ in range(2):
        timed_run(cmd, env=env)
    walls = []
    for _ in range(runs):
        wall, _, status = timed_run(cmd, env=env)
        if status != 0:
            raise SystemExit(f"confd failed on {confdir}")
        walls.append(wall)
    return summary(walls, 1)


def render_costs(confdir: Path, jinja_dir: Path, repeat: int = 100, batches: int = 7) -> dict:
    """Per template: microseconds per render, Go front end vs Jinja (same store, in process);
    the best of `batches` interleaved batches, so another process's burst does not count."""
    from confd.template.renderer import Renderer
    from confd.template.store import KVStore

    go, jinja = Renderer(confdir / "templates", "go"), Renderer(jinja_dir / "templates", "jinja")
    ratios, rows = [], {}
    for path in sorted((confdir / "templates").iterdir()):
        case = path.stem
        store = KVStore(json.loads((CORPUS / case / "data.json").read_text()))
        best = [float("inf"), float("inf")]
        for renderer in (go, jinja):
            renderer.render(path.name, store)  # compiled once
        for _ in range(batches):
            for i, renderer in enumerate((go, jinja)):
                start = time.perf_counter()
                for _ in range(repeat):
                    renderer.render(path.name, store)
                best[i] = min(best[i], (time.perf_counter() - start) / repeat * 1e6)
        timings = best
        ratios.append(timings[0] / timings[1])
        rows[case] = {"go_us": round(timings[0], 1), "jinja_us": round(timings[1], 1),
                      "ratio": round(timings[0] / timings[1], 2)}
    return {"per_template": rows, "ratio": summary(ratios, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="confd-bench-syntax-") as tmp:
        root = Path(tmp)
        go_dir = build(root / "go")
        jinja_root = root / "jinja"
        shutil.copytree(root / "go", jinja_root)
        jinja_dir = jinja_root / "confdir"
        for toml in (jinja_dir / "conf.d").iterdir():  # write into the twin's own out/
            toml.write_text(toml.read_text().replace(str(root / "go"), str(jinja_root)))
        done = subprocess.run([str(CONFD), "convert", str(jinja_dir)], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(done.stdout + done.stderr)
        go = onetime(go_dir, root / "go" / "values.json", args.runs)
        jinja = onetime(jinja_dir, jinja_root / "values.json", args.runs)
        same = all((root / "go" / "out" / f.name).read_bytes() == f.read_bytes()
                   for f in (jinja_root / "out").iterdir())
        costs = render_costs(go_dir, jinja_dir)
    emit("syntax", {
        "templates": len(costs["per_template"]),
        "outputs_identical": same,
        "onetime_go_ms": go,
        "onetime_jinja_ms": jinja,
        "onetime_go_over_jinja": round(go["p50"] / jinja["p50"], 3),
        "render_go_over_jinja": costs["ratio"],
        "render_per_template": costs["per_template"],
    })


if __name__ == "__main__":
    main()
