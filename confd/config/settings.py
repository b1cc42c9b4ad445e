"""Daemon settings and where each comes from: flags > CONFD_* environment > confd.toml > defaults.

`load_settings` merges the layers into one `Settings`; `Settings.origin` remembers which layer
set each field, so backend configuration can pass on only what the user actually set.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confd.errors import ConfigError
from confd.log import get_logger

__all__ = [
    "Settings",
    "SETTING_NAMES",
    "DEFAULTS",
    "COMMON_BACKEND_FIELDS",
    "load_settings",
    "settings_from_env",
    "settings_from_toml",
    "toml_value_to_str",
]

log = get_logger("settings")

FLAG, ENV, FILE, DEFAULT = "flag", "env", "file", "default"

DEFAULTS: dict[str, Any] = {
    "backend": "etcd",
    "confdir": "/etc/confd",
    "config_file": None,
    "onetime": False,
    "watch": False,
    "interval": 600,
    "wait": "",
    "failure_mode": "best-effort",
    "metrics_addr": "",
    "noop": False,
    "sync_only": False,
    "keep_stage_file": False,
    "prefix": "",
    "log_level": "info",
    "log_format": "text",
    "nodes": [],
    "scheme": "http",
    "client_cert": "",
    "client_key": "",
    "client_ca_keys": "",
    "username": "",
    "password": "",
    "file": [],
    "filter": "*",
    "separator": "",
    "plugin_dirs": [],
    "isolate": False,
    "plugin_start_timeout": 10.0,
}

# Settings that reach a backend's `configure` (as the backend setting of the same name,
# `nodes` and `file` comma-joined) when the user set them.
COMMON_BACKEND_FIELDS = (
    "nodes",
    "scheme",
    "client_cert",
    "client_key",
    "client_ca_keys",
    "username",
    "password",
    "file",
    "filter",
    "separator",
)

_BOOL = {"onetime", "watch", "noop", "sync_only", "keep_stage_file", "isolate"}
_LIST = {"nodes", "file", "plugin_dirs"}
_INT = {"interval"}
_FLOAT = {"plugin_start_timeout"}

# confd.toml spellings (after `-` -> `_`) that name a field differently.
_TOML_ALIASES = {
    "node": "nodes",
    "client_cakeys": "client_ca_keys",
    "plugin_dir": "plugin_dirs",
    "files": "file",
}
_TOML_IGNORED = {"config_file"}  # a config file cannot point at another one

_ENV_NAMES: dict[str, str] = {
    "CONFD_BACKEND": "backend",
    "CONFD_CONFDIR": "confdir",
    "CONFD_CONFIG_FILE": "config_file",
    "CONFD_ONETIME": "onetime",
    "CONFD_WATCH": "watch",
    "CONFD_INTERVAL": "interval",
    "CONFD_WAIT": "wait",
    "CONFD_FAILURE_MODE": "failure_mode",
    "CONFD_METRICS_ADDR": "metrics_addr",
    "CONFD_NOOP": "noop",
    "CONFD_SYNC_ONLY": "sync_only",
    "CONFD_KEEP_STAGE_FILE": "keep_stage_file",
    "CONFD_PREFIX": "prefix",
    "CONFD_LOG_LEVEL": "log_level",
    "CONFD_LOG_FORMAT": "log_format",
    "CONFD_NODE": "nodes",
    "CONFD_NODES": "nodes",
    "CONFD_SCHEME": "scheme",
    "CONFD_CLIENT_CERT": "client_cert",
    "CONFD_CLIENT_KEY": "client_key",
    "CONFD_CLIENT_CA_KEYS": "client_ca_keys",
    "CONFD_USERNAME": "username",
    "CONFD_PASSWORD": "password",
    "CONFD_FILE": "file",
    "CONFD_FILTER": "filter",
    "CONFD_SEPARATOR": "separator",
    "CONFD_PLUGIN_DIR": "plugin_dirs",
    "CONFD_ISOLATE": "isolate",
    "CONFD_PLUGIN_START_TIMEOUT": "plugin_start_timeout",
}
_ENV_OPT_PREFIX = "CONFD_BACKEND_OPT_"
_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off", ""}


class Settings:
    """Everything the daemon was told, merged; `origin[name]` is flag, env, file or default.

    Built as `Settings(name=value, ...)`. A plain class rather than a dataclass: defining a
    31-field dataclass costs ~1.3 ms of every start. Class attributes are the defaults; the
    list and dict fields get a fresh object per instance.
    """

    backend: str = DEFAULTS["backend"]
    confdir: str = DEFAULTS["confdir"]
    config_file: str | None = None
    onetime: bool = False
    watch: bool = False
    interval: int = DEFAULTS["interval"]
    wait: str = ""  # debounce "min:max" for every resource without its own `wait`
    failure_mode: str = DEFAULTS["failure_mode"]  # best-effort or fail-fast
    metrics_addr: str = ""  # HOST:PORT for /metrics, /health, /ready; off when empty
    noop: bool = False
    sync_only: bool = False
    keep_stage_file: bool = False
    prefix: str = ""
    log_level: str = DEFAULTS["log_level"]
    log_format: str = DEFAULTS["log_format"]
    nodes: list[str]
    scheme: str = DEFAULTS["scheme"]
    client_cert: str = ""
    client_key: str = ""
    client_ca_keys: str = ""
    username: str = ""
    password: str = ""
    file: list[str]
    filter: str = DEFAULTS["filter"]
    separator: str = ""
    plugin_dirs: list[str]
    isolate: bool = False
    plugin_start_timeout: float = DEFAULTS["plugin_start_timeout"]  # seconds to the handshake
    # Backend settings by layer: `[backends.NAME]` tables, CONFD_BACKEND_OPT_*, --backend-opt.
    backend_tables: dict[str, dict[str, str]]
    env_backend_opts: dict[str, str]
    flag_backend_opts: dict[str, str]
    origin: dict[str, str]

    def __init__(self, **values: Any) -> None:
        for name in _FRESH_LISTS:
            setattr(self, name, [])
        for name in _FRESH_DICTS:
            setattr(self, name, {})
        for name, value in values.items():
            if name not in SETTING_NAMES:
                raise TypeError(f"Settings() got an unexpected setting {name!r}")
            setattr(self, name, value)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in SETTING_NAMES if name != "password"
        )
        return f"Settings({shown})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in SETTING_NAMES)

    __hash__ = None  # type: ignore[assignment]  # mutable

    @property
    def confdir_path(self) -> Path:
        return Path(self.confdir)

    @property
    def templates_dir(self) -> Path:
        return Path(self.confdir) / "templates"

    @property
    def resources_dir(self) -> Path:
        return Path(self.confdir) / "conf.d"

    def source(self, name: str) -> str:
        """Which layer set `name`: flag, env, file or default."""
        return self.origin.get(name, DEFAULT)


SETTING_NAMES: tuple[str, ...] = tuple(Settings.__annotations__)
_FRESH_LISTS = ("nodes", "file", "plugin_dirs")
_FRESH_DICTS = ("backend_tables", "env_backend_opts", "flag_backend_opts", "origin")


def toml_value_to_str(value: Any) -> str:
    """A TOML value as the string a backend's `configure` receives (lists comma-joined)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(toml_value_to_str(v) for v in value)
    return str(value)


def _coerce(name: str, value: Any, where: str) -> Any:
    """Check and convert one raw value (str from env/flags, any TOML type) for field `name`."""
    if name in _BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where}: {name} must be true or false, got {value!r}")
    if name in _INT:
        if isinstance(value, int) and not isinstance(value, bool):
            result = value
        else:
            try:
                result = int(str(value).strip())
            except ValueError:
                raise ConfigError(f"{where}: {name} must be a whole number of seconds") from None
        if result <= 0:
            raise ConfigError(f"{where}: {name} must be positive, got {result}")
        return result
    if name in _FLOAT:
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not number > 0:
            raise ConfigError(f"{where}: {name} must be a positive number of seconds,"
                              f" got {value!r}")
        return number
    if name in _LIST:
        if isinstance(value, str):
            sep = os.pathsep if name == "plugin_dirs" else ","
            return [part.strip() for part in value.split(sep) if part.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ConfigError(f"{where}: {name} must be a list of strings")
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {name} must be a string, got {type(value).__name__}")
    return value


def settings_from_env(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Fields set by CONFD_* variables, and backend options from CONFD_BACKEND_OPT_<KEY>."""
    values: dict[str, Any] = {}
    opts: dict[str, str] = {}
    for var in sorted(environ):
        if var.startswith(_ENV_OPT_PREFIX) and len(var) > len(_ENV_OPT_PREFIX):
            opts[var[len(_ENV_OPT_PREFIX) :].lower()] = environ[var]
        elif var in _ENV_NAMES:
            name = _ENV_NAMES[var]
            values[name] = _coerce(name, environ[var], f"environment variable {var}")
    return values, opts


def settings_from_toml(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Fields and `[backends.NAME]` tables from a confd.toml; bad TOML names file and line."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    known = set(SETTING_NAMES) - {
        "backend_tables", "env_backend_opts", "flag_backend_opts", "origin"
    }
    values: dict[str, Any] = {}
    tables: dict[str, dict[str, str]] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        key = _TOML_ALIASES.get(key, key)
        if key == "backends":
            if not isinstance(value, dict) or not all(isinstance(t, dict) for t in value.values()):
                raise ConfigError(f"{path}: [backends] must hold tables like [backends.etcd]")
            for name, table in value.items():
                tables[name] = {
                    k.replace("-", "_"): toml_value_to_str(v) for k, v in table.items()
                }
        elif key in _TOML_IGNORED:
            log.warning("%s: key %r is ignored in a config file", path, raw_key)
        elif key in known:
            values[key] = _coerce(key, value, str(path))
        else:
            log.warning("%s: unknown key %r ignored", path, raw_key)
    return values, tables


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    flag_backend_opts: Mapping[str, str] | None = None,
) -> Settings:
    """Merge flags (only those given; None means unset) over environment over confd.toml.

    The config file is `config_file` (flag or env; must exist) or else `<confdir>/confd.toml`
    (read when present), where confdir comes from flags, environment or the default.
    """
    environ = os.environ if environ is None else environ
    given = {k: v for k, v in (flags or {}).items() if v is not None and v != () and v != []}
    flag_values = {k: _coerce(k, v, f"--{k.replace('_', '-')}") for k, v in given.items()}
    env_values, env_opts = settings_from_env(environ)

    config_file = flag_values.get("config_file") or env_values.get("config_file")
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
    else:
        confdir = flag_values.get("confdir") or env_values.get("confdir") or DEFAULTS["confdir"]
        path = Path(confdir) / "confd.toml"
    file_values: dict[str, Any] = {}
    tables: dict[str, dict[str, str]] = {}
    if path.is_file():
        file_values, tables = settings_from_toml(path)

    settings = Settings(
        backend_tables=tables,
        env_backend_opts=dict(env_opts),
        flag_backend_opts=dict(flag_backend_opts or {}),
    )
    for layer, values in ((FILE, file_values), (ENV, env_values), (FLAG, flag_values)):
        for name, value in values.items():
            setattr(settings, name, value)
            settings.origin[name] = layer
    if path.is_file():
        settings.config_file = str(path)
    if settings.log_format not in ("text", "json"):
        raise ConfigError(f"log format {settings.log_format!r} is not one of text, json")
    if settings.failure_mode not in ("best-effort", "fail-fast"):
        raise ConfigError(
            f"failure mode {settings.failure_mode!r} is not one of best-effort, fail-fast"
        )
    if settings.wait:
        from confd.config.durations import parse_wait

        parse_wait(settings.wait, f"wait {settings.wait!r}")
    return settings
