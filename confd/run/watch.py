"""One shared watch per (backend, prefix): turns backend events into the set of changed keys.

`WatchGroups` (at the end) groups a runtime's resources by (backend, prefix) and keeps one
`PrefixWatch` per group across reloads while its keys stay the same.

A `PrefixWatch` thread keeps a baseline of the values under its keys. Each event is diffed
against it (only the reported keys when the backend names them; their values as the event carries
them, without reading the store, when it gives those too), so a resource is re-rendered
only for a real change, and after an error a fresh read diffed against the baseline finds every
change made while the watch was down.

Renders read the database too, and backends start their watch from the newest read of anyone, so
a change seen first by a render would never come as an event. Hence every render's values are
merged into the baseline as well (`observe`): any read that disagrees with it is a change.

The baseline is a copy of the store under the watch's keys as of its last event, so the renders
an event asks for take their values from it (`WatchGroups.copy_of`) instead of reading the store
again. A render's read that disagrees with the baseline may be older than the store, so what it
changed is rendered again from a fresh read (`on_doubt`), never from the copy.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, insort
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Protocol

from confd.backoff import Backoff
from confd.config.resource import TemplateResource
from confd.errors import ConfdError
from confd.log import get_logger
from confd.run.processor import Copied
from plugin_sdk.database import Database, StopSignal, WatchUnsupported

log = get_logger("watch")

WATCH_BACKOFF_MAX = 30.0  # a watch failing for long retries at most this far apart

# Called with the changed keys; with the backend error (None when it recovered, or
# WatchUnsupported when the watch falls back to polling); after every good full read.
ChangeCallback = Callable[[set[str]], None]
ResyncCallback = Callable[[], None]
StateCallback = Callable[["PrefixWatch", Exception | None], None]


def _root(key: str) -> str:
    """`key` as a subtree root: no trailing slash, and "/" for everything."""
    return key.rstrip("/") or "/"


class KeySet:
    """The keys a watch serves, answering "is this key one of them, or below one?" quickly."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = tuple(sorted(set(keys)))
        self._roots = Coverage(self.keys)

    def covers(self, key: str) -> bool:
        """True when `key` equals, or lies below, one of the keys."""
        return self._roots.covers(key)

    def overlaps(self, keys: Iterable[str]) -> bool:
        """True when some of `keys` equals, lies below or lies above one of these keys.

        A read of such a key returns values this set serves (or proves them gone).
        """
        for key in keys:
            if self.covers(key):
                return True
            root = _root(key)
            if root == "/":
                return bool(self.keys)
            below = root + "/"
            at = bisect_left(self.keys, below)
            if at < len(self.keys) and self.keys[at].startswith(below):
                return True
        return False


class Coverage:
    """A growing set of subtree roots: "has some read covered this key?" in O(depth)."""

    __slots__ = ("_everything", "_roots")

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._roots: set[str] = set()
        self._everything = False
        self.add(keys)

    def add(self, keys: Iterable[str]) -> None:
        """Cover `keys` and everything below them as well."""
        for key in keys:
            root = _root(key)
            self._roots.add(root)
            if root == "/":
                self._everything = True

    def covers(self, key: str) -> bool:
        """True when `key` equals, or lies below, one of the roots."""
        if self._everything:
            return True
        roots = self._roots
        probe = key.rstrip("/")
        while probe:
            if probe in roots:
                return True
            probe = probe.rpartition("/")[0]
        return False


class Baseline:
    """The last known value of each key, with the keys kept sorted for subtree queries.

    Renders merge a few keys at a time into baselines of thousands, so every operation costs
    O(keys touched · log n), never a pass over the whole baseline (bar a read of "/").
    """

    __slots__ = ("_order", "values")

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self._order: list[str] = []  # the keys of `values`, sorted

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set_many(self, items: Mapping[str, str]) -> None:
        """Store `items`; new keys join the sorted order (one sort when they are many)."""
        values, order = self.values, self._order
        new = [key for key in items if key not in values]
        values.update(items)
        if len(new) * 8 > len(order):
            order.extend(new)
            order.sort()
        else:
            for key in new:
                insort(order, key)

    def remove(self, key: str) -> bool:
        """Forget `key`; False when it was not there."""
        if self.values.pop(key, None) is None:
            return False
        order = self._order
        del order[bisect_left(order, key)]
        return True

    def under(self, key: str) -> list[str]:
        """The stored keys equal to `key` or below it (`select_prefix`'s meaning)."""
        root = _root(key)
        if root == "/":
            return list(self._order)
        order, below = self._order, root + "/"
        start = bisect_left(order, below)
        end = bisect_left(order, root + "0", start)  # "0" follows "/": the end of the subtree
        found = order[start:end]
        if root in self.values:
            found.append(root)
        return found


class PrefixWatch(threading.Thread):
    """Watches `prefix` on `database` for every resource reading `keys`, until `stop()`.

    Falls back to polling every `poll_interval` seconds when the backend cannot watch
    (`polling` tells). A watch lost after working is read again at once; repeated failures
    back off (capped, jittered). A backend yielding None ("something may have changed", e.g.
    after etcd compacted history or answered again after an outage) gets a full re-read, after
    which the resources that failed to render are retried, as after a reconnect.
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
        on_doubt: ChangeCallback | None = None,
    ) -> None:
        super().__init__(name=f"watch {backend}:{prefix or '/'}", daemon=True)
        self.database = database
        self.backend = backend
        self.prefix = prefix
        self.keyset = KeySet(keys)
        self.poll_interval = poll_interval
        self.polling = False
        self.failing = False
        self._on_change = on_change  # an event or a fresh read changed these keys
        self._on_doubt = on_doubt or on_change  # a render read other values for these keys
        self._on_state = on_state
        self._on_resync = on_resync
        self.synced = threading.Event()  # set once the first full read was tried
        self._backoff = backoff or Backoff(initial=0.2, maximum=WATCH_BACKOFF_MAX)
        self._stop_event = StopSignal()  # wakes the backend's wait when set
        self._lock = threading.Lock()  # renders observe from the render thread
        self._baseline = Baseline()
        self._seen = Coverage()  # the keys some read has covered: only there is a diff a change

    @property
    def keys(self) -> tuple[str, ...]:
        return self.keyset.keys

    def retune(self, error_backoff: float) -> None:
        """--watch-error-backoff (at start, or a reload's): the first wait after the next
        error."""
        self._backoff.initial = error_backoff
        self._backoff.maximum = max(WATCH_BACKOFF_MAX, error_backoff)

    def stop(self) -> None:
        """Ask the thread to end; backends return from `watch_prefix` within about a second."""
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        stop = self._stop_event
        while not stop.is_set():
            began = time.monotonic()
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
                    if time.monotonic() - began >= 0.5:
                        continue  # a watch lost after working: re-read at once
                else:
                    log.debug("watch %s:%s still failing: %s", self.backend, self.prefix, exc)
                # Repeated failures, and a watch failing right after its read, back off.
                stop.wait(self._backoff.next())

    def observe(self, keys: Iterable[str], values: Mapping[str, str]) -> None:
        """Merge a read of `keys` (a render's) into the baseline, reporting what differs.

        A render may see a change before the backend's watch would, or read older values than
        the baseline; either way the resources that read those keys are rendered again. A read
        of keys this watch does not serve (another prefix's) costs a few lookups and no merge.
        """
        keys = list(keys)  # iterated more than once
        if not self.keyset.overlaps(keys):
            return
        changed = self._merge(keys, values)
        if changed:
            log.debug("watch %s:%s: a render read %d key(s) differing from the watch's",
                      self.backend, self.prefix or "/", len(changed))
            self._on_doubt(changed)  # that read may be older than the store: read it again

    def copy(self, key: str) -> dict[str, str] | None:
        """The values at or below `key` as this watch holds them (`get_values([key])` as of its
        last event or read), or None when it cannot vouch for them: `key` is not one it
        serves, or it is not following the store right now (starting, failing, polling)."""
        if not self.keyset.covers(key):
            return None
        with self._lock:
            if not self.synced.is_set() or self.failing or self.polling or self.stopping:
                return None
            values = self._baseline.values
            return {name: values[name] for name in self._baseline.under(key)}

    def _merge(self, keys: Sequence[str], values: Mapping[str, str]) -> set[str]:
        """Fold a read of `keys` into the baseline; returns the keys it changed there.

        Only keys some earlier read covered can have changed; keys outside this watch are
        ignored, and a key below `keys` that the read did not return is gone. Costs the keys
        read and returned, not the size of the baseline.
        """
        changed: set[str] = set()
        with self._lock:
            self._store(values, changed)
            baseline = self._baseline
            for asked in keys:
                for key in baseline.under(asked):
                    if key not in values and baseline.remove(key):
                        changed.add(key)
            self._seen.add(keys)
        return changed

    def _store(self, values: Mapping[str, str], changed: set[str]) -> None:
        """Put the watched keys of `values` that differ into the baseline (the lock held),
        adding to `changed` those a read covered before (a first sight is no change)."""
        baseline, seen, watched = self._baseline, self._seen, self.keyset
        fresh: dict[str, str] = {}
        for key, value in values.items():
            if baseline.get(key) != value and watched.covers(key):
                if key in baseline or seen.covers(key):
                    changed.add(key)
                fresh[key] = value
        if fresh:
            baseline.set_many(fresh)

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
            changed = self._merge(self.keys, self.database.get_values(list(self.keys)))
            self._on_resync()  # a good full read: what failed to render meanwhile runs again
            return changed
        if isinstance(reported, Mapping):  # the event carries the values: no store read
            return self._apply(reported)
        wanted = [key for key in reported if self.keyset.covers(key)]
        if not wanted:
            return set()
        return self._merge(wanted, self.database.get_values(wanted))

    def _apply(self, event: Mapping[str, str | None]) -> set[str]:
        """Fold an event's exact keys and new values (None: deleted) into the baseline.

        Returns the keys whose value really changed; a put of the value already known (or a
        delete of a key never seen) is no change.
        """
        watched = self.keyset
        changed: set[str] = set()
        with self._lock:
            for key, value in event.items():
                if value is None and watched.covers(key) and self._baseline.remove(key):
                    changed.add(key)
            self._store({k: v for k, v in event.items() if v is not None}, changed)
        return changed


class _Runtime(Protocol):
    """What the watch groups need of a runtime (`confd.run.assembly.Runtime`)."""

    resources: Sequence[TemplateResource]
    interval: float
    watch_error_backoff: float  # the first wait before a failed watch reconnects

    def database(self, resource: TemplateResource) -> Database: ...
    def label(self, resource: TemplateResource) -> str: ...


GroupKey = tuple[str, str]  # (backend label, prefix)
# A group's resources and changed keys, and whether the watch's copy holds the new values
# (an event or a fresh read) or only doubts them (a render read something else).
MembersCallback = Callable[[Sequence[TemplateResource], set[str], bool], None]


class WatchGroups:
    """The shared watches: one `PrefixWatch` per (backend, prefix), fanned out to the resources
    under it. `on_change(members, keys, known)` gets a group's resources, the changed database
    keys and whether the watch's copy holds their new values (`copy_of` then serves renders);
    `on_resync(members)` follows every good full read (to retry failing renders)."""

    def __init__(
        self,
        on_change: MembersCallback,
        on_state: StateCallback,
        on_resync: Callable[[Sequence[TemplateResource]], None],
    ) -> None:
        self._on_change = on_change
        self._on_state = on_state
        self._on_resync = on_resync
        self._lock = threading.Lock()
        self._groups: dict[GroupKey, list[TemplateResource]] = {}
        self._watches: dict[GroupKey, PrefixWatch] = {}

    def members(self, group: GroupKey) -> list[TemplateResource]:
        with self._lock:
            return list(self._groups.get(group, ()))

    def apply(self, runtime: _Runtime, *, watching: bool,
              baseline_timeout: float | None = None) -> list[PrefixWatch]:
        """Group the runtime's resources; keep the watches whose keys are unchanged, start the
        new ones (when `watching`) and stop the rest; returns the watches started.

        New watches take their baseline snapshot on their own threads; with
        `baseline_timeout`, this waits for them (bounded) before it returns, so a change between
        a render and its watch's first read is not missed (`wait_started` does the waiting)."""
        groups: dict[GroupKey, list[TemplateResource]] = {}
        databases: dict[GroupKey, Database] = {}
        for resource in runtime.resources:
            try:
                group = (runtime.label(resource), resource.prefix)
                databases.setdefault(group, runtime.database(resource))
            except ConfdError:
                continue  # its backend cannot be opened: the render reports that
            groups.setdefault(group, []).append(resource)
        to_stop: list[PrefixWatch] = []
        started: list[PrefixWatch] = []
        with self._lock:
            self._groups = groups
            old, self._watches = self._watches, {}
            for group, members in groups.items():
                keys = sorted({key for r in members for key in r.backend_keys()})
                watch = old.pop(group, None)
                if watch is not None and list(watch.keys) == keys and not watch.stopping \
                        and watching and watch.database is databases[group]:
                    watch.poll_interval = runtime.interval
                    watch.retune(runtime.watch_error_backoff)
                    self._watches[group] = watch
                    continue
                if watch is not None:
                    to_stop.append(watch)
                if watching:
                    watch = self._start(group, databases[group], keys, runtime.interval,
                                        runtime.watch_error_backoff)
                    self._watches[group] = watch
                    started.append(watch)
            to_stop.extend(old.values())
        for watch in to_stop:
            log.debug("stopping the watch on %s:%s", watch.backend, watch.prefix)
            watch.stop()
        if baseline_timeout is not None:
            self.wait_started(started, baseline_timeout)
        return started

    @staticmethod
    def wait_started(started: Sequence[PrefixWatch], timeout: float) -> None:
        """Wait (at most `timeout` seconds in all) until each watch of `started` took its
        first snapshot, so the daemon reports ready with its watches running."""
        deadline = time.monotonic() + timeout
        for watch in started:
            if not watch.synced.wait(max(deadline - time.monotonic(), 0.0)):
                log.warning("watch on %s:%s is slow to start; rendering anyway",
                            watch.backend, watch.prefix or "/")
                break


    def _start(
        self, group: GroupKey, database: Database, keys: list[str], interval: float,
        error_backoff: float,
    ) -> PrefixWatch:
        backend, prefix = group
        watch = PrefixWatch(
            database,
            backend,
            prefix,
            keys,
            on_change=lambda changed: self._on_change(self.members(group), changed, True),
            on_state=self._on_state,
            poll_interval=interval,
            on_resync=lambda: self._on_resync(self.members(group)),
            on_doubt=lambda changed: self._on_change(self.members(group), changed, False),
        )
        watch.retune(error_backoff)
        log.debug("watching %s:%s (%d keys)", backend, prefix or "/", len(keys))
        watch.start()
        return watch

    def observe(
        self, runtime: _Runtime, resource: TemplateResource, values: Mapping[str, str]
    ) -> None:
        """Hand what a render read to the watches of its database, which re-render the
        resources that read other values (backends start watching after the newest read, so a
        change a render saw first would otherwise never reach the resources rendered before
        it)."""
        try:
            backend = runtime.label(resource)
        except ConfdError:
            return
        with self._lock:
            watches = [w for (label, _), w in self._watches.items() if label == backend]
        keys = resource.backend_keys()
        for watch in watches:
            watch.observe(keys, values)

    def copy_of(self, database: Database, keys: Sequence[str]) -> Copied | None:
        """`database.get_values(keys)` as the watches on `database` hold it, without reading
        the store; None unless a following watch holds every key (a render then reads)."""
        with self._lock:
            watches = [w for w in self._watches.values() if w.database is database]
        values = Copied()
        for key in keys:
            for watch in watches:
                held = watch.copy(key)
                if held is not None:
                    values.update(held)
                    break
            else:
                return None
        return values

    def stop_all(self) -> list[PrefixWatch]:
        """Ask every watch to stop; returns them (to join)."""
        with self._lock:
            watches = list(self._watches.values())
            self._watches.clear()
        for watch in watches:
            watch.stop()
        return watches
