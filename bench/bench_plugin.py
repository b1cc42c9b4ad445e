"""Plugin benchmarks (JSON on stdout): spawn-to-ready time, and GetValues of 10,000 keys
in process vs through a plugin.

Run: .venv/bin/python bench/bench_plugin.py [--spawns 20] [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from confd.backends.plugin.client import PluginDatabase  # noqa: E402
from confd.backends.plugin.launch import LaunchOptions  # noqa: E402
from plugin_sdk import Database, select_prefix  # noqa: E402

KEYS = 10_000

PLUGIN = f"""#!{sys.executable}
import sys
sys.path.insert(0, {str(REPO)!r})
from plugin_sdk import Database, select_prefix, serve

class Bench(Database):
    name = "bench"
    def configure(self, config):
        self.data = {{f"/bench/k{{i:05d}}": f"value-{{i}}" for i in range({KEYS})}}
    def get_values(self, keys):
        return {{k: v for k, v in self.data.items() if any(select_prefix(k, r) for r in keys)}}

serve(Bench())
"""


class InProcess(Database):
    """The same database as the plugin, called directly."""

    name = "bench"

    def configure(self, config):
        self.data = {f"/bench/k{i:05d}": f"value-{i}" for i in range(KEYS)}

    def get_values(self, keys):
        return {k: v for k, v in self.data.items() if any(select_prefix(k, r) for r in keys)}


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered), 2),
        "p90": round(ordered[max(0, int(len(ordered) * 0.9) - 1)], 2),
        "min": round(ordered[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spawns", type=int, default=20)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "confd-database-bench"
        exe.write_text(PLUGIN)
        exe.chmod(0o755)
        spawn: dict[str, list[float]] = {"automtls": [], "plaintext": []}
        for _ in range(args.spawns):
            for mode, mtls in (("automtls", True), ("plaintext", False)):
                started = time.perf_counter()
                database = PluginDatabase(LaunchOptions("bench", [str(exe)], auto_mtls=mtls))
                database.configure({})
                spawn[mode].append((time.perf_counter() - started) * 1000)
                database.close()
        local = InProcess()
        local.configure({})
        plugin = PluginDatabase(LaunchOptions("bench", [str(exe)]))
        plugin.configure({})
        try:
            local_ms, plugin_ms = [], []
            for _ in range(args.runs):
                started = time.perf_counter()
                assert len(local.get_values(["/bench"])) == KEYS
                local_ms.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                assert len(plugin.get_values(["/bench"])) == KEYS
                plugin_ms.append((time.perf_counter() - started) * 1000)
        finally:
            plugin.close()
    local_median = statistics.median(local_ms)
    plugin_median = statistics.median(plugin_ms)
    print(json.dumps({
        "spawn_to_ready_ms": {mode: _ms(samples) for mode, samples in spawn.items()},
        "spawns": args.spawns,
        "get_values_10000_keys_ms": {
            "in_process": _ms(local_ms),
            "plugin": _ms(plugin_ms),
            "ratio_median": round(plugin_median / local_median, 2),
            "runs": args.runs,
        },
    }, indent=2))


if __name__ == "__main__":
    main()
