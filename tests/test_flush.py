"""Flushing many stage files: one syncfs where it is as safe as an fsync each, else fsyncs."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import confd.flush
from confd.flush import flush


class Calls:
    """Counts syncfs and per-file fsync calls, passing them on to the real ones."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.syncfs: list[int] = []
        self.fsync: list[int] = []
        lock = threading.Lock()
        real_syncfs = confd.flush._libc_syncfs()
        real_fsync = os.fsync

        def syncfs(fd: int) -> int:
            self.syncfs.append(fd)
            return real_syncfs(fd) if real_syncfs else 0

        def fsync(fd: int) -> None:
            with lock:
                self.fsync.append(fd)
            real_fsync(fd)

        monkeypatch.setattr(confd.flush, "_libc_syncfs", lambda: syncfs)
        monkeypatch.setattr(confd.flush.os, "fsync", fsync)


def written(directory: Path, count: int) -> list[int]:
    fds = []
    for i in range(count):
        fd = os.open(directory / f"f{i}", os.O_RDWR | os.O_CREAT, 0o644)
        os.write(fd, b"x\n")
        fds.append(fd)
    return fds


@pytest.fixture
def fds(tmp_path: Path):
    opened = written(tmp_path, 20)
    yield opened
    for fd in opened:
        os.close(fd)


def test_one_syncfs_flushes_a_filesystem_that_reports_errors(
    fds: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    monkeypatch.setattr(confd.flush, "_syncfs_reports_errors", lambda device: True)
    monkeypatch.setattr(confd.flush, "_dirty_bytes", lambda: 0)
    assert flush(fds) == {}
    assert calls.syncfs == [fds[0]] and calls.fsync == []


def test_much_dirty_data_elsewhere_means_an_fsync_each(
    fds: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """syncfs would also write out everyone else's dirty pages: past 256 KiB per file to
    flush, each file is fsynced instead (on threads, each once)."""
    calls = Calls(monkeypatch)
    monkeypatch.setattr(confd.flush, "_syncfs_reports_errors", lambda device: True)
    monkeypatch.setattr(confd.flush, "_dirty_bytes", lambda: 20 * 256 * 1024 + 1)
    assert flush(fds) == {}
    assert calls.syncfs == [] and sorted(calls.fsync) == sorted(fds)


def test_a_failed_syncfs_finds_the_file_at_fault_by_fsyncs(
    fds: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    calls = Calls(monkeypatch)
    real = os.fsync

    def fsync(fd: int) -> None:
        real(fd)
        if fd == fds[3]:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(confd.flush, "_syncfs_reports_errors", lambda device: True)
    monkeypatch.setattr(confd.flush, "_dirty_bytes", lambda: 0)
    monkeypatch.setattr(confd.flush, "_libc_syncfs", lambda: lambda fd: -1)
    monkeypatch.setattr(confd.flush.os, "fsync", fsync)
    failed = flush(fds)
    assert list(failed) == [fds[3]] and failed[fds[3]].errno == errno.EIO
    assert calls.syncfs == []


@pytest.mark.parametrize(("fstype", "kernel", "syncfs"), [
    ("ext4", (5, 8), True), ("ext4", (5, 4), False), ("xfs", (6, 1), True),
    ("overlay", (5, 10), False), ("overlay", (5, 15), True), ("tmpfs", (4, 19), True),
    ("nfs4", (6, 8), False), ("fuse.sshfs", (6, 8), False), (None, (6, 8), False),
])
def test_syncfs_only_where_it_reports_failed_writes(
    fstype: str | None, kernel: tuple[int, int], syncfs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(confd.flush, "_filesystem_type", lambda device: fstype)
    monkeypatch.setattr(confd.flush, "_kernel", lambda: kernel)
    assert confd.flush._syncfs_reports_errors.__wrapped__(1) is syncfs


def test_unknown_filesystems_get_an_fsync_each(
    fds: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = Calls(monkeypatch)
    monkeypatch.setattr(confd.flush, "_filesystem_type", lambda device: "nfs4")
    monkeypatch.setattr(confd.flush, "_syncfs_reports_errors",
                        confd.flush._syncfs_reports_errors.__wrapped__)
    monkeypatch.setattr(confd.flush, "_dirty_bytes", lambda: 0)
    assert flush(fds) == {}
    assert calls.syncfs == [] and sorted(calls.fsync) == sorted(fds)


def test_the_filesystem_type_and_dirty_data_are_read_from_proc() -> None:
    assert confd.flush._filesystem_type(os.stat("/proc").st_dev) == "proc"
    dirty = confd.flush._dirty_bytes()
    assert isinstance(dirty, int) and dirty >= 0
