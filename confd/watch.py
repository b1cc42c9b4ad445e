"""One shared watch per (backend, prefix): turns backend events into the set of changed keys.

A `PrefixWatch` thread keeps a baseline of the values under its keys. Each event is diffed
against it (only the reported keys when the backend names them), so a resource is re-rendered
only for a real change, and after an error a fresh read diffed against the baseline finds every
change made while the watch was down.

Renders read the database too, and backends start their watch from the newest read of anyone, so
a change seen first by a render would never come as an event. Hence every render's values are
merged into the baseline as well (`observe`): any read that disagrees with it is a change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping

from confd.backoff import Backoff
from confd.log import get_logger
from plugin_sdk.database import Database, WatchUnsupported

log = get_logger("watch")

# Called with the changed keys; with the backend error (None when it recovered, or
# WatchUnsupported when the watch falls back to polling); after every good full read.
ChangeCallback = Callable[[set[str]], None]
ResyncCallback = Callable[[], None]
StateCallback = Callable[["PrefixWatch", Exception | None], None]


class KeySet:
    """The keys a watch serves, answering "is this key one of them, or below one?" quickly."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = tuple(sorted(set(keys)))
        roots = {key.rstrip("/") or "/" for key in self.keys}
        self._everything = "/" in roots or "" in roots
        self._roots = frozenset(roots)

    def union(self, keys: Iterable[str]) -> KeySet:
        """This set and `keys` together (self when `keys` adds nothing)."""
        extra = set(keys) - set(self.keys)
        return self if not extra else KeySet((*self.keys, *extra))

    def covers(self, key: str) -> bool:
        """True when `key` equals, or lies below, one of the keys."""
        if self._everything:
            return True
        probe = key.rstrip("/")
        while probe:
            if probe in self._roots:
                return True
            probe = probe.rpartition("/")[0]
        return False


class PrefixWatch(threading.Thread):
    """Watches `prefix` on `database` for every resource reading `keys`, until `stop()`.

    Falls back to polling every `poll_interval` seconds when the backend cannot watch
    (`polling` tells), and reconnects with capped, jittered backoff after errors.
    """

    def __init__(
        self,
        database: Database,
        backend: str,
        prefix: str,
        keys: Iterable[str],
        on_change: ChangeCallback,
        on_state: StateCallback,
        poll_interval: float,
        backoff: Backoff | None = None,
        on_resync: ResyncCallback = lambda: None,
    ) -> None:
        super().__init__(name=f"watch {backend}:{prefix or '/'}", daemon=True)
        self.database = database
        self.backend = backend
        self.prefix = prefix
        self.keyset = KeySet(keys)
        self.poll_interval = poll_interval
        self.polling = False
        self.failing = False
        self._on_change = on_change
        self._on_state = on_state
        self._on_resync = on_resync
        self.synced = threading.Event()  # set once the first full read was tried
        self._backoff = backoff or Backoff(initial=0.2, maximum=30.0)
        self._stop_event = threading.Event()
        self._lock = threading.Lock()  # renders observe from the render thread
        self._baseline: dict[str, str] = {}
        self._seen = KeySet(())  # the keys some read has covered: only there is a diff a change

    @property
    def keys(self) -> tuple[str, ...]:
        return self.keyset.keys

    def stop(self) -> None:
        """Ask the thread to end; backends return from `watch_prefix` within about a second."""
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        stop = self._stop_event
        while not stop.is_set():
            try:
                try:
                    self._resync()
                finally:
                    self.synced.set()
                if self.polling:
                    stop.wait(self.poll_interval)
                    continue
                started = time.monotonic()
                events = self._follow()
                if not stop.is_set() and events == 0 and time.monotonic() - started < 0.5:
                    stop.wait(self._backoff.next())  # a watch that ends at once: do not spin
            except WatchUnsupported as exc:
                self.polling = True
                self._on_state(self, exc)
            except Exception as exc:  # noqa: BLE001 - any backend failure means: retry later
                if stop.is_set():
                    break
                if not self.failing:
                    self.failing = True
                    self._on_state(self, exc)
                else:
                    log.debug("watch %s:%s still failing: %s", self.backend, self.prefix, exc)
                stop.wait(self._backoff.next())

    def observe(self, keys: Iterable[str], values: Mapping[str, str]) -> None:
        """Merge a read of `keys` (a render's) into the baseline, reporting what differs.

        A render may see a change before the backend's watch would, or read older values than
        the baseline; either way the resources that read those keys are rendered again.
        """
        changed = self._merge(keys, values)
        if changed:
            log.debug("watch %s:%s: a render read %d key(s) differing from the watch's",
                      self.backend, self.prefix or "/", len(changed))
            self._on_change(changed)

    def _merge(self, keys: Iterable[str], values: Mapping[str, str]) -> set[str]:
        """Fold a read of `keys` into the baseline; returns the keys it changed there.

        Only keys some earlier read covered can have changed; keys outside this watch are
        ignored, and a key below `keys` that the read did not return is gone.
        """
        asked = KeySet(keys)
        watched = self.keyset
        changed: set[str] = set()
        with self._lock:
            baseline, seen = self._baseline, self._seen
            for key, value in values.items():
                if baseline.get(key) != value and watched.covers(key):
                    if key in baseline or seen.covers(key):
                        changed.add(key)
                    baseline[key] = value
            gone = [key for key in baseline if key not in values and asked.covers(key)]
            for key in gone:
                del baseline[key]
            changed.update(gone)
            self._seen = seen.union(asked.keys)
        return changed

    def _resync(self) -> None:
        """Read everything, report what changed since the baseline, mark recovery."""
        fresh = self.database.get_values(list(self.keys))
        changed = self._merge(self.keys, fresh)
        if changed:
            self._on_change(changed)
        if self.failing:
            self.failing = False
            self._on_state(self, None)
        self._backoff.reset()
        self._on_resync()

    def _follow(self) -> int:
        """Follow the backend's watch until it ends; returns how many events arrived."""
        events = 0
        for item in self.database.watch_prefix(self.prefix, list(self.keys), self._stop_event):
            if self._stop_event.is_set():
                break
            events += 1
            changed = self._changed(item)
            log.debug("watch %s:%s: %d key(s) reported, %d changed", self.backend,
                      self.prefix or "/", -1 if item is None else len(item), len(changed))
            if changed:
                self._on_change(changed)
        return events

    def _changed(self, reported: Collection[str] | None) -> set[str]:
        """Diff the baseline against fresh values: only the reported keys when known."""
        if reported is None:
            return self._merge(self.keys, self.database.get_values(list(self.keys)))
        wanted = [key for key in reported if self.keyset.covers(key)]
        if not wanted:
            return set()
        return self._merge(wanted, self.database.get_values(wanted))
