"""Renders after a change the watch reported take the values from the watch's own copy of the
store instead of reading it again (issue #13: a change read by one resource cost a 500-key read
of its prefix, a third of its latency). The copy is only trusted when it can be: the watch
follows the store, the keys are its own, and no render read other values than it holds since.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

from confd.config.resource import TemplateResource
from confd.run.daemon import Daemon
from confd.run.processor import Copied, Outcome, Status
from confd.run.watch import PrefixWatch, WatchGroups
from plugin_sdk.database import DatabaseError
from tests.dict_database import DictDatabase
from tests.fake_runtime import FakeRuntime, fake_resource, outcome
from tests.test_processor import CountingDatabase, batch_of, processor_over
from tests.test_watch_baseline import wait_for


class WatchedDict(DictDatabase):
    """A dict whose watch reports the keys of each `set`."""

    name = "dict"

    def watch_prefix(self, prefix: str, keys: Sequence[str],
                     stop: threading.Event) -> Iterator[Collection[str] | None]:
        yield from self.changes(stop)


def started(watch: PrefixWatch) -> PrefixWatch:
    watch.start()
    wait_for(watch.synced.is_set, "the watch's first read")
    return watch


def test_a_following_watch_vouches_for_its_own_keys_as_of_its_last_event() -> None:
    db = WatchedDict({"/app/host": "h1", "/app/port": "80", "/db/host": "d"})
    watch = started(PrefixWatch(db, "dict", "/app", ["/app"], on_change=lambda _: None,
                                on_state=lambda *_: None, poll_interval=60))
    try:
        assert watch.copy("/app") == {"/app/host": "h1", "/app/port": "80"}
        assert watch.copy("/app/port") == {"/app/port": "80"}
        assert watch.copy("/db") is None  # not its key: only the store knows
        db.set("/app/host", "h2")
        db.set("/app/port", None)
        wait_for(lambda: watch.copy("/app") == {"/app/host": "h2"}, "the events in the copy")
    finally:
        watch.stop()
        watch.join(5)
    assert watch.copy("/app") is None  # stopped: it follows nothing any more


class BrokenWatchDatabase(WatchedDict):
    """Reads work; the watch fails at once, every time."""

    def watch_prefix(self, prefix: str, keys: Sequence[str],
                     stop: threading.Event) -> Iterator[Collection[str] | None]:
        raise DatabaseError("the watch broke")
        yield None  # a generator


def test_a_failing_watch_vouches_for_nothing() -> None:
    db = BrokenWatchDatabase({"/app/host": "h1"})
    states: list[Exception | None] = []
    watch = started(PrefixWatch(db, "dict", "/app", ["/app"], on_change=lambda _: None,
                                on_state=lambda _, error: states.append(error),
                                poll_interval=60))
    try:
        wait_for(lambda: bool(states), "the watch to fail")
        assert watch.copy("/app") is None
    finally:
        watch.stop()
        watch.join(5)


def test_copies_of_a_database_come_from_its_watches_or_not_at_all() -> None:
    db = WatchedDict({"/a/x": "1", "/b/y": "2", "/c/z": "3"})
    other = WatchedDict({"/a/x": "elsewhere"})
    groups = WatchGroups(on_change=lambda *_: None, on_state=lambda *_: None,
                         on_resync=lambda _: None)
    runtime = FakeRuntime(db, lambda: [fake_resource("ra", "/a"), fake_resource("rb", "/b")],
                          lambda r: outcome(r))
    runtime.scan()
    groups.apply(runtime, watching=True, baseline_timeout=5)
    try:
        assert groups.copy_of(db, ["/a", "/b"]) == {"/a/x": "1", "/b/y": "2"}
        assert isinstance(groups.copy_of(db, ["/a"]), Copied)
        assert groups.copy_of(db, ["/a", "/c"]) is None  # no watch holds /c
        assert groups.copy_of(other, ["/a"]) is None  # the watches follow another database
    finally:
        for watch in groups.stop_all():
            watch.join(5)


def test_a_batch_with_copies_reads_nothing_and_tells_the_watches_nothing(tmp_path: Path) -> None:
    db = CountingDatabase({"/app0/host": "a", "/app1/host": "b"})
    resources = batch_of(tmp_path, 20)
    asked: list[list[str]] = []

    def copies(database: object, keys: Sequence[str]) -> Copied:
        asked.append(list(keys))
        return Copied({"/app0/host": "copied-a", "/app1/host": "copied-b"})

    outcomes = list(processor_over(tmp_path, db).process_many(resources, copies))
    assert db.reads == []
    assert asked == [["/app0", "/app1"]]  # one copy for the batch, as one read would be
    assert all(o.status is Status.CHANGED and o.values is None for o in outcomes)
    assert (tmp_path / "out" / "r01").read_text() == "copied-b\n"
    # a resource on its own takes the copy as well; without copies the store is read
    [alone] = processor_over(tmp_path, db).process_many(resources[:1], copies)
    assert (alone.status, db.reads) == (Status.UNCHANGED, [])
    [fresh] = processor_over(tmp_path, db).process_many(resources[:1])
    assert (fresh.status, fresh.values, db.reads) == (Status.CHANGED, {"/app0/host": "a"},
                                                      [["/app0"]])


class Recording(FakeRuntime):
    """Records, per batch, whether the daemon offered the watches' copies."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[bool] = []

    def render_many(self, resources: Sequence[TemplateResource],
                    copies: object = None) -> Iterator[Outcome]:
        self.batches.append(copies is not None)
        yield from super().render_many(resources, copies)


def test_renders_read_the_store_unless_the_watches_just_read_it_or_saw_the_change() -> None:
    """The first pass and renders after events take the watches' copies; a doubt and a reload
    read the store."""
    db = WatchedDict({"/app/host": "h1"})
    target = fake_resource("r", "/app")
    told: list[dict[str, str]] = [{"/app/host": "h1"}]  # what the next render says it read
    runtimes: list[Recording] = []

    def render(resource: TemplateResource) -> Outcome:
        return outcome(resource, read=["/app/host"], values=told.pop() if told else None)

    def load() -> Recording:
        runtimes.append(Recording(db, lambda: [target], render))
        return runtimes[-1]

    daemon = Daemon(load)
    thread = threading.Thread(target=daemon.run, kwargs={"signals": False}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: daemon.metrics.ready, "the first pass")
        batches = runtimes[0].batches
        assert batches == [True]  # the watches read the store just before the first pass
        db.set("/app/host", "h2")  # an event: the watch holds the new value
        wait_for(lambda: len(batches) == 2, "the render after the event")
        assert batches[1] is True
        told.append({"/app/host": "h0"})  # the next render read an older value than the watch
        db.set("/app/host", "h3")
        wait_for(lambda: len(batches) == 4, "the render the doubt asked for")
        assert batches[2:] == [True, False]  # the doubted keys are read from the store again
        daemon.request_reload()
        wait_for(lambda: len(runtimes) == 2 and runtimes[1].batches, "the pass of the reload")
        assert runtimes[1].batches == [False]  # a reload re-reads the store, as asked
    finally:
        daemon.request_stop()
        thread.join(10)
