"""confd's on-disk cache: where it lives, and entries that are written whole and read only when
this user wrote them.

Compiled templates (`confd.template.cache`) and parsed resource files (`confd.config.parsed`)
keep their entries here, each kind in its own subfolder. Defaults: systemd's
`$CACHE_DIRECTORY`, else `$XDG_CACHE_HOME/confd`, else `~/.cache/confd`; `--cache-dir off`
turns the cache off. A folder that cannot be created or written (read-only containers) is
skipped, and one that another user owns or others may write is refused: compiled templates are
code this process runs.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from confd.log import get_logger

__all__ = ["CacheDirectory", "OFF", "cache_directory", "default_cache_dir"]

log = get_logger("cache")

OFF = "off"  # the cache_dir setting that turns the on-disk cache off


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the cache goes when `cache_dir` is not set (None: nowhere sensible)."""
    env = os.environ if environ is None else environ
    if env.get("CACHE_DIRECTORY"):  # systemd, for a unit with CacheDirectory=
        return Path(env["CACHE_DIRECTORY"].split(":")[0])
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "confd"
    home = env.get("HOME")
    if home and home != "/":
        return Path(home) / ".cache" / "confd"
    return None


def cache_directory(setting: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """The directory the `cache_dir` setting names: its default when empty, None when off."""
    if setting.strip().lower() == OFF:
        return None
    return Path(setting) if setting else default_cache_dir(environ)


class CacheDirectory:
    """One kind of entry, in `<root>/<sub>`: each file starts with `header` and the SHA-1 of its
    payload, so another format or a file cut short reads as missing."""

    def __init__(self, root: Path, sub: str, header: bytes, what: str) -> None:
        self.root = root / sub
        self.header = header
        self.what = what  # as logs name it: "compiled-template cache"
        self.readable = self._usable()
        self.writable = self.readable

    def _usable(self) -> bool:
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(self.root)
        except OSError as exc:
            log.debug("%s %s unavailable (%s); not using it", self.what, self.root, exc.strerror)
            return False
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() \
                or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            log.warning("%s %s is not a directory owned by this user and closed to others; not "
                        "using it", self.what, self.root)
            return False
        return True

    def path(self, key: str, suffix: str) -> Path:
        return self.root / f"{key}{suffix}"

    def load(self, key: str, suffix: str) -> bytes | None:
        """The payload stored as `key`, or None (missing, foreign, another format, cut short)."""
        if not self.readable:
            return None
        try:
            fd = os.open(self.path(key, suffix), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                return None
            with os.fdopen(fd, "rb", closefd=False) as handle:
                data = handle.read()
        except OSError:
            return None
        finally:
            os.close(fd)
        header, _, rest = data.partition(b"\n")
        digest, _, payload = rest.partition(b"\n")
        if header + b"\n" != self.header or digest != hashlib.sha1(payload).hexdigest().encode():
            return None
        return payload

    def store(self, key: str, payload: bytes, suffix: str) -> None:
        """Write `payload` as `key`: staged beside it and renamed, so readers see all or none.
        The first failure (a full disk, a read-only mount) stops the writing, quietly."""
        if not self.writable:
            return
        data = self.header + hashlib.sha1(payload).hexdigest().encode() + b"\n" + payload
        try:
            fd, stage = tempfile.mkstemp(prefix=f".{key}.", dir=self.root)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(stage, self.path(key, suffix))
            except BaseException:
                os.unlink(stage)
                raise
        except OSError as exc:
            self.writable = False
            log.debug("%s %s not writable (%s); not writing it", self.what, self.root,
                      exc.strerror)
