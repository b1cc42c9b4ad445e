"""Signal handlers must never wait for a lock the thread they interrupt may hold.

CI once caught `confd --watch` hanging for good after SIGTERM: the handler called
`threading.Event.set()` while the main thread sat inside that event's `wait()`, holding its
lock. A trace function here plays the signal handler at every line the main thread runs, which
finds such a deadlock every time instead of once in a few hundred runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from plugin_sdk.protocol import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE
from plugin_sdk.wakeup import Wakeup
from testsupport.plugins import install

ROOT = Path(__file__).resolve().parents[1]

# Runs Daemon.serve() in the main thread; before every line of daemon.py, wakeup.py and
# threading.py it runs what SIGHUP's handler runs, 1,999 times, then once what SIGTERM's does.
PROBE = """
import sys, threading
from types import SimpleNamespace
from confd.run.daemon import Daemon

nothing = SimpleNamespace(resources=[], watch=True, interval=60, wait=None, shutdown_timeout=10,
                          watch_error_backoff=0.2,
                          failure_mode="best-effort", close=lambda: None)
daemon = Daemon(lambda: nothing)
if sys.argv[1] == "event":
    daemon._wake = threading.Event()  # what confd used before: the probe must catch it
assert daemon.start()
injected = 0
inside = False

def handler_here(frame, event, arg):
    global injected, inside
    if event == "line" and not inside and injected < 2000:
        inside = True
        injected += 1
        if injected < 2000:
            daemon.request_reload()
        else:
            daemon.request_stop()
        inside = False
    return handler_here

def trace(frame, event, arg):
    name = frame.f_code.co_filename
    return handler_here if name.endswith(("daemon.py", "wakeup.py", "threading.py")) else None

sys.settrace(trace)
daemon.serve()
sys.settrace(None)
daemon.shutdown()
print("stopped after", injected, "handler runs")
"""


def run_script(
    script: str, variant: str, timeout: float
) -> subprocess.CompletedProcess[str] | None:
    """`script` run with argument `variant`, or None when it hung for `timeout` seconds."""
    try:
        return subprocess.run([sys.executable, "-c", script, variant], cwd=ROOT, text=True,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def test_a_handler_at_any_line_of_the_main_loop_never_deadlocks() -> None:
    done = run_script(PROBE, "wakeup", 30)
    assert done is not None, "the daemon's main loop deadlocked under a signal handler"
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[2] == "2000", done.stdout


def test_the_probe_catches_a_handler_that_takes_a_lock() -> None:
    # The same probe over threading.Event hangs: so the test above can fail.
    assert run_script(PROBE, "event", 5) is None


def test_wakeup_waits_for_set_from_another_thread() -> None:
    wakeup = Wakeup()
    threading.Timer(0.1, wakeup.set).start()
    started = time.monotonic()
    assert wakeup.wait(5)
    assert 0.05 < time.monotonic() - started < 2
    assert wakeup.is_set()
    wakeup.clear()
    assert not wakeup.is_set()
    wakeup.close()


def test_wakeup_wait_times_out_false() -> None:
    wakeup = Wakeup()
    started = time.monotonic()
    assert not wakeup.wait(0.2)
    assert 0.15 < time.monotonic() - started < 2
    wakeup.close()


def test_a_set_lowered_by_clear_does_not_make_wait_spin() -> None:
    # set() raced with clear(): the flag is down but a byte is left in the pipe. wait() must
    # still wait out its timeout (a `while not wait(1.0)` loop would otherwise spin).
    wakeup = Wakeup()
    wakeup.set()
    wakeup._flag = False  # clear() lowered the flag but had not drained the byte yet
    started = time.monotonic()
    assert not wakeup.wait(0.3)
    assert time.monotonic() - started >= 0.25
    wakeup.close()


def test_set_after_close_only_raises_the_flag() -> None:
    wakeup = Wakeup()
    wakeup.close()
    wakeup.set()  # e.g. a late signal during shutdown: no write to a reused descriptor
    assert wakeup.is_set()
    assert wakeup.wait(0)


def test_real_signal_storm_against_wait_and_clear() -> None:
    # Real SIGUSR1s as fast as a thread can send them while the main thread waits and clears.
    script = """
import os, signal, sys, threading, time
from plugin_sdk.protocol import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE
from plugin_sdk.wakeup import Wakeup
from testsupport.plugins import install
sys.setswitchinterval(0.0001)
flag = Wakeup()
signal.signal(signal.SIGUSR1, lambda *_: flag.set())
done = False
def pester():
    while not done:
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.0005)
threading.Thread(target=pester, daemon=True).start()
end = time.monotonic() + 1.5
loops = 0
while time.monotonic() < end:
    flag.wait(0)
    flag.clear()
    loops += 1
done = True
print(loops)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, text=True,
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) > 1000


def test_plugin_exits_0_soon_after_sigterm(tmp_path: Path) -> None:
    # The plugin SDK's serving loop waits on a Wakeup that SIGTERM's handler raises.
    plugin = install(tmp_path, "jsonfile.py", "jsonfile")
    env = {**os.environ, MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE}
    proc = subprocess.Popen([str(plugin)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        handshake = proc.stdout.readline()
        assert handshake.startswith("1|"), handshake
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# SIGTERM delivered by the kernel to another thread of confd (it may pick any thread that does
# not block the signal): the main loop must still wake, run the handler and stop.
OTHER_THREAD = """
import signal, sys, threading, time
from types import SimpleNamespace
from confd.run.daemon import Daemon

nothing = SimpleNamespace(resources=[], watch=True, interval=60, wait=None, shutdown_timeout=10,
                          watch_error_backoff=0.2,
                          failure_mode="best-effort", close=lambda: None)
daemon = Daemon(lambda: nothing)
if sys.argv[1] == "no-wakeup-fd":
    daemon.wake_on_signals = lambda: None
daemon.install_signal_handlers()
assert daemon.start()

def send_to_myself():
    time.sleep(0.3)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
    time.sleep(30)  # stay alive: the signal is this thread's to take

threading.Thread(target=send_to_myself, daemon=True).start()
daemon.serve()
daemon.shutdown()
print("stopped")
"""


def test_a_signal_taken_by_another_thread_still_stops_the_daemon() -> None:
    done = run_script(OTHER_THREAD, "wakeup-fd", 20)
    assert done is not None, "SIGTERM delivered to a non-main thread was never handled"
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"


def test_without_the_wakeup_fd_that_signal_is_lost() -> None:
    # What happened before: the main thread slept in select() and never ran the handler.
    assert run_script(OTHER_THREAD, "no-wakeup-fd", 3) is None
