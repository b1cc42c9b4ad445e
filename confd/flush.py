"""Make many freshly written files durable at once, before they are renamed into place.

An fsync per file costs a journal commit each: 1,000 new files took 150-270 ms of fsyncs on
this project's fast virtual disk, threads or not, and would take seconds on a spinning one.
One `syncfs(2)` flushes them all (data, metadata and the device's cache, as those fsyncs
would) in ~15 ms. But it flushes every other dirty page of the filesystem too, and on some
filesystems and kernels it does not report a failed write. So it is used only where it is as
safe as the fsyncs it replaces and cannot cost more:

- a local filesystem whose syncfs reports writeback errors (Linux 5.8; overlayfs 5.15);
- little dirty data on the whole system (`DIRTY_PER_FILE` per file to flush);
- called on a file opened before any of the files were written, so that every failed write
  since is reported.

Anywhere else, and to find the file at fault when syncfs reports an error, each file is
fsynced, on threads (concurrent fsyncs share the journal's commits).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from functools import cache

from confd.log import get_logger

__all__ = ["flush"]

log = get_logger("sync")

# syncfs is chosen while the system holds at most this much dirty data per file to flush: about
# what one fsync's commit costs in transfer time (~1 ms at 200 MB/s), so that flushing someone
# else's data cannot take longer than the fsyncs would. 4 MiB for 16 files, 250 MiB for 1,000.
DIRTY_PER_FILE = 256 * 1024

# The kernel from which syncfs reports writeback errors on each filesystem it is used on (5.8
# for every block filesystem: per-superblock error tracking; overlayfs passes its upper layer's
# errors on from 5.15). tmpfs has no writeback to fail.
SYNCFS_SINCE: dict[str, tuple[int, int]] = {
    "ext4": (5, 8), "ext3": (5, 8), "xfs": (5, 8), "btrfs": (5, 8), "f2fs": (5, 8),
    "overlay": (5, 15), "tmpfs": (0, 0),
}

# Per-file fsyncs run on threads from this many files up, one thread per 8 files and at most
# `FSYNC_THREADS`: most of an fsync is waiting for its commit, which concurrent fsyncs share. On
# this project's test machine 8 threads did as well as 32 for 1,000 files, at less CPU; where an
# fsync takes milliseconds, 8 would take four times as long.
THREADED_FROM = 16
FSYNC_THREADS = 32


def flush(fds: Sequence[int]) -> dict[int, OSError]:
    """Make the files open at `fds` durable; returns those that could not be, with the error.

    `fds` come in the order they were opened, each written after its opening: a syncfs through
    the first of a filesystem then reports every write to any of them that failed.
    """
    by_device: dict[int, list[int]] = {}
    for fd in fds:
        by_device.setdefault(os.fstat(fd).st_dev, []).append(fd)
    dirty = _dirty_bytes()
    one_by_one: list[int] = []
    for device, members in by_device.items():
        if (len(members) > 1 and dirty is not None and dirty <= DIRTY_PER_FILE * len(fds)
                and _syncfs_reports_errors(device) and _syncfs(members[0])):
            continue
        one_by_one.extend(members)
    return _fsync_each(one_by_one)


def _fsync_each(fds: Sequence[int]) -> dict[int, OSError]:
    failed: dict[int, OSError] = {}

    def one(fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            failed[fd] = exc

    if len(fds) < THREADED_FROM:
        for fd in fds:
            one(fd)
        return failed
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(FSYNC_THREADS, max(4, len(fds) // 8)), "fsync") as executor:
        for _ in executor.map(one, fds):
            pass
    return failed


def _syncfs(fd: int) -> bool:
    """syncfs(2) on the filesystem of `fd`; False when it failed or does not exist here."""
    call = _libc_syncfs()
    if call is None:
        return False
    if call(fd) == 0:
        return True
    import ctypes

    log.debug("syncfs failed (%s); flushing each file", os.strerror(ctypes.get_errno()))
    return False


@cache
def _libc_syncfs() -> Callable[[int], int] | None:
    # os has no syncfs before Python 3.14's; ctypes costs ~2.4 ms to import, once, for a batch.
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).syncfs
    except (ImportError, OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]
    call.restype = ctypes.c_int
    return call


def _kernel() -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(match[1]), int(match[2])) if match else (0, 0)


@cache
def _syncfs_reports_errors(device: int) -> bool:
    """Whether syncfs on `device`'s filesystem reports failed writes, by its type (as
    /proc/self/mountinfo names it) and the running kernel; unknown: no."""
    fstype = _filesystem_type(device)
    since = SYNCFS_SINCE.get(fstype or "")
    return since is not None and _kernel() >= since


def _filesystem_type(device: int) -> str | None:
    wanted = f"{os.major(device)}:{os.minor(device)}"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                fields = line.split(" - ", 1)
                head = fields[0].split()
                if len(fields) == 2 and len(head) > 2 and head[2] == wanted:
                    return fields[1].split()[0]
    except OSError:
        return None
    return None


def _dirty_bytes() -> int | None:
    """Dirty and under-writeback memory of the whole system (/proc/meminfo); None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as meminfo:
            text = meminfo.read()
    except OSError:
        return None
    found = re.findall(r"^(?:Dirty|Writeback):\s+(\d+) kB", text, re.MULTILINE)
    return sum(int(kb) * 1024 for kb in found) if len(found) == 2 else None
