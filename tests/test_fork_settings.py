"""The fork's timeout, retry and diff settings each change what confd does: command timeouts
default resources, retries re-read a failing backend, the watch back-off and stop timeout are
the daemon's, backend timeouts reach the backend, noop diffs follow --diff/--color."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from confd.backends.config import backend_config
from confd.backends.pool import DatabasePool
from confd.config.settings import Settings, load_settings
from confd.run.assembly import Runtime
from confd.run.daemon import Daemon
from confd.run.processor import Processor, RetryPolicy, Status
from confd.run.watch import WatchGroups
from confd.template.renderer import Renderer
from plugin_sdk.database import Database, DatabaseError
from tests.fake_runtime import FakeRuntime, fake_resource, outcome

RESOURCE = """
    [template]
    src = "a.tmpl"
    dest = "{dest}"
    keys = ["/app"]
    {extra}
    """


def _runtime(make_confdir, tmp_path: Path, extra: str = "", out: io.StringIO | None = None,
             **settings) -> Runtime:
    confdir = make_confdir(
        templates={"a.tmpl": 'v={{ getv("/app/v") }}\n'},
        resources={"a.toml": RESOURCE.format(dest=tmp_path / "a.conf", extra=extra)},
    )
    return Runtime(Settings(backend="env", confdir=str(confdir), **settings), DatabasePool(),
                   out=out)


# -- check and reload timeouts ---------------------------------------------------------------


def test_check_cmd_timeout_is_the_default_of_resources_without_one(
    make_confdir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_V", "1")
    runtime = _runtime(make_confdir, tmp_path, 'check_cmd = "sleep 5"', check_cmd_timeout=0.3)
    assert runtime.resources[0].check_cmd_timeout == 0.3
    started = time.monotonic()
    [result] = runtime.run_once()
    assert time.monotonic() - started < 3
    assert result.status is Status.FAILED
    assert "check_cmd for" in str(result.error) and "timed out after 0.3s" in str(result.error)
    assert not (tmp_path / "a.conf").exists()


def test_a_resources_own_timeouts_win(make_confdir, tmp_path: Path) -> None:
    runtime = _runtime(make_confdir, tmp_path,
                       'check_cmd_timeout = "7s"\nreload_cmd_timeout = 8',
                       check_cmd_timeout=1.0, reload_cmd_timeout=2.0)
    resource = runtime.resources[0]
    assert (resource.check_cmd_timeout, resource.reload_cmd_timeout) == (7.0, 8.0)


def test_reload_cmd_timeout_from_the_environment_as_a_go_duration(
    make_confdir, tmp_path: Path
) -> None:
    confdir = make_confdir(templates={"a.tmpl": "x"},
                           resources={"a.toml": RESOURCE.format(dest=tmp_path / "a", extra="")})
    settings = load_settings({"confdir": str(confdir)}, {"CONFD_RELOAD_CMD_TIMEOUT": "1m30s"})
    runtime = Runtime(settings, DatabasePool())
    assert runtime.resources[0].reload_cmd_timeout == 90.0


# -- noop diffs ------------------------------------------------------------------------------


@pytest.fixture
def noop_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_V", "2")
    (tmp_path / "a.conf").write_text("one\ntwo\nthree\nfour\nv=1\nsix\n")


@pytest.mark.usefixtures("noop_env")
def test_noop_diff_context_and_no_color_when_not_a_terminal(make_confdir, tmp_path: Path) -> None:
    template = "one\ntwo\nthree\nfour\nv={{ getv('/app/v') }}\nsix\n"
    out = io.StringIO()
    runtime = _runtime(make_confdir, tmp_path, out=out, noop=True, diff_context=1)
    (Path(runtime.settings.confdir) / "templates" / "a.tmpl").write_text(template)
    [result] = runtime.run_once()
    assert result.status is Status.NOOP
    assert out.getvalue().splitlines()[2:] == ["@@ -4,3 +4,3 @@", " four", "-v=1", "+v=2", " six"]
    assert "\033[" not in out.getvalue()
    assert (tmp_path / "a.conf").read_text().endswith("v=1\nsix\n")


@pytest.mark.usefixtures("noop_env")
def test_noop_color_forced(make_confdir, tmp_path: Path) -> None:
    out = io.StringIO()
    runtime = _runtime(make_confdir, tmp_path, out=out, noop=True, color=True)
    runtime.run_once()
    assert "\033[32m+v=2\033[0m\n" in out.getvalue()
    assert "\033[36m@@" in out.getvalue()


@pytest.mark.usefixtures("noop_env")
def test_noop_color_auto_on_a_terminal(make_confdir, tmp_path: Path) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    _runtime(make_confdir, tmp_path, out=out, noop=True).run_once()
    assert "\033[31m-" in out.getvalue()


@pytest.mark.usefixtures("noop_env")
def test_noop_without_diff_only_logs(make_confdir, tmp_path: Path, confd_log: io.StringIO) -> None:
    out = io.StringIO()
    [result] = _runtime(make_confdir, tmp_path, out=out, noop=True, diff=False).run_once()
    assert result.status is Status.NOOP
    assert out.getvalue() == ""
    assert "Noop mode enabled" in confd_log.getvalue()


# -- retries ---------------------------------------------------------------------------------


class Flaky(Database):
    """Fails the first `failures` reads, then answers."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.reads = 0

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        self.reads += 1
        if self.reads <= self.failures:
            raise DatabaseError("flaky: connection refused")
        return {"/app/v": "ok"}


class Source:
    def __init__(self, database: Database) -> None:
        self.db = database

    def database(self, resource) -> Database:
        return self.db


def _processor(tmp_path: Path, database: Database, retry: RetryPolicy,
               slept: list[float]) -> tuple[Processor, object]:
    templates = tmp_path / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "a.tmpl").write_text('{{ getv("/app/v") }}')
    resource = fake_resource("a.toml", "/")._replace(
        src="a.tmpl", src_path=templates / "a.tmpl", dest=tmp_path / "a.conf", keys=("/app",))
    return Processor(Renderer(templates), Source(database), retry=retry,
                     sleep=slept.append), resource


def test_a_failed_read_is_retried_with_growing_delays(tmp_path: Path) -> None:
    slept: list[float] = []
    database = Flaky(failures=2)
    processor, resource = _processor(tmp_path, database, RetryPolicy(3, 0.1, 5.0), slept)
    result = processor.process(resource)
    assert result.status is Status.CHANGED, result.error
    assert database.reads == 3
    assert len(slept) == 2 and 0.08 <= slept[0] <= 0.12 and 0.16 <= slept[1] <= 0.24


def test_retries_give_up_after_the_last_attempt(tmp_path: Path) -> None:
    slept: list[float] = []
    database = Flaky(failures=100)
    processor, resource = _processor(tmp_path, database, RetryPolicy(3, 1.0, 1.5), slept)
    result = processor.process(resource)
    assert result.status is Status.FAILED and "connection refused" in str(result.error)
    assert database.reads == 4
    assert max(slept) <= 1.5
    # a backend that failed every retry is read once for the next resource, not retried
    processor.process(resource)
    assert database.reads == 5 and len(slept) == 3


def test_no_retries_with_zero_attempts(tmp_path: Path) -> None:
    slept: list[float] = []
    database = Flaky(failures=1)
    processor, resource = _processor(tmp_path, database, RetryPolicy(0), slept)
    assert processor.process(resource).status is Status.FAILED
    assert (database.reads, slept) == (1, [])


def test_runtime_takes_the_retry_settings(make_confdir, tmp_path: Path) -> None:
    runtime = _runtime(make_confdir, tmp_path, retry_max_attempts=5, retry_base_delay=0.25,
                       retry_max_delay=2.0)
    assert runtime.processor.retry == RetryPolicy(5, 0.25, 2.0)


# -- the daemon ------------------------------------------------------------------------------


def test_watch_error_backoff_is_the_first_reconnect_delay() -> None:
    database = Flaky(failures=0)
    resource = fake_resource("a", "/app")
    runtime = FakeRuntime(database, lambda: [resource], lambda r: outcome(r),
                          watch_error_backoff=3.0)
    groups = WatchGroups(on_change=lambda m, k: None, on_state=lambda w, e: None,
                         on_resync=lambda m: None)
    groups.apply(runtime, watching=True, baseline_timeout=1.0)
    try:
        [watch] = groups._watches.values()
        assert 2.4 <= watch._backoff.next() <= 3.6
        runtime.watch_error_backoff = 0.5  # a reload keeps the watch, with the new back-off
        groups.apply(runtime, watching=True, baseline_timeout=1.0)
        assert list(groups._watches.values()) == [watch]
        watch._backoff.reset()
        assert 0.4 <= watch._backoff.next() <= 0.6
    finally:
        for watch in groups.stop_all():
            watch.join(2)


def test_shutdown_timeout_bounds_the_wait_for_a_render_in_flight(confd_log: io.StringIO) -> None:
    started = threading.Event()
    release = threading.Event()

    def render(resource):
        if started.is_set():
            release.wait(10)  # the second render hangs
        started.set()
        return outcome(resource)

    resource = fake_resource("a", "/app")
    runtime = FakeRuntime(Flaky(0), lambda: [resource], render, watch=False, interval=0.05,
                          shutdown_timeout=0.3)
    daemon = Daemon(lambda: runtime)
    thread = threading.Thread(target=daemon.run, kwargs={"signals": False}, daemon=True)
    thread.start()
    try:
        started.wait(5)
        time.sleep(0.3)  # an interval pass is rendering now, and hangs
        begun = time.monotonic()
        daemon.request_stop()
        thread.join(5)
        assert not thread.is_alive()
        assert time.monotonic() - begun < 2.5
        assert "still runs after 0.3s (--shutdown-timeout)" in confd_log.getvalue()
    finally:
        release.set()


def test_runtime_exposes_shutdown_and_backoff(make_confdir, tmp_path: Path) -> None:
    runtime = _runtime(make_confdir, tmp_path, shutdown_timeout=12.0, watch_error_backoff=0.5)
    assert (runtime.shutdown_timeout, runtime.watch_error_backoff) == (12.0, 0.5)


# -- backend timeouts ------------------------------------------------------------------------


ETCD = {"nodes", "timeout", "username", "password"}


def test_unset_fork_timeouts_leave_the_backends_default(tmp_path: Path) -> None:
    settings = load_settings({"confdir": str(tmp_path), "backend": "etcd"}, {})
    assert "timeout" not in backend_config(settings, "etcd", accepts=ETCD).config


def test_fork_timeouts_fold_into_the_backends_timeout(tmp_path: Path) -> None:
    settings = load_settings({"confdir": str(tmp_path), "backend": "etcd",
                              "dial_timeout": "10s"}, {"CONFD_READ_TIMEOUT": "500ms"})
    config = backend_config(settings, "etcd", accepts=ETCD)
    assert config.config == {"timeout": "10"}
    assert config.ignored == ()


def test_a_backend_declaring_a_fork_timeout_gets_it_by_name(tmp_path: Path) -> None:
    settings = load_settings({"confdir": str(tmp_path), "backend": "redis",
                              "dial_timeout": "3s", "read_timeout": "2s"}, {})
    accepts = {"nodes", "dial_timeout", "timeout"}
    assert backend_config(settings, "redis", accepts=accepts).config == {
        "dial_timeout": "3", "timeout": "2"}


def test_an_explicit_backend_timeout_setting_beats_a_folded_one_of_its_layer(
    tmp_path: Path
) -> None:
    (tmp_path / "confd.toml").write_text('backend = "etcd"\nread_timeout = "2s"\n'
                                         '[backends.etcd]\ntimeout = 7\n')
    settings = load_settings({"confdir": str(tmp_path)}, {})
    assert backend_config(settings, "etcd", accepts=ETCD).config == {"timeout": "7"}
    # ... and a flag beats the table
    settings = load_settings({"confdir": str(tmp_path), "backend_timeout": "9"}, {})
    assert backend_config(settings, "etcd", accepts=ETCD).config == {"timeout": "9"}


def test_fork_timeouts_are_not_given_to_plugins_or_other_backends(tmp_path: Path) -> None:
    settings = load_settings({"confdir": str(tmp_path), "backend": "myplugin",
                              "dial_timeout": "3"}, {})
    assert backend_config(settings, "myplugin", accepts=None).config == {}
    assert backend_config(settings, "etcd", accepts=ETCD).config == {}


def test_a_real_backend_gets_the_folded_timeout(tmp_path: Path) -> None:
    settings = load_settings({"confdir": str(tmp_path), "backend": "etcd",
                              "nodes": ["http://127.0.0.1:1"], "read_timeout": "250ms"}, {})
    pool = DatabasePool()
    try:
        database = pool.get(settings)
        assert database.options["timeout"] == 0.25
    finally:
        pool.close()


@pytest.mark.parametrize(("env", "message"), [
    ({"CONFD_DIAL_TIMEOUT": "soon"}, "dial_timeout: bad duration 'soon'"),
    ({"CONFD_SHUTDOWN_TIMEOUT": "0"}, "shutdown_timeout must be above 0"),
    ({"CONFD_RETRY_MAX_ATTEMPTS": "-1"}, "retry_max_attempts must be 0 or more"),
])
def test_bad_fork_settings_name_the_variable(tmp_path: Path, env: dict, message: str) -> None:
    from confd.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_settings({"confdir": str(tmp_path)}, env)
