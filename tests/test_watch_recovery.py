"""How a prefix watch recovers: a watch lost after working is read again at once, one that keeps
failing backs off, and a backend's "something may have changed" (None) after an outage retries
the renders that failed meanwhile, even when nothing changes afterwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest

from confd.backoff import Backoff
from confd.config.resource import TemplateResource
from confd.run.daemon import Daemon
from confd.run.processor import Outcome
from confd.run.watch import PrefixWatch
from plugin_sdk.database import DatabaseError, select_prefix
from tests.dict_database import DictDatabase
from tests.fake_runtime import FakeRuntime, fake_resource, outcome


class FlakyDatabase(DictDatabase):
    """A dict whose reads fail while `down` and whose watch fails as told. Its events carry the
    new values, as etcd's do, so a watch learns a change without reading the store; and it can
    yield None once ("the store answers again"), as the etcd backend does after an outage."""

    name = "flaky"

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.down = False
        self.watch_fails_after: float | None = None  # seconds each watch works before failing
        self.watch_lost_at: list[float] = []
        self.reads: list[float] = []
        self.answers_again = threading.Event()

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        self.reads.append(time.monotonic())
        if self.down:
            raise DatabaseError("flaky: no node answered")
        return super().get_values(keys)

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[Mapping[str, str | None] | None]:
        while not stop.is_set():
            try:
                for changed in self.changes(stop):  # ends on a stop, raises from _check_watch
                    yield {k: self.values.get(k) for k in changed if select_prefix(k, prefix)}
                return
            except _AnswersAgain:
                yield None

    def _on_watch_start(self) -> None:
        self._watch_started = time.monotonic()

    def _check_watch(self) -> None:
        if self.answers_again.is_set():
            self.answers_again.clear()
            raise _AnswersAgain
        after = self.watch_fails_after
        if after is not None and time.monotonic() - self._watch_started >= after:
            self.watch_lost_at.append(time.monotonic())
            raise DatabaseError("flaky: watch connection lost")


class _AnswersAgain(Exception):
    """Raised inside the watch to make it yield None."""


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def start_watch(db: FlakyDatabase, backoff: Backoff) -> PrefixWatch:
    watch = PrefixWatch(db, "flaky", "/app", ["/app"], on_change=lambda _: None,
                        on_state=lambda *_: None, poll_interval=60, backoff=backoff)
    watch.start()
    return watch


def test_a_watch_lost_after_working_is_read_again_at_once() -> None:
    db = FlakyDatabase({"/app/a": "1"})
    db.watch_fails_after = 0.6
    watch = start_watch(db, Backoff(initial=2.0, maximum=2.0, jitter=0))
    try:
        wait_for(lambda: db.watch_lost_at and db.reads[-1] > db.watch_lost_at[0],
                 "the read after the lost watch")
        assert db.reads[-1] - db.watch_lost_at[0] < 0.5, "the re-read waited for the back-off"
    finally:
        watch.stop()
        watch.join(5)


def test_a_watch_failing_at_once_after_each_read_backs_off() -> None:
    db = FlakyDatabase({"/app/a": "1"})
    db.watch_fails_after = 0.0  # reads work, every watch fails at once: no spinning
    watch = start_watch(db, Backoff(initial=0.2, maximum=0.4, jitter=0))
    try:
        time.sleep(1.0)
    finally:
        watch.stop()
        watch.join(5)
    assert 2 <= len(db.reads) <= 8, f"{len(db.reads)} reads in 1 s: no back-off"


@pytest.fixture
def running() -> Iterator[Callable[[Daemon], Daemon]]:
    started: list[tuple[Daemon, threading.Thread]] = []

    def start(daemon: Daemon) -> Daemon:
        thread = threading.Thread(target=daemon.run, kwargs={"signals": False}, daemon=True)
        thread.start()
        started.append((daemon, thread))
        wait_for(lambda: daemon.metrics.ready, "the daemon's first pass")
        return daemon

    yield start
    for daemon, thread in started:
        daemon.request_stop()
        thread.join(5)


def test_a_render_that_failed_in_an_outage_runs_again_when_the_store_answers(
    running: Callable[[Daemon], Daemon],
) -> None:
    db = FlakyDatabase({"/app/a": "1"})
    outputs: list[str] = []

    def render(resource: TemplateResource) -> Outcome:
        try:
            values = db.get_values(["/app"])
        except DatabaseError:
            return outcome(resource, ok=False)
        outputs.append(values["/app/a"])
        return outcome(resource, changed=True, read=["/app/a"], values=values)

    resources = [fake_resource("a", "/app")]
    running(Daemon(lambda: FakeRuntime(db, lambda: resources, render)))
    assert outputs == ["1"]
    db.down = True
    failed = len(db.reads)
    db.set("/app/a", "2")  # the watch reports it, the render's read fails
    wait_for(lambda: len(db.reads) > failed, "the render that fails")
    time.sleep(0.2)
    db.down = False
    db.answers_again.set()  # no further change: only the None can bring "2" in
    wait_for(lambda: outputs[-1:] == ["2"], "the failed render run again")
