"""`confd --watch` / `--interval` driven as a subprocess over the file backend.

What a user notices: a change lands in the file, a burst gives one render, an unrelated key
renders nothing, SIGHUP adds a resource, SIGTERM exits 0 leaving whole files, an outage keeps
the last good file and is logged once.
"""

from __future__ import annotations

import re
import signal
import time
import urllib.request
from collections.abc import Iterator

import pytest

from testsupport.daemon_process import Confdir, ConfdProcess, read, wait_until
from testsupport.ports import free_port


@pytest.fixture
def confdir(tmp_path) -> Confdir:
    confdir = Confdir(tmp_path)
    confdir.set_values("app:\n  a: one\n  b: two\n")
    return confdir


@pytest.fixture
def run(confdir) -> Iterator:
    started: list[ConfdProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ConfdProcess:
        proc = ConfdProcess([*confdir.args(), *args], env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def renders(port: int, resource: str) -> int:
    """confd_renders_total for `resource`, scraped from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    match = re.search(rf'^confd_renders_total{{resource="{re.escape(resource)}"}} (\S+)$',
                      body, re.M)
    return int(float(match.group(1))) if match else 0


def reload_cmd(confdir: Confdir, name: str) -> str:
    return f"\"echo reload >> {confdir.out / (name + '.reloads')}\""


def reloads(confdir: Confdir, name: str) -> int:
    return (read(confdir.out / f"{name}.reloads") or "").count("reload")


def test_watch_renders_a_change(confdir, run):
    dest = confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"],
                            reload_cmd=reload_cmd(confdir, "a"))
    proc = run("--watch")
    wait_until(lambda: read(dest) == "one\n", message=lambda: proc.log)
    confdir.set_values("app:\n  a: uno\n  b: two\n")
    wait_until(lambda: read(dest) == "uno\n", message=lambda: proc.log)
    wait_until(lambda: reloads(confdir, "a") == 2)


def test_burst_of_50_changes_gives_one_or_two_renders(confdir, run):
    dest = confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"],
                            reload_cmd=reload_cmd(confdir, "a"))
    proc = run("--watch", "--wait", "700ms:4s")
    wait_until(lambda: reloads(confdir, "a") == 1, message=lambda: proc.log)
    for i in range(50):
        confdir.set_values(f"app:\n  a: v{i}\n  b: two\n")
        time.sleep(0.01)
    wait_until(lambda: read(dest) == "v49\n", message=lambda: proc.log)
    time.sleep(1.5)
    assert 2 <= reloads(confdir, "a") <= 3  # the first pass, then 1-2 for the burst


def test_unrelated_key_change_renders_nothing(confdir, run):
    port = free_port()
    confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"])
    dest_b = confdir.resource("b", '{{ getv("/app/b") }}\n', ["/app"])
    proc = run("--watch", "--metrics-addr", f"127.0.0.1:{port}")
    proc.wait_for_log("resources rendered")
    assert (renders(port, "a.toml"), renders(port, "b.toml")) == (1, 1)
    confdir.set_values("app:\n  a: one\n  b: two\n  c: unread\n")  # nobody reads /app/c
    confdir.set_values("app:\n  a: one\n  b: deux\n  c: unread\n")  # only b reads /app/b
    wait_until(lambda: read(dest_b) == "deux\n", message=lambda: proc.log)
    time.sleep(0.8)
    assert (renders(port, "a.toml"), renders(port, "b.toml")) == (1, 2)


def test_sighup_picks_up_a_new_resource(confdir, run):
    confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"])
    proc = run("--watch")
    proc.wait_for_log("resources rendered")
    dest_b = confdir.resource("b", '{{ getv("/app/b") }}\n', ["/app"])
    proc.signal(signal.SIGHUP)
    wait_until(lambda: read(dest_b) == "two\n", message=lambda: proc.log)
    confdir.set_values("app:\n  a: one\n  b: deux\n")  # and it is watched
    wait_until(lambda: read(dest_b) == "deux\n", message=lambda: proc.log)


def test_sighup_storm_then_sigterm_exits_promptly(confdir, run):
    # 300 SIGHUPs, each waking the main loop, then SIGTERM: confd still exits 0 at once. The
    # signal-handler deadlock it could hit is pinned deterministically in test_signal_safety.
    dest = confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"])
    proc = run("--watch")
    proc.wait_for_log("resources rendered")
    for _ in range(300):
        proc.signal(signal.SIGHUP)
        time.sleep(0.001)
    proc.signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    proc.kill()  # joins the log reader
    assert "stopped" in proc.lines[-1]
    assert "Traceback" not in proc.log
    assert read(dest) == "one\n"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_0_with_destinations_intact(confdir, run, signum):
    big = "{% for i in range(20000) %}{{ getv('/app/a') }} line {{ i }}\n{% endfor %}"
    dests = [confdir.resource(f"r{i}", big, ["/app"]) for i in range(3)]
    proc = run("--watch")
    proc.wait_for_log("resources rendered", timeout=30)
    confdir.set_values("app:\n  a: changed\n  b: two\n")
    time.sleep(0.45)  # likely mid-render
    start = time.monotonic()
    proc.signal(signum)
    assert proc.wait(10) == 0
    assert time.monotonic() - start < 5
    for dest in dests:
        lines = (read(dest) or "").splitlines()
        assert len(lines) == 20000  # never a partial file
        assert len({line.split()[0] for line in lines}) == 1
    assert not list(confdir.out.glob(".*"))  # no stage file left behind


def test_interval_mode_picks_up_changes_and_new_resources(confdir, run):
    dest = confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"])
    proc = run("--interval", "1")
    wait_until(lambda: read(dest) == "one\n", message=lambda: proc.log)
    dest_b = confdir.resource("b", '{{ getv("/app/b") }}\n', ["/app"])
    confdir.set_values("app:\n  a: uno\n  b: two\n")
    wait_until(lambda: read(dest) == "uno\n" and read(dest_b) == "two\n",
               message=lambda: proc.log)


def test_backend_error_keeps_file_logs_once_and_recovers(confdir, run):
    dest = confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"])
    proc = run("--watch")
    wait_until(lambda: read(dest) == "one\n", message=lambda: proc.log)
    confdir.set_values("app: [unclosed\n")  # the file backend can no longer parse it
    time.sleep(3)  # several retries
    assert read(dest) == "one\n"
    failures = [line for line in proc.lines if "failed" in line and "ERROR" in line]
    assert len(failures) == 1, proc.log
    confdir.set_values("app:\n  a: back\n  b: two\n")
    wait_until(lambda: read(dest) == "back\n", message=lambda: proc.log)
    proc.wait_for_log("is back")


def test_backend_that_cannot_watch_is_polled_with_one_warning(confdir, run, tmp_path):
    dest = confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app/a"])
    args = ["--backend", "env", "--confdir", str(confdir.confdir), "--watch", "--interval", "1"]
    proc = ConfdProcess(args, env={"APP_A": "from-env"})
    try:
        wait_until(lambda: read(dest) == "from-env\n", message=lambda: proc.log)
        time.sleep(2.5)
        assert sum("cannot watch" in line for line in proc.lines) == 1, proc.log
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    finally:
        proc.kill()


def test_fail_fast_exits_non_zero_on_backend_error(confdir, run):
    dest = confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"])
    proc = run("--watch", "--failure-mode", "fail-fast")
    wait_until(lambda: read(dest) == "one\n", message=lambda: proc.log)
    confdir.set_values("app: [unclosed\n")
    assert proc.wait(10) == 1
    assert read(dest) == "one\n"
