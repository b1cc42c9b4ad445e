"""Daemon settings and where each comes from: flags > CONFD_* environment > confd.toml > defaults.

Every setting is declared once, in `confd.config.options.OPTIONS`; this module turns the layers
into one `Settings`, reading the environment and confd.toml once per (re)load. It is the only
module that reads `CONFD_*` variables. `Settings.origin` remembers which layer set each field,
so backend configuration passes on only what the user actually set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confd.config.options import BY_NAME, LOG_LEVELS, OPTIONS, Duration, Option
from confd.errors import ConfigError
from confd.log import get_logger

__all__ = ["Settings", "load_settings", "log_options", "toml_value_to_str", "FLAG", "ENV", "FILE",
           "DEFAULT"]

log = get_logger("settings")

FLAG, ENV, FILE, DEFAULT = "flag", "env", "file", "default"

_ENV_OPT_PREFIX = "CONFD_BACKEND_OPT_"
_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off", ""}
_BY_ENV: dict[str, Option] = {name: o for o in OPTIONS for name in o.env_names}
_BY_TOML: dict[str, Option] = {
    name.replace("-", "_"): o for o in OPTIONS for name in o.toml_names
}


class Settings:
    """Everything the daemon was told, merged; `origin[name]` is flag, env, file or default.

    One attribute per `OPTIONS` entry (defaults for what no layer set), plus the backend
    settings by layer: `backend_tables` (`[backends.NAME]`), `env_backend_opts`
    (`CONFD_BACKEND_OPT_*`) and `flag_backend_opts` (`--backend-opt`). A plain class, not a
    dataclass: it is built at every start, where a 40-field dataclass costs over a millisecond.
    """

    if TYPE_CHECKING:  # the attributes come from OPTIONS

        def __getattr__(self, name: str) -> Any: ...

    backend_tables: dict[str, dict[str, str]]
    env_backend_opts: dict[str, str]
    flag_backend_opts: dict[str, str]
    origin: dict[str, str]

    def __init__(self, **values: Any) -> None:
        for option in OPTIONS:
            default = option.default
            setattr(self, option.name, list(default) if isinstance(default, list) else default)
        self.backend_tables = {}
        self.env_backend_opts = {}
        self.flag_backend_opts = {}
        self.origin = {}
        for name, value in values.items():
            if name not in BY_NAME and name not in _EXTRA_FIELDS:
                raise TypeError(f"Settings() got an unexpected setting {name!r}")
            setattr(self, name, value)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{o.name}={'<hidden>' if o.secret else repr(getattr(self, o.name))}"
            for o in OPTIONS
        )
        return f"Settings({shown})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in (*BY_NAME, *_EXTRA_FIELDS))

    __hash__ = None  # type: ignore[assignment]  # mutable

    @property
    def templates_dir(self) -> Path:
        return Path(self.confdir) / "templates"

    @property
    def resources_dir(self) -> Path:
        return Path(self.confdir) / "conf.d"

    def source(self, name: str) -> str:
        """Which layer set `name`: flag, env, file or default."""
        return self.origin.get(name, DEFAULT)

    def changed(self, other: Settings) -> list[str]:
        """Names of the settings whose values differ from `other`'s (for SIGHUP)."""
        return [o.name for o in OPTIONS if getattr(self, o.name) != getattr(other, o.name)]


_EXTRA_FIELDS = ("backend_tables", "env_backend_opts", "flag_backend_opts", "origin")


def toml_value_to_str(value: Any) -> str:
    """A TOML value as the string a backend's `configure` receives (lists comma-joined)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(toml_value_to_str(v) for v in value)
    return str(value)


def _coerce(option: Option, value: Any, where: str) -> Any:
    """Check and convert one raw value (str from env/flags, any TOML type) for `option`."""
    name, kind = option.name, option.type
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where}: {name} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            result = value
        else:
            try:
                result = int(str(value).strip())
            except ValueError:
                raise ConfigError(f"{where}: {name} must be a whole number of seconds") from None
        if result < 0 or (result == 0 and not option.zero):
            least = "0 or more" if option.zero else "positive"
            raise ConfigError(f"{where}: {name} must be {least}, got {result}")
        return result
    if kind is Duration:
        return _duration(option, value, where)
    if kind is float:
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not number > 0:
            raise ConfigError(f"{where}: {name} must be a positive number of seconds,"
                              f" got {value!r}")
        return number
    if kind is list:
        if isinstance(value, str):
            return [part.strip() for part in value.split(option.separator) if part.strip()]
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ConfigError(f"{where}: {name} must be a list of strings")
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {name} must be a string, got {type(value).__name__}")
    if option.choices and value.lower() not in option.choices:
        shown = "<hidden>" if option.secret else repr(value)
        raise ConfigError(f"{where}: {name} {shown} is not one of {', '.join(option.choices)}")
    return value.lower() if option.choices else value


def _duration(option: Option, value: Any, where: str) -> float:
    """Seconds from a number or a Go duration (`500ms`, `1m30s`)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{where}: {option.name} must be a duration like 30s or 500ms")
    if isinstance(value, str):
        from confd.config.durations import parse_duration

        seconds = parse_duration(value, f"{where}: {option.name}")
    else:
        seconds = float(value)
    if seconds < 0 or (seconds == 0 and not option.zero):
        least = "0 or more" if option.zero else "above 0"
        raise ConfigError(f"{where}: {option.name} must be {least}, got {value!r}")
    return seconds


def _from_env(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Settings from CONFD_* variables, and backend options from CONFD_BACKEND_OPT_<KEY>."""
    values: dict[str, Any] = {}
    opts: dict[str, str] = {}
    for var in sorted(environ):
        if var.startswith(_ENV_OPT_PREFIX) and len(var) > len(_ENV_OPT_PREFIX):
            opts[var[len(_ENV_OPT_PREFIX):].lower()] = environ[var]
        elif var in _BY_ENV:
            option = _BY_ENV[var]
            values[option.name] = _coerce(option, environ[var], f"environment variable {var}")
    return values, opts


def _from_toml(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """Settings and `[backends.NAME]` tables from a confd.toml; bad TOML names file and line."""
    import tomllib  # here: a start without a confd.toml need not import it (~1.7 ms)

    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    values: dict[str, Any] = {}
    tables: dict[str, dict[str, str]] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key == "backends":
            if not isinstance(value, dict) or not all(isinstance(t, dict) for t in value.values()):
                raise ConfigError(f"{path}: [backends] must hold tables like [backends.etcd]")
            for name, table in value.items():
                tables[name] = {
                    k.replace("-", "_"): toml_value_to_str(v) for k, v in table.items()
                }
        elif key in _BY_TOML:
            option = _BY_TOML[key]
            values[option.name] = _coerce(option, value, str(path))
        elif key in BY_NAME:
            log.warning("%s: key %r is ignored in a config file", path, raw_key)
        else:
            log.warning("%s: unknown key %r ignored", path, raw_key)
    return values, tables


def log_options(flags: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[str, str]:
    """Log level and format from flags or environment alone, for logging set up before the
    settings load (so warnings about confd.toml come out in the right form)."""
    level = str(flags.get("log_level") or environ.get("CONFD_LOG_LEVEL") or "info").lower()
    fmt = str(flags.get("log_format") or environ.get("CONFD_LOG_FORMAT") or "text").lower()
    return (level if level in LOG_LEVELS else "info", fmt if fmt in ("text", "json") else "text")


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
    flag_values: dict[str, Any] = {}
    for name, value in (flags or {}).items():
        if value is None or value == () or value == []:
            continue
        option = BY_NAME[name]
        flag_values[name] = _coerce(option, value, option.long_flag)
    env_values, env_opts = _from_env(environ)

    config_file = flag_values.get("config_file") or env_values.get("config_file")
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
    else:
        confdir = (flag_values.get("confdir") or env_values.get("confdir")
                   or BY_NAME["confdir"].default)
        path = Path(confdir) / "confd.toml"
    found = path.is_file()
    file_values: dict[str, Any] = {}
    tables: dict[str, dict[str, str]] = {}
    if found:
        file_values, tables = _from_toml(path)

    settings = Settings(
        backend_tables=tables,
        env_backend_opts=dict(env_opts),
        flag_backend_opts=dict(flag_backend_opts or {}),
    )
    for layer, values in ((FILE, file_values), (ENV, env_values), (FLAG, flag_values)):
        for name, value in values.items():
            setattr(settings, name, value)
            settings.origin[name] = layer
    if found:
        settings.config_file = str(path)
    if settings.wait:
        from confd.config.durations import parse_wait

        parse_wait(settings.wait, f"wait {settings.wait!r}")
    return settings
