"""The go-plugin compatible protocol as a user of confd sees it: handshakes good and bad,
AutoMTLS, stderr levels, crash restarts, shutdown, and built-ins served out of process."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from confd.backends.plugin.client import PluginDatabase
from confd.backends.plugin.discover import find_plugin, list_plugins
from confd.backends.plugin.handshake import parse_handshake
from confd.backends.plugin.host import open_plugin
from confd.backends.plugin.launch import LaunchOptions
from confd.backends.plugin.process import PluginProcess
from confd.config.settings import Settings
from confd.errors import PluginError
from plugin_sdk.database import DatabaseError, StopSignal
from plugin_sdk.mtls import encode_der, make_certificate
from plugin_sdk.protocol import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE
from testsupport.plugins import install


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "plugins"
    install(directory, "jsonfile.py", "jsonfile")
    install(directory, "misbehave.py", "misbehave")
    return directory


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store.json"
    path.write_text(json.dumps({"/app/a": "1", "/app/b/c": "2", "/apple": "3"}))
    return path


@pytest.fixture
def opened():
    """Databases opened by a test, always closed (plugin processes never outlive it)."""
    databases: list[PluginDatabase] = []
    yield databases
    for database in databases:
        database.close()


def _open(opened, plugin_dir: Path, name: str, config=None, **kwargs) -> PluginDatabase:
    command = [str(plugin_dir / f"confd-database-{name}")]
    database = PluginDatabase(LaunchOptions(name, command, **kwargs))
    opened.append(database)
    database.configure(config or {})
    return database


CERT_FIELD = encode_der(make_certificate().cert_der)

HANDSHAKES = [
    ("1|1|unix|/tmp/plugin123|grpc", None, "unix:/tmp/plugin123"),
    ("1|1|unix|/tmp/plugin123|grpc|", None, "unix:/tmp/plugin123"),
    ("1|1|tcp|127.0.0.1:1234|grpc", None, "127.0.0.1:1234"),
    (f"1|1|unix|/tmp/p|grpc|{CERT_FIELD}", True, "unix:/tmp/p"),
    ("2|1|unix|/tmp/p|grpc", "core protocol version 2", None),
    ("1|7|unix|/tmp/p|grpc", "chose protocol version 7", None),
    ("1|1|unix|/tmp/p|netrpc", "supports only 'grpc'", None),
    ("1|1|pipe|/tmp/p|grpc", "unusable address", None),
    ("hello world", "instead of a handshake line", None),
    ("1|1|unix|/tmp/p|grpc|!!!|more", "instead of a handshake line", None),
    ("1|1|unix|/tmp/p|grpc|not base64!", "not base64 DER", None),
]


@pytest.mark.parametrize(("line", "expect", "target"), HANDSHAKES)
def test_handshake_line_parsing(line: str, expect, target) -> None:
    if isinstance(expect, str):
        with pytest.raises(PluginError, match="plugin 'demo'.*") as info:
            parse_handshake("demo", line, (1,))
        assert expect in str(info.value)
        return
    shake = parse_handshake("demo", line, (1,))
    assert shake.target == target
    assert (shake.server_cert is not None) == bool(expect)


@pytest.mark.parametrize(
    ("mode", "tls", "stdio"),
    [("five", False, True), ("empty6", False, True), ("nostdio", False, False)],
)
def test_old_style_plugins_work(opened, plugin_dir, monkeypatch, mode, tls, stdio) -> None:
    """Handshake forms of plugins a host without AutoMTLS runs (go-plugin's AutoMTLS off)."""
    monkeypatch.setenv("MISBEHAVE", mode)
    database = _open(opened, plugin_dir, "misbehave", auto_mtls=False)
    assert database.get_values(["/k"]) == {"/k": "v"}
    assert database.process.tls is tls
    time.sleep(0.2)
    assert (database.process.stdio_supported is not False) is stdio


def test_six_fields_with_certificate_is_tls(opened, plugin_dir, store) -> None:
    database = _open(opened, plugin_dir, "jsonfile", {"path": str(store)})
    assert database.process.tls is True
    assert database.process.bridge is None  # a P-384 plugin: grpcio's own TLS
    assert database.get_values(["/app"]) == {"/app/a": "1", "/app/b/c": "2"}


def test_plaintext_answer_to_automtls_is_refused(plugin_dir, monkeypatch) -> None:
    """No plaintext fallback: a plugin that ignores PLUGIN_CLIENT_CERT does not start."""
    monkeypatch.setenv("MISBEHAVE", "five")
    process = PluginProcess(
        LaunchOptions("misbehave", [str(plugin_dir / "confd-database-misbehave")])
    )
    with pytest.raises(PluginError) as info:
        process.start()
    assert str(info.value).startswith("plugin 'misbehave' (")
    assert "answered without a TLS certificate although confd asked for AutoMTLS" in str(
        info.value
    )
    assert not process.alive()


def _refuses_plaintext(target: str) -> None:
    """A plaintext gRPC client gets no answer on `target`."""
    channel = grpc.insecure_channel(target)
    try:
        with pytest.raises(grpc.RpcError) as info:
            health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="plugin"), timeout=2
            )
        assert info.value.code() in (
            grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED
        )
    finally:
        channel.close()


def test_p521_plugin_is_reached_through_the_openssl_bridge(
    opened, plugin_dir, monkeypatch, caplog
) -> None:
    """A plugin with go-plugin's P-521 certificate: one start, no warning, TLS all the way."""
    caplog.set_level(logging.DEBUG, logger="confd.backends.plugin")
    monkeypatch.setenv("MISBEHAVE", "p521")
    database = _open(opened, plugin_dir, "misbehave")
    assert database.get_values(["/k"]) == {"/k": "v"}
    process = database.process
    assert process.tls and process.bridge is not None
    assert process.transport == "TLS (AutoMTLS, P-521 peer: OpenSSL bridge)"
    assert database.restarts == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    # grpcio's plaintext side is a socket in our 0700 directory; the plugin's is TLS only
    socket_dir = Path(process.handshake.address).parent
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    assert (socket_dir / "tls.sock").is_socket()
    _refuses_plaintext(process.handshake.target)
    assert database.get_values(["/k"]) == {"/k": "v"}
    os.kill(process.pid, 9)  # a crash: the restarted plugin gets a fresh bridge
    process._proc.wait(5)
    assert database.get_values(["/k"]) == {"/k": "v"}
    assert database.restarts == 1
    assert database.process.bridge is not None and database.process.bridge is not process.bridge
    assert not (socket_dir / "tls.sock").exists()


def test_p521_host_certificate_is_served_through_openssl(
    opened, plugin_dir, store, monkeypatch
) -> None:
    """A host with go-plugin's P-521 certificate: the plugin serves TLS with Python's ssl (it
    asks for and verifies P-521), in front of grpcio on a private socket."""
    from confd.backends.plugin import process as process_module
    from plugin_sdk import mtls

    monkeypatch.setattr(process_module, "make_certificate",
                        lambda: mtls.make_certificate("secp521r1"))
    database = _open(opened, plugin_dir, "jsonfile", {"path": str(store)})
    assert database.get_values(["/app"]) == {"/app/a": "1", "/app/b/c": "2"}
    assert database.process.tls and database.process.bridge is None
    _refuses_plaintext(database.process.handshake.target)


def test_tls_failure_through_the_bridge_is_a_clear_error(plugin_dir, monkeypatch) -> None:
    monkeypatch.setenv("MISBEHAVE", "p521-wrongcert")
    process = PluginProcess(
        LaunchOptions("misbehave", [str(plugin_dir / "confd-database-misbehave")])
    )
    started = time.monotonic()
    with pytest.raises(PluginError) as info:
        process.start()
    assert time.monotonic() - started < 5  # reported at once, not after the start timeout
    text = str(info.value)
    assert text.startswith("plugin 'misbehave' (")
    assert ("could not open its AutoMTLS session (TLS handshake failed: "
            "CERTIFICATE_VERIFY_FAILED)") in text
    assert "does not fall back to plaintext" in text
    assert not process.alive()


BAD_STARTS = [
    ("core2", "speaks core protocol version 2"),
    ("garbage", "printed 'hello, I am definitely a plugin' instead of a handshake line"),
    ("silent", "printed no handshake line within 1.5 s; stderr tail:\n  [WARN] thinking"),
    ("exit", "exited with status 3 before its handshake; stderr tail:\n  [ERROR] cannot open"),
    ("flood", "printed no handshake line within 1.5 s; stderr tail:\n  xxxx"),
]


@pytest.mark.parametrize(("mode", "message"), BAD_STARTS)
def test_bad_start_is_a_clear_error(plugin_dir, monkeypatch, mode, message) -> None:
    monkeypatch.setenv("MISBEHAVE", mode)
    process = PluginProcess(LaunchOptions(
        "misbehave", [str(plugin_dir / "confd-database-misbehave")], start_timeout=1.5
    ))
    started = time.monotonic()
    with pytest.raises(PluginError) as info:
        process.start()
    assert time.monotonic() - started < 5
    text = str(info.value)
    assert text.startswith("plugin 'misbehave'")
    assert message in text
    assert "Traceback" not in text
    assert not process.alive()


def test_plugin_errors_reach_the_caller(opened, plugin_dir, monkeypatch) -> None:
    monkeypatch.setenv("MISBEHAVE", "errors")
    database = _open(opened, plugin_dir, "misbehave")
    with pytest.raises(DatabaseError, match="plugin 'misbehave': .*store is on fire"):
        database.get_values(["/k"])
    with pytest.raises(PluginError, match="setting 'fail_configure' refused"):
        database.configure({"fail_configure": "1"})
    assert database.restarts == 0


def test_unexpected_plugin_exception_is_internal(opened, plugin_dir, monkeypatch) -> None:
    monkeypatch.setenv("MISBEHAVE", "errors-internal")
    database = _open(opened, plugin_dir, "misbehave")
    with pytest.raises(PluginError, match="GetValues failed: INTERNAL: GetValues: KeyError"):
        database.get_values(["/k"])


def test_stderr_lines_are_logged_at_their_level(opened, plugin_dir, store, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="confd.backends.plugin")
    _open(opened, plugin_dir, "jsonfile", {"path": str(store)})
    deadline = time.monotonic() + 3
    wanted = {"warn-marker": logging.WARNING, "error-marker": logging.ERROR,
              "plain-marker": logging.DEBUG}
    seen: dict[str, int] = {}
    while time.monotonic() < deadline and len(seen) < 3:
        for record in caplog.records:
            for marker in wanted:
                if marker in record.getMessage():
                    seen[marker] = record.levelno
        time.sleep(0.05)
    assert seen == wanted
    warn = next(r for r in caplog.records if "warn-marker" in r.getMessage())
    assert warn.getMessage() == "plugin jsonfile: configured warn-marker keys=3"


def test_client_without_certificate_is_refused(plugin_dir) -> None:
    env = {"MISBEHAVE": ""}
    os.environ.update(env)
    process = PluginProcess(
        LaunchOptions("misbehave", [str(plugin_dir / "confd-database-misbehave")])
    )
    process.start()
    try:
        assert process.tls
        target = process.handshake.target
        request = health_pb2.HealthCheckRequest(service="plugin")
        plain = grpc.insecure_channel(target)
        other = make_certificate()
        no_client_cert = grpc.secure_channel(
            target,
            grpc.ssl_channel_credentials(root_certificates=None),
            options=[("grpc.ssl_target_name_override", "localhost")],
        )
        wrong_client_cert = grpc.secure_channel(
            target,
            grpc.ssl_channel_credentials(
                root_certificates=other.cert_pem,
                private_key=other.key_pem,
                certificate_chain=other.cert_pem,
            ),
            options=[("grpc.ssl_target_name_override", "localhost")],
        )
        for channel in (plain, no_client_cert, wrong_client_cert):
            with pytest.raises(grpc.RpcError) as info:
                health_pb2_grpc.HealthStub(channel).Check(request, timeout=2)
            assert info.value.code() in (
                grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED
            )
            channel.close()
        # the host's own channel still works
        reply = health_pb2_grpc.HealthStub(process.channel).Check(request, timeout=2)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        process.stop()


def test_socket_directory_is_private_and_removed(opened, plugin_dir, store) -> None:
    database = _open(opened, plugin_dir, "jsonfile", {"path": str(store)})
    socket_dir = Path(database.process.handshake.address).parent
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    process = database.process
    started = time.monotonic()
    database.close()
    assert time.monotonic() - started < 2.0  # Shutdown honoured, no kill needed
    assert process._proc.returncode == 0
    assert not socket_dir.exists()


def test_killed_plugin_is_restarted_and_watch_resumes(opened, plugin_dir, store) -> None:
    database = _open(opened, plugin_dir, "jsonfile", {"path": str(store)})
    stop = threading.Event()
    events: list[object] = []
    changed = threading.Event()

    def watch() -> None:
        for item in database.watch_prefix("/app", ["/app"], stop):
            events.append(item)
            changed.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(0.3)
    first_pid = database.process.pid
    os.kill(first_pid, 9)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        database.process is None or database.process.pid == first_pid
    ):
        time.sleep(0.05)
    assert database.restarts == 1
    time.sleep(0.3)
    changed.clear()
    store.write_text(json.dumps({"/app/a": "changed"}))
    assert changed.wait(5), "the change after the restart was not seen"
    assert database.get_values(["/app/a"]) == {"/app/a": "changed"}
    stop.set()
    thread.join(3)
    assert not thread.is_alive()


@pytest.mark.parametrize("signal", [threading.Event, StopSignal])
def test_a_stopped_or_closed_watch_ends_and_only_a_plain_event_is_polled(
    opened, plugin_dir, store, monkeypatch, signal: type[threading.Event]
) -> None:
    """The daemon's StopSignal cancels the plugin's watch stream itself, and close() ends it by
    stopping the plugin; only a plain Event needs a thread looking at it five times a second."""
    from confd.backends.plugin import client

    pollers: list[object] = []
    poll = client._cancel_when
    monkeypatch.setattr(client, "_cancel_when", lambda *a: (pollers.append(a), poll(*a)))
    database = _open(opened, plugin_dir, "jsonfile", {"path": str(store)})
    threads = []
    for end in ("stop", "close"):
        stop = signal()
        thread = threading.Thread(
            target=lambda stop=stop: list(database.watch_prefix("/app", ["/app"], stop)),
            daemon=True)
        thread.start()
        threads.append(thread)
        time.sleep(0.3)
        began = time.monotonic()
        stop.set() if end == "stop" else database.close()
        thread.join(3)
        assert not thread.is_alive(), f"the watch did not end on {end}"
        assert time.monotonic() - began < 1.0
    assert len(pollers) == (2 if signal is threading.Event else 0)


def test_get_values_survives_a_crash(opened, plugin_dir, store) -> None:
    database = _open(opened, plugin_dir, "jsonfile", {"path": str(store)})
    os.kill(database.process.pid, 9)
    database.process._proc.wait(5)
    assert database.get_values(["/apple"]) == {"/apple": "3"}
    assert database.restarts == 1


def test_plugin_run_by_hand_says_so(plugin_dir) -> None:
    env = {k: v for k, v in os.environ.items() if k != MAGIC_COOKIE_KEY}
    result = subprocess.run(
        [str(plugin_dir / "confd-database-jsonfile")], env=env, capture_output=True,
        text=True, timeout=20,
    )
    assert result.returncode == 1
    assert "This binary is a plugin" in result.stderr
    assert result.stdout == ""


def test_discovery_order_and_listing(tmp_path, monkeypatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    install(first, "jsonfile.py", "same")
    install(second, "jsonfile.py", "same")
    install(second, "jsonfile.py", "other")
    monkeypatch.setenv("PATH", f"{second}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CONFD_PLUGIN_DIR", str(first))
    assert find_plugin("same") == first / "confd-database-same"
    assert find_plugin("same", [str(second)]) == second / "confd-database-same"
    found = dict(list_plugins())
    assert found["same"] == first / "confd-database-same"
    assert found["other"] == second / "confd-database-other"
    with pytest.raises(PluginError, match="no plugin confd-database-missing was found"):
        find_plugin("missing")


def test_isolated_builtin_runs_out_of_process(monkeypatch, opened) -> None:
    monkeypatch.setenv("APP_DB_HOST", "db.example")
    settings = Settings(isolate=True)
    database = open_plugin("env", {}, settings)
    opened.append(database)
    assert database.process.command[:3] == [sys.executable, "-m", "confd"]
    assert database.get_values(["/app/db"]) == {"/app/db/host": "db.example"}


def test_internal_plugin_needs_the_cookie() -> None:
    env = {k: v for k, v in os.environ.items() if k != MAGIC_COOKIE_KEY}
    result = subprocess.run(
        [sys.executable, "-m", "confd.backends.plugin.internal", "env"], env=env,
        capture_output=True, text=True, timeout=20,
    )
    assert result.returncode == 1
    assert "This binary is a plugin" in result.stderr
    assert MAGIC_COOKIE_VALUE not in result.stderr
