"""An in-memory Database for in-process tests: a dict whose `set` is seen by running watches.

Shared by the daemon-loop and watch-baseline tests, which differ only in when a watch starts,
which changes it reports, and how it fails.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from plugin_sdk.database import Database, select_prefix


class DictDatabase(Database):
    """Values in a dict; every `set` is an event that watches started before it report."""

    can_watch = True
    poll = 0.05  # seconds a watch waits for an event before looking at `stop` again

    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)
        self._cond = threading.Condition()
        self._events: list[set[str]] = []

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        with self._cond:
            return {k: v for k, v in self.values.items() if any(select_prefix(k, q) for q in keys)}

    def set(self, key: str, value: str | None) -> None:
        """Put `key` (delete it when `value` is None) and wake the watches."""
        with self._cond:
            if value is None:
                self.values.pop(key, None)
            else:
                self.values[key] = value
            self._events.append({key})
            self._cond.notify_all()

    def changes(self, stop: threading.Event) -> Iterator[set[str]]:
        """The keys of each `set` made from now on, one set per event, until `stop` is set."""
        with self._cond:
            self._on_watch_start()
            seen = len(self._events)
        while not stop.is_set():
            with self._cond:
                self._check_watch()
                if len(self._events) == seen:
                    self._cond.wait(self.poll)
                    continue
                batch, seen = self._events[seen:], len(self._events)
            yield from batch

    def _on_watch_start(self) -> None:
        """Called under the lock as a watch takes its starting point."""

    def _check_watch(self) -> None:
        """Called under the lock before each wait; raise to end the watch with an error."""
