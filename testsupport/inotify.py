"""inotify on a directory, for tests and benchmarks that wait for confd's files to land."""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import os
import select
import struct
import time
from collections.abc import Callable
from pathlib import Path

IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
_EVENT = struct.Struct("iIII")


class DirectoryEvents:
    """inotify on one directory: wait for a named file to be replaced, without polling.

    confd writes a stage file and renames it over the destination, so the rename (IN_MOVED_TO)
    is the moment a reader can see the new content. `events` are those that count (by default
    a rename into the directory or a file closed after writing).
    """

    def __init__(self, directory: Path, events: int = IN_MOVED_TO | IN_CLOSE_WRITE) -> None:
        self._events = events
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_init1 failed for {directory}")
        mask = IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE
        if libc.inotify_add_watch(self._fd, str(directory).encode(), mask) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch failed for {directory}")
        self._ready: collections.deque[str] = collections.deque()

    def wait(self, names: set[str], timeout: float) -> str | None:
        """Block until one of `names` is moved into place or closed after writing; its name.

        Events read together are kept, so a burst of renames is seen name by name."""
        deadline = time.monotonic() + timeout
        while True:
            while self._ready:
                name = self._ready.popleft()
                if name in names:
                    return name
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                return None
            data = os.read(self._fd, 65536)
            offset = 0
            while offset < len(data):
                _, mask, _, size = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + size]
                offset += _EVENT.size + size
                if mask & self._events:
                    self._ready.append(raw.rstrip(b"\0").decode())

    def wait_all(self, names: set[str], timeout: float,
                 done: Callable[[str], bool] = lambda _: True) -> set[str]:
        """Wait until each of `names` was replaced and `done(name)` holds for it; returns the
        names still missing when `timeout` ran out (empty: all arrived)."""
        missing = set(names)
        deadline = time.monotonic() + timeout
        while missing:
            name = self.wait(missing, deadline - time.monotonic())
            if name is None:
                break
            if done(name):
                missing.discard(name)
        return missing

    def close(self) -> None:
        os.close(self._fd)
