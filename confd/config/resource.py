"""Template resources: the `[template]` tables in `<confdir>/conf.d/*.toml`, parsed and checked.

The format is Go confd's (src, dest, keys, prefix, mode, uid, gid, check_cmd, reload_cmd) plus
owner/group names, command timeouts, a per-resource `[backend]` table, `wait`,
`min_reload_interval` and the fork's `output_format`. Every problem is a `ConfigError` naming
the file (and key).
"""

import os
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from confd.cache_dir import cache_directory
from confd.config.parsed import ParsedFiles, parse_toml
from confd.config.settings import toml_value_to_str
from confd.errors import ConfigError
from confd.log import get_logger

if TYPE_CHECKING:  # the debounce module loads only for resources that give durations
    from confd.config.durations import Wait
    from confd.config.settings import Settings

__all__ = [
    "BackendRef",
    "TemplateResource",
    "DEFAULT_CHECK_TIMEOUT",
    "DEFAULT_RELOAD_TIMEOUT",
    "join_key",
    "store_key",
    "load_resource",
    "load_resources",
    "configured_resources",
    "select_resources",
]

log = get_logger("resource")

DEFAULT_CHECK_TIMEOUT = 30.0
DEFAULT_RELOAD_TIMEOUT = 60.0

_TEMPLATE_KEYS = {
    "src", "dest", "keys", "prefix", "mode", "uid", "gid", "owner", "group",
    "check_cmd", "reload_cmd", "check_cmd_timeout", "reload_cmd_timeout",
    "wait", "min_reload_interval", "template_syntax", "output_format",
}
OUTPUT_FORMATS = ("json", "yaml", "yml", "toml", "xml")
_TOP_KEYS = {"template", "backend"}


def join_key(*parts: str) -> str:
    """Go's `path.Join("/", parts...)`: one absolute, clean `/`-separated key."""
    out: list[str] = []
    for part in parts:
        for piece in part.split("/"):
            if piece in ("", "."):
                continue
            if piece == "..":
                if out:
                    out.pop()
            else:
                out.append(piece)
    return "/" + "/".join(out)


def _clean(key: str) -> bool:
    """True when `key` is already what `join_key(key)` gives: absolute, no empty, `.` or `..`
    segment, no trailing `/` (a key with a segment starting with `.` takes the long way)."""
    return key[:1] == "/" and "//" not in key and "/." not in key and key[-1] != "/"


def store_key(key: str, prefix: str) -> str:
    """The key a template sees: Go confd's `path.Join("/", strings.TrimPrefix(key, prefix))`."""
    rest = key.removeprefix(prefix)
    if _clean(rest):
        return rest  # as nearly every key is: 10,000 keys a pass, ~2 us each
    return join_key(rest)


class BackendRef(NamedTuple):
    """A resource's own backend: `name` plus settings (sorted pairs, so a resource is
    hashable), as in a `[backends.NAME]` table."""

    name: str
    settings: tuple[tuple[str, str], ...] = ()


class TemplateResource(NamedTuple):
    """One parsed resource file: what to render, where to, with which owner, mode and commands.

    `mode`, `uid` and `gid` are None when unset: the destination keeps its own (new: 0644,
    the running user). `prefix` is the global `--prefix` when one is set (it replaces the
    resource's, as in Go confd), else the resource's. `syntax` is the resource's own
    `template_syntax` (None: the run's). Hashable, so the run loops key their state by it.
    A NamedTuple, not a frozen dataclass: it is created at every start, where that costs ~1 ms.
    """

    path: Path
    src: str
    src_path: Path
    dest: Path
    keys: tuple[str, ...] = ()
    prefix: str = "/"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    check_cmd: str = ""
    reload_cmd: str = ""
    check_cmd_timeout: float = DEFAULT_CHECK_TIMEOUT
    reload_cmd_timeout: float = DEFAULT_RELOAD_TIMEOUT
    backend: BackendRef | None = None
    wait: "Wait | None" = None
    min_reload_interval: float = 0.0
    syntax: str | None = None
    output_format: str = ""  # json, yaml, yml, toml or xml: the output must parse as that

    @property
    def name(self) -> str:
        """The resource file's name, as logs and errors show it."""
        return self.path.name

    def backend_keys(self) -> list[str]:
        """The keys asked of the database: each resource key joined under the prefix."""
        prefix = self.prefix
        if prefix != "/" and not _clean(prefix):
            return [join_key(prefix, key) for key in self.keys]
        base = "" if prefix == "/" else prefix  # clean keys under a clean prefix: just append
        return [base + key if _clean(key) else join_key(prefix, key) for key in self.keys]

    def to_store(self, values: Mapping[str, str]) -> dict[str, str]:
        """Database keys re-rooted at `/` with the prefix stripped, as templates see them."""
        return {store_key(key, self.prefix): value for key, value in values.items()}


def _string(path: Path, table: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{path}: template {key} must be a string, got {type(value).__name__}")
    if "\0" in value:  # no path, user name or shell command can hold one
        raise ConfigError(f"{path}: template {key} must not contain a NUL character")
    if required and not value.strip():
        raise ConfigError(f"{path}: template {key} is required")
    return value


def _mode(path: Path, raw: Any) -> int | None:
    """`"644"`, `"0644"`, `"0o644"` and a bare TOML `644` all mean octal 644."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ConfigError(f"{path}: template mode must be an octal string like \"0644\"")
    text = str(raw).strip().lower().removeprefix("0o")
    if not re.fullmatch(r"[0-7]{1,5}", text) or int(text, 8) > 0o7777:
        raise ConfigError(f"{path}: template mode {raw!r} is not an octal file mode like 0644")
    return int(text, 8)


def _ident(path: Path, table: Mapping[str, Any], key: str) -> int | None:
    raw = table.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ConfigError(f"{path}: template {key} must be a non-negative integer")
    return raw


def _account(path: Path, table: Mapping[str, Any], key: str) -> int | None:
    """`owner` or `group`: a user or group name resolved on this host, which must agree with
    `uid` or `gid` when both are given; else that id (None: unset)."""
    id_key, kind = ("uid", "user") if key == "owner" else ("gid", "group")
    ident = _ident(path, table, id_key)
    name = _string(path, table, key)
    if not name:
        return ident
    import grp  # only for resources that name an owner or group
    import pwd

    try:
        found = pwd.getpwnam(name).pw_uid if key == "owner" else grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(f"{path}: template {key} {name!r} is not a {kind} on this host") from None
    if ident is not None and ident != found:
        raise ConfigError(
            f"{path}: template {key} {name!r} ({id_key} {found}) disagrees with {id_key} {ident}")
    return found


def _seconds(path: Path, table: Mapping[str, Any], key: str, default: float) -> float:
    raw = table.get(key)
    if raw is None:
        return default
    if isinstance(raw, bool):
        raise ConfigError(f"{path}: template {key} must be seconds or a duration like \"30s\"")
    if isinstance(raw, int | float):
        seconds = float(raw)
    elif isinstance(raw, str):
        from confd.config.durations import parse_duration

        seconds = parse_duration(raw, f"{path}: template {key}")
    else:
        raise ConfigError(f"{path}: template {key} must be seconds or a duration like \"30s\"")
    if seconds < 0:
        raise ConfigError(f"{path}: template {key} must not be negative")
    return seconds


def _keys(path: Path, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(k, str) for k in raw):
        raise ConfigError(f"{path}: template keys must be a list of strings")
    return tuple(raw)


def _src(path: Path, templates_dir: Path, src: str, base: str | None = None) -> Path:
    """The real path of template `src`, which must be a file inside `templates_dir` (`base`:
    that directory's real path, when the caller resolved it once for many resources)."""
    try:
        root = base if base is not None else os.path.realpath(templates_dir)
        if "/" not in src and src not in ("", ".", ".."):  # a file directly in the folder:
            try:  # one lstat instead of resolving every component (~45 ms per 1,000)
                if stat.S_ISREG(os.lstat(os.path.join(root, src)).st_mode):
                    return Path(root, src)
            except OSError:
                pass  # the full resolution below says what is wrong
        resolved = Path(root, src).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise ConfigError(f"{path}: template src {src!r} cannot be resolved: {exc}") from None
    if not resolved.is_relative_to(root):
        raise ConfigError(f"{path}: template src {src!r} points outside {templates_dir}")
    if not resolved.is_file():
        raise ConfigError(f"{path}: template src {src!r} does not exist in {templates_dir}")
    return resolved


def _wait(path: Path, raw: Any) -> "Wait | None":
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ConfigError(f"{path}: template wait must be a string like \"2s:10s\"")
    from confd.config.durations import parse_wait

    try:
        return parse_wait(raw, f"{path}: template wait")
    except ConfigError as exc:
        message = str(exc)
        if str(path) not in message:
            message = f"{path}: template {message}"
        raise ConfigError(message) from None


def _backend(path: Path, raw: Any) -> BackendRef | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [backend] must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: [backend] needs name = \"<backend>\"")
    settings = sorted(
        (k.replace("-", "_"), toml_value_to_str(v)) for k, v in raw.items() if k != "name"
    )
    return BackendRef(name, tuple(settings))


def _syntax(path: Path, raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or raw.lower() not in ("auto", "go", "jinja"):
        raise ConfigError(f"{path}: template template_syntax must be auto, go or jinja")
    return raw.lower()


def _output_format(path: Path, raw: Any) -> str:
    if raw is None or raw == "":
        return ""
    if not isinstance(raw, str) or raw.lower() not in OUTPUT_FORMATS:
        shown = raw if isinstance(raw, str) else type(raw).__name__
        raise ConfigError(f"{path}: template output_format {shown!r} is not one of "
                          f"{', '.join(OUTPUT_FORMATS)}")
    return raw.lower()


def load_resource(
    path: Path, templates_dir: Path, *, prefix: str = "", strict: bool = False,
    check_cmd_timeout: float = DEFAULT_CHECK_TIMEOUT,
    reload_cmd_timeout: float = DEFAULT_RELOAD_TIMEOUT, templates_root: str | None = None,
    parsed: ParsedFiles | None = None,
) -> TemplateResource:
    """Parse one resource file; `prefix` is the global one (it replaces the resource's), the
    timeouts the run's defaults for resources that set none, `templates_root` the real path of
    `templates_dir` when the caller resolved it once for many files, `parsed` the cache of
    parsed files of a load of many.

    An unknown key is a warning, or with `strict` (`confd check --strict`) an error.
    """
    try:
        if parsed is not None:
            data = parsed.load(path)
        else:
            with path.open("rb") as handle:
                data = parse_toml(handle.read())
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid TOML: not UTF-8 (byte {exc.start}: {exc.object[exc.start:exc.end]!r})"
        ) from None
    except ValueError as exc:
        import tomllib

        if not isinstance(exc, tomllib.TOMLDecodeError):
            raise
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read resource file: {exc.strerror}") from None
    unknown = [f"unknown key {key!r}" for key in sorted(set(data) - _TOP_KEYS)]
    table = data.get("template")
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: missing [template] table")
    unknown += [f"unknown key {key!r} in [template]" for key in sorted(set(table) - _TEMPLATE_KEYS)]
    if unknown and strict:
        raise ConfigError(f"{path}: {'; '.join(unknown)} (--strict)")
    for problem in unknown:
        log.warning("%s: %s ignored", path, problem)

    src = _string(path, table, "src", required=True)
    dest = _string(path, table, "dest", required=True)
    wait_raw = table.get("wait")
    uid = _account(path, table, "owner")
    gid = _account(path, table, "group")
    return TemplateResource(
        path=path,
        src=src,
        src_path=_src(path, templates_dir, src, templates_root),
        dest=Path(os.path.abspath(dest)),
        keys=_keys(path, table.get("keys")),
        prefix=join_key(prefix or _string(path, table, "prefix")),
        mode=_mode(path, table.get("mode")),
        uid=uid,
        gid=gid,
        check_cmd=_string(path, table, "check_cmd"),
        reload_cmd=_string(path, table, "reload_cmd"),
        check_cmd_timeout=_seconds(path, table, "check_cmd_timeout", check_cmd_timeout),
        reload_cmd_timeout=_seconds(path, table, "reload_cmd_timeout", reload_cmd_timeout),
        backend=_backend(path, data.get("backend")),
        wait=_wait(path, wait_raw),
        min_reload_interval=_seconds(path, table, "min_reload_interval", 0.0),
        syntax=_syntax(path, table.get("template_syntax")),
        output_format=_output_format(path, table.get("output_format")),
    )


def load_resources(
    confdir: Path, *, prefix: str = "", strict: bool = False,
    check_cmd_timeout: float = DEFAULT_CHECK_TIMEOUT,
    reload_cmd_timeout: float = DEFAULT_RELOAD_TIMEOUT, cache: Path | None = None,
) -> tuple[list[TemplateResource], list[ConfigError]]:
    """Every `*.toml` under `conf.d` (subfolders too, in Go's walk order: names sorted within
    each folder, depth first); bad files are returned as errors, the rest load. The timeouts
    are the defaults of resources without their own (`--check-cmd-timeout`, ...); `cache` the
    on-disk cache (`confd.cache_dir`) that keeps the files' parse across runs (None: parse all).

    A missing confdir or conf.d is itself an error (raised): nothing to do is not success.
    """
    resources_dir = confdir / "conf.d"
    if not confdir.is_dir():
        raise ConfigError(f"confdir {confdir} does not exist")
    if not resources_dir.is_dir():
        raise ConfigError(f"confdir {confdir} has no conf.d directory of template resources")
    resources: list[TemplateResource] = []
    errors: list[ConfigError] = []
    templates = confdir / "templates"
    root = os.path.realpath(templates)
    parsed = ParsedFiles(cache, resources_dir)
    for path in resource_files(resources_dir):
        try:
            resources.append(load_resource(
                path, templates, prefix=prefix, strict=strict,
                check_cmd_timeout=check_cmd_timeout, reload_cmd_timeout=reload_cmd_timeout,
                templates_root=root, parsed=parsed,
            ))
        except ConfigError as exc:
            errors.append(exc)
    parsed.save()
    return resources, errors


def configured_resources(
    settings: "Settings", *, strict: bool = False, environ: Mapping[str, str] | None = None,
) -> tuple[list[TemplateResource], list[ConfigError]]:
    """`load_resources` as the settings say: their confdir, `--prefix`, command timeouts and
    cache directory (its default from `environ`)."""
    return load_resources(
        Path(settings.confdir), prefix=settings.prefix, strict=strict,
        check_cmd_timeout=settings.check_cmd_timeout,
        reload_cmd_timeout=settings.reload_cmd_timeout,
        cache=cache_directory(settings.cache_dir, environ),
    )


def resource_files(directory: Path) -> list[Path]:
    """The `*.toml` files below `directory`, as Go's `filepath.Walk` visits them (symlinked
    folders are not followed)."""
    found: list[Path] = []
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            found.extend(resource_files(Path(entry.path)))
        elif entry.name.endswith(".toml"):
            found.append(Path(entry.path))
    return found


def select_resources(resources: Sequence[TemplateResource], names: Sequence[str],
                     conf_d: Path) -> list[TemplateResource]:
    """The resources `names` pick (a file name `nginx.toml`, its stem `nginx`, or its path
    under conf.d); all of them without names. An unknown name is a `ConfigError`."""
    if not names:
        return list(resources)
    chosen: list[TemplateResource] = []
    for name in names:
        found = [r for r in resources if name in _names(r, conf_d)]
        if not found:
            known = ", ".join(r.name for r in resources) or "none"
            raise ConfigError(f"no template resource {name!r} in {conf_d} (there are: {known})")
        chosen.extend(r for r in found if r not in chosen)
    return chosen


def _names(resource: TemplateResource, conf_d: Path) -> set[str]:
    path = resource.path
    names = {path.name, path.stem, str(path)}
    try:
        relative = path.relative_to(conf_d)
        names |= {str(relative), str(relative.with_suffix(""))}
    except ValueError:
        pass
    return names
