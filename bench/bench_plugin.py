"""Plugin benchmarks (JSON on stdout): what the plugin protocol and its AutoMTLS cost.

For a Python plugin (plugin_sdk) and a Go plugin (go-plugin 1.0.1, integration/go), each
under AutoMTLS and in plaintext: spawn-to-ready (start, handshake, TLS, health, Describe,
Configure), GetValues of 10,000 keys, and watch latency (a change in the store to the host's
watch yielding). The Python plugin is also measured with a P-521 host certificate, as a
go-plugin host sends, where the plugin serves TLS through its OpenSSL bridge; the Go plugin
under AutoMTLS is always reached through confd's OpenSSL bridge (its certificate is P-521).

The Python plugin's watch is woken through a FIFO (no polling in the figure); the Go plugin
polls its JSON file every millisecond, so its latency includes up to 1 ms of polling.

The top-level `spawn_to_ready_ms` and `get_values_10000_keys_ms` are the Python plugin's
(AutoMTLS vs plaintext; in process vs through the plugin), as before.

Run: .venv/bin/python bench/bench_plugin.py [--spawns 10] [--runs 15] [--watch-events 30]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from confd.backends.plugin import process as process_module  # noqa: E402
from confd.backends.plugin.client import PluginDatabase  # noqa: E402
from confd.backends.plugin.launch import LaunchOptions  # noqa: E402
from plugin_sdk import Database, select_prefix  # noqa: E402
from plugin_sdk.mtls import make_certificate  # noqa: E402

KEYS = 10_000
DATA = {f"/bench/k{i:05d}": f"value-{i}" for i in range(KEYS)}

PLUGIN = f"""#!{sys.executable}
import os, select, sys
sys.path.insert(0, {str(REPO)!r})
from plugin_sdk import Database, Setting, select_prefix, serve

class Bench(Database):
    name = "bench"
    settings = (Setting("fifo", help="a FIFO whose every byte is one change"),)
    can_watch = True
    def configure(self, config):
        super().configure(config)
        self.data = {{f"/bench/k{{i:05d}}": f"value-{{i}}" for i in range({KEYS})}}
    def get_values(self, keys):
        return {{k: v for k, v in self.data.items() if any(select_prefix(k, r) for r in keys)}}
    def watch_prefix(self, prefix, keys, stop):
        fd = os.open(self.options["fifo"], os.O_RDONLY | os.O_NONBLOCK)
        try:
            while not stop.is_set():
                if select.select([fd], [], [], 0.1)[0] and os.read(fd, 1):
                    yield ["/bench/k00000"]
        finally:
            os.close(fd)

serve(Bench())
"""

# Python plugin modes: LaunchOptions.auto_mtls, and the curve of the host's certificate.
PYTHON_MODES = {
    "automtls": (True, "secp384r1"),
    "plaintext": (False, "secp384r1"),
    "automtls_p521_host": (True, "secp521r1"),
}
GO_MODES = {"automtls_openssl_bridge": True, "plaintext": False}


class InProcess(Database):
    """The same database as the plugin, called directly."""

    name = "bench"

    def configure(self, config):
        self.data = dict(DATA)

    def get_values(self, keys):
        return {k: v for k, v in self.data.items() if any(select_prefix(k, r) for r in keys)}


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": round(statistics.median(ordered), 2),
        "p90": round(ordered[max(0, int(len(ordered) * 0.9) - 1)], 2),
        "min": round(ordered[0], 2),
    }


@contextlib.contextmanager
def host_curve(curve: str) -> Iterator[None]:
    """confd's host makes its AutoMTLS certificate on `curve` (P-521: as a go-plugin host)."""
    original = process_module.make_certificate
    process_module.make_certificate = lambda: make_certificate(curve)
    try:
        yield
    finally:
        process_module.make_certificate = original


def spawn_ms(options: LaunchOptions, config: dict[str, str]) -> float:
    started = time.perf_counter()
    database = PluginDatabase(options)
    database.configure(config)
    took = (time.perf_counter() - started) * 1000
    database.close()
    return took


def get_values_ms(database: Database, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        got = database.get_values(["/bench"])
        samples.append((time.perf_counter() - started) * 1000)
        assert len(got) == KEYS, len(got)
    return samples


def watch_ms(database: Database, change: Callable[[int], None], events: int) -> list[float]:
    """Milliseconds from `change(i)` to the host's watch yielding, `events` times."""
    stop = threading.Event()
    seen: queue.Queue[float] = queue.Queue()

    def follow() -> None:
        for _ in database.watch_prefix("/bench", ["/bench"], stop):
            seen.put(time.perf_counter())

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    time.sleep(0.3)  # the watch gets going
    samples = []
    try:
        for i in range(events):
            started = time.perf_counter()
            change(i)
            samples.append((seen.get(timeout=10) - started) * 1000)
            time.sleep(0.03)  # one change per event (a polling plugin would merge them)
            while not seen.empty():
                seen.get_nowait()
    finally:
        stop.set()
        thread.join(5)
    return samples


def python_plugin(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    exe = tmp / "confd-database-bench"
    exe.write_text(PLUGIN)
    exe.chmod(0o755)
    fifo = tmp / "changes.fifo"
    os.mkfifo(fifo)
    config = {"fifo": str(fifo)}
    spawn: dict[str, list[float]] = {mode: [] for mode in PYTHON_MODES}
    for _ in range(args.spawns):
        for mode, (mtls, curve) in PYTHON_MODES.items():
            with host_curve(curve):
                spawn[mode].append(spawn_ms(LaunchOptions("bench", [str(exe)], auto_mtls=mtls),
                                            config))
    values: dict[str, list[float]] = {}
    watch: dict[str, list[float]] = {}
    transport: dict[str, str] = {}
    for mode, (mtls, curve) in PYTHON_MODES.items():
        with host_curve(curve):
            database = PluginDatabase(LaunchOptions("bench", [str(exe)], auto_mtls=mtls))
            database.configure(config)
        try:
            transport[mode] = database.process.transport  # type: ignore[union-attr]
            values[mode] = get_values_ms(database, args.runs)
            # O_RDWR: never blocks, and bytes wait in the pipe until the plugin reads them
            writer = os.open(fifo, os.O_RDWR)
            try:
                watch[mode] = watch_ms(database, lambda _i, fd=writer: os.write(fd, b"x"),
                                       args.watch_events)
            finally:
                os.close(writer)
        finally:
            database.close()
    return {
        "transport": transport,
        "spawn_to_ready_ms": {mode: _ms(s) for mode, s in spawn.items()},
        "get_values_10000_keys_ms": {mode: _ms(s) for mode, s in values.items()},
        "watch_latency_ms": {mode: _ms(s) for mode, s in watch.items()},
        "_raw_spawn": spawn,
        "_raw_values": values,
    }


def go_plugin(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    from testsupport.goprograms import GoBuildError, build_go_programs

    try:
        programs = build_go_programs(tmp / "go")
    except GoBuildError as exc:
        return {"error": str(exc)}
    gomem = [str(programs.gomem)]
    big, small = tmp / "big.json", tmp / "small.json"
    big.write_text(json.dumps(DATA))
    small.write_text(json.dumps({"/bench/k00000": "0"}))
    env = {"TMPDIR": str(tmp)}  # go-plugin 1.0.x puts its socket there
    spawn: dict[str, list[float]] = {mode: [] for mode in GO_MODES}
    for _ in range(args.spawns):
        for mode, mtls in GO_MODES.items():
            spawn[mode].append(spawn_ms(LaunchOptions("gomem", gomem, auto_mtls=mtls, env=env),
                                        {"path": str(big)}))
    values: dict[str, list[float]] = {}
    watch: dict[str, list[float]] = {}
    transport: dict[str, str] = {}

    def change(i: int) -> None:
        staged = small.with_suffix(".tmp")
        staged.write_text(json.dumps({"/bench/k00000": str(i + 1)}))
        os.replace(staged, small)

    for mode, mtls in GO_MODES.items():
        options = LaunchOptions("gomem", gomem, auto_mtls=mtls, env=env)
        database = PluginDatabase(options)
        database.configure({"path": str(big)})
        try:
            transport[mode] = database.process.transport  # type: ignore[union-attr]
            values[mode] = get_values_ms(database, args.runs)
        finally:
            database.close()
        database = PluginDatabase(options)
        database.configure({"path": str(small), "interval": "1ms"})
        try:
            watch[mode] = watch_ms(database, change, args.watch_events)
        finally:
            database.close()
    return {
        "transport": transport,
        "watch_poll_interval_ms": 1,
        "spawn_to_ready_ms": {mode: _ms(s) for mode, s in spawn.items()},
        "get_values_10000_keys_ms": {mode: _ms(s) for mode, s in values.items()},
        "watch_latency_ms": {mode: _ms(s) for mode, s in watch.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spawns", type=int, default=10)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--watch-events", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        python = python_plugin(tmp, args)
        go = go_plugin(tmp, args)
    local = InProcess()
    local.configure({})
    local_ms = []
    for _ in range(args.runs):
        started = time.perf_counter()
        assert len(local.get_values(["/bench"])) == KEYS
        local_ms.append((time.perf_counter() - started) * 1000)
    spawn, values = python.pop("_raw_spawn"), python.pop("_raw_values")
    plugin_median = statistics.median(values["automtls"])
    print(json.dumps({
        "spawn_to_ready_ms": {"automtls": _ms(spawn["automtls"]),
                              "plaintext": _ms(spawn["plaintext"])},
        "spawns": args.spawns,
        "get_values_10000_keys_ms": {
            "in_process": _ms(local_ms),
            "plugin": _ms(values["automtls"]),
            "ratio_median": round(plugin_median / statistics.median(local_ms), 2),
            "runs": args.runs,
        },
        "watch_events": args.watch_events,
        "python_plugin": python,
        "go_plugin": go,
    }, indent=2))


if __name__ == "__main__":
    main()
