"""SIGHUP applies the whole configuration to a running daemon, and settings load once per load.

Driven as a subprocess over the file backend: interval, watch/interval mode and log level
changed in confd.toml take effect on SIGHUP; a setting only a restart can apply is named; an
unknown confd.toml key is warned about once per (re)load; JSON logs stay JSON, backends' too.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import pytest

from testsupport.daemon_process import Confdir, ConfdProcess, read, wait_until


@pytest.fixture
def confdir(tmp_path) -> Confdir:
    confdir = Confdir(tmp_path)
    confdir.set_values("app:\n  a: one\n")
    return confdir


@pytest.fixture
def run(confdir) -> Iterator:
    started: list[ConfdProcess] = []

    def start(*args: str) -> ConfdProcess:
        proc = ConfdProcess([*confdir.args(), *args])
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def write_toml(confdir: Confdir, text: str) -> None:
    (confdir.confdir / "confd.toml").write_text(text)


def test_sighup_applies_a_shorter_interval(confdir, run):
    dest = confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"])
    write_toml(confdir, "interval = 100\n")
    proc = run()
    proc.wait_for_log("polling every 100s")
    write_toml(confdir, "interval = 1\n")
    proc.signal(signal.SIGHUP)
    proc.wait_for_log("reloaded: 1/1 resources rendered; polling every 1s")
    confdir.set_values("app:\n  a: two\n")
    changed = time.monotonic()
    wait_until(lambda: read(dest) == "two\n", timeout=3, message=lambda: proc.log)
    assert time.monotonic() - changed < 3


def test_sighup_switches_from_interval_to_watch_and_back(confdir, run):
    dest = confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"])
    write_toml(confdir, "interval = 100\n")
    proc = run()
    proc.wait_for_log("polling every 100s")
    write_toml(confdir, "interval = 100\nwatch = true\n")
    proc.signal(signal.SIGHUP)
    proc.wait_for_log("reloaded: 1/1 resources rendered; watching")
    confdir.set_values("app:\n  a: two\n")
    wait_until(lambda: read(dest) == "two\n", timeout=5, message=lambda: proc.log)
    write_toml(confdir, "interval = 100\nwatch = false\n")
    proc.signal(signal.SIGHUP)
    proc.wait_for_log("reloaded: 1/1 resources rendered; polling every 100s")
    confdir.set_values("app:\n  a: three\n")
    time.sleep(1.0)  # no watch any more: nothing renders until the next pass
    assert read(dest) == "two\n"


def test_sighup_applies_the_log_level_and_names_a_setting_needing_a_restart(confdir, run):
    confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"])
    write_toml(confdir, 'log_level = "info"\n')
    proc = run("--watch")
    proc.wait_for_log("resources rendered")
    assert not any(" DEBUG " in line for line in proc.lines)
    write_toml(confdir, 'log_level = "debug"\nmetrics_addr = "127.0.0.1:1"\n')
    proc.signal(signal.SIGHUP)
    proc.wait_for_log("reloaded:")
    proc.wait_for_log(" DEBUG ")
    proc.wait_for_log("setting metrics_addr changed; it takes effect only when confd restarts")


def test_an_unknown_toml_key_is_warned_about_once_per_load(confdir, run):
    confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"])
    write_toml(confdir, "interval = 1\nbogus = 1\n")
    proc = run()
    proc.wait_for_log("resources rendered")
    time.sleep(3.5)  # three interval passes
    warned = [line for line in proc.lines if "unknown key 'bogus' ignored" in line]
    assert len(warned) == 1, proc.log
    proc.signal(signal.SIGHUP)
    proc.wait_for_log("reloaded:")
    proc.wait_for_log("unknown key 'bogus' ignored", count=2)
    time.sleep(1.5)
    assert sum("unknown key 'bogus'" in line for line in proc.lines) == 2, proc.log


def test_json_logs_stay_json_backends_included(confdir, run, tmp_path):
    confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"])
    write_toml(confdir, "bogus = 1\n")
    # a values directory holding a file the file backend skips (it says so at debug level)
    values_dir = tmp_path / "values"
    values_dir.mkdir()
    (values_dir / "app.yaml").write_text("app:\n  a: one\n")
    (values_dir / "notes.txt").write_text("not values\n")
    proc = ConfdProcess(["--backend", "file", "--file", str(values_dir), "--confdir",
                         str(confdir.confdir), "--onetime", "--log-format", "json",
                         "--log-level", "debug", "--scheme", "https"])
    try:
        assert proc.wait(30) == 0, proc.log
    finally:
        proc.kill()
    records = [json.loads(line) for line in proc.lines]  # every line parses
    messages = [r["msg"] for r in records]
    assert any("skipping" in m and "notes.txt" in m for m in messages), messages
    assert any("unknown key 'bogus'" in m for m in messages)
    assert any("does not use --scheme; ignored" in m for m in messages)
