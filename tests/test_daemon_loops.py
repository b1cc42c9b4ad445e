"""The run loops in process, over an in-memory Database that watches like a real backend.

Renders are counted per resource, so the tests pin what a user notices: a change renders
once, an unrelated key renders nothing, a burst collapses, an outage is caught up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator, Sequence

import pytest

from confd.config.durations import Wait
from confd.config.resource import TemplateResource
from confd.errors import ConfdError
from confd.run.daemon import FAIL_FAST, Daemon
from confd.run.processor import Outcome
from plugin_sdk.database import DatabaseError, select_prefix
from tests.dict_database import DictDatabase
from tests.fake_runtime import FakeRuntime, fake_resource, outcome


class MemoryDatabase(DictDatabase):
    """A key/value store in a dict whose watch reports the changed keys under its prefix."""

    name = "memory"
    poll = 0.1

    def __init__(self, values: dict[str, str], can_watch: bool = True) -> None:
        super().__init__(values)
        self.watchable = can_watch
        self.down = False
        self.watches_started = 0

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        if self.down:
            raise DatabaseError("memory: connection refused")
        return super().get_values(keys)

    def break_connection(self) -> None:
        with self._cond:
            self.down = True
            self._cond.notify_all()

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[Collection[str] | None]:
        if not self.watchable:
            yield from super().watch_prefix(prefix, keys, stop)
            return
        for changed in self.changes(stop):
            if any(select_prefix(k, prefix) for k in changed):
                yield changed

    def _on_watch_start(self) -> None:
        self.watches_started += 1

    def _check_watch(self) -> None:
        if self.down:
            raise DatabaseError("memory: watch connection lost")


class Renders:
    """Resources whose renders read given keys of the database and count calls per resource."""

    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db
        self.counts: dict[str, int] = {}
        self.outputs: dict[str, str] = {}
        self.fail: set[str] = set()
        self.reads: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    def target(self, name: str, prefix: str, reads: list[str], **extra) -> TemplateResource:
        self.reads[name] = reads
        return fake_resource(name, prefix, **extra)

    def render(self, resource: TemplateResource) -> Outcome:
        name = resource.name
        reads = self.reads[name]
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1
        if name in self.fail:
            return outcome(resource, ok=False, read=reads)
        values = self.db.get_values(reads)
        output = ",".join(values.get(k, "-") for k in reads)
        changed = self.outputs.get(name) != output
        self.outputs[name] = output
        return outcome(resource, changed=changed, read=reads)

    def daemon(self, targets: list[TemplateResource] | None = None, **knobs) -> Daemon:
        """A daemon over these renders; `targets` is read again on reload and interval."""
        def load() -> FakeRuntime:
            return FakeRuntime(self.db, lambda: list(targets or []), self.render, **knobs)

        return Daemon(load)

    def count(self, name: str) -> int:
        with self.lock:
            return self.counts.get(name, 0)


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture
def running():
    """Start a daemon on a thread; stop it after the test whatever happened."""
    started: list[tuple[Daemon, threading.Thread]] = []

    def start(daemon: Daemon, ready: bool = True) -> Daemon:
        thread = threading.Thread(target=daemon.run, kwargs={"signals": False}, daemon=True)
        thread.start()
        started.append((daemon, thread))
        if ready:
            wait_for(lambda: daemon.metrics.ready)
        else:
            wait_for(lambda: daemon.metrics.not_ready() == ["a"])
        return daemon

    yield start
    for daemon, thread in started:
        daemon.request_stop()
        thread.join(5)
        assert not thread.is_alive(), "the daemon did not stop within 5 s"


def test_change_renders_only_the_dependent_resource(running):
    db = MemoryDatabase({"/app/a": "1", "/app/b": "2"})
    renders = Renders(db)
    targets = [renders.target("a", "/app", ["/app/a"]), renders.target("b", "/app", ["/app/b"])]
    running(renders.daemon(targets, watch=True, interval=60))
    assert renders.outputs == {"a": "1", "b": "2"}
    db.set("/app/a", "10")
    wait_for(lambda: renders.outputs["a"] == "10")
    time.sleep(0.2)
    assert renders.count("a") == 2
    assert renders.count("b") == 1
    assert db.watches_started == 1  # one shared watch for the prefix


def test_value_set_to_the_same_value_renders_nothing(running):
    db = MemoryDatabase({"/app/a": "1"})
    renders = Renders(db)
    targets = [renders.target("a", "/app", ["/app/a"])]
    running(renders.daemon(targets, watch=True, interval=60))
    db.set("/app/a", "1")
    db.set("/app/unrelated", "x")
    time.sleep(0.3)
    assert renders.count("a") == 1


def test_burst_with_wait_gives_one_render(running):
    db = MemoryDatabase({"/app/a": "0"})
    renders = Renders(db)
    targets = [renders.target("a", "/app", ["/app/a"], wait=Wait(0.2, 2.0))]
    running(renders.daemon(targets, watch=True, interval=60))
    for i in range(50):
        db.set("/app/a", str(i + 1))
        time.sleep(0.002)
    wait_for(lambda: renders.outputs["a"] == "50")
    time.sleep(0.4)
    assert renders.count("a") == 2  # the first pass and one for the whole burst


def test_min_reload_interval_throttles(running):
    db = MemoryDatabase({"/app/a": "0"})
    renders = Renders(db)
    targets = [renders.target("a", "/app", ["/app/a"], min_reload_interval=0.5)]
    running(renders.daemon(targets, watch=True, interval=60))
    start = time.monotonic()
    db.set("/app/a", "1")
    wait_for(lambda: renders.outputs["a"] == "1")
    assert time.monotonic() - start >= 0.4  # the first pass reloaded it just now


def test_backend_that_cannot_watch_is_polled_with_one_warning(running, caplog):
    db = MemoryDatabase({"/app/a": "1"}, can_watch=False)
    renders = Renders(db)
    targets = [renders.target("a", "/app", ["/app/a"]), renders.target("b", "/app2", ["/app2"])]
    with caplog.at_level("WARNING", logger="confd"):
        running(renders.daemon(targets, watch=True, interval=0.1))
        db.set("/app/a", "2")
        wait_for(lambda: renders.outputs["a"] == "2")
    warnings = [r for r in caplog.records if "cannot watch" in r.getMessage()]
    assert len(warnings) == 1


def test_outage_keeps_files_logs_once_and_catches_up(running, caplog):
    db = MemoryDatabase({"/app/a": "1"})
    renders = Renders(db)
    targets = [renders.target("a", "/app", ["/app/a"])]
    with caplog.at_level("INFO", logger="confd"):
        daemon = running(renders.daemon(targets, watch=True, interval=60))
        db.break_connection()
        time.sleep(1.0)  # several retries
        db.values["/app/a"] = "2"  # changed while the watch was down: no event for it
        db.down = False
        wait_for(lambda: renders.outputs["a"] == "2")
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1
    assert any("is back" in r.getMessage() for r in caplog.records)
    assert daemon.metrics.value("confd_watch_reconnects_total", "/app") == 1


def test_fail_fast_stops_with_exit_code_1_on_backend_error():
    db = MemoryDatabase({"/app/a": "1"})
    renders = Renders(db)
    targets = [renders.target("a", "/app", ["/app/a"])]
    daemon = renders.daemon(targets, watch=True, interval=60, failure_mode=FAIL_FAST)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run(signals=False)))
    thread.start()
    wait_for(lambda: daemon.metrics.ready)
    db.break_connection()
    thread.join(5)
    assert result == [1]


def test_first_pass_failure_under_fail_fast_exits_1():
    db = MemoryDatabase({"/app/a": "1"})
    renders = Renders(db)
    renders.fail.add("a")
    daemon = renders.daemon([renders.target("a", "/app", ["/app/a"])], watch=True,
                            interval=60, failure_mode=FAIL_FAST)
    assert daemon.run(signals=False) == 1


def test_reload_keeps_unchanged_watches_and_adds_new_resources(running):
    db = MemoryDatabase({"/app/a": "1", "/other/x": "9"})
    renders = Renders(db)
    targets = [renders.target("a", "/app", ["/app/a"])]
    daemon = running(renders.daemon(targets, watch=True, interval=60))
    targets.append(renders.target("x", "/other", ["/other/x"]))
    daemon.request_reload()
    wait_for(lambda: renders.outputs.get("x") == "9")
    assert db.watches_started == 2  # /app kept, /other added
    db.set("/other/x", "10")
    wait_for(lambda: renders.outputs["x"] == "10")


def test_interval_mode_rerenders_and_picks_up_new_resources(running):
    db = MemoryDatabase({"/app/a": "1", "/app/b": "2"})
    renders = Renders(db)
    targets = [renders.target("a", "/app", ["/app/a"])]
    running(renders.daemon(targets, watch=False, interval=0.1))
    db.values["/app/a"] = "5"
    targets.append(renders.target("b", "/app", ["/app/b"]))
    wait_for(lambda: renders.outputs["a"] == "5" and renders.outputs.get("b") == "2")
    assert db.watches_started == 0


def test_backend_down_at_start_renders_once_it_answers(running):
    db = MemoryDatabase({"/app/a": "1"})
    db.down = True
    renders = Renders(db)
    targets = [renders.target("a", "/app", ["/app/a"])]

    def render(resource: TemplateResource) -> Outcome:
        if db.down:
            return outcome(resource, ok=False)
        return renders.render(resource)

    daemon = running(Daemon(lambda: FakeRuntime(db, lambda: targets, render)), ready=False)
    time.sleep(0.3)
    assert "a" not in renders.outputs
    assert not daemon.metrics.ready  # /ready says 503 while nothing has rendered
    db.down = False
    wait_for(lambda: renders.outputs.get("a") == "1")
    wait_for(lambda: daemon.metrics.ready)


def test_the_first_pass_and_a_change_read_by_many_each_render_as_one_batch(running):
    db = MemoryDatabase({"/app/shared": "1", **{f"/app/own{i}": str(i) for i in range(5)}})
    renders = Renders(db)
    targets = [renders.target(f"r{i}", "/app", ["/app/shared", f"/app/own{i}"])
               for i in range(5)]
    batches: list[list[str]] = []

    class Recording(FakeRuntime):
        def render_many(self, resources, copies=None):
            batches.append([r.name for r in resources])
            yield from super().render_many(resources, copies)

    running(Daemon(lambda: Recording(db, lambda: targets, renders.render)))
    assert batches == [[f"r{i}" for i in range(5)]]  # the first pass
    db.set("/app/own3", "33")
    wait_for(lambda: renders.outputs["r3"] == "1,33")
    db.set("/app/shared", "2")
    wait_for(lambda: all(renders.outputs[f"r{i}"].startswith("2,") for i in range(5)))
    time.sleep(0.2)
    assert batches[1:] == [["r3"], [f"r{i}" for i in range(5)]]


def test_the_cycle_collector_is_off_for_the_first_pass_and_back_on_after_it(running):
    """Start-up runs without the cycle collector (it would go over what start-up builds again
    and again); whatever the start's outcome, a long-running daemon must get it back."""
    import gc

    db = MemoryDatabase({"/app/a": "1"})
    renders = Renders(db)
    collecting: dict[str, bool] = {}

    def render(resource: TemplateResource) -> Outcome:
        collecting.setdefault(resource.name, gc.isenabled())
        return renders.render(resource)

    targets = [renders.target("a", "/app", ["/app/a"])]
    assert gc.isenabled()
    running(Daemon(lambda: FakeRuntime(db, lambda: targets, render)))
    assert collecting == {"a": False}
    assert gc.isenabled()
    db.set("/app/a", "11")
    wait_for(lambda: renders.outputs.get("a") == "11")
    assert gc.isenabled()

    renders.fail.add("a")
    daemon = renders.daemon([renders.target("a", "/app", ["/app/a"])], watch=True,
                            interval=60, failure_mode=FAIL_FAST)
    assert daemon.run(signals=False) == 1  # the first pass failed: start gave up
    assert gc.isenabled()

    def broken() -> FakeRuntime:
        raise ConfdError("conf.d: cannot read")

    assert Daemon(broken).run(signals=False) == 1
    assert gc.isenabled()
