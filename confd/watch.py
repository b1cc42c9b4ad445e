"""One shared watch per (backend, prefix): turns backend events into the set of changed keys.

A `PrefixWatch` thread keeps the last snapshot of the values under its keys. Each event is
diffed against it (only the reported keys when the backend names them), so a resource is
re-rendered only for a real change, and after an error a fresh read diffed against the last
good snapshot finds every change made while the watch was down.
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


def diff(old: Mapping[str, str], new: Mapping[str, str]) -> set[str]:
    """Keys added, removed or changed between two snapshots."""
    changed = {key for key, value in new.items() if old.get(key) != value}
    changed.update(key for key in old if key not in new)
    return changed


class KeySet:
    """The keys a watch serves, answering "is this key one of them, or below one?" quickly."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = tuple(sorted(set(keys)))
        roots = {key.rstrip("/") or "/" for key in self.keys}
        self._everything = "/" in roots or "" in roots
        self._roots = frozenset(roots)

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
        self._snapshot: dict[str, str] | None = None

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

    def _resync(self) -> None:
        """Read everything, report what changed since the last good snapshot, mark recovery."""
        fresh = self.database.get_values(list(self.keys))
        if self._snapshot is not None:
            changed = diff(self._snapshot, fresh)
            if changed:
                self._on_change(changed)
        self._snapshot = fresh
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
        """Diff the snapshot against fresh values: only the reported keys when known."""
        assert self._snapshot is not None
        if reported is None:
            fresh = self.database.get_values(list(self.keys))
            changed = diff(self._snapshot, fresh)
            self._snapshot = fresh
            return changed
        wanted = [key for key in reported if self.keyset.covers(key)]
        if not wanted:
            return set()
        fresh = self.database.get_values(wanted)
        changed: set[str] = set()
        for key in wanted:
            value = fresh.get(key)
            if self._snapshot.get(key) != value:
                changed.add(key)
                if value is None:
                    del self._snapshot[key]
        for key, value in fresh.items():
            if self._snapshot.get(key) != value:
                changed.add(key)
                self._snapshot[key] = value
        return changed
