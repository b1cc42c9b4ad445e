"""Syncing a destination: only real changes land, checks guard them, reloads run once."""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path
from typing import NamedTuple

import pytest

from confd.errors import SyncError
from confd.sync import Status, SyncOptions, render_command, sync_file, sync_files
from testsupport.inotify import IN_CLOSE_WRITE, IN_MOVED_TO, DirectoryEvents


class Target(NamedTuple):
    """A destination as `sync_file` takes it (a TemplateResource in the daemon)."""

    dest: Path
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    check_cmd: str = ""
    reload_cmd: str = ""
    check_cmd_timeout: float = 30.0
    reload_cmd_timeout: float = 60.0


def stage_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    out = tmp_path / "etc dir"  # a space: commands must quote paths
    out.mkdir()
    return out / "app.conf"


def reload_counter(tmp_path: Path) -> tuple[str, Path]:
    counter = tmp_path / "reloads"
    return f"echo reload >> '{counter}'", counter


def reloads(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def test_new_file_is_written_with_default_mode(dest: Path) -> None:
    assert sync_file(b"a=1\n", Target(dest)) is Status.CHANGED
    assert dest.read_bytes() == b"a=1\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    assert stage_files(dest.parent) == []


def test_reload_runs_exactly_once_per_change(dest: Path, tmp_path: Path) -> None:
    command, counter = reload_counter(tmp_path)
    target = Target(dest, reload_cmd=command)
    results = [sync_file(data, target) for data in (b"v1\n", b"v1\n", b"v2\n", b"v2\n")]
    assert results == [Status.CHANGED, Status.UNCHANGED, Status.CHANGED,
                       Status.UNCHANGED]
    assert reloads(counter) == 2


def test_nothing_changed_means_no_check_and_no_reload(dest: Path, tmp_path: Path) -> None:
    dest.write_bytes(b"same\n")
    dest.chmod(0o644)
    command, counter = reload_counter(tmp_path)
    target = Target(dest, check_cmd=command, reload_cmd=command)
    assert sync_file(b"same\n", target) is Status.UNCHANGED
    assert reloads(counter) == 0


def test_mode_change_alone_is_a_change(dest: Path, tmp_path: Path) -> None:
    dest.write_bytes(b"same\n")
    dest.chmod(0o644)
    command, counter = reload_counter(tmp_path)
    assert sync_file(b"same\n", Target(dest, mode=0o600, reload_cmd=command)) is Status.CHANGED
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert reloads(counter) == 1


def test_unset_mode_keeps_the_destinations(dest: Path) -> None:
    dest.write_bytes(b"old\n")
    dest.chmod(0o600)
    sync_file(b"new\n", Target(dest))
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600


def test_owner_is_applied(dest: Path) -> None:
    assert os.geteuid() == 0, "this test needs root to give a file away"
    sync_file(b"x\n", Target(dest, uid=65534, gid=65534, mode=0o640))
    info = dest.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (65534, 65534, 0o640)
    # and the same content again is in sync (uid/gid compared like bytes)
    assert sync_file(b"x\n", Target(dest, uid=65534, gid=65534, mode=0o640)) is (
        Status.UNCHANGED)


def test_check_cmd_sees_the_stage_file_quoted(dest: Path, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    target = Target(dest, check_cmd=f"cat {{{{.src}}}} > '{seen}'; test {{{{ .dest }}}} = '{dest}'")
    assert sync_file(b"checked\n", target) is Status.CHANGED
    assert seen.read_bytes() == b"checked\n"


def test_check_cmd_failure_keeps_destination(dest: Path, tmp_path: Path) -> None:
    dest.write_bytes(b"good\n")
    command, counter = reload_counter(tmp_path)
    target = Target(dest, check_cmd="echo 'syntax error' >&2; exit 3", reload_cmd=command)
    with pytest.raises(SyncError, match=r"check_cmd for .*app.conf failed \(exit status 3\)"):
        sync_file(b"bad\n", target)
    assert dest.read_bytes() == b"good\n"
    assert stage_files(dest.parent) == []
    assert reloads(counter) == 0


def test_check_cmd_timeout_keeps_destination(dest: Path) -> None:
    dest.write_bytes(b"good\n")
    target = Target(dest, check_cmd="sleep 30", check_cmd_timeout=0.3)
    with pytest.raises(SyncError, match="timed out after 0.3s"):
        sync_file(b"bad\n", target)
    assert dest.read_bytes() == b"good\n"
    assert stage_files(dest.parent) == []


def test_reload_failure_is_reported_after_update(dest: Path) -> None:
    with pytest.raises(SyncError, match="reload_cmd for .* failed"):
        sync_file(b"new\n", Target(dest, reload_cmd="exit 1"))
    assert dest.read_bytes() == b"new\n"


def test_noop_writes_nothing_and_prints_a_diff(dest: Path, tmp_path: Path) -> None:
    dest.write_bytes(b"a\nb\n")
    command, counter = reload_counter(tmp_path)
    out = io.StringIO()
    result = sync_file(b"a\nc\n", Target(dest, reload_cmd=command), SyncOptions(noop=True),
                       out=out)
    assert result is Status.NOOP
    assert dest.read_bytes() == b"a\nb\n"
    assert out.getvalue().splitlines() == [
        f"--- {dest}", f"+++ {dest}", "@@ -1,2 +1,2 @@", " a", "-b", "+c"]
    assert stage_files(dest.parent) == []
    assert reloads(counter) == 0


def test_sync_only_skips_check_and_reload(dest: Path, tmp_path: Path) -> None:
    command, counter = reload_counter(tmp_path)
    target = Target(dest, check_cmd="exit 1", reload_cmd=command)
    assert sync_file(b"x\n", target, SyncOptions(sync_only=True)) is Status.CHANGED
    assert dest.read_bytes() == b"x\n"
    assert reloads(counter) == 0


def test_keep_stage_file_keeps_it_when_not_installed(dest: Path) -> None:
    with pytest.raises(SyncError):
        sync_file(b"x\n", Target(dest, check_cmd="false"), SyncOptions(keep_stage_file=True))
    kept = stage_files(dest.parent)
    assert len(kept) == 1 and kept[0].startswith(".app.conf.")


def test_missing_destination_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(SyncError, match="directory .*nowhere does not exist"):
        sync_file(b"x\n", Target(tmp_path / "nowhere" / "app.conf"))


def test_busy_destination_is_written_in_place(
    dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bind-mounted file cannot be renamed over (EBUSY): confd rewrites it in place."""
    dest.write_bytes(b"old\n")
    inode = dest.stat().st_ino

    def busy(src: object, dst: object) -> None:
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(os, "rename", busy)
    assert sync_file(b"new\n", Target(dest, mode=0o600)) is Status.CHANGED
    assert dest.read_bytes() == b"new\n"
    assert dest.stat().st_ino == inode
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert stage_files(dest.parent) == []


def test_watchers_of_the_directory_see_each_file_renamed_into_place(dest: Path) -> None:
    """As with Go confd, a new or changed file lands by a rename (inotify IN_MOVED_TO), and is
    never written in place under its own name: tools that reload on `moved_to` see every one."""
    events = DirectoryEvents(dest.parent, events=IN_MOVED_TO)
    written = DirectoryEvents(dest.parent, events=IN_CLOSE_WRITE)
    try:
        for content in (b"new\n", b"changed\n"):
            assert sync_file(content, Target(dest)) is Status.CHANGED
            assert events.wait({dest.name}, 2.0) == dest.name, f"no rename for {content!r}"
        assert written.wait({dest.name}, 0.2) is None
    finally:
        events.close()
        written.close()


def test_out_of_sync_is_logged_like_confd(dest: Path, confd_log: io.StringIO) -> None:
    dest.write_bytes(b"secret-old\n")
    dest.chmod(0o644)
    sync_file(b"secret-new\n", Target(dest))
    log = confd_log.getvalue()
    assert f"INFO {dest} has md5sum " in log
    assert f"INFO Target config {dest} out of sync" in log
    assert f"INFO Target config {dest} has been updated" in log
    assert "secret" not in log


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("nginx -t -c {{.src}}", "nginx -t -c '/a b/.x.1'"),
        ("check {{ .src }} {{.dest}}", "check '/a b/.x.1' '/a b/x'"),
        ("cp {{.src}} {{ .dest}}.bak", "cp '/a b/.x.1' '/a b/x'.bak"),
        ("no placeholders", "no placeholders"),
    ],
)
def test_command_placeholders_are_shell_quoted(command: str, expected: str) -> None:
    assert render_command(command, src="/a b/.x.1", dest="/a b/x") == expected


# -- many destinations at once: staged, flushed together, then renamed ------------------------


def test_sync_files_lands_each_file_and_reports_each_in_order(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "same").write_bytes(b"same\n")
    (out / "same").chmod(0o644)
    (out / "old").write_bytes(b"old\n")
    items = [
        (b"new\n", Target(out / "new", mode=0o600)),
        (b"same\n", Target(out / "same", mode=0o644)),
        (b"x\n", Target(tmp_path / "nowhere" / "lost")),
        (b"changed\n", Target(out / "old")),
    ]
    results = sync_files(items)
    assert results[0] is Status.CHANGED and results[1] is Status.UNCHANGED
    assert isinstance(results[2], SyncError) and "nowhere does not exist" in str(results[2])
    assert results[3] is Status.CHANGED
    assert (out / "new").read_bytes() == b"new\n"
    assert stat.S_IMODE((out / "new").stat().st_mode) == 0o600
    assert (out / "old").read_bytes() == b"changed\n"
    assert stage_files(out) == []


def test_sync_files_noop_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_bytes(b"old\n")
    shown = io.StringIO()
    results = sync_files([(b"new\n", Target(out / "a")), (b"b\n", Target(out / "b"))],
                         SyncOptions(noop=True), out=shown)
    assert results == [Status.NOOP, Status.NOOP]
    assert (out / "a").read_bytes() == b"old\n" and not (out / "b").exists()
    assert "+new" in shown.getvalue() and stage_files(out) == []


def test_sync_files_flushes_in_groups_below_the_open_file_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch keeps at most its limit of stage files open: a flush, then the renames, per
    group (1,000 open stages would exhaust a default limit of 1,024 files)."""
    import confd.flush
    import confd.sync

    groups: list[int] = []
    real = confd.flush.flush
    monkeypatch.setattr(confd.flush, "flush", lambda fds: (groups.append(len(fds)), real(fds))[1])
    monkeypatch.setattr(confd.sync, "_open_stage_limit", lambda: 3)
    items = [(f"{i}\n".encode(), Target(tmp_path / f"f{i}")) for i in range(8)]
    assert sync_files(items) == [Status.CHANGED] * 8
    assert groups == [3, 3, 2]
    assert [(tmp_path / f"f{i}").read_text() for i in range(8)] == [f"{i}\n" for i in range(8)]


def test_sync_files_a_stage_that_cannot_be_flushed_leaves_its_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails on its way to the disk (EIO at fsync) is that file's error: its old
    content stays and its stage goes; the others land."""
    import confd.flush

    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(b"old\n")
    real_fsync = os.fsync

    def failing(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(".b."):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(confd.flush, "_syncfs", lambda fd: False)  # as where it reports EIO
    monkeypatch.setattr(confd.flush.os, "fsync", failing)
    results = sync_files([(b"new\n", Target(tmp_path / n)) for n in ("a", "b", "c")])
    assert results[0] is Status.CHANGED and results[2] is Status.CHANGED
    assert isinstance(results[1], SyncError)
    assert "cannot write stage file" in str(results[1]) and "Input/output error" in str(results[1])
    assert [(tmp_path / n).read_bytes() for n in ("a", "b", "c")] == [b"new\n", b"old\n", b"new\n"]
    assert stage_files(tmp_path) == []
