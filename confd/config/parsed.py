"""Resource files parsed once per content, kept in the on-disk cache across runs.

Importing tomllib costs ~1.7 ms and parsing a resource file ~0.1 ms: at 1,000 resources the
parse is most of loading them, and in a `--onetime` start of a few resources the two are ~3 %
of the run. One cache entry per conf.d holds the parse of every file it had, keyed by the file's
bytes: a load reads each file, takes the parse of bytes it has seen, and parses only the others
(so an edited file is parsed again, and errors are always tomllib's own). A load that parsed
anything, or no longer has a file, rewrites the entry with exactly the files it read.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
from pathlib import Path
from typing import Any

from confd.cache_dir import CacheDirectory

__all__ = ["ParsedFiles", "parse_toml"]

HEADER = b"confd-toml1\n"  # first line of the cache entry; bump when its layout changes
SUFFIX = ".parsed"


def parse_toml(data: bytes) -> dict[str, Any]:
    """`tomllib.load` of a file's bytes (UnicodeDecodeError or TOMLDecodeError when bad)."""
    import tomllib  # here, not at start-up: a load that finds every file parsed never needs it

    return tomllib.loads(data.decode())


class ParsedFiles:
    """The TOML files below one folder (`scope`), parsed or taken from the cache in `root`
    (None: no cache, every file parsed). What `load` returns is shared: read it, never change it.
    """

    def __init__(self, root: Path | None, scope: Path) -> None:
        self._dir = (CacheDirectory(root, "parsed", HEADER, "parsed-resource cache")
                     if root is not None else None)
        # tomllib ships with Python: another Python may parse a file differently
        tag = f"{os.path.realpath(scope)}\0{sys.version}"
        self._name = hashlib.blake2b(tag.encode(), digest_size=16).hexdigest()
        self._known: dict[bytes, dict[str, Any]] | None = None
        self._used: dict[bytes, dict[str, Any]] = {}
        self._parsed = 0

    def _entries(self) -> dict[bytes, dict[str, Any]]:
        if self._known is None:
            self._known = {}
            payload = self._dir.load(self._name, SUFFIX) if self._dir is not None else None
            if payload is not None:
                try:
                    known = marshal.loads(payload)
                except (ValueError, EOFError, TypeError):
                    known = None
                if isinstance(known, dict):
                    self._known = known
        return self._known

    def load(self, path: Path) -> dict[str, Any]:
        """The parse of the TOML file at `path`. Raises OSError when it cannot be read, and
        tomllib's errors (UnicodeDecodeError, TOMLDecodeError) when it is not TOML."""
        with open(path, "rb") as handle:
            data = handle.read()
        key = hashlib.blake2b(data, digest_size=16).digest()
        found = self._entries().get(key)
        if found is None:
            found = parse_toml(data)
            self._parsed += 1
        self._used[key] = found
        return found

    @property
    def parsed(self) -> int:
        """How many files this load parsed (the others came from the cache)."""
        return self._parsed

    def save(self) -> None:
        """Keep the parse of every file this load read, if that is not what the cache holds.
        A file whose parse `marshal` cannot hold (a TOML date) is parsed at every load."""
        if self._dir is None or not self._dir.writable:
            return
        if not self._parsed and self._used.keys() == self._entries().keys():
            return
        try:
            payload = marshal.dumps(self._used)
        except ValueError:
            kept = {}
            for key, value in self._used.items():
                try:
                    marshal.dumps(value)
                except ValueError:
                    continue
                kept[key] = value
            if kept.keys() == self._entries().keys():
                return
            payload = marshal.dumps(kept)
        self._dir.store(self._name, payload, SUFFIX)
