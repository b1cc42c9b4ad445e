"""Template resources as the run loops' `Target`s: load conf.d, open databases, wrap renders.

A render's reads are recorded in template keys (the resource prefix stripped); watches report
database keys, so `_PrefixedReads` translates before asking `depends_on`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

from confd.backends.pool import backend_config, open_database
from confd.config.resource import TemplateResource, load_resources, store_key
from confd.config.settings import Settings
from confd.log import get_logger
from confd.run.daemon import Loader, RenderResult, Target
from confd.run.processor import Processor
from confd.sync import SyncOptions
from confd.template.renderer import Renderer
from confd.template.store import Reads
from plugin_sdk.database import Database

log = get_logger("targets")


class _PrefixedReads:
    """A render's `Reads`, asked about database keys under the resource's prefix."""

    __slots__ = ("prefix", "reads")

    def __init__(self, reads: Reads, prefix: str) -> None:
        self.reads = reads
        self.prefix = prefix

    def depends_on(self, changed_key: str) -> bool:
        return self.reads.depends_on(store_key(changed_key, self.prefix))


def _render(processor: Processor, resource: TemplateResource) -> Callable[[], RenderResult]:
    def render() -> RenderResult:
        outcome = processor.process(resource)
        reads = _PrefixedReads(outcome.reads, resource.prefix) if outcome.reads else None
        return RenderResult(
            ok=not outcome.failed,
            changed=outcome.changed,
            reads=reads,
            error=str(outcome.error or ""),
            values=outcome.values,
        )

    return render


class _Databases:
    """Open databases by backend name and full config, kept across reloads (a `DatabaseSource`).

    A SIGHUP that leaves a backend's settings alone keeps its connection, and so its watches.
    """

    def __init__(self) -> None:
        self.settings: Settings | None = None
        self._open: dict[tuple[str, tuple[tuple[str, str], ...]], Database] = {}

    def for_resource(self, resource: TemplateResource) -> Database:
        assert self.settings is not None
        ref = resource.backend
        name = ref.name if ref else self.settings.backend
        overrides = dict(ref.settings) if ref else {}
        config = backend_config(self.settings, name)
        config.update(overrides)
        key = (name, tuple(sorted(config.items())))
        database = self._open.get(key)
        if database is None:
            database = open_database(self.settings, backend=name, overrides=overrides)
            self._open[key] = database
        return database


class ResourceLoader:
    """Builds the targets from fresh settings each call (start, SIGHUP, interval pass).

    Databases are shared through one pool, so a reload with unchanged backend settings keeps
    the same connections (and the daemon keeps their watches).
    """

    def __init__(self, settings: Callable[[], Settings], *, out: IO[str] | None = None) -> None:
        self._settings = settings
        self._out = out
        self._databases = _Databases()
        self._labels: dict[int, str] = {}

    def __call__(self) -> list[Target]:
        settings = self._settings()
        self._databases.settings = settings
        resources, errors = load_resources(Path(settings.confdir), prefix=settings.prefix)
        for error in errors:
            log.error("%s", error)
        if not resources and not errors:
            log.warning("no template resources in %s", settings.resources_dir)
        processor = Processor(
            resources,
            Renderer(settings.templates_dir),
            self._databases,
            SyncOptions(settings.noop, settings.sync_only, settings.keep_stage_file),
            out=self._out,
        )
        targets = []
        for resource in resources:
            database = self._databases.for_resource(resource)
            targets.append(
                Target(
                    id=(str(resource.path), repr(resource)),
                    name=resource.name,
                    backend=self._label(resource, database, settings.backend),
                    database=database,
                    prefix=resource.prefix,
                    keys=tuple(resource.backend_keys()),
                    render=_render(processor, resource),
                    wait=resource.wait,
                    min_reload_interval=resource.min_reload_interval,
                )
            )
        return targets

    def _label(self, resource: TemplateResource, database: Database, default: str) -> str:
        """A backend's name, numbered when several databases share it (logs, metrics, groups)."""
        label = self._labels.get(id(database))
        if label is None:
            name = resource.backend.name if resource.backend else default
            taken = set(self._labels.values())
            label, n = name, 1
            while label in taken:
                n += 1
                label = f"{name}#{n}"
            self._labels[id(database)] = label
        return label


def loader(settings: Callable[[], Settings], *, out: IO[str] | None = None) -> Loader:
    """The `Loader` the daemon calls: targets for every resource in the settings' confdir."""
    return ResourceLoader(settings, out=out)
