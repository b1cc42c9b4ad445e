"""The one assembly of a run: settings to resources, databases, renderer and processor.

`Runtime` is what onetime, the daemon and `confd exec` all run on: built once per (re)load from
`Settings` (SIGHUP builds a new one and the daemon applies it), with the daemon's knobs
(watch, interval, wait, failure mode) read from the same settings. Databases come from one
`DatabasePool` that outlives runtimes, so a reload keeps the connections (and watches) of
backends whose settings did not change.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING

from confd.backends.pool import DatabasePool
from confd.cache_dir import cache_directory
from confd.config.options import BY_NAME
from confd.config.resource import TemplateResource, configured_resources
from confd.config.settings import Settings
from confd.errors import BackendError, ConfigError
from confd.log import get_logger, setup_logging
from confd.run.processor import Copies, Outcome, Processor, RetryPolicy, failure_summary
from confd.sync import SyncOptions
from confd.template.cache import CompiledTemplates
from confd.template.renderer import Renderer
from plugin_sdk.database import Database

if TYPE_CHECKING:
    from confd.config.durations import Wait
    from confd.observe.metrics import Metrics

__all__ = [
    "Loader", "Runtime", "discovered_nodes", "metrics_endpoint", "run_onetime", "run_service",
]

log = get_logger("assembly")


def discovered_nodes(settings: Settings, environ: Mapping[str, str]) -> list[str] | None:
    """Nodes Go confd would find beyond the configured ones (None: use the configured ones).

    DNS SRV records (`--srv-domain`/`--srv-record`; not for the env backend, as Go confd)
    replace any `--node`; `ETCDCTL_PEERS` gives backend `etcd` nodes when none is set.
    """
    if (settings.srv_domain or settings.srv_record) and settings.backend != "env":
        from confd.backends.srv import discover_nodes

        servers = [_host_port(s) for s in settings.srv_nameservers] or None
        return discover_nodes(settings.backend, settings.srv_domain, settings.srv_record,
                              settings.scheme, nameservers=servers)
    if settings.backend == "etcd" and not settings.nodes and environ.get("ETCDCTL_PEERS"):
        return [n.strip() for n in environ["ETCDCTL_PEERS"].split(",") if n.strip()]
    return None


def _host_port(text: str) -> tuple[str, int]:
    """`HOST`, `HOST:PORT` or `[v6]:PORT` of a DNS server (port 53 by default)."""
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and (not host.count(":") or host.startswith("[")):
        return host.strip("[]"), int(port)
    return text.strip("[]"), 53


def _color(setting: bool | None, out: IO[str] | None) -> bool:
    """--color / --no-color, or (unset) whether the diff goes to a terminal."""
    if setting is not None:
        return bool(setting)
    stream = out if out is not None else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Runtime:
    """One load of the configuration: its resources and everything needed to render them."""

    def __init__(
        self,
        settings: Settings,
        pool: DatabasePool,
        *,
        out: IO[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self._out = out
        self._environ = os.environ if environ is None else environ
        self.nodes = discovered_nodes(settings, self._environ)
        self.wait: Wait | None = None
        if settings.wait:  # the durations module loads only when a wait is set
            from confd.config.durations import parse_wait

            self.wait = parse_wait(settings.wait, "--wait")
        cache = CompiledTemplates(cache_directory(settings.cache_dir, self._environ))
        self.renderer = Renderer(settings.templates_dir, syntax=settings.template_syntax,
                                 cache=cache)
        self.processor = Processor(
            self.renderer,
            self,
            SyncOptions(settings.noop, settings.sync_only, settings.keep_stage_file,
                        diff=bool(settings.diff), diff_context=int(settings.diff_context),
                        color=_color(settings.color, out)),
            out=out,
            retry=RetryPolicy(int(settings.retry_max_attempts), float(settings.retry_base_delay),
                              float(settings.retry_max_delay)),
        )
        self.resources: list[TemplateResource] = []
        self.load_errors: list[ConfigError] = []
        self._unavailable: dict[str, BackendError] = {}
        self._databases: dict[object, Database] = {}  # by the resource's [backend] table
        self.scan()

    # -- the daemon's knobs ---------------------------------------------------------------------

    @property
    def watch(self) -> bool:
        return bool(self.settings.watch)

    @property
    def interval(self) -> float:
        return float(self.settings.interval)

    @property
    def failure_mode(self) -> str:
        return str(self.settings.failure_mode)

    @property
    def watch_error_backoff(self) -> float:
        """The first wait before a failed watch reconnects (--watch-error-backoff)."""
        return float(self.settings.watch_error_backoff)

    @property
    def shutdown_timeout(self) -> float:
        """How long a stop waits for the render in flight (--shutdown-timeout)."""
        return float(self.settings.shutdown_timeout)

    # -- resources ------------------------------------------------------------------------------

    def scan(self) -> None:
        """(Re)read conf.d: interval passes pick up new, changed and removed resource files.

        A missing confdir or conf.d raises `ConfigError`; bad files are `load_errors`. When
        many templates are missing from the compiled cache, worker processes start compiling
        them now, while the daemon sets up its watches.
        """
        settings = self.settings
        resources, errors = configured_resources(settings, environ=self._environ)
        for error in errors:
            log.error("%s", error)
        if not resources and not errors:
            log.warning("no template resources in %s", settings.resources_dir)
        self.resources, self.load_errors = resources, errors
        self.pool.forget_failures()
        self._unavailable.clear()
        self._databases.clear()
        self.renderer.prepare((r.src, r.syntax) for r in resources)

    def database(self, resource: TemplateResource) -> Database:
        """The database `resource` reads. A backend that cannot be opened is reported once per
        load; its other resources fail with a short error pointing at that report."""
        database = self._databases.get(resource.backend)
        if database is not None:  # resolving a backend's settings costs ~30 us a resource
            return database
        try:
            database = self._databases[resource.backend] = self.pool.for_resource(
                self.settings, resource, self.nodes)
            return database
        except BackendError as exc:
            name = resource.backend.name if resource.backend else self.settings.backend
            if name in self._unavailable:
                raise BackendError(
                    f"backend {name!r} is unavailable (its error is logged above)"
                ) from exc
            self._unavailable[name] = exc
            raise

    def label(self, resource: TemplateResource) -> str:
        """The name logs, metrics and watch groups use for the database `resource` reads."""
        return self.pool.label(self.database(resource))

    def render_many(self, resources: Sequence[TemplateResource],
                    copies: Copies | None = None) -> Iterator[Outcome]:
        """Read (or take from `copies`), render and sync `resources` as one batch (one read per
        database), yielding each outcome as it completes (never raises for a resource)."""
        return self.processor.process_many(resources, copies)

    def release_unused(self) -> None:
        """Close the pool's databases that none of these resources reads (after a reload)."""
        in_use = []
        for resource in self.resources:
            try:
                in_use.append(self.database(resource))
            except BackendError:
                continue
        self.pool.retain(in_use)

    def close(self) -> None:
        """Close every database the pool opened; drop compile jobs not started."""
        if self.renderer.cache is not None:
            self.renderer.cache.close()
        self.pool.close()

    def run_once(self) -> list[Outcome]:
        """Render every resource once as one batch (the onetime pass); outcomes in order."""
        return self.processor.run_once(self.resources)


class Loader:
    """Reads the settings (flags, environment, confd.toml) and assembles a `Runtime`: at start
    from the settings the command line already read, on every SIGHUP afresh.

    Log level and format apply at once; a changed setting that only a restart can apply
    (`metrics_addr`, `onetime`) is named in a warning. The pool outlives every runtime.
    """

    def __init__(
        self,
        read: Callable[[], Settings],
        *,
        first: Settings | None = None,
        out: IO[str] | None = None,
    ) -> None:
        self._read = read
        self._first = first
        self._out = out
        self._current: Settings | None = None
        self.pool = DatabasePool()

    def __call__(self) -> Runtime:
        settings = self._first if self._first is not None else self._read()
        self._first = None
        setup_logging(settings.log_level, settings.log_format)
        if self._current is not None:
            stale = [name for name in settings.changed(self._current) if BY_NAME[name].restart]
            for name in stale:
                log.warning("setting %s changed; it takes effect only when confd restarts",
                            name)
        self._current = settings
        return Runtime(settings, self.pool, out=self._out)


def run_onetime(settings: Settings, *, out: IO[str] | None = None) -> int:
    """Render every resource once; 1 when any resource (or resource file) failed."""
    runtime = Runtime(settings, DatabasePool(), out=out)
    try:
        summary = failure_summary(runtime.run_once(), len(runtime.load_errors))
    finally:
        runtime.close()
    if summary:
        log.error("%s", summary)
        return 1
    return 0


@contextlib.contextmanager
def metrics_endpoint(settings: Settings) -> Iterator[Metrics]:
    """The daemon's metrics, served on `--metrics-addr` (when set) until the block ends."""
    from confd.observe.metrics import Metrics

    metrics = Metrics()
    server = None
    if settings.metrics_addr:  # http.server loads only for the endpoint (~30 ms)
        from confd.observe.endpoint import MetricsServer

        server = MetricsServer(metrics, settings.metrics_addr).start()
    try:
        yield metrics
    finally:
        if server is not None:
            server.close()


def run_service(settings: Settings, read: Callable[[], Settings], *,
                out: IO[str] | None = None) -> int:
    """The watch or interval loop until SIGTERM/SIGINT; returns the exit status.

    `read` re-reads flags, environment and confd.toml on SIGHUP.
    """
    from confd.observe.systemd import Notifier
    from confd.run.daemon import Daemon

    with metrics_endpoint(settings) as metrics:
        daemon = Daemon(Loader(read, first=settings, out=out), notifier=Notifier(),
                        metrics=metrics)
        return daemon.run()
