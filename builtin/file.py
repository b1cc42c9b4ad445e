"""The `file` database: keys read from YAML and JSON files and directories, confd's way.

Documents are flattened into keys: maps give `/a/b`, lists give `/a/0`, scalars
become strings as confd prints them (`true`, `8080`, `0.5`). Several files merge,
the later one winning a key both define. Changes are watched natively (inotify
and friends, through `watchfiles`), or by polling file metadata when it is absent.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import posixpath
import re
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from functools import cache
from types import ModuleType
from typing import Any, ClassVar

from plugin_sdk.database import (
    Database,
    DatabaseError,
    Setting,
    backend_logger,
    changed_values,
    select_prefix,
)

__all__ = ["FileDatabase", "flatten", "format_scalar"]

log = backend_logger("file")

_POLL_SECONDS = 0.25
_DATA_SUFFIXES = {".yaml", ".yml", ".json", ""}


def format_scalar(value: Any) -> str:
    """A scalar as confd prints it: `true`/`false`, `8080`, `1.5`, `100000` (never `1e+05`).

    `null` becomes the empty string, so a key present in the file is present in confd.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return format(Decimal(repr(value)).normalize(), "f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _join(base: str, part: str) -> str:
    """`base` + `/part`, cleaned the way Go's `path.Join` does (`a/b` nests, `..` climbs)."""
    joined = posixpath.normpath(f"{base}/{part}")
    return "/" + joined.lstrip("/")


MAX_KEYS = 1_000_000  # YAML aliases can expand a small file exponentially ("billion laughs")


class DocumentError(ValueError):
    """A document that cannot be flattened: it contains itself, or expands past `MAX_KEYS`."""


def flatten(
    document: Any, base: str = "/", into: dict[str, str] | None = None,
    _parents: frozenset[int] = frozenset(),
) -> dict[str, str]:
    """Flatten a parsed YAML/JSON document into confd keys: `{a: {b: [x]}}` -> `/a/b/0 = x`.

    `DocumentError` when a YAML alias makes the document contain itself, or when it expands
    to more than `MAX_KEYS` keys.
    """
    values: dict[str, str] = {} if into is None else into
    if isinstance(document, Mapping | list | tuple):
        if id(document) in _parents:
            raise DocumentError(f"{base} contains itself (a YAML alias cycle)")
        _parents = _parents | {id(document)}
    if len(values) > MAX_KEYS:
        raise DocumentError(f"more than {MAX_KEYS} keys (YAML aliases expanding?)")
    if isinstance(document, Mapping):
        for key, child in document.items():
            flatten(child, _join(base, format_scalar(key)), values, _parents)
    elif isinstance(document, list | tuple):
        for index, child in enumerate(document):
            flatten(child, _join(base, str(index)), values, _parents)
    elif isinstance(document, set | frozenset):  # YAML !!set: members are keys
        for member in sorted(document, key=format_scalar):
            values[_join(base, format_scalar(member))] = ""
    else:
        values[base] = format_scalar(document)
    return values


@cache
def _yaml_loader() -> type:
    """A safe YAML loader resolving plain scalars as YAML 1.2 / Go's yaml.v3 do.

    `yes`, `no`, `on`, `off` stay strings, dates stay as written, `0o17` and
    `017` are octal, `0x1F` hex, `1_000` an int; as confd's maintained fork reads them.
    """
    import yaml  # only when the file backend is used

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        pass

    dropped = {
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:timestamp",
    }
    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in dropped]
        for first, resolvers in base.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:int",
        re.compile(r"^[-+]?(?:0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)$"),
        list("-+0123456789"),
    )
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+0123456789."),
    )

    def construct_int(loader: Any, node: Any) -> int | float:
        text = loader.construct_scalar(node).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        prefix = digits[:2].lower()
        if prefix in ("0b", "0o", "0x"):
            return sign * int(digits[2:], {"0b": 2, "0o": 8, "0x": 16}[prefix])
        if len(digits) > 1 and digits.startswith("0"):
            try:
                return sign * int(digits, 8)  # yaml.v3 keeps YAML 1.1 octals
            except ValueError:
                return sign * float(digits)
        return sign * int(digits)

    Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    return Loader


def _parse(path: str) -> Any:
    """Parse one file: JSON for `.json`, YAML otherwise (several YAML documents merge)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise DatabaseError(f"file backend: {path} does not exist") from None
    except OSError as exc:
        raise DatabaseError(f"file backend: cannot read {path}: {exc.strerror}") from None
    if path.endswith(".json"):
        try:
            return [json.loads(data)]
        except json.JSONDecodeError as exc:
            raise DatabaseError(
                f"file backend: {path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
            ) from None
        except UnicodeDecodeError as exc:
            raise DatabaseError(f"file backend: {path}: not UTF-8 text ({exc.reason})") from None
    import yaml

    try:
        return list(yaml.load_all(data, Loader=_yaml_loader()))  # noqa: S506 - safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        problem = exc.problem or exc.context or "parse error"
        raise DatabaseError(f"file backend: {where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise DatabaseError(f"file backend: {path}: invalid YAML: {exc}") from None


class _Either:
    """Set when either event is set: a watch stops on its own `stop` or on `close()`."""

    def __init__(self, *events: threading.Event) -> None:
        self._events = events

    def is_set(self) -> bool:
        return any(event.is_set() for event in self._events)

    def wait(self, timeout: float) -> None:
        self._events[0].wait(timeout)


@cache
def _watchfiles() -> ModuleType | None:
    try:
        import watchfiles
    except ImportError:
        log.info("watchfiles is not installed; watching by polling every 0.25 s")
        return None
    noisy = logging.getLogger("watchfiles")
    if noisy.level == logging.NOTSET:
        noisy.setLevel(logging.WARNING)  # it logs every batch of changes at INFO
    return watchfiles


class FileDatabase(Database):
    """Keys from YAML/JSON files; a directory is read recursively, in name order.

    Files named in `file` are always read (JSON if they end in `.json`, else YAML).
    In a directory, files whose name matches `filter` and ends in `.yaml`, `.yml`,
    `.json` or has no extension are read; hidden entries (`.name`, Kubernetes'
    `..data`) are skipped. Later files win a key several files define.
    """

    name: ClassVar[str] = "file"
    description: ClassVar[str] = "YAML and JSON files or directories, flattened to /a/b/0 keys"
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting(
            "file",
            list,
            help="YAML/JSON files or directories to read (comma-separated; later ones win)",
            required=True,
        ),
        Setting("filter", str, "*", help="glob on file names inside directories, e.g. *.yaml"),
    )
    can_watch: ClassVar[bool] = True

    def __init__(self) -> None:
        self._paths: list[str] = []
        self._filter = "*"
        self._closed = threading.Event()
        self._latest: dict[str, str] | None = None  # the newest successful read, of every key

    def configure(self, config: Mapping[str, str]) -> None:
        super().configure(config)
        paths = self.options["file"]
        if not paths:
            raise DatabaseError("setting 'file' needs at least one path")
        pattern = self.options["filter"].strip()
        if not pattern or "/" in pattern:
            raise DatabaseError(
                f"setting 'filter' must be a glob on file names, got {pattern!r}"
            )
        self._paths = list(paths)
        self._filter = pattern

    def _files(self) -> list[str]:
        """Every file to read, in merge order; a missing configured path is an error."""
        files: list[str] = []
        for root in self._paths:
            if not os.path.exists(root):
                raise DatabaseError(f"file backend: {root} does not exist")
            if not os.path.isdir(root):
                files.append(root)
                continue
            files.extend(self._walk(root))
        return files

    def _walk(self, root: str) -> list[str]:
        def fail(exc: OSError) -> None:
            raise DatabaseError(f"file backend: cannot list {exc.filename}: {exc.strerror}")

        found: list[str] = []
        for directory, dirs, names in os.walk(root, onerror=fail):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if name.startswith(".") or not fnmatch.fnmatchcase(name, self._filter):
                    continue
                if os.path.splitext(name)[1].lower() not in _DATA_SUFFIXES:
                    log.debug("skipping %s (not .yaml, .yml or .json)", name)
                    continue
                found.append(os.path.join(directory, name))
        found.sort(key=lambda p: os.path.relpath(p, root).split(os.sep))
        return found

    def _read_all(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for path in self._files():
            for document in _parse(path):
                if document is None:
                    continue
                if not isinstance(document, Mapping | list):
                    raise DatabaseError(
                        f"file backend: {path}: top level must be a mapping or a list, "
                        f"not a {type(document).__name__}"
                    )
                try:
                    flatten(document, "/", values)
                except DocumentError as exc:
                    raise DatabaseError(f"file backend: {path}: {exc}") from None
        return values

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        self._latest = None
        values = self._read_all()
        self._latest = values
        return {k: v for k, v in values.items() if any(select_prefix(k, key) for key in keys)}

    def _state(self, prefix: str) -> dict[str, str] | str:
        """The keys under `prefix`, or the error message reading them gives."""
        try:
            return self.get_values([prefix])
        except DatabaseError as exc:
            return str(exc)

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[Collection[str] | None]:
        """Yield the changed keys each time the values under `prefix` change.

        A file that becomes unreadable or invalid yields None once, so the daemon
        re-reads and reports the error; it yields again when the file is fixed.
        """
        stopping = _Either(stop, self._closed)
        # Start from the newest read (a render's, maybe): a change made since then is an event.
        latest = self._latest
        if latest is not None:
            last: dict[str, str] | str = {
                k: v for k, v in latest.items() if select_prefix(k, prefix)
            }
        else:
            last = self._state(prefix)
        for _ in self._wakeups(stopping):
            current = self._state(prefix)
            if current == last:
                continue
            if isinstance(last, dict) and isinstance(current, dict):
                changed = frozenset(changed_values(last, current))
                last = current
                yield changed
            else:
                last = current
                yield None

    def _wakeups(self, stopping: _Either) -> Iterator[None]:
        """Yield whenever the files may have changed, and once each time a watch starts."""
        watchfiles = _watchfiles()
        signature: object = None
        while not stopping.is_set():
            if watchfiles is not None and all(os.path.exists(p) for p in self._paths):
                try:
                    fresh = True
                    for changes in watchfiles.watch(
                        *self._paths,
                        watch_filter=None,
                        debounce=400,
                        step=50,
                        stop_event=stopping,
                        rust_timeout=500,
                        yield_on_timeout=True,
                        raise_interrupt=False,
                        recursive=True,
                    ):
                        if changes or fresh:
                            fresh = False
                            yield
                        if changes:
                            break  # watch anew: a file replaced by rename is a new inode
                    continue
                except FileNotFoundError:
                    pass  # vanished between the check and the watch: poll until it is back
                except OSError as exc:
                    log.warning("cannot watch files (%s); polling instead", exc)
                    watchfiles = None
            current = self._signature()
            if current != signature:
                signature = current
                yield
            stopping.wait(_POLL_SECONDS)

    def _signature(self) -> object:
        """Name, inode, size and times of every file read: changes when any file does."""
        try:
            files = self._files()
        except DatabaseError as exc:
            return str(exc)
        marks = []
        for path in files:
            try:
                st = os.stat(path)
            except OSError:
                marks.append((path, None))
                continue
            marks.append((path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return marks

    def close(self) -> None:
        self._closed.set()
