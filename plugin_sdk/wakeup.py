"""A flag that signal handlers may raise: `threading.Event` without the lock.

A Python signal handler runs in the main thread between two bytecodes, possibly while that
thread is inside `Event.wait()` holding the event's lock; the handler's `Event.set()` then
waits for that lock forever. `Wakeup` takes no lock: `set()` raises a flag and writes a byte
to a pipe, and `wait()` selects on the pipe. With `wake_on_signals()` the pipe is also
Python's signal wakeup fd, so a signal the kernel hands to another thread still ends the
main thread's `select` and its handler runs at once.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time


class Wakeup:
    """A settable flag to wait on, safe to set from signal handlers and from other threads.

    Any number of threads may `set()`; one thread waits.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._flag = False
        self._signals = False

    def set(self) -> None:
        """Raise the flag and wake the waiter."""
        self._flag = True
        with contextlib.suppress(OSError):  # full (a wake is pending anyway) or closed
            os.write(self._write, b"\0")

    def wake_on_signals(self) -> None:
        """Make the pipe Python's signal wakeup fd (main thread only): any signal then ends
        a `wait`, which runs its handler, wherever the kernel delivered the signal."""
        signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._signals = True

    def is_set(self) -> bool:
        return self._flag

    def clear(self) -> None:
        """Lower the flag (a `set()` racing with it may be lowered too, as with an Event)."""
        self._flag = False
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                if not os.read(self._read, 4096):
                    return
            except OSError:  # empty (EAGAIN) or closed
                return

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is raised or `timeout` seconds pass; returns the flag."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._flag:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            try:
                ready, _, _ = select.select([self._read], [], [], remaining)
            except (OSError, ValueError):
                break  # closed under us: report the flag as it is
            if ready and not self._flag:
                self._drain()  # a byte left by a set() that clear() lowered again
        return self._flag

    def close(self) -> None:
        """Release the pipe; a later `set()` only raises the flag (no write to a reused fd)."""
        if self._signals:
            with contextlib.suppress(ValueError):  # not the main thread: leave it set
                signal.set_wakeup_fd(-1)
            self._signals = False
        fds = (self._read, self._write)
        self._read = self._write = -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)
