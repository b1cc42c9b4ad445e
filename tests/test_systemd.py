"""sd_notify over a real datagram socket: path and abstract names, watchdog, no-op without one."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from confd.observe.systemd import Notifier


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request, tmp_path) -> Iterator[tuple[str, socket.socket]]:
    """A listening NOTIFY_SOCKET like systemd's: (the env value, the receiving socket)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        name = str(tmp_path / "notify.sock")
        sock.bind(name)
    else:
        name = "@confd-test-" + uuid.uuid4().hex
        sock.bind("\0" + name[1:])
    sock.settimeout(3)
    try:
        yield name, sock
    finally:
        sock.close()


def _messages(sock: socket.socket, count: int) -> list[str]:
    return [sock.recv(4096).decode() for _ in range(count)]


def test_ready_status_reloading_stopping_reach_the_socket(notify_socket):
    name, sock = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": name})
    assert notifier.enabled
    notifier.ready("2 resources rendered")
    notifier.reloading()
    notifier.status("reloaded")
    notifier.stopping()
    notifier.close()
    ready, reloading, status, stopping = _messages(sock, 4)
    assert ready == "READY=1\nSTATUS=2 resources rendered"
    assert reloading.startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert status == "STATUS=reloaded"
    assert stopping == "STOPPING=1"


def test_watchdog_is_fed_at_half_the_interval(notify_socket):
    name, sock = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000"})
    start = time.monotonic()
    notifier.start_watchdog()
    messages = _messages(sock, 4)
    elapsed = time.monotonic() - start
    notifier.close()
    assert messages == ["WATCHDOG=1"] * 4
    assert 0.25 <= elapsed < 1.5  # first at once, then every 0.1 s


def test_watchdog_starves_when_unhealthy(notify_socket):
    name, sock = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "100000"})
    notifier.start_watchdog(healthy=lambda: False)
    assert _messages(sock, 1) == ["WATCHDOG=1"]  # the one sent at start
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(4096)
    notifier.close()


def test_watchdog_for_another_pid_is_ignored(notify_socket):
    name, sock = notify_socket
    env = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": str(os.getpid() + 1)}
    notifier = Notifier(env)
    notifier.start_watchdog()
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(4096)
    notifier.close()


def test_without_notify_socket_nothing_is_sent():
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.notify(READY=1) is False
    notifier.start_watchdog()
    notifier.close()


def test_daemon_notifies_ready_reloading_and_stopping(tmp_path):
    """confd --watch under a fake systemd: READY after the first pass, RELOADING/READY around
    SIGHUP, STOPPING on SIGTERM, and the watchdog fed."""
    import signal

    from testsupport.daemon_process import Confdir, ConfdProcess

    confdir = Confdir(tmp_path / "c")
    confdir.set_values("app:\n  a: one\n")
    dest = confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(15)
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"}
    proc = ConfdProcess([*confdir.args(), "--watch"], env=env)
    try:

        def next_state() -> str:
            while True:  # skip STATUS-only and WATCHDOG datagrams
                message = sock.recv(4096).decode()
                if message.split("\n")[0] in ("READY=1", "RELOADING=1", "STOPPING=1"):
                    return message

        ready = next_state()
        assert ready.startswith("READY=1")
        assert "STATUS=1/1 resources rendered" in ready
        assert dest.read_text() == "one\n"  # READY only after the first full pass
        proc.signal(signal.SIGHUP)
        assert next_state().startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert next_state().startswith("READY=1")
        proc.signal(signal.SIGTERM)
        assert next_state() == "STOPPING=1"
        assert proc.wait() == 0
        sock.settimeout(0.1)
    finally:
        proc.kill()
        sock.close()


def test_daemon_feeds_the_watchdog(tmp_path):
    from testsupport.daemon_process import Confdir, ConfdProcess

    confdir = Confdir(tmp_path / "c")
    confdir.set_values("app:\n  a: one\n")
    confdir.resource("a", '{{ getv("/app/a") }}\n', ["/app"])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(15)
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000"}
    proc = ConfdProcess([*confdir.args(), "--watch"], env=env)
    try:
        watchdogs = 0
        while watchdogs < 4:
            watchdogs += sock.recv(4096) == b"WATCHDOG=1"
    finally:
        proc.kill()
        sock.close()
