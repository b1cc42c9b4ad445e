"""A stand-in for `confd.run.assembly.Runtime`: resources whose renders are Python functions.

The daemon-loop and watch-baseline tests drive `Daemon` through it, counting renders and
deciding what each render read, without templates or files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from confd.config.durations import Wait
from confd.config.resource import TemplateResource, store_key
from confd.run.processor import Outcome
from confd.sync import Status
from confd.template.store import Reads
from plugin_sdk.database import Database

Render = Callable[[TemplateResource], Outcome]


def fake_resource(name: str, prefix: str, *, wait: Wait | None = None,
                  min_reload_interval: float = 0.0) -> TemplateResource:
    """A resource named `name` reading everything under `prefix`."""
    return TemplateResource(
        path=Path(f"/fake/conf.d/{name}"), src=name, src_path=Path(f"/fake/templates/{name}"),
        dest=Path(f"/fake/{name}"), keys=("/",), prefix=prefix, wait=wait,
        min_reload_interval=min_reload_interval,
    )


def outcome(resource: TemplateResource, *, ok: bool = True, changed: bool = False,
            read: Sequence[str] = (), values: dict[str, str] | None = None) -> Outcome:
    """An outcome whose render read the database keys `read`."""
    reads = Reads(keys={store_key(k, resource.prefix) for k in read})
    status = Status.FAILED if not ok else Status.CHANGED if changed else Status.UNCHANGED
    return Outcome(resource, status, None if ok else RuntimeError("boom"), reads, values)


class FakeRuntime:
    """Resources from `resources()` (called again by `scan`), each rendered by `render`."""

    def __init__(
        self,
        database: Database,
        resources: Callable[[], list[TemplateResource]],
        render: Render,
        *,
        watch: bool = True,
        interval: float = 60.0,
        wait: Wait | None = None,
        failure_mode: str = "best-effort",
        watch_error_backoff: float = 0.2,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self._database = database
        self._resources = resources
        self._render = render
        self.resources = list(resources())
        self.watch = watch
        self.interval = interval
        self.wait = wait
        self.failure_mode = failure_mode
        self.watch_error_backoff = watch_error_backoff
        self.shutdown_timeout = shutdown_timeout

    def scan(self) -> None:
        self.resources = list(self._resources())

    def database(self, resource: TemplateResource) -> Database:
        return self._database

    def label(self, resource: TemplateResource) -> str:
        return self._database.name or "memory"

    def render(self, resource: TemplateResource) -> Outcome:
        return self._render(resource)

    def render_many(self, resources: Sequence[TemplateResource],
                    copies: object = None) -> Iterator[Outcome]:
        """One render after the other, each with its own read (the tests decide the reads, so
        the watches' `copies` go unused)."""
        for resource in resources:
            yield self._render(resource)

    def release_unused(self) -> None:
        """Nothing to release: one database."""

    def close(self) -> None:
        self._database.close()
