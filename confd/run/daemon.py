"""The long-running daemon: the lifecycle of watch and interval mode around a `Runtime`.

`Daemon` loads a runtime (start, SIGHUP), renders everything once, then serves: in watch mode
the shared prefix watches (`confd.run.watch.WatchGroups`) request renders of the resources a
change can affect; in interval mode every resource is rendered every `interval` seconds (conf.d
re-scanned). One worker thread renders what the `Schedule` says is due, so renders never
overlap and a stop never cuts one in half. It renders everything due at once as one batch
(`Runtime.render_many`: one read per database for the batch), so a full pass, or a change read by
many resources, reads the store once. Every knob (watch or interval, interval, wait, failure
mode) comes from the current runtime, so SIGHUP applies all of them.
"""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from confd.config.durations import Wait
from confd.config.resource import TemplateResource
from confd.errors import ConfdError
from confd.log import get_logger
from confd.observe.metrics import Metrics
from confd.observe.systemd import Notifier
from confd.run.processor import Copies, Outcome
from confd.run.schedule import Schedule
from confd.run.watch import PrefixWatch, WatchGroups
from confd.sync import Status
from plugin_sdk.database import Database, WatchUnsupported
from plugin_sdk.wakeup import Wakeup

__all__ = ["Assembly", "Daemon", "BEST_EFFORT", "FAIL_FAST"]

log = get_logger("daemon")

BEST_EFFORT, FAIL_FAST = "best-effort", "fail-fast"


class Assembly(Protocol):
    """What the daemon runs on (`confd.run.assembly.Runtime`; tests give their own)."""

    resources: Sequence[TemplateResource]
    watch: bool
    interval: float
    wait: Wait | None
    failure_mode: str
    watch_error_backoff: float
    shutdown_timeout: float

    def scan(self) -> None: ...
    def database(self, resource: TemplateResource) -> Database: ...
    def label(self, resource: TemplateResource) -> str: ...
    def render_many(self, resources: Sequence[TemplateResource],
                    copies: Copies | None = None) -> Iterator[Outcome]: ...
    def release_unused(self) -> None: ...
    def close(self) -> None: ...


class _State:
    """What the daemon remembers of a resource between renders."""

    __slots__ = ("last", "last_reload", "failing")

    def __init__(self) -> None:
        self.last: Outcome | None = None  # its last render: what it read
        self.last_reload: float | None = None
        self.failing = False

    def depends_on(self, changed: Iterable[str]) -> bool:
        last = self.last
        return last is None or any(last.depends_on(key) for key in changed)


class _Pass:
    """A full pass in flight: which resources are left, how many failed."""

    def __init__(self, lock: threading.RLock) -> None:
        self.left: set[TemplateResource] = set()
        self.failed = 0
        self.done = threading.Condition(lock)

    def begin(self, resources: Iterable[TemplateResource]) -> None:
        self.left = set(resources)
        self.failed = 0

    def finish(self, resource: TemplateResource, ok: bool) -> None:
        if resource in self.left:
            self.left.discard(resource)
            self.failed += 0 if ok else 1
            self.done.notify_all()


class Daemon:
    """Runs the interval or watch loop over the runtime `load()` returns, until stopped.

    `load` is called at start and on SIGHUP. `on_change(resource)` is called after a render
    replaced a file, except during the first pass (nothing changed for the program yet).
    """

    def __init__(
        self,
        load: Callable[[], Assembly],
        *,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
        on_change: Callable[[TemplateResource], None] | None = None,
        watch: bool | None = None,
        once: bool = False,
        stop_timeout: float = 10.0,
        baseline_timeout: float = 15.0,
    ) -> None:
        self._load = load
        self.notifier = notifier or Notifier({})
        self.metrics = metrics or Metrics()
        self.on_change = on_change
        self._watch_override = watch  # exec mode: watch unless told otherwise
        self._once = once  # exec --onetime: one pass, no watch and no interval pass
        self.stop_timeout = stop_timeout
        self.baseline_timeout = baseline_timeout
        self.exit_code = 0
        self.runtime: Assembly | None = None
        self._states: dict[TemplateResource, _State] = {}
        # Requested by a full pass, a retry or a doubted read: their next render reads the
        # store. The rest, requested by watch events only, render from the watches' copies.
        self._fresh: set[TemplateResource] = set()
        self._lock = threading.RLock()
        self._schedule = Schedule()
        self._pass = _Pass(self._lock)
        self._watches = WatchGroups(
            on_change=self._changed, on_state=self._watch_state, on_resync=self._retry_failing
        )
        self._worker: threading.Thread | None = None
        self._wake = Wakeup()  # set by signal handlers: must take no lock
        self._stop_requested = False
        self._reload_requested = False
        self._started = False
        self._polled_backends: set[str] = set()

    # -- knobs of the current runtime -----------------------------------------------------------

    @property
    def watch(self) -> bool:
        if self._watch_override is not None:
            return self._watch_override
        return bool(self.runtime and self.runtime.watch)

    @property
    def interval(self) -> float:
        return self.runtime.interval if self.runtime else 600.0

    @property
    def failure_mode(self) -> str:
        return self.runtime.failure_mode if self.runtime else BEST_EFFORT

    # -- control, safe from signal handlers and other threads -------------------------------

    def request_stop(self, code: int = 0) -> None:
        """Stop soon: finish the render in flight, start no new one, exit with `code`."""
        if code and not self.exit_code:
            self.exit_code = code
        self._stop_requested = True
        self._wake.set()

    def request_reload(self) -> None:
        """Re-read the configuration (what SIGHUP does)."""
        self._reload_requested = True
        self._wake.set()

    def wake_on_signals(self) -> None:
        """Let any signal wake the main loop (call from the main thread, with the handlers)."""
        self._wake.wake_on_signals()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads (main thread only)."""
        self.wake_on_signals()
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    @property
    def pass_failures(self) -> int:
        """How many resources failed in the last full pass (exec starts no program then)."""
        return self._pass.failed

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
        """Load the runtime, start watches and the worker, and render everything once.

        Returns False when loading failed, or when a render failed under fail-fast.

        The cycle collector is off until the first pass ends: start-up builds what the process
        keeps (modules, resources, compiled templates, clients), and collecting as it grew went
        over the same objects again and again (1,000 resources: ~145 collections, 55-70 ms of
        a ~1.2 s start). One collection of the young generations then takes what start-up left
        and moves the rest to the oldest.
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._start()
        finally:
            if collecting:
                gc.collect(1)  # start-up's garbage, once; what lives on goes to the oldest
                gc.enable()

    def _start(self) -> bool:
        self.notifier.status("loading configuration")
        try:
            runtime = self._load()
        except ConfdError as exc:
            log.error("%s", exc)
            return False
        self._worker = threading.Thread(target=self._work, name="render", daemon=True)
        self._worker.start()
        failed = self._apply(runtime)
        self._started = True
        if self._stop_requested:
            return not failed and not self.exit_code
        if failed and self.failure_mode == FAIL_FAST:
            log.error("%d resource(s) failed on the first pass; stopping (--failure-mode "
                      "fail-fast)", failed)
            return False
        summary = self._summary(failed)
        log.info("%s", summary)
        self.notifier.ready(summary)
        self.notifier.start_watchdog(healthy=self._healthy)
        return True

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
        self.metrics.stopping()
        self._schedule.close()
        watches = self._watches.stop_all()
        if self._worker is not None:
            timeout = self.runtime.shutdown_timeout if self.runtime is not None \
                else self.stop_timeout
            self._worker.join(timeout)
            if self._worker.is_alive():
                log.warning("a render still runs after %gs (--shutdown-timeout); exiting anyway",
                            timeout)
        for watch in watches:
            watch.join(2.0)
        if self.runtime is not None:
            self.runtime.close()
        self.notifier.close()
        self._wake.close()
        log.info("stopped")

    # -- configuration changes ----------------------------------------------------------------

    def _apply(self, runtime: Assembly) -> int:
        """Switch to `runtime`: keep state and watches that still fit, start and stop the
        rest, then render every resource once; returns how many failed."""
        previous = self.runtime
        self.runtime = runtime
        resources = list(runtime.resources)
        with self._lock:
            for resource in set(self._states) - set(resources):
                del self._states[resource]
                self._fresh.discard(resource)
                self._schedule.discard(resource)
            for resource in resources:
                self._states.setdefault(resource, _State())
        self.metrics.expect(r.name for r in resources)
        # The new watches take their first snapshots before the pass (bounded): rendering
        # meanwhile would be safe for the values (renders are folded into the baselines), but a
        # watch that only then starts listening could miss a change made right after /ready.
        self._watches.apply(runtime, watching=self.watch, baseline_timeout=self.baseline_timeout)
        if previous is not None and previous is not runtime:
            runtime.release_unused()  # databases only the old configuration read
        # At start the watches have just read the store and follow it: the first pass takes
        # the values from their copies (where they hold the keys) instead of reading it again.
        # A reload or an interval pass reads the store: that is what the user asked for.
        return self._full_pass(resources, fresh=previous is not None)

    def _reload(self) -> None:
        """SIGHUP: re-read confd.toml, conf.d and templates and apply every setting that can
        change live; keep the watches of unchanged prefixes."""
        log.info("SIGHUP: reloading the configuration")
        self.notifier.reloading()
        try:
            runtime = self._load()
        except ConfdError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            self.notifier.ready(f"reload failed: {exc}")
            return
        failed = self._apply(runtime)
        summary = self._summary(failed)
        log.info("reloaded: %s", summary)
        self.notifier.ready(summary)

    def _interval_pass(self) -> None:
        """Interval mode: re-scan conf.d and render everything."""
        runtime = self.runtime
        assert runtime is not None
        try:
            runtime.scan()
        except ConfdError as exc:
            log.error("re-reading conf.d failed, keeping the last resources: %s", exc)
        failed = self._apply(runtime)
        self.notifier.status(self._summary(failed))

    # -- rendering -----------------------------------------------------------------------------

    def _full_pass(self, resources: list[TemplateResource], fresh: bool = True) -> int:
        """Render every resource in `resources` now and wait for all; returns how many failed.
        `fresh`: read the store, rather than the watches' copies where they can vouch."""
        with self._lock:
            self._pass.begin(resources)
            if fresh:
                self._fresh.update(resources)
            self._schedule.request_many((resource, None, 0.0) for resource in resources)
            while self._pass.left and not self._stop_requested:
                self._pass.done.wait(0.5)
            return self._pass.failed

    def _changed(self, members: Sequence[TemplateResource], changed: set[str],
                 known: bool = True) -> None:
        """A watch saw `changed` keys: schedule the resources whose last render read one. When
        the watch holds the new values (`known`: an event, a fresh read) they render from its
        copy; when a render read other values than it held, they read the store again."""
        with self._lock:
            due = [r for r in members
                   if (state := self._states.get(r)) is not None and state.depends_on(changed)]
            if not known:
                self._fresh.update(due)
            self._request(due)

    def _retry_failing(self, members: Sequence[TemplateResource]) -> None:
        """The backend answered a full read: render again the resources that failed (the
        backend may have been down for their last render)."""
        with self._lock:
            due = [r for r in members
                   if (state := self._states.get(r)) is not None and state.failing
                   and r not in self._pass.left]
            self._fresh.update(due)
            self._request(due)

    def _request(self, resources: list[TemplateResource]) -> None:
        """Schedule `resources` together, each with its debounce and throttle (lock held)."""
        requests = []
        default_wait = self.runtime.wait if self.runtime else None
        for resource in resources:
            state = self._states[resource]
            not_before = 0.0
            if resource.min_reload_interval and state.last_reload is not None:
                not_before = state.last_reload + resource.min_reload_interval
            requests.append((resource, resource.wait or default_wait, not_before))
        if requests:
            self._schedule.request_many(requests)

    def _work(self) -> None:
        """The render thread: render whatever is due, as one batch each time."""
        while True:
            due = self._schedule.take()
            if not due or self._stop_requested:
                return
            with self._lock:
                batch = [r for r in due if r in self._states]
                fresh = not self._fresh.isdisjoint(batch)
                self._fresh.difference_update(batch)
            if batch:
                self._render_batch(batch, fresh)

    def _render_batch(self, batch: list[TemplateResource], fresh: bool = True) -> None:
        """Render `batch` (reading the store when `fresh`, else from the watches' copies where
        they hold the keys), record each outcome, then fold each distinct read into the watch
        baselines (after every outcome of the batch is recorded, so a change found there
        reaches the resources rendered before)."""
        runtime = self.runtime
        assert runtime is not None
        reads: dict[int, tuple[TemplateResource, Mapping[str, str]]] = {}
        left = {id(resource): resource for resource in batch}
        outcomes = runtime.render_many(batch, None if fresh else self._watches.copy_of)
        try:
            while left:
                if self._stop_requested:
                    return
                try:
                    outcome = next(outcomes)
                except StopIteration:
                    break
                except Exception as exc:  # noqa: BLE001 - a bug must not stop the daemon
                    log.exception("rendering %d resource(s) crashed", len(left))
                    for resource in left.values():
                        self._record(Outcome(resource, Status.FAILED, exc))
                    return
                left.pop(id(outcome.resource), None)
                self._record(outcome)
                if outcome.values is not None:  # resources sharing a read share its values
                    reads.setdefault(id(outcome.values), (outcome.resource, outcome.values))
        finally:
            close = getattr(outcomes, "close", None)
            if close is not None:
                close()  # a stop: syncs in flight finish, none start
        for resource, values in reads.values():
            self._watches.observe(runtime, resource, values)

    def _record(self, outcome: Outcome) -> None:
        """Remember what a render read and how it ended; metrics, fail-fast, on_change."""
        resource = outcome.resource
        with self._lock:
            state = self._states.get(resource)
            if state is not None:
                state.last = outcome  # a failed render's reads hold the missing key
                if outcome.changed:
                    state.last_reload = time.monotonic()
                if not outcome.failed and state.failing:
                    log.info("resource %s: rendering works again", resource.name)
                state.failing = outcome.failed
            self._pass.finish(resource, not outcome.failed)
        if outcome.failed:
            self.metrics.render_failed(resource.name)
            if self.failure_mode == FAIL_FAST and self._started:
                log.error("resource %s failed; stopping (--failure-mode fail-fast)",
                          resource.name)
                self.request_stop(1)
            return
        self.metrics.rendered(resource.name, reloaded=outcome.changed)
        if outcome.changed and self.on_change is not None and self._started:
            self.on_change(resource)

    # -- watch state ----------------------------------------------------------------------------

    def _watch_state(self, watch: PrefixWatch, error: Exception | None) -> None:
        """Log a watch's state changes once each (not per retry) and count them."""
        where = f"{watch.backend}:{watch.prefix or '/'}"
        if isinstance(error, WatchUnsupported):
            if watch.backend not in self._polled_backends:
                self._polled_backends.add(watch.backend)
                log.warning("backend %s cannot watch; polling it every %gs instead (--interval)",
                            watch.backend, self.interval)
            return
        self.metrics.backend_state(watch.backend, where, error)
        if error is None:
            log.info("watch on %s is back; changes made meanwhile are being applied", where)
            self.metrics.watch_reconnected(watch.prefix or "/")
            return
        self.metrics.backend_error(watch.backend)
        if self.failure_mode == FAIL_FAST:
            log.error("watch on %s failed: %s; stopping (--failure-mode fail-fast)", where, error)
            self.request_stop(1)
        else:
            log.error("watch on %s failed: %s; keeping the last good files and retrying",
                      where, error)

    def _healthy(self) -> bool:
        worker = self._worker
        alive = worker is not None and worker.is_alive()
        self.metrics.worker_alive = alive
        return alive

    def _summary(self, failed: int) -> str:
        total = len(self._states)
        mode = "watching" if self.watch else f"polling every {self.interval:g}s"
        if self._once:
            mode = "rendered once, not watching"
        text = f"{total - failed}/{total} resources rendered; {mode}"
        return text + (f"; {failed} failing" if failed else "")
