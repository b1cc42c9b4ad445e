"""A backend's settings: every layer merged into the one `map[string]string` it is configured with.

Precedence per setting: flags (common flags, `--backend-opt`) > environment (CONFD_*,
CONFD_BACKEND_OPT_*) > confd.toml (top-level keys, `[backends.NAME]`). Within one layer an
explicit backend option beats a common flag. Only settings the user set are passed on, and a
common flag the backend does not declare is left out (Go confd ignores `-scheme` with `-backend
env` too); `--backend-opt` and `[backends.NAME]` stay strict, so a misspelling is an error.
"""

from collections.abc import Collection, Mapping
from typing import NamedTuple

from confd.backends.registry import ALIASES
from confd.config.options import BACKEND_OPTIONS, FOLDED_OPTIONS
from confd.config.settings import DEFAULT, ENV, FILE, FLAG, Settings

__all__ = ["BackendConfig", "backend_config"]


class BackendConfig(NamedTuple):
    """What backend `name` is configured with, and the common flags left out (it ignores them)."""

    name: str
    config: dict[str, str]
    ignored: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Identity of an open database: same name and settings, same connection."""
        return self.name, tuple(sorted(self.config.items()))


def _common(settings: Settings, layer: str) -> dict[str, str]:
    """Common flags (nodes, scheme, username, ...) that `layer` set, as backend settings."""
    config: dict[str, str] = {}
    for option in BACKEND_OPTIONS:
        if settings.source(option.name) != layer:
            continue
        value = getattr(settings, option.name)
        if isinstance(value, bool):
            config[option.name] = "true" if value else "false"
        else:
            config[option.name] = ",".join(value) if isinstance(value, list) else str(value)
    return config


_LAYERS = (DEFAULT, FILE, ENV, FLAG)


def _seconds(value: float) -> str:
    return f"{value:g}"


def _fold(settings: Settings, accepts: Collection[str] | None) -> tuple[dict[str, str], str]:
    """The fork's timeouts the user set, as backend settings: each under its own name if the
    backend declares it, the rest folded (largest) into the setting they fold into; and the
    layer they count at (the most specific one that set any). A plugin (`accepts` None) gets
    none of them: it may not know the names."""
    given = [o for o in FOLDED_OPTIONS if settings.source(o.name) != DEFAULT]
    if not given or accepts is None:
        return {}, DEFAULT
    config: dict[str, str] = {}
    folded: dict[str, float] = {}
    for option in given:
        value = float(getattr(settings, option.name))
        if option.name in accepts:
            config[option.name] = _seconds(value)
        elif option.fold in accepts:
            folded[option.fold] = max(folded.get(option.fold, 0.0), value)
    config.update((name, _seconds(value)) for name, value in folded.items())
    layer = max((settings.source(o.name) for o in given), key=_LAYERS.index)
    return config, layer


def backend_config(
    settings: Settings,
    name: str,
    overrides: Mapping[str, str] | None = None,
    *,
    accepts: Collection[str] | None = None,
    nodes: list[str] | None = None,
) -> BackendConfig:
    """The settings backend `name` gets (`overrides`: a resource's own `[backend]` table).

    The common flags and backend options apply to the selected backend (`settings.backend`);
    a `[backends.NAME]` table applies to backend NAME whichever is selected. `accepts` is the
    set of settings the backend declares (None: unknown, a plugin: pass every common flag).
    `nodes`, when given, are discovered nodes (DNS SRV) that replace any configured ones.
    The selected backend may be named by one of Go confd's aliases (`-backend etcdv3` selects
    `etcd`, which then gets the common flags).
    """
    common: dict[str, str] = {}
    config: dict[str, str] = {}
    selected = name == ALIASES.get(settings.backend, settings.backend)
    if selected:
        common.update(_common(settings, FILE))
    config.update(settings.backend_tables.get(name, {}))
    if selected:
        common.update(_common(settings, ENV))
        common.update(_common(settings, FLAG))
        if nodes:
            common["nodes"] = ",".join(nodes)
    ignored: list[str] = []
    if accepts is not None:
        for key in list(common):
            if key not in accepts:
                ignored.append(key)
                del common[key]
    layer_of = {k: settings.source(k) for k in common}
    if selected:
        timeouts, layer = _fold(settings, accepts)
        for key, value in timeouts.items():
            common[key] = value
            layer_of[key] = layer
    # Layered: a table beats the file's common keys; env/flag options beat everything below.
    merged = {**{k: v for k, v in common.items() if layer_of[k] == FILE}, **config}
    merged.update({k: v for k, v in common.items() if layer_of[k] == ENV})
    if selected:
        merged.update(settings.env_backend_opts)
    merged.update({k: v for k, v in common.items() if layer_of[k] not in (FILE, ENV)})
    if selected:
        merged.update(settings.flag_backend_opts)
    merged.update(overrides or {})
    return BackendConfig(name, merged, tuple(sorted(ignored)))
