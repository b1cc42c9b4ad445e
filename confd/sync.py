"""Bring a destination file in line with freshly rendered content, safely.

Stage beside the destination, fsync, compare bytes + mode + uid + gid; only on a real
difference run check_cmd on the stage file, rename it over the destination, fsync the
directory, then run reload_cmd. The destination is never partly written. A destination that
already holds the content, mode and owner wanted is left alone without staging anything
(creating and removing a stage file costs more than the render on some filesystems).
"""

import contextlib
import enum
import errno
import hashlib
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, NamedTuple, Protocol

from confd.errors import SyncError
from confd.log import get_logger

__all__ = ["Destination", "Status", "SyncOptions", "sync_file", "sync_files", "sync_directories",
           "run_command", "render_command"]

log = get_logger("sync")

_COMMAND_VAR = re.compile(r"\{\{\s*\.(src|dest)\s*\}\}")


def render_command(command: str, *, src: str, dest: str) -> str:
    """Substitute confd's `{{.src}}` / `{{.dest}}` (any spacing) in a shell command, quoted."""
    import shlex  # imported here, like subprocess and difflib: start-up loads what it uses

    values = {"src": shlex.quote(src), "dest": shlex.quote(dest)}
    return _COMMAND_VAR.sub(lambda m: values[m.group(1)], command)


class SyncOptions(NamedTuple):
    """Run-wide switches: --noop, --sync-only, --keep-stage-file, and how noop shows a change
    (--diff, --diff-context, --color).

    Records on the start-up path are NamedTuples: a frozen dataclass costs ~0.5 ms to create.
    """

    noop: bool = False
    sync_only: bool = False
    keep_stage_file: bool = False
    diff: bool = True
    diff_context: int = 3
    color: bool = False


class Destination(Protocol):
    """Where and how a rendered file lands (a `TemplateResource` is one). None mode/uid/gid
    keep the destination's own.

    `check_cmd` and `reload_cmd` are shell commands with confd's `{{.src}}` and `{{.dest}}`:
    for the check, src is the stage file; for the reload, the updated destination.
    """

    @property
    def dest(self) -> Path: ...
    @property
    def mode(self) -> int | None: ...
    @property
    def uid(self) -> int | None: ...
    @property
    def gid(self) -> int | None: ...
    @property
    def check_cmd(self) -> str: ...
    @property
    def reload_cmd(self) -> str: ...
    @property
    def check_cmd_timeout(self) -> float: ...
    @property
    def reload_cmd_timeout(self) -> float: ...


_PLAIN = SyncOptions()


class Status(enum.Enum):
    """How bringing a destination in line ended: replaced, already in sync, only a diff shown
    (--noop), or failed (set by the processor for any error on the way)."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    NOOP = "noop"
    FAILED = "failed"


def run_command(command: str, timeout: float, what: str) -> None:
    """Run `sh -c command`; a non-zero exit or a timeout is a `SyncError` naming `what`.

    The command gets its own process group so a timeout kills everything it started.
    """
    import signal
    import subprocess

    log.debug("Running %s", command)
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout if timeout > 0 else None)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise SyncError(f"{what} timed out after {timeout:g}s: {command}") from None
    text = output.decode(errors="replace").strip()
    if proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-5:])
        status = (
            f"killed by signal {-proc.returncode}"
            if proc.returncode < 0
            else f"exit status {proc.returncode}"
        )
        raise SyncError(f"{what} failed ({status}): {command}" + (f"\n{tail}" if tail else ""))
    if text:
        log.debug("%s output: %s", what, text)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _can_chown(current: os.stat_result, uid: int, gid: int) -> bool:
    """chown only as root, or when it changes nothing (an unprivileged user cannot give away)."""
    return os.geteuid() == 0 or (current.st_uid == uid and current.st_gid == gid)


def _in_sync(dest: Path, dest_stat: os.stat_result | None, data: bytes, mode: int,
             uid: int, gid: int) -> bool:
    """Compare like confd, logging each difference (never the content itself)."""
    if dest_stat is None:
        log.info("%s does not exist", dest)
        return False
    same = True
    if dest_stat.st_uid != uid:
        log.info("%s has UID %d should be %d", dest, dest_stat.st_uid, uid)
        same = False
    if dest_stat.st_gid != gid:
        log.info("%s has GID %d should be %d", dest, dest_stat.st_gid, gid)
        same = False
    if stat.S_IMODE(dest_stat.st_mode) != mode:
        log.info("%s has mode %s should be %s", dest, oct(stat.S_IMODE(dest_stat.st_mode)),
                 oct(mode))
        same = False
    try:
        current = dest.read_bytes()
    except OSError as exc:
        raise SyncError(f"cannot read {dest} to compare it: {exc.strerror}") from None
    if current != data:
        log.info("%s has md5sum %s should be %s", dest, _md5(current), _md5(data))
        same = False
    return same


def _already(dest: Path, dest_stat: os.stat_result, data: bytes, mode: int, uid: int,
             gid: int) -> bool:
    """Whether `dest` holds exactly `data` with `mode`, `uid` and `gid` (any doubt: False, and
    the full comparison against a stage file decides and logs)."""
    if (dest_stat.st_size != len(data) or not stat.S_ISREG(dest_stat.st_mode)
            or stat.S_IMODE(dest_stat.st_mode) != mode or dest_stat.st_uid != uid
            or dest_stat.st_gid != gid):
        return False
    try:
        return dest.read_bytes() == data
    except OSError:
        return False


def _wanted(target: Destination, current: os.stat_result | None) -> tuple[int, int, int]:
    """Mode, uid, gid to give the file: the target's, else the destination's, else defaults."""
    mode = target.mode
    if mode is None:
        mode = stat.S_IMODE(current.st_mode) if current else 0o644
    uid = target.uid
    if uid is None:
        uid = current.st_uid if current else os.geteuid()
    gid = target.gid
    if gid is None:
        gid = current.st_gid if current else os.getegid()
    return mode, uid, gid


# ANSI colors of a diff's lines, as the fork colors them: headers bold, hunks cyan.
_COLORS = (("+++", "\033[1m"), ("---", "\033[1m"), ("@@", "\033[36m"), ("+", "\033[32m"),
           ("-", "\033[31m"))
_RESET = "\033[0m"


def _colored(line: str) -> str:
    for start, color in _COLORS:
        if line.startswith(start):
            body = line.rstrip("\n")
            return f"{color}{body}{_RESET}" + line[len(body):]
    return line


def _print_diff(dest: Path, exists: bool, data: bytes, out: IO[str],
                options: SyncOptions) -> None:
    old = dest.read_bytes().decode(errors="replace") if exists else ""
    new = data.decode(errors="replace")
    import difflib

    diff = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=str(dest) if exists else "/dev/null",
        tofile=str(dest),
        n=options.diff_context,
    )
    for line in diff:
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.write(_colored(line) if options.color else line)
    out.flush()


def _write_in_place(stage: Path, dest: Path, mode: int, uid: int, gid: int) -> None:
    """For a bind-mounted destination that cannot be renamed over: rewrite it in place."""
    data = stage.read_bytes()
    fd = os.open(dest, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
        if _can_chown(os.fstat(fd), uid, gid):
            os.fchown(fd, uid, gid)
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_directories(directories: Iterable[Path]) -> None:
    """fsync each directory once: the renames `sync_file(..., renamed_in=...)` left to flush.
    A failure is logged naming the directory (the files are in place; their renames may not
    survive a crash)."""
    for directory in directories:
        try:
            _fsync_dir(directory)
        except OSError as exc:
            log.error("cannot flush directory %s after replacing files in it: %s", directory,
                      exc.strerror)


class _Stage:
    """A rendered file written beside its destination (open at `fd`, -1 once closed), not yet
    flushed. (A plain class: a NamedTuple costs ~80 us to define on the start-up path.)"""

    __slots__ = ("path", "fd", "mode", "uid", "gid")

    def __init__(self, path: Path, fd: int, mode: int, uid: int, gid: int) -> None:
        self.path, self.fd, self.mode, self.uid, self.gid = path, fd, mode, uid, gid


def sync_file(
    data: bytes, target: Destination, options: SyncOptions = _PLAIN, *,
    out: IO[str] | None = None, renamed_in: set[Path] | None = None,
) -> Status:
    """Make `target.dest` hold `data` with the target's mode and owner; see the module doc.

    Raises `SyncError` (destination untouched) when staging, the check, or the rename fails;
    a failed reload also raises, after the destination was updated. With `renamed_in`, the
    directory is added to it instead of flushed: a batch flushes each directory once
    (`sync_directories`), not once per file.
    """
    stage = _stage(data, target, options, out)
    if isinstance(stage, Status):
        return stage
    return _install(stage, target, options, flushed=False, renamed_in=renamed_in)


def sync_files(
    items: Sequence[tuple[bytes, Destination]], options: SyncOptions = _PLAIN, *,
    out: IO[str] | None = None,
) -> list[Status | Exception]:
    """`sync_file` for many destinations at once: each staged, the stages made durable together
    (`confd.flush`: one syncfs instead of an fsync each), then each renamed into place and
    every directory flushed once. Results in the order of `items`; a failure is that item's
    exception and spoils no other.

    Meant for destinations without commands: a check command would see its stage only once the
    whole group is staged, and reloads would follow one another without a pause.
    """
    results: list[Status | Exception] = [Status.FAILED] * len(items)
    staged: list[tuple[int, _Stage]] = []
    renamed_in: set[Path] = set()
    limit = _open_stage_limit()

    def settle() -> None:
        if not staged:
            return
        from confd.flush import flush

        failed = flush([stage.fd for _, stage in staged])
        for index, stage in staged:
            target = items[index][1]
            error = failed.get(stage.fd)
            try:
                if error is not None:
                    _discard(stage, options)
                    raise SyncError(f"cannot write stage file {stage.path} for {target.dest}: "
                                    f"{error.strerror}")
                results[index] = _install(stage, target, options, flushed=True,
                                          renamed_in=renamed_in)
            except Exception as exc:  # noqa: BLE001 - one destination must not stop the others
                results[index] = exc
        staged.clear()

    try:
        for index, (data, target) in enumerate(items):
            try:
                stage = _stage(data, target, options, out)
            except Exception as exc:  # noqa: BLE001 - one destination must not stop the others
                results[index] = exc
                continue
            if isinstance(stage, Status):
                results[index] = stage
                continue
            staged.append((index, stage))
            if len(staged) >= limit:
                settle()
        settle()
    finally:
        for _, stage in staged:  # only left by an error that is not one destination's
            _discard(stage, options)
        sync_directories(renamed_in)
    return results


def _open_stage_limit() -> int:
    """How many stage files a batch keeps open before flushing them: a quarter of the open-file
    limit, at most 256 (with the default limit of 1,024, 4 flushes for 1,000 files)."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 256 if soft == resource.RLIM_INFINITY else max(1, min(256, soft // 4))


def _stage(data: bytes, target: Destination, options: SyncOptions,
           out: IO[str] | None) -> _Stage | Status:
    """Write `data` to a stage file beside the destination and compare; the stage (open, for
    the caller to install or discard) when the destination must change, else the status."""
    dest = target.dest
    directory = dest.parent
    try:
        dest_stat: os.stat_result | None = dest.stat()
    except FileNotFoundError:
        dest_stat = None
    except NotADirectoryError:
        raise SyncError(f"cannot write {dest}: directory {directory} does not exist") from None
    except OSError as exc:
        raise SyncError(f"cannot stat {dest}: {exc.strerror}") from None
    if dest_stat is not None and stat.S_ISDIR(dest_stat.st_mode):
        raise SyncError(f"cannot write {dest}: it is a directory, not a file")
    mode, uid, gid = _wanted(target, dest_stat)
    if dest_stat is not None and _already(dest, dest_stat, data, mode, uid, gid):
        log.debug("Target config %s in sync", dest)
        return Status.UNCHANGED

    try:
        fd, stage_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=directory)
    except (FileNotFoundError, NotADirectoryError):
        raise SyncError(f"cannot write {dest}: directory {directory} does not exist") from None
    except OSError as exc:
        raise SyncError(f"cannot create a stage file for {dest} in {directory}: "
                        f"{exc.strerror}") from None
    stage = _Stage(Path(stage_name), fd, mode, uid, gid)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            staged = os.fstat(fd)
            if (staged.st_uid, staged.st_gid) != (uid, gid) and _can_chown(staged, uid, gid):
                os.fchown(fd, uid, gid)
                staged = os.fstat(fd)
        except OSError as exc:
            raise SyncError(f"cannot write stage file {stage.path} for {dest}: "
                            f"{exc.strerror}") from None
        stage.uid, stage.gid = staged.st_uid, staged.st_gid  # what it could be given

        log.debug("Comparing candidate config to %s", dest)
        if _in_sync(dest, dest_stat, data, mode, stage.uid, stage.gid):
            log.debug("Target config %s in sync", dest)
            _discard(stage, options)
            return Status.UNCHANGED
        if options.noop:
            log.warning("Noop mode enabled. %s will not be modified", dest)
            if options.diff:
                _print_diff(dest, dest_stat is not None, data, out or sys.stdout, options)
            _discard(stage, options)
            return Status.NOOP
    except BaseException:
        _discard(stage, options)
        raise
    return stage


def _install(stage: _Stage, target: Destination, options: SyncOptions, *, flushed: bool,
             renamed_in: set[Path] | None) -> Status:
    """Check `stage`, flush it (unless `flushed`), move it over the destination, reload. The
    stage file is gone afterwards (or kept, with --keep-stage-file, when not installed)."""
    dest = target.dest
    directory = dest.parent
    renamed = False
    try:
        fields = {"fields": {"dest": str(dest)}}
        log.info("Target config %s out of sync", dest, extra=fields)
        if target.check_cmd and not options.sync_only:
            command = render_command(target.check_cmd, src=str(stage.path), dest=str(dest))
            run_command(command, target.check_cmd_timeout, f"check_cmd for {dest}")
        log.debug("Overwriting target config %s", dest)
        try:
            # fsync only a stage that will replace dest: an unchanged render costs no disk flush.
            if not flushed:
                os.fsync(stage.fd)
        except OSError as exc:
            raise SyncError(f"cannot write stage file {stage.path} for {dest}: "
                            f"{exc.strerror}") from None
        finally:
            os.close(stage.fd)
            stage.fd = -1
        try:
            os.rename(stage.path, dest)
            renamed = True
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise SyncError(f"cannot replace {dest}: {exc.strerror}") from None
            log.debug("Rename failed - %s is likely a mount; writing in place", dest)
            try:
                _write_in_place(stage.path, dest, stage.mode, stage.uid, stage.gid)
            except OSError as exc2:
                raise SyncError(f"cannot write {dest} in place: {exc2.strerror}") from None
        if renamed_in is None:
            _fsync_dir(directory)
        else:
            renamed_in.add(directory)
        if target.reload_cmd and not options.sync_only:
            command = render_command(target.reload_cmd, src=str(dest), dest=str(dest))
            run_command(command, target.reload_cmd_timeout, f"reload_cmd for {dest}")
        log.info("Target config %s has been updated", dest, extra=fields)
        return Status.CHANGED
    finally:
        if not renamed:
            _discard(stage, options)  # closes it too, when the check failed


def _discard(stage: _Stage, options: SyncOptions) -> None:
    """Close `stage` and remove its file (kept with --keep-stage-file)."""
    if stage.fd >= 0:
        os.close(stage.fd)
        stage.fd = -1
    if options.keep_stage_file:
        log.info("Keeping staged file: %s", stage.path)
    else:
        stage.path.unlink(missing_ok=True)
