"""The in-memory key/value store templates read from, with Go confd's `memkv` semantics.

Keys are cleaned like Go's `path.Clean` (`//a/` is `/a`); patterns are `path.Match` globs
whose `*`, `?` and `[...]` never cross a `/`. A `KVView` reads the store on behalf of one
render and records what it read, so watch mode knows which changes can alter the output.

Resources rendered together share one store (one read of their prefix); a resource that asked
for fewer keys than the others reads it through `KVStore.scoped`, which hides every key outside
its own keys without copying the values.
"""

from __future__ import annotations

import posixpath
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import NamedTuple

from plugin_sdk.keys import covered

__all__ = ["BadPattern", "KVPair", "KVStore", "KVView", "KeyNotFound", "Reads", "clean_key"]


class KVPair(NamedTuple):
    """One key and its value; `.Key`/`.Value` serve templates migrated from Go."""

    key: str
    value: str

    @property
    def Key(self) -> str:  # noqa: N802 - Go template spelling
        return self.key

    @property
    def Value(self) -> str:  # noqa: N802 - Go template spelling
        return self.value


class KeyNotFound(LookupError):
    """A key read with `get`/`getv` (no default) is not in the store."""

    def __init__(self, key: str) -> None:
        super().__init__(f'key "{key}" not found')
        self.key = key

    def __str__(self) -> str:
        return f'key "{self.key}" not found'


class BadPattern(ValueError):
    """A `gets`/`getvs` pattern is not a valid `path.Match` glob."""

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(f"bad pattern {pattern!r}: {reason}")
        self.pattern = pattern


def clean_key(key: str) -> str:
    """Return `key` cleaned as Go's `path.Clean` does (`//a/./b/` -> `/a/b`, `` -> `.`)."""
    if (
        key[:1] == "/"
        and "//" not in key
        and "/." not in key
        and (key[-1] != "/" or len(key) == 1)
    ):
        return key
    cleaned = posixpath.normpath(key)
    if cleaned.startswith("//"):  # POSIX keeps a leading "//"; Go does not
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


_META = re.compile(r"[*?\[\\]")


def _literal_prefix(pattern: str) -> str:
    """The part of `pattern` before its first glob metacharacter."""
    match = _META.search(pattern)
    return pattern if match is None else pattern[: match.start()]


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    """Translate a `path.Match` glob into an anchored regular expression."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "\\":
            if i + 1 >= n:
                raise BadPattern(pattern, "trailing backslash")
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "[":
            i = _compile_class(pattern, i + 1, out)
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """Read one (possibly escaped) character of a class range, as Go's `getEsc`."""
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise BadPattern(pattern, "bad character class")
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise BadPattern(pattern, "bad character class")
    return pattern[i], i + 1


def _compile_class(pattern: str, i: int, out: list[str]) -> int:
    """Translate `[...]` starting after the `[`; return the index after the `]`."""
    negated = i < len(pattern) and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[str] = []
    count = 0
    while True:
        if i < len(pattern) and pattern[i] == "]" and count > 0:
            i += 1
            break
        lo, i = _class_char(pattern, i)
        hi = lo
        if i < len(pattern) and pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
        if i >= len(pattern):
            raise BadPattern(pattern, "unterminated character class")
        if lo <= hi:  # Go: an inverted range matches nothing, but is not an error
            ranges.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
        count += 1
    body = "".join(ranges)
    if negated:
        out.append(f"[^/{body}]")
    elif body:
        out.append(f"(?!/)[{body}]")
    else:
        out.append("(?!)")
    return i


def _match_under(prefix: str, key: str) -> bool:
    """Whether `key` is `prefix` or below it."""
    if prefix == "/":
        return key.startswith("/")
    return key == prefix or key.startswith(prefix + "/")


class Reads:
    """What one render read: exact keys, glob patterns, and listed directories.

    A plain class, not a dataclass: it is defined at every start, where a dataclass costs more.
    """

    __slots__ = ("keys", "patterns", "dirs")

    def __init__(self, keys: set[str] | None = None, patterns: set[str] | None = None,
                 dirs: set[str] | None = None) -> None:
        self.keys: set[str] = set() if keys is None else keys
        self.patterns: set[str] = set() if patterns is None else patterns
        self.dirs: set[str] = set() if dirs is None else dirs

    def __repr__(self) -> str:
        return f"Reads(keys={self.keys!r}, patterns={self.patterns!r}, dirs={self.dirs!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Reads):
            return NotImplemented
        return (self.keys, self.patterns, self.dirs) == (other.keys, other.patterns, other.dirs)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    def depends_on(self, changed_key: str) -> bool:
        """Could a change of `changed_key` (or of anything below it) change the output?"""
        changed = clean_key(changed_key)
        if changed in self.keys or changed in self.dirs:
            return True
        for key in self.keys:
            if _match_under(changed, key):
                return True
        for directory in self.dirs:
            if _match_under(directory, changed) or _match_under(changed, directory):
                return True
        for pattern in self.patterns:
            try:
                if _compile(pattern).match(changed):
                    return True
            except BadPattern:
                continue
            literal = _literal_prefix(pattern)
            if literal.startswith(changed + "/") or (changed == "/" and literal[:1] == "/"):
                return True
        return False

    def update(self, other: Reads) -> None:
        """Add everything `other` recorded."""
        self.keys |= other.keys
        self.patterns |= other.patterns
        self.dirs |= other.dirs


def _within(key: str, roots: frozenset[str] | None) -> bool:
    """Whether `key` equals, or lies below, one of `roots` (None: no scope, every key)."""
    return roots is None or covered(key, roots)


class _Snapshot:
    """One immutable state of the store: its mapping and, built on first need, its sorted keys."""

    __slots__ = ("_keys", "data")

    def __init__(self, data: dict[str, str]) -> None:
        self.data = data
        self._keys: list[str] | None = None

    def keys(self) -> list[str]:
        keys = self._keys
        if keys is None:  # two threads may both sort; they get the same list
            keys = self._keys = sorted(self.data)
        return keys


def _range(keys: list[str], prefix: str) -> Iterator[str]:
    """The sorted `keys` that start with `prefix`."""
    for i in range(bisect_left(keys, prefix), len(keys)):
        key = keys[i]
        if not key.startswith(prefix):
            return
        yield key


class KVView:
    """Read access to a `KVStore` for one render, recording every read into `reads`."""

    __slots__ = ("_store", "reads")

    def __init__(self, store: KVStore, reads: Reads | None = None) -> None:
        self._store = store
        self.reads = reads

    def get(self, key: str) -> KVPair:
        """The pair stored at `key`; `KeyNotFound` if absent."""
        key = clean_key(key)
        if self.reads is not None:
            self.reads.keys.add(key)
        value = self._store._get(key)
        if value is None:
            raise KeyNotFound(key)
        return KVPair(key, value)

    def getv(self, key: str, default: str | None = None) -> str:
        """The value at `key`, else `default`; `KeyNotFound` if absent and no default."""
        key = clean_key(key)
        if self.reads is not None:
            self.reads.keys.add(key)
        value = self._store._get(key)
        if value is None:
            if default is None:
                raise KeyNotFound(key)
            return default
        return value

    def exists(self, key: str) -> bool:
        """Whether `key` is in the store."""
        key = clean_key(key)
        if self.reads is not None:
            self.reads.keys.add(key)
        return self._store._get(key) is not None

    def gets(self, pattern: str) -> list[KVPair]:
        """Every pair whose key matches the glob `pattern`, sorted by key (empty if none)."""
        if self.reads is not None:
            self.reads.patterns.add(pattern)
        return [KVPair(k, v) for k, v in self._store._matching(pattern)]

    def getvs(self, pattern: str) -> list[str]:
        """The values of every key matching the glob `pattern`, sorted by value."""
        if self.reads is not None:
            self.reads.patterns.add(pattern)
        return sorted(v for _, v in self._store._matching(pattern))

    def ls(self, path: str) -> list[str]:
        """Sorted unique names of the children of `path` (and its own name if it is a key)."""
        path = clean_key(path)
        if self.reads is not None:
            self.reads.dirs.add(path)
        return self._store._list(path, dirs_only=False)

    def lsdir(self, path: str) -> list[str]:
        """Sorted unique names of the children of `path` that have children themselves."""
        path = clean_key(path)
        if self.reads is not None:
            self.reads.dirs.add(path)
        return self._store._list(path, dirs_only=True)


class KVStore:
    """The values one render reads, fixed at creation; read through a `view` per render.

    Keys are cleaned once; the sorted key list that glob and directory reads need is built on
    first use. `scoped` gives a store over the same values limited to some keys.
    """

    __slots__ = ("_scope", "_snap")

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._snap = _Snapshot({clean_key(k): str(v) for k, v in (values or {}).items()})
        self._scope: frozenset[str] | None = None

    def scoped(self, roots: Iterable[str]) -> KVStore:
        """This store limited to the keys equal to, or below, `roots` (template keys): the
        values are shared, not copied, and every read outside the roots finds nothing."""
        scoped = KVStore.__new__(KVStore)
        scoped._snap = self._snap
        cleaned = frozenset(clean_key(root) for root in roots)
        scope = None if "/" in cleaned else cleaned
        outer = self._scope
        if outer is not None:  # both limits hold: the roots of each that lie within the other
            scope = outer if scope is None else frozenset(
                [r for r in scope if _within(r, outer)] + [r for r in outer if _within(r, scope)]
            )
        scoped._scope = scope
        return scoped

    def snapshot(self) -> dict[str, str]:
        """A copy of every key and value."""
        scope = self._scope
        if scope is None:
            return dict(self._snap.data)
        return {k: v for k, v in self._snap.data.items() if _within(k, scope)}

    def __len__(self) -> int:
        if self._scope is None:
            return len(self._snap.data)
        return sum(1 for k in self._snap.data if _within(k, self._scope))

    def view(self, reads: Reads | None = None) -> KVView:
        """A reader for one render that records into `reads` (nothing if None)."""
        return KVView(self, reads)

    # -- internals ---------------------------------------------------------------------------

    def _get(self, key: str) -> str | None:
        value = self._snap.data.get(key)
        if value is not None and self._scope is not None and not _within(key, self._scope):
            return None
        return value

    def _matching(self, pattern: str) -> list[tuple[str, str]]:
        regex = _compile(pattern)
        snap = self._snap
        data = snap.data
        scope = self._scope
        literal = _literal_prefix(pattern)
        if literal == pattern:  # no metacharacter: an exact key
            value = self._get(pattern)
            return [] if value is None else [(pattern, value)]
        return [(k, data[k]) for k in _range(snap.keys(), literal)
                if regex.match(k) and (scope is None or _within(k, scope))]

    def _list(self, path: str, *, dirs_only: bool) -> list[str]:
        snap = self._snap
        scope = self._scope
        names: set[str] = set()
        if not dirs_only and self._get(path) is not None:
            names.add(posixpath.basename(path) or path)
        prefix = path if path.endswith("/") else path + "/"
        start = len(prefix)
        for key in _range(snap.keys(), prefix):
            if scope is not None and not _within(key, scope):
                continue
            rest = key[start:]
            slash = rest.find("/")
            if slash < 0:
                if not dirs_only and rest:
                    names.add(rest)
            elif slash > 0:
                names.add(rest[:slash])
        return sorted(names)
