"""The one pool of open databases: a built-in from the registry or, for other names (or
`--isolate`), a plugin; one instance per distinct (backend, settings), shared by every resource
reading it, and kept across SIGHUP while its settings stay the same (so its watches stay too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from confd.backends.config import BackendConfig, backend_config
from confd.config.options import BY_NAME
from confd.errors import BackendError
from confd.log import get_logger

if TYPE_CHECKING:
    from confd.backends.registry import Registry
    from confd.config.resource import TemplateResource
    from confd.config.settings import Settings
    from plugin_sdk.database import Database

__all__ = ["DatabasePool", "open_database"]

log = get_logger("backends")

_Key = tuple[str, tuple[tuple[str, str], ...]]


def _registry(registry: Registry | None) -> Registry:
    if registry is None:
        from confd.backends.registry import default_registry

        registry = default_registry()
    return registry


def _resolve(
    settings: Settings, name: str, overrides: Mapping[str, str] | None, registry: Registry,
    nodes: list[str] | None = None,
) -> BackendConfig:
    """Backend `name` (aliases resolved) and its merged config, common flags it ignores left out."""
    name = registry.canonical(name)
    accepts = None
    if name in registry:  # in process or isolated, a built-in declares the same settings
        accepts = {s.name for s in registry.get(name).load().settings}
    return backend_config(settings, name, overrides, accepts=accepts, nodes=nodes)


def open_database(
    settings: Settings,
    backend: BackendConfig | None = None,
    *,
    registry: Registry | None = None,
) -> Database:
    """Configure and return a database (default: the selected backend with its settings).

    A built-in runs in process unless `settings.isolate`; any other name is a plugin
    `confd-database-NAME`, started by `confd.backends.plugin.host.open_plugin`.
    """
    registry = _registry(registry)
    if backend is None:
        backend = _resolve(settings, settings.backend, None, registry)
    name, config = backend.name, backend.config
    if name in registry and not settings.isolate:
        log.debug("Using built-in backend %s", name)
        return registry.create(name, config)
    try:
        from confd.backends.plugin.host import open_plugin
    except ModuleNotFoundError as exc:
        if exc.name not in ("confd.backends.plugin", "confd.backends.plugin.host"):
            raise
        if name in registry:
            raise BackendError(
                f"cannot isolate backend {name!r}: plugin support is not installed"
            ) from None
        raise BackendError(
            f"no built-in backend {name} and no plugin confd-database-{name} found"
        ) from None
    return open_plugin(name, config, settings)


class DatabasePool:
    """Open databases by backend name and full config; names them for logs and metrics.

    A database whose settings fail is remembered, so a bad setting is reported once per load,
    not once per resource; `retain` closes what a reload no longer uses.
    """

    def __init__(self, registry: Registry | None = None) -> None:
        self._registry = registry
        self._open: dict[_Key, Database] = {}
        self._labels: dict[int, str] = {}
        self._failed: dict[_Key, BackendError] = {}
        self._warned: set[tuple[str, tuple[str, ...]]] = set()

    @property
    def registry(self) -> Registry:
        self._registry = _registry(self._registry)
        return self._registry

    def resolve(
        self, settings: Settings, name: str | None = None,
        overrides: Mapping[str, str] | None = None, nodes: list[str] | None = None,
    ) -> BackendConfig:
        """The config backend `name` (default: the selected one) would be opened with."""
        return _resolve(settings, name or settings.backend, overrides, self.registry, nodes)

    def for_resource(
        self, settings: Settings, resource: TemplateResource, nodes: list[str] | None = None
    ) -> Database:
        """The database `resource` reads: its `[backend]` table's, else the selected one."""
        ref = resource.backend
        if ref is None:
            return self.get(settings, None, None, nodes)
        return self.get(settings, ref.name, dict(ref.settings), nodes)

    def get(
        self, settings: Settings, name: str | None = None,
        overrides: Mapping[str, str] | None = None, nodes: list[str] | None = None,
    ) -> Database:
        """Open (once) and return backend `name` configured with `overrides` on top.

        A backend that failed to open raises the same `BackendError` again without retrying
        until `forget_failures` (each load starts afresh).
        """
        backend = self.resolve(settings, name, overrides, nodes)
        key = backend.key
        database = self._open.get(key)
        if database is not None:
            return database
        if key in self._failed:
            raise self._failed[key]
        if backend.ignored and (backend.name, backend.ignored) not in self._warned:
            self._warned.add((backend.name, backend.ignored))
            flags = ", ".join(BY_NAME[n].long_flag for n in backend.ignored)
            log.warning("backend %s does not use %s; ignored", backend.name, flags)
        try:
            database = open_database(settings, backend, registry=self.registry)
        except BackendError as exc:
            self._failed[key] = exc
            raise
        self._open[key] = database
        self._label(database, backend.name)
        return database

    def forget_failures(self) -> None:
        """Try failed backends again on their next use (a reload may have fixed them)."""
        self._failed.clear()

    def label(self, database: Database) -> str:
        """The name logs and metrics use: the backend's, numbered when several share it."""
        return self._labels.get(id(database)) or database.name

    def _label(self, database: Database, name: str) -> None:
        taken = set(self._labels.values())
        label, n = name, 1
        while label in taken:
            n += 1
            label = f"{name}#{n}"
        self._labels[id(database)] = label

    def retain(self, in_use: Iterable[Database]) -> None:
        """Close every open database not in `in_use` (a reload stopped using it)."""
        keep = {id(d) for d in in_use}
        for key, database in list(self._open.items()):
            if id(database) not in keep:
                del self._open[key]
                self._close(key[0], database)
                self._labels.pop(id(database), None)

    def close(self) -> None:
        """Close every database opened, logging (not raising) failures."""
        for (name, _), database in self._open.items():
            self._close(name, database)
        self._open.clear()
        self._labels.clear()

    @staticmethod
    def _close(name: str, database: Database) -> None:
        try:
            database.close()
        except Exception as exc:  # noqa: BLE001 - closing must reach every database
            log.warning("closing backend %s failed: %s", name, exc)
