"""`confd exec` driven as a subprocess: render first, forward signals, reload, exit status."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testsupport.daemon_process import Confdir, ConfdProcess, read, wait_until

CHILD = """#!/bin/sh
log={log}
trap 'echo usr1 >> $log' USR1
trap 'echo hup >> $log' HUP
trap 'echo term >> $log; exit 7' TERM
echo "start $(cat {dest})" >> $log
while true; do sleep 0.05; done
"""


@pytest.fixture
def setup(tmp_path) -> Iterator[tuple[Confdir, list[ConfdProcess]]]:
    confdir = Confdir(tmp_path)
    confdir.set_values("app:\n  greeting: hello\n")
    dest = confdir.resource("greet", '{{ getv("/app/greeting") }}\n', ["/app"])
    child = tmp_path / "child.sh"
    child.write_text(CHILD.format(log=tmp_path / "child.log", dest=dest))
    child.chmod(0o755)
    started: list[ConfdProcess] = []
    yield confdir, started
    for proc in started:  # SIGTERM first: confd exec stops its program, SIGKILL would orphan it
        if proc.proc.poll() is None:
            proc.signal(signal.SIGTERM)
            with contextlib.suppress(AssertionError):
                proc.wait(15)
        proc.kill()
    wait_until(lambda: not running(child), 5,
               lambda: f"{child} still runs after confd exec stopped: {running(child)}")


def running(script: Path) -> list[int]:
    """PIDs of processes whose command line names `script`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(script).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def start(setup, *exec_args: str, command: list[str] | None = None) -> ConfdProcess:
    confdir, started = setup
    cmd = command or [str(confdir.base / "child.sh")]
    proc = ConfdProcess([*confdir.args(), "exec", *exec_args, "--", *cmd])
    started.append(proc)
    return proc


def child_log(setup) -> list[str]:
    return (read(setup[0].base / "child.log") or "").split()


def test_renders_before_starting_and_forwards_signals(setup):
    proc = start(setup, "--reload-signal", "SIGHUP")
    wait_until(lambda: child_log(setup)[:2] == ["start", "hello"])  # file rendered first
    proc.signal(signal.SIGUSR1)
    wait_until(lambda: "usr1" in child_log(setup))
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 7  # the child's own exit status
    assert child_log(setup) == ["start", "hello", "usr1", "term"]


def test_change_sends_the_reload_signal(setup):
    confdir, _ = setup
    proc = start(setup, "--reload-signal", "HUP")
    wait_until(lambda: "start" in child_log(setup))
    confdir.set_values("app:\n  greeting: bye\n")
    wait_until(lambda: "hup" in child_log(setup), message=lambda: proc.log)
    assert read(confdir.out / "greet") == "bye\n"
    assert child_log(setup).count("hup") == 1
    assert child_log(setup).count("start") == 1


def test_change_without_reload_signal_restarts_the_child(setup):
    confdir, _ = setup
    start(setup)
    wait_until(lambda: "start" in child_log(setup))
    confdir.set_values("app:\n  greeting: bye\n")
    wait_until(lambda: child_log(setup)[-2:] == ["start", "bye"])
    assert child_log(setup) == ["start", "hello", "term", "start", "bye"]


@pytest.mark.parametrize(("code", "expected"), [("0", 0), ("3", 3), ("kill -KILL $$", 137)])
def test_exits_with_the_child_status(setup, code, expected):
    command = ["sh", "-c", f"exit {code}" if code.isdigit() else code]
    proc = start(setup, command=command)
    assert proc.wait() == expected


def test_render_failure_starts_nothing(setup):
    confdir, _ = setup
    confdir.resource("broken", '{{ getv("/app/missing") }}\n', ["/app"])
    proc = start(setup, command=["sh", "-c", f"touch {confdir.base / 'started'}"])
    assert proc.wait() == 1
    assert not (confdir.base / "started").exists()
    assert "not starting" in proc.log


def test_stubborn_child_is_killed_after_kill_timeout(setup):
    # says so on stderr (confd's log) once SIGTERM is ignored: a TERM sent before that would
    # end it with 143, not the 137 of the kill this test is about
    script = "trap '' TERM; echo trap set >&2; while true; do sleep 0.05; done"
    proc = start(setup, "--kill-timeout", "0.5", command=["sh", "-c", script])
    proc.wait_for_log("trap set")
    proc.signal(signal.SIGTERM)
    assert proc.wait(5) == 137
    assert "killing it" in proc.log


def test_as_pid_1_orphaned_zombies_are_reaped(setup):
    confdir, started = setup
    # The child orphans a short-lived grandchild (re-parented to PID 1, confd), waits, then
    # exits with the number of zombies left in the PID namespace.
    script = (
        "( sleep 0.2 & ); sleep 3; "
        "exit $(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l)"
    )
    proc = ConfdProcess(
        [*confdir.args(), "exec", "--", "sh", "-c", script],
        wrapper=["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"],
    )
    started.append(proc)
    assert proc.wait(15) == 0, proc.log


def test_onetime_renders_once_then_only_supervises(setup):
    # `confd exec --onetime`: the file is rendered once, the program starts, and a later change
    # neither re-renders nor restarts it (no watch); the program's exit ends confd.
    confdir, _ = setup
    dest = confdir.out / "greet"
    proc = start(setup, "--onetime")
    wait_until(lambda: child_log(setup)[:2] == ["start", "hello"], message=lambda: proc.log)
    confdir.set_values("app:\n  greeting: changed\n")
    time.sleep(1.5)
    assert read(dest) == "hello\n"
    assert child_log(setup) == ["start", "hello"]  # not restarted
    assert "1/1 resources rendered; rendered once, not watching" in proc.log
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 7
