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
from hypothesis import given
from hypothesis import strategies as st

from confd.config.resource import TemplateResource
from confd.run.daemon import Daemon
from confd.run.processor import Outcome
from confd.run.watch import PrefixWatch
from plugin_sdk.database import Database, select_prefix
from tests.dict_database import DictDatabase
from tests.fake_runtime import FakeRuntime, fake_resource, outcome


class LateWatchDatabase(DictDatabase):
    """A dict whose watch begins when `start_watching` is set and reports later changes only."""

    name = "late"

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.start_watching = threading.Event()

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[Collection[str] | None]:
        while not self.start_watching.wait(0.05):
            if stop.is_set():
                return
        yield from self.changes(stop)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def host_reader(db: Database, outputs: dict[str, str],
                after: Callable[[str], None] = lambda _: None) -> Callable[..., Outcome]:
    """Renders of resources reading /app whose output is their value of /app/host (or '-')."""

    def render(resource: TemplateResource) -> Outcome:
        name = resource.name
        values = db.get_values(["/app"])
        output = values.get("/app/host", "-")
        changed = outputs.get(name) != output
        outputs[name] = output
        after(name)
        return outcome(resource, changed=changed, read=["/app/host"], values=values)

    return render


def daemon_of(db: Database, names: list[str], render: Callable[..., Outcome]) -> Daemon:
    resources = [fake_resource(name, "/app") for name in names]
    return Daemon(lambda: FakeRuntime(db, lambda: resources, render))


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

    daemon = daemon_of(db, ["first", "second"], host_reader(db, outputs, after))
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


# -- the merge at scale: incremental, and the same answers as a whole-baseline diff ----------


class _ReferenceBaseline:
    """The merge as first written: scan the whole baseline for each read (slow, obviously right)."""

    def __init__(self, watched: Sequence[str]) -> None:
        self.watched = list(watched)
        self.values: dict[str, str] = {}
        self.seen: list[str] = []

    def merge(self, keys: Sequence[str], values: dict[str, str]) -> set[str]:
        def covered(key: str, roots: Sequence[str]) -> bool:
            return any(select_prefix(key, root) for root in roots)

        changed: set[str] = set()
        for key, value in values.items():
            if self.values.get(key) != value and covered(key, self.watched):
                if key in self.values or covered(key, self.seen):
                    changed.add(key)
                self.values[key] = value
        gone = [key for key in self.values if key not in values and covered(key, keys)]
        for key in gone:
            del self.values[key]
        changed.update(gone)
        self.seen.extend(keys)
        return changed


_KEYS = ["/", "/app", "/app/", "/app/a", "/app/a/x", "/app/b", "/app-x", "/app/a-b", "/db",
         "/db/host"]


@given(
    watched=st.lists(st.sampled_from(_KEYS[1:]), min_size=1, max_size=3),
    reads=st.lists(
        st.tuples(
            st.lists(st.sampled_from(_KEYS), min_size=1, max_size=3),
            st.dictionaries(st.sampled_from(_KEYS[1:]), st.sampled_from(["1", "2"])),
        ),
        max_size=8,
    ),
)
def test_the_incremental_merge_reports_what_a_whole_baseline_diff_would(
    watched: list[str], reads: list[tuple[list[str], dict[str, str]]]
) -> None:
    reference = _ReferenceBaseline(watched)
    reported: list[set[str]] = []
    watch = PrefixWatch(LateWatchDatabase({}), "late", "/", watched, on_change=reported.append,
                        on_state=lambda *_: None, poll_interval=60)
    for keys, found in reads:
        # a read returns only what lies below the keys asked for
        values = {k: v for k, v in found.items() if any(select_prefix(k, q) for q in keys)}
        expected = reference.merge(keys, values)
        del reported[:]
        watch.observe(keys, values)
        assert reported == ([expected] if expected else [])
        assert watch._baseline.values == reference.values


@pytest.mark.parametrize(
    ("watched", "read", "found", "overlaps"),
    [
        pytest.param(["/app"], ["/app"], "/app/x", True, id="same key"),
        pytest.param(["/app"], ["/app/x"], "/app/x/y", True, id="read below"),
        pytest.param(["/app/x"], ["/app"], "/app/x/y", True, id="read above"),
        pytest.param(["/app/x"], ["/"], "/app/x", True, id="read of everything"),
        pytest.param(["/"], ["/db"], "/db/x", True, id="watch of everything"),
        pytest.param(["/app"], ["/apple", "/app-x"], "/apple/x", False,
                     id="a longer name is not below"),
        pytest.param(["/app/x"], ["/app/y", "/db"], "/app/y/x", False, id="siblings"),
    ],
)
def test_a_watch_takes_only_reads_of_keys_it_serves(
    watched: list[str], read: list[str], found: str, overlaps: bool
) -> None:
    # Every key was read once and found empty; then a render finds `found`: a change for the
    # watch only when the render read keys the watch serves.
    reported: list[set[str]] = []
    watch = PrefixWatch(LateWatchDatabase({}), "late", "/", watched, on_change=reported.append,
                        on_state=lambda *_: None, poll_interval=60)
    watch.observe(["/"], {})
    watch.observe(read, {found: "v"})
    assert reported == ([{found}] if overlaps else [])


def test_merging_a_render_costs_its_keys_not_the_baseline() -> None:
    # 100,000 watched keys, then 2,000 renders of 10 keys each (one changed): rebuilding or
    # scanning the baseline per render took minutes; merging what was read takes milliseconds.
    values = {f"/big/r{i:05d}/k{j}": "v" for i in range(10_000) for j in range(10)}
    db = LateWatchDatabase(values)
    reported: list[set[str]] = []
    watch = PrefixWatch(db, "late", "/big", ["/big"], on_change=reported.append,
                        on_state=lambda *_: None, poll_interval=60)
    watch._resync()
    started = time.perf_counter()
    for n in range(2_000):
        i = n * 5
        read = {f"/big/r{i:05d}/k{j}": "v" for j in range(10)}
        read[f"/big/r{i:05d}/k0"] = "changed"
        watch.observe([f"/big/r{i:05d}"], read)
    elapsed = time.perf_counter() - started
    assert len(reported) == 2_000 and reported[0] == {"/big/r00000/k0"}
    assert elapsed < 2.0, f"2,000 merges into a 100,000-key baseline took {elapsed:.2f} s"


# -- events that carry their values: diffed without reading the store again -------------------


class EventValuesDatabase(Database):
    """A dict whose watch yields each change as {key: new value or None}, counting reads."""

    name = "events"
    can_watch = True

    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)
        self.reads = 0
        self.events: list[dict[str, str | None]] = []
        self.sent = threading.Event()

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        self.reads += 1
        return {k: v for k, v in self.values.items() if any(select_prefix(k, q) for q in keys)}

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[dict[str, str | None]]:
        yield from self.events
        self.sent.set()
        stop.wait()


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param({"/app/host": "10.0.0.2"}, [{"/app/host"}], id="changed value"),
        pytest.param({"/app/host": None}, [{"/app/host"}], id="deleted key"),
        pytest.param({"/app/new": "x"}, [{"/app/new"}], id="new key"),
        pytest.param({"/app/host": "10.0.0.1"}, [], id="same value put again"),
        pytest.param({"/app/gone": None}, [], id="delete of a key never there"),
        pytest.param({"/db/host": "x"}, [], id="key outside the watch"),
        pytest.param({"/app/host": "10.0.0.3", "/app/port": None}, [{"/app/host", "/app/port"}],
                     id="two keys in one event"),
    ],
)
def test_an_event_with_values_is_diffed_without_reading_the_store(
    event: dict[str, str | None], expected: list[set[str]]
) -> None:
    db = EventValuesDatabase({"/app/host": "10.0.0.1", "/app/port": "80", "/db/host": "d"})
    db.events = [event]
    reported: list[set[str]] = []
    watch = PrefixWatch(db, "events", "/app", ["/app"], on_change=reported.append,
                        on_state=lambda *_: None, poll_interval=60)
    watch.start()
    try:
        # the generator resumes past the events only once the watch has handled the last one
        assert db.sent.wait(5), "the watch never followed the backend"
    finally:
        watch.stop()
        watch.join(5)
    assert reported == expected
    assert db.reads == 1, "only the first full read: events carry their values"
