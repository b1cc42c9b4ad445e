"""Exec mode for containers: `confd exec [options] -- CMD ARGS...`.

Renders everything first (the program does not start if a resource fails), starts the program,
forwards signals to it, reloads it on a change (`--reload-signal`, or a restart when none is
set), stops it with `--kill-signal` then SIGKILL after `--kill-timeout`, and exits with its
status. As PID 1 it also reaps orphaned zombies, as an init must.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from confd.errors import ConfigError
from confd.log import get_logger
from confd.run.daemon import Daemon

if TYPE_CHECKING:
    from confd.config.settings import Settings
from plugin_sdk.wakeup import Wakeup

log = get_logger("exec")

# Signals passed on to the program as they arrive. SIGHUP reloads confd itself (a change it
# renders then reaches the program as the reload signal); SIGCHLD is ours.
FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGCONT,
    signal.SIGALRM,
)
_STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def parse_signal(text: str, option: str) -> signal.Signals:
    """`SIGHUP`, `HUP`, `hup` or `1` as a signal; a clear error naming `option` otherwise."""
    raw = text.strip()
    try:
        if raw.isdigit():
            return signal.Signals(int(raw))
        name = raw.upper()
        return signal.Signals[name if name.startswith("SIG") else "SIG" + name]
    except (KeyError, ValueError):
        raise ConfigError(f"{option}: unknown signal {text!r} (e.g. SIGHUP, TERM, 15)") from None


def exit_status(returncode: int) -> int:
    """A child's return code as a shell reports it: 128+N when killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class Child:
    """The supervised program: start it, signal it, restart it, stop it; calls `on_exit` once
    when it ends on its own (not for a restart we asked for)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        reload_signal: signal.Signals | None,
        kill_signal: signal.Signals = signal.SIGTERM,
        kill_timeout: float = 10.0,
        on_exit: Callable[[int], None] = lambda status: None,
    ) -> None:
        if not argv:
            raise ConfigError("confd exec: no command given (usage: confd exec [options] -- CMD)")
        self.argv = list(argv)
        self.reload_signal = reload_signal
        self.kill_signal = kill_signal
        self.kill_timeout = kill_timeout
        self._on_exit = on_exit
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._restarting = False
        self.status: int | None = None
        self.stopping = False

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process else None

    def start(self) -> None:
        """Start the program (in its own process group unless attached to a terminal)."""
        with self._lock:
            try:
                process = subprocess.Popen(
                    self.argv,
                    process_group=None if sys.stdin.isatty() else 0,
                )
            except OSError as exc:
                raise ConfigError(f"confd exec: cannot start {self.argv[0]!r}: {exc}") from exc
            self._process = process
            log.info("started %s (pid %d)", self.argv[0], process.pid)
        threading.Thread(target=self._wait, args=(process,), name="child-wait", daemon=True).start()

    def _wait(self, process: subprocess.Popen[bytes]) -> None:
        returncode = process.wait()
        with self._lock:
            if process is not self._process or self._restarting:
                return
            self.status = exit_status(returncode)
        log.info("%s (pid %d) exited with status %d", self.argv[0], process.pid, self.status)
        self._on_exit(self.status)

    def send(self, signum: int) -> None:
        """Pass a signal on to the program, if it runs."""
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)

    def reload(self) -> None:
        """A rendered file changed: send the reload signal, or restart the program."""
        with self._lock:
            if self.stopping or self._process is None or self.status is not None:
                return
            if self.reload_signal is not None:
                log.info("sending %s to %s", self.reload_signal.name, self.argv[0])
                self.send(self.reload_signal)
                return
            log.info("restarting %s for the changed configuration", self.argv[0])
            self._restarting = True
            try:
                self._terminate(self._process)
                self.start()
            finally:
                self._restarting = False

    def stop(self) -> int:
        """Stop the program: kill signal, SIGKILL after the timeout; returns its exit status."""
        with self._lock:
            self.stopping = True
            process = self._process
        if process is None:
            return 0
        if process.poll() is None:
            self._terminate(process)
        return exit_status(process.wait())

    def wait_after_signal(self) -> None:
        """After forwarding a stop signal: SIGKILL the program if it outlives the timeout."""
        process = self._process
        if process is None:
            return
        try:
            process.wait(self.kill_timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s ignored the stop signal for %gs; killing it",
                        self.argv[0], self.kill_timeout)
            self.send(signal.SIGKILL)

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, self.kill_signal)
        try:
            process.wait(self.kill_timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %gs of %s; sending SIGKILL",
                        self.argv[0], self.kill_timeout, self.kill_signal.name)
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait()


class Reaper(threading.Thread):
    """Reaps orphaned zombies re-parented to confd running as PID 1.

    Only zombies that stay unreaped for a second are collected, so the check and reload
    commands that `subprocess` waits for itself keep their exit status.
    """

    def __init__(self, exclude: Callable[[], int | None], period: float = 1.0) -> None:
        super().__init__(name="reaper", daemon=True)
        self._exclude = exclude
        self._period = period
        self._stop_event = threading.Event()
        self.reaped = 0

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        seen: set[int] = set()
        while not self._stop_event.wait(self._period):
            zombies = set(_zombie_children()) - {self._exclude() or -1}
            for pid in zombies & seen:
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        self.reaped += 1
                        log.debug("reaped orphan pid %d", pid)
            seen = zombies


def _zombie_children() -> list[int]:
    """Pids of this process's children that are zombies (from /proc)."""
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[0] == b"Z" and int(fields[1]) == me:
            found.append(int(entry.name))
    return found


class ChildOptions(NamedTuple):
    """The program `confd exec` supervises, and how to reload and stop it."""

    argv: Sequence[str]
    reload_signal: signal.Signals | None = None  # None: restart the program on a change
    kill_signal: signal.Signals = signal.SIGTERM
    kill_timeout: float = 10.0


def run_exec(settings: Settings, read: Callable[[], Settings], options: ChildOptions) -> int:
    """Render everything, then start and supervise the program; returns the exit status.

    Watches unless `--no-watch` was given explicitly; with `--onetime` confd renders once
    and then only supervises the program (no watch, no interval pass, no reload).
    """
    from confd.observe.systemd import Notifier
    from confd.run.assembly import Loader, metrics_endpoint

    onetime = bool(settings.onetime)
    watch = False if onetime else (settings.watch if settings.source("watch") != "default"
                                   else True)
    with metrics_endpoint(settings) as metrics:
        reloads = _Coalesced(lambda: child.reload())
        daemon = Daemon(Loader(read, first=settings), notifier=Notifier(), metrics=metrics,
                        on_change=lambda resource: reloads.request(), watch=watch,
                        once=onetime)
        child = Child(options.argv, reload_signal=options.reload_signal,
                      kill_signal=options.kill_signal, kill_timeout=options.kill_timeout,
                      on_exit=daemon.request_stop)
        try:
            return _supervise(daemon, child, supervise=not onetime)
        finally:
            reloads.close()


def _supervise(daemon: Daemon, child: Child, *, supervise: bool) -> int:
    """Start the daemon, then the program; serve (or, onetime, just wait) until either ends."""
    reaper = Reaper(lambda: child.pid) if os.getpid() == 1 else None
    if reaper is not None:
        reaper.start()
    # Signal handlers take no lock and start no thread (the main thread they interrupt may
    # hold the lock they would need): `forward` only signals the child and raises a flag.
    stop_forwarded = Wakeup()
    finished = False

    def forward(signum: int, _frame: object) -> None:
        child.send(signum)
        if signum in _STOPPING:
            stop_forwarded.set()

    def kill_if_ignored() -> None:
        stop_forwarded.wait()
        if not finished:
            child.wait_after_signal()

    threading.Thread(target=kill_if_ignored, name="child-stop", daemon=True).start()
    failed = False
    try:
        daemon.wake_on_signals()
        signal.signal(signal.SIGHUP, lambda *_: daemon.request_reload())
        for signum in _STOPPING:  # until the program runs, a stop signal stops confd
            signal.signal(signum, lambda *_: daemon.request_stop(1))
        if not daemon.start():
            log.error("not starting %s: rendering failed", child.argv[0])
            return 1
        if daemon.pass_failures:
            log.error("not starting %s: %d resource(s) failed", child.argv[0],
                      daemon.pass_failures)
            failed = True
            return 1
        for signum in FORWARDED:
            signal.signal(signum, forward)
        child.start()
        if supervise:
            daemon.serve()
        else:
            while child.status is None and not daemon.stop_requested:
                time.sleep(0.1)
    except ConfigError as exc:
        log.error("%s", exc)
        return 1
    finally:
        finished = True
        stop_forwarded.set()
        daemon.shutdown()
        status = child.stop() if child.pid is not None else None
        if reaper is not None:
            reaper.stop()
        stop_forwarded.close()
    if child.status is not None:
        return child.status
    return 1 if failed else (status or daemon.exit_code)


class _Coalesced:
    """Runs `action` on a thread once per burst of requests (a pass changing 3 files: 1 reload)."""

    def __init__(self, action: Callable[[], None], settle: float = 0.05) -> None:
        self._action = action
        self._settle = settle
        self._event = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="child-reload", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._event.set()

    def close(self) -> None:
        self._closed = True
        self._event.set()

    def _run(self) -> None:
        while True:
            self._event.wait()
            if self._closed:
                return
            time.sleep(self._settle)
            self._event.clear()
            if self._closed:
                return
            self._action()
