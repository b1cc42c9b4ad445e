"""confd as a long-lived service: settings to a `Daemon` with its systemd notifier and metrics.

`run_service` is what `confd --watch` / `--interval` run; `build_daemon` is shared with exec mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from confd.config.durations import Wait, parse_wait
from confd.config.settings import Settings
from confd.observe.metrics import Metrics, MetricsServer
from confd.observe.systemd import Notifier
from confd.run.daemon import Daemon
from confd.targets import loader


def _wait(settings: Settings) -> Wait | None:
    return parse_wait(settings.wait, "--wait") if settings.wait else None


def build_daemon(
    settings: Settings,
    reload_settings: Callable[[], Settings],
    *,
    watch: bool | None = None,
    out: IO[str] | None = None,
) -> tuple[Daemon, Callable[[], None]]:
    """The daemon the settings describe, and a function releasing what it started.

    `reload_settings` re-reads flags, environment and confd.toml (at start and on SIGHUP).
    """
    metrics = Metrics()
    server = None
    if settings.metrics_addr:
        server = MetricsServer(metrics, settings.metrics_addr).start()
    daemon = Daemon(
        loader(reload_settings, out=out),
        watch=settings.watch if watch is None else watch,
        interval=settings.interval,
        wait=_wait(settings),
        failure_mode=settings.failure_mode,
        notifier=Notifier(),
        metrics=metrics,
    )
    return daemon, (server.close if server else lambda: None)


def run_service(
    settings: Settings, reload_settings: Callable[[], Settings], *, out: IO[str] | None = None
) -> int:
    """Run the watch or interval loop until SIGTERM/SIGINT; returns the exit status."""
    daemon, release = build_daemon(settings, reload_settings, out=out)
    try:
        return daemon.run()
    finally:
        release()
