"""Opening databases: settings from every layer merged into one config map, then a built-in
from the registry or, for other names (or `--isolate`), a plugin.

Precedence per setting: flags (common flags, `--backend-opt`) > environment (CONFD_*,
CONFD_BACKEND_OPT_*) > confd.toml (top-level keys, `[backends.NAME]`). Within one layer an
explicit backend option beats a common flag. Only settings the user set are passed on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from confd.config.settings import COMMON_BACKEND_FIELDS, ENV, FILE, FLAG, Settings
from confd.errors import BackendError
from confd.log import get_logger

if TYPE_CHECKING:
    from confd.backends.registry import Registry
    from confd.config.resource import TemplateResource
    from plugin_sdk.database import Database

__all__ = ["backend_config", "open_database", "DatabasePool"]

log = get_logger("backends")


def _common(settings: Settings, layer: str) -> dict[str, str]:
    """Common flags (nodes, scheme, username, ...) that `layer` set, as backend settings."""
    config: dict[str, str] = {}
    for name in COMMON_BACKEND_FIELDS:
        if settings.source(name) != layer:
            continue
        value = getattr(settings, name)
        config[name] = ",".join(value) if isinstance(value, list) else str(value)
    return config


def backend_config(settings: Settings, backend: str) -> dict[str, str]:
    """The `map[string]string` backend `backend` is configured with.

    The common flags and backend options apply to the selected backend (`settings.backend`);
    a `[backends.NAME]` table applies to backend NAME whichever is selected.
    """
    config: dict[str, str] = {}
    selected = backend == settings.backend
    if selected:
        config.update(_common(settings, FILE))
    config.update(settings.backend_tables.get(backend, {}))
    if selected:
        config.update(_common(settings, ENV))
        config.update(settings.env_backend_opts)
        config.update(_common(settings, FLAG))
        config.update(settings.flag_backend_opts)
    return config


def open_database(
    settings: Settings,
    *,
    backend: str | None = None,
    overrides: Mapping[str, str] | None = None,
    registry: Registry | None = None,
) -> Database:
    """Configure and return backend `backend` (default: the selected one).

    A built-in runs in process unless `settings.isolate`; any other name is a plugin
    `confd-database-NAME`, started by `confd.backends.plugin.host.open_plugin`.
    """
    name = backend or settings.backend
    config = backend_config(settings, name)
    config.update(overrides or {})
    if registry is None:
        from confd.backends.registry import default_registry

        registry = default_registry()
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
    """One open database per distinct backend name + config, shared by the resources using it."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self._settings = settings
        self._registry = registry
        self._open: dict[tuple[str, tuple[tuple[str, str], ...]], Database] = {}

    def for_resource(self, resource: TemplateResource) -> Database:
        """The database `resource` reads: its `[backend]` table's, else the selected one."""
        ref = resource.backend
        name = ref.name if ref else self._settings.backend
        overrides = dict(ref.settings) if ref else {}
        return self.get(name, overrides)

    def get(self, name: str, overrides: Mapping[str, str] | None = None) -> Database:
        """Open (once) and return backend `name` configured with `overrides` on top."""
        config = backend_config(self._settings, name)
        config.update(overrides or {})
        key = (name, tuple(sorted(config.items())))
        database = self._open.get(key)
        if database is None:
            database = open_database(
                self._settings, backend=name, overrides=overrides, registry=self._registry
            )
            self._open[key] = database
        return database

    def close(self) -> None:
        """Close every database opened, logging (not raising) failures."""
        for (name, _), database in self._open.items():
            try:
                database.close()
            except Exception as exc:  # noqa: BLE001 - closing must reach every database
                log.warning("closing backend %s failed: %s", name, exc)
        self._open.clear()
