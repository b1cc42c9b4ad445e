"""Debounce and throttle: when a requested re-render is due.

A burst of changes produces one render: each request pushes the render `min` seconds out, but
never beyond `max` after the first request of the burst. `not_before` throttles a resource whose
last reload was too recent (`min_reload_interval`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from confd.config.durations import Wait


@dataclass
class _Pending:
    first: float
    due: float


class Schedule:
    """A thread-safe set of pending renders keyed by resource, each with the time it is due.

    `request` adds or extends an entry; `take` blocks until entries are due and removes them.
    Without a wait a request is due at once, so a native watch costs no sleep.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pending: dict[Hashable, _Pending] = {}
        self._cond = threading.Condition()
        self._closed = False

    def request(self, key: Hashable, wait: Wait | None = None, not_before: float = 0.0) -> None:
        """Ask for `key` to be rendered, debounced by `wait`, and not before `not_before`."""
        self.request_many([(key, wait, not_before)])

    def request_many(self, requests: Iterable[tuple[Hashable, Wait | None, float]]) -> None:
        """`request` each (key, wait, not_before) at once, so a `take` sees them together: the
        resources one change affects render as one batch."""
        with self._cond:
            now = self._clock()
            for key, wait, not_before in requests:
                entry = self._pending.get(key)
                if entry is None:
                    due = now + wait.min if wait else now
                    self._pending[key] = _Pending(first=now, due=max(due, not_before))
                elif wait:
                    entry.due = max(min(now + wait.min, entry.first + wait.max), not_before)
                else:
                    entry.due = max(min(entry.due, now), not_before)
            self._cond.notify_all()

    def take(self) -> list[Hashable]:
        """Block until at least one entry is due and return (and remove) every due entry.

        Returns an empty list once `close()` was called.
        """
        with self._cond:
            while not self._closed:
                now = self._clock()
                due = [key for key, entry in self._pending.items() if entry.due <= now]
                if due:
                    for key in due:
                        del self._pending[key]
                    return due
                soonest = min((entry.due for entry in self._pending.values()), default=None)
                self._cond.wait(None if soonest is None else max(soonest - now, 0.0))
            return []

    def discard(self, key: Hashable) -> None:
        """Forget a pending request (its resource was removed)."""
        with self._cond:
            self._pending.pop(key, None)

    def pending(self) -> int:
        """How many renders are waiting."""
        with self._cond:
            return len(self._pending)

    def close(self) -> None:
        """Wake every `take` and make it return empty: no new render starts."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
