"""The run loops: interval (poll everything every N seconds) and watch (shared prefix watches).

The daemon sees each template resource as a `Target`: what it reads (backend, prefix, keys),
how to render it, and its debounce and throttle. One worker thread renders what the
`Schedule` says is due, so renders never overlap and a stop never cuts one in half. Signals:
SIGTERM/SIGINT stop gracefully, SIGHUP reloads the configuration keeping unchanged watches.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from confd.config.durations import Wait
from confd.errors import ConfdError
from confd.log import get_logger
from confd.observe.metrics import Metrics
from confd.observe.systemd import Notifier
from confd.run.schedule import Schedule
from confd.run.watch import PrefixWatch
from plugin_sdk.database import Database, WatchUnsupported
from plugin_sdk.wakeup import Wakeup

log = get_logger("daemon")

BEST_EFFORT, FAIL_FAST = "best-effort", "fail-fast"
FAILURE_MODES = (BEST_EFFORT, FAIL_FAST)


class Dependencies(Protocol):
    """What a render read (`confd.template.store.Reads`): can a change of this key alter it?"""

    def depends_on(self, changed_key: str) -> bool: ...


@dataclass(frozen=True)
class RenderResult:
    """How one render went: `changed` when the destination was replaced (and reloaded)."""

    ok: bool
    changed: bool = False
    reads: Dependencies | None = None  # None: unknown, so every change may matter
    error: str = ""
    values: Mapping[str, str] | None = None  # what the render read from its database, if it did


@dataclass(frozen=True)
class Target:
    """One template resource as the run loops see it.

    `id` stays the same across SIGHUP while the resource is unchanged; `backend` names the
    database instance, so resources on the same backend and prefix share one watch.
    """

    id: Hashable
    name: str
    backend: str
    database: Database
    prefix: str
    keys: tuple[str, ...]
    render: Callable[[], RenderResult] = field(compare=False)
    wait: Wait | None = None
    min_reload_interval: float = 0.0


@dataclass
class _State:
    """What the daemon remembers of a target between renders."""

    reads: Dependencies | None = None
    last_reload: float | None = None
    failing: bool = False


Loader = Callable[[], list[Target]]


class Daemon:
    """Runs the interval or watch loop over the targets `load()` returns, until stopped.

    `load` is called at start and on SIGHUP (and, in interval mode, before every pass, so a
    new file in conf.d is picked up). `on_change` is called after a render replaced a file.
    """

    def __init__(
        self,
        load: Loader,
        *,
        watch: bool,
        interval: float,
        wait: Wait | None = None,
        failure_mode: str = BEST_EFFORT,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
        on_change: Callable[[Target], None] | None = None,
        stop_timeout: float = 10.0,
        baseline_timeout: float = 15.0,
    ) -> None:
        if failure_mode not in FAILURE_MODES:
            raise ConfdError(
                f"--failure-mode must be best-effort or fail-fast, not {failure_mode!r}"
            )
        self._load = load
        self.watch = watch
        self.interval = float(interval)
        self.wait = wait
        self.failure_mode = failure_mode
        self.notifier = notifier or Notifier({})
        self.metrics = metrics or Metrics()
        self.on_change = on_change
        self.stop_timeout = stop_timeout
        self.baseline_timeout = baseline_timeout
        self.exit_code = 0
        self._targets: dict[Hashable, Target] = {}
        self._states: dict[Hashable, _State] = {}
        self._groups: dict[tuple[str, str], list[Target]] = {}
        self._watches: dict[tuple[str, str], PrefixWatch] = {}
        self._lock = threading.RLock()
        self._schedule = Schedule()
        self._worker: threading.Thread | None = None
        self._wake = Wakeup()  # set by signal handlers: must take no lock
        self._stop_requested = False
        self._reload_requested = False
        self._pass_left: set[Hashable] = set()
        self._pass_failed = 0
        self._pass_done = threading.Condition(self._lock)
        self._polled_backends: set[str] = set()
        self._rendering = False

    # -- control, safe from signal handlers and other threads -------------------------------

    def request_stop(self, code: int = 0) -> None:
        """Stop soon: finish the render in flight, start no new one, exit with `code`."""
        if code and not self.exit_code:
            self.exit_code = code
        self._stop_requested = True
        self._wake.set()

    def wake_on_signals(self) -> None:
        """Let any signal wake the main loop (call from the main thread, with the handlers)."""
        self._wake.wake_on_signals()

    def request_reload(self) -> None:
        """Re-read the configuration (what SIGHUP does)."""
        self._reload_requested = True
        self._wake.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads (main thread only)."""
        self.wake_on_signals()
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    # -- the loop ---------------------------------------------------------------------------

    def run(self, signals: bool = True) -> int:
        """Start, serve until stopped, shut down; returns the exit code."""
        if signals:
            self.install_signal_handlers()
        try:
            if not self.start():
                self.exit_code = self.exit_code or 1
                return self.exit_code
            self.serve()
        finally:
            self.shutdown()
        return self.exit_code

    def start(self) -> bool:
        """Load the targets, start watches and the worker, and render everything once.

        Returns False when loading failed, or when a render failed under fail-fast.
        """
        self.notifier.status("loading configuration")
        try:
            targets = self._load()
        except ConfdError as exc:
            log.error("%s", exc)
            return False
        self._worker = threading.Thread(target=self._work, name="render", daemon=True)
        self._worker.start()
        self._apply(targets)  # watches read their baseline before the first pass renders
        failed = self._full_pass(list(self._targets))
        if self._stop_requested:
            return not failed and not self.exit_code
        if failed and self.failure_mode == FAIL_FAST:
            log.error(
                "%d resource(s) failed on the first pass; stopping (--failure-mode fail-fast)",
                failed,
            )
            return False
        self.metrics.ready = True
        summary = self._summary(failed)
        log.info("%s", summary)
        self.notifier.ready(summary)
        self.notifier.start_watchdog(healthy=self._healthy)
        return True

    @property
    def pass_failures(self) -> int:
        """How many targets failed in the last full pass (exec mode starts no program then)."""
        return self._pass_failed

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def serve(self) -> None:
        """Handle SIGHUP, interval ticks and stop requests until a stop."""
        next_pass = time.monotonic() + self.interval
        while not self._stop_requested:
            timeout = None if self.watch else max(next_pass - time.monotonic(), 0.0)
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stop_requested:
                break
            if self._reload_requested:
                self._reload_requested = False
                self._reload()
                next_pass = time.monotonic() + self.interval
            elif not self.watch and time.monotonic() >= next_pass:
                self._interval_pass()
                next_pass = time.monotonic() + self.interval

    def shutdown(self) -> None:
        """Stop watches, let the render in flight finish, and close the databases."""
        self._stop_requested = True
        self.notifier.stopping()
        self.metrics.ready = False
        self._schedule.close()
        with self._lock:
            watches = list(self._watches.values())
            self._watches.clear()
            databases = {id(t.database): t.database for t in self._targets.values()}
        for watch in watches:
            watch.stop()
        if self._worker is not None:
            self._worker.join(self.stop_timeout)
            if self._worker.is_alive():
                log.warning("a render still runs after %.0fs; exiting anyway", self.stop_timeout)
        for watch in watches:
            watch.join(2.0)
        for database in databases.values():
            try:
                database.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the real exit code
                log.debug("closing backend %s failed: %s", database.name, exc)
        self.notifier.close()
        self._wake.close()
        log.info("stopped")

    # -- configuration changes ----------------------------------------------------------------

    def _apply(self, targets: Iterable[Target]) -> list[Hashable]:
        """Switch to `targets`: keep state and watches that still fit, start and stop the rest.

        Returns the ids of targets that are new or changed.
        """
        new = {t.id: t for t in targets}
        groups: dict[tuple[str, str], list[Target]] = {}
        for target in new.values():
            groups.setdefault((target.backend, target.prefix), []).append(target)
        with self._lock:
            fresh = [key for key in new if key not in self._targets]
            for key in set(self._targets) - set(new):
                self._states.pop(key, None)
                self._schedule.discard(key)
            for key in fresh:
                self._states[key] = _State()
            self._targets = new
            self._groups = groups
            old_watches = self._watches
            self._watches = {}
            to_stop = []
            started = []
            for group, members in groups.items():
                keys = sorted({key for t in members for key in t.keys})
                watch = old_watches.pop(group, None)
                if watch is not None and list(watch.keys) == keys and not watch.stopping:
                    self._watches[group] = watch
                    continue
                if watch is not None:
                    to_stop.append(watch)
                if self.watch:
                    self._watches[group] = self._start_watch(group, members[0].database, keys)
                    started.append(self._watches[group])
            to_stop.extend(old_watches.values())
        for watch in to_stop:
            log.debug("stopping the watch on %s:%s", watch.backend, watch.prefix)
            watch.stop()
        # A change between a render and its watch's first read would be missed: let new
        # watches take their baseline snapshot first (bounded, for a backend that hangs).
        deadline = time.monotonic() + self.baseline_timeout
        for watch in started:
            if not watch.synced.wait(max(deadline - time.monotonic(), 0.0)):
                log.warning("watch on %s:%s is slow to start; rendering anyway",
                            watch.backend, watch.prefix or "/")
                break
        return fresh

    def _start_watch(
        self, group: tuple[str, str], database: Database, keys: list[str]
    ) -> PrefixWatch:
        backend, prefix = group
        watch = PrefixWatch(
            database,
            backend,
            prefix,
            keys,
            on_change=lambda changed: self._changed(group, changed),
            on_state=self._watch_state,
            poll_interval=self.interval,
            on_resync=lambda: self._retry_failing(group),
        )
        log.debug("watching %s:%s (%d keys)", backend, prefix or "/", len(keys))
        watch.start()
        return watch

    def _reload(self) -> None:
        """SIGHUP: re-read confd.toml, conf.d and templates; keep watches of unchanged prefixes."""
        log.info("SIGHUP: reloading the configuration")
        self.notifier.reloading()
        try:
            targets = self._load()
        except ConfdError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            self.notifier.ready(f"reload failed: {exc}")
            return
        self._apply(targets)
        failed = self._full_pass(list(self._targets))
        summary = self._summary(failed)
        log.info("reloaded: %s", summary)
        self.notifier.ready(summary)

    def _interval_pass(self) -> None:
        """Interval mode: re-scan conf.d and render everything."""
        try:
            targets = self._load()
        except ConfdError as exc:
            log.error("re-reading the configuration failed, keeping the last one: %s", exc)
        else:
            self._apply(targets)
        failed = self._full_pass(list(self._targets))
        self.notifier.status(self._summary(failed))

    # -- rendering -----------------------------------------------------------------------------

    def _full_pass(self, keys: list[Hashable]) -> int:
        """Render every target in `keys` now and wait for all; returns how many failed."""
        with self._lock:
            self._pass_left = set(keys)
            self._pass_failed = 0
            for key in keys:
                self._schedule.request(key)
            while self._pass_left and not self._stop_requested:
                self._pass_done.wait(0.5)
            return self._pass_failed

    def _changed(self, group: tuple[str, str], changed: set[str]) -> None:
        """A watch saw `changed` keys: schedule the targets whose last render read one."""
        with self._lock:
            members = self._groups.get(group, ())
            for target in members:
                state = self._states[target.id]
                reads = state.reads
                if reads is None or any(reads.depends_on(key) for key in changed):
                    self._request(target, state)

    def _retry_failing(self, group: tuple[str, str]) -> None:
        """The backend answered a full read: render again the targets of `group` that failed
        (the backend may have been down for their last render)."""
        with self._lock:
            for target in self._groups.get(group, ()):
                state = self._states[target.id]
                if state.failing and target.id not in self._pass_left:
                    self._request(target, state)

    def _request(self, target: Target, state: _State) -> None:
        not_before = 0.0
        if target.min_reload_interval and state.last_reload is not None:
            not_before = state.last_reload + target.min_reload_interval
        self._schedule.request(target.id, target.wait or self.wait, not_before)

    def _work(self) -> None:
        """The render thread: render whatever is due, one at a time."""
        while True:
            due = self._schedule.take()
            if not due:
                return
            for key in due:
                if self._stop_requested:
                    return
                with self._lock:
                    target = self._targets.get(key)
                if target is not None:
                    self._render(target)

    def _render(self, target: Target) -> None:
        self._rendering = True
        try:
            result = target.render()
        except Exception as exc:  # noqa: BLE001 - a bug in one render must not stop the others
            log.exception("resource %s: render crashed", target.name)
            result = RenderResult(ok=False, error=str(exc))
        finally:
            self._rendering = False
        with self._lock:
            state = self._states.get(target.id)
            if state is not None:
                state.reads = result.reads  # a failed render's reads hold the missing key
                if result.changed:
                    state.last_reload = time.monotonic()
                if result.ok and state.failing:
                    log.info("resource %s: rendering works again", target.name)
                state.failing = not result.ok
            if target.id in self._pass_left:
                self._pass_left.discard(target.id)
                self._pass_failed += 0 if result.ok else 1
                self._pass_done.notify_all()
        if result.values is not None:
            self._observe(target, result.values)
        if result.ok:
            self.metrics.rendered(target.name, reloaded=result.changed)
            if result.changed and self.on_change is not None:
                self.on_change(target)
        else:
            self.metrics.render_failed(target.name)
            if self.failure_mode == FAIL_FAST and self.metrics.ready:
                log.error("resource %s failed; stopping (--failure-mode fail-fast)", target.name)
                self.request_stop(1)

    def _observe(self, target: Target, values: Mapping[str, str]) -> None:
        """Hand what a render read to the watches of its database, which re-render the targets
        that read other values (backends start watching after the newest read, so a change a
        render saw first would otherwise never reach the targets rendered before it)."""
        with self._lock:
            watches = [w for (backend, _), w in self._watches.items() if backend == target.backend]
        for watch in watches:
            watch.observe(target.keys, values)

    # -- watch state ----------------------------------------------------------------------------

    def _watch_state(self, watch: PrefixWatch, error: Exception | None) -> None:
        """Log a watch's state changes once each (not per retry) and count them."""
        where = f"{watch.backend}:{watch.prefix or '/'}"
        if isinstance(error, WatchUnsupported):
            if watch.backend not in self._polled_backends:
                self._polled_backends.add(watch.backend)
                log.warning(
                    "backend %s cannot watch; polling it every %gs instead (--interval)",
                    watch.backend,
                    self.interval,
                )
            return
        if error is None:
            log.info("watch on %s is back; changes made meanwhile are being applied", where)
            self.metrics.watch_reconnected(watch.prefix or "/")
            return
        self.metrics.backend_error(watch.backend)
        if self.failure_mode == FAIL_FAST:
            log.error("watch on %s failed: %s; stopping (--failure-mode fail-fast)", where, error)
            self.request_stop(1)
        else:
            log.error(
                "watch on %s failed: %s; keeping the last good files and retrying", where, error
            )

    def _healthy(self) -> bool:
        worker = self._worker
        healthy = worker is not None and worker.is_alive()
        self.metrics.healthy = healthy
        return healthy

    def _summary(self, failed: int) -> str:
        total = len(self._targets)
        mode = "watching" if self.watch else f"polling every {self.interval:g}s"
        text = f"{total - failed}/{total} resources rendered; {mode}"
        return text + (f"; {failed} failing" if failed else "")
