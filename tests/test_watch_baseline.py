"""No change is lost between a render's read and the watch's baseline.

Real backends start watching after the newest read of anyone (etcd's revision, Consul's index,
Redis' and the file backend's last values), so a change that a later render saw first never
arrives as an event. The database below does exactly that, deterministically: its watch only
starts once the test lets it, and reports only changes made after that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence

import pytest

from confd.daemon import Daemon, RenderResult, Target
from confd.kvstore import Reads
from confd.watch import PrefixWatch
from plugin_sdk.database import Database, select_prefix


class LateWatchDatabase(Database):
    """A dict whose watch begins when `start_watching` is set and reports later changes only."""

    name = "late"
    can_watch = True

    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)
        self.start_watching = threading.Event()
        self._cond = threading.Condition()
        self._events: list[set[str]] = []

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        with self._cond:
            return {k: v for k, v in self.values.items() if any(select_prefix(k, q) for q in keys)}

    def set(self, key: str, value: str | None) -> None:
        with self._cond:
            if value is None:
                self.values.pop(key, None)
            else:
                self.values[key] = value
            self._events.append({key})
            self._cond.notify_all()

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[Collection[str] | None]:
        while not self.start_watching.wait(0.05):
            if stop.is_set():
                return
        with self._cond:
            seen = len(self._events)
        while not stop.is_set():
            with self._cond:
                if len(self._events) == seen:
                    self._cond.wait(0.05)
                    continue
                batch, seen = self._events[seen:], len(self._events)
            yield from batch


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def target(db: LateWatchDatabase, name: str, outputs: dict[str, str],
           after: Callable[[str], None] = lambda _: None) -> Target:
    """A resource reading /app whose output is its value of /app/host (or '-')."""

    def render() -> RenderResult:
        values = db.get_values(["/app"])
        output = values.get("/app/host", "-")
        changed = outputs.get(name) != output
        outputs[name] = output
        after(name)
        return RenderResult(ok=True, changed=changed, reads=Reads(keys={"/app/host"}),
                            values=values)

    return Target(id=name, name=name, backend="late", database=db, prefix="/app",
                  keys=("/app",), render=render)


@pytest.fixture
def daemon_runner() -> Iterator[Callable[[Daemon], None]]:
    started: list[tuple[Daemon, threading.Thread]] = []

    def run(daemon: Daemon) -> None:
        thread = threading.Thread(target=daemon.run, kwargs={"signals": False}, daemon=True)
        thread.start()
        started.append((daemon, thread))

    yield run
    for daemon, thread in started:
        daemon.request_stop()
        thread.join(10)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param("10.0.0.2", "10.0.0.2", id="changed value"),
        pytest.param(None, "-", id="deleted key"),
    ],
)
def test_change_seen_first_by_a_later_render_reaches_the_earlier_one(
    daemon_runner: Callable[[Daemon], None], change: str | None, expected: str
) -> None:
    # "first" renders, then the value changes, then "second" renders (it sees the change);
    # the backend's watch starts after both, so the change never comes as an event.
    db = LateWatchDatabase({"/app/host": "10.0.0.1"})
    outputs: dict[str, str] = {}

    def after(name: str) -> None:
        if name == "first" and outputs.get("second") is None:
            db.set("/app/host", change)

    targets = [target(db, "first", outputs, after), target(db, "second", outputs)]
    daemon = Daemon(lambda: targets, watch=True, interval=60)
    daemon_runner(daemon)
    wait_for(lambda: daemon.metrics.ready, "the first pass")
    db.start_watching.set()
    wait_for(lambda: outputs.get("first") == expected, f"first to render {expected!r}")
    assert outputs == {"first": expected, "second": expected}


def test_a_render_agreeing_with_the_watch_renders_nothing_again() -> None:
    db = LateWatchDatabase({"/app/host": "10.0.0.1", "/app/port": "80"})
    reported: list[set[str]] = []
    watch = PrefixWatch(db, "late", "/app", ["/app"], on_change=reported.append,
                        on_state=lambda *_: None, poll_interval=60)
    watch._resync()  # the baseline, as the watch thread takes it first
    watch.observe(["/app/host"], {"/app/host": "10.0.0.1"})
    watch.observe(["/app"], {"/app/host": "10.0.0.1", "/app/port": "80"})
    assert reported == []
    watch.observe(["/app/port"], {})  # a render found the key gone
    assert reported == [{"/app/port"}]


def test_the_watch_first_read_is_compared_with_what_renders_read() -> None:
    # A render that reads before the watch's first read (e.g. the watch was slow to start):
    # the watch's baseline read then finds the change and reports it.
    db = LateWatchDatabase({"/app/host": "10.0.0.1"})
    reported: list[set[str]] = []
    watch = PrefixWatch(db, "late", "/app", ["/app"], on_change=reported.append,
                        on_state=lambda *_: None, poll_interval=60)
    watch.observe(["/app"], db.get_values(["/app"]))
    db.set("/app/host", "10.0.0.2")
    watch._resync()
    assert reported == [{"/app/host"}]
