"""Interop with real Go: hashicorp/go-plugin 1.0.1 (Debian) on both sides of confd's protocol.

A Go database plugin (`integration/go/.../confd-database-gomem`) is run by confd, and a Go host
(`integration/go/.../gohost`, plugin.NewClient) runs the Python `testsupport/plugins/jsonfile.py`
plugin. Both programs are built once per module (testsupport.goprograms), offline in GOPATH
mode against /usr/share/gocode.

AutoMTLS: go-plugin makes ECDSA P-521 certificates, which grpcio's BoringSSL cannot verify or
offer. Both directions carry the session over OpenSSL instead (plugin_sdk.tls_bridge): confd
dials the Go plugin through a bridge, and the Python plugin serves a Go host through one. These
tests show it is TLS on the wire (a plaintext client is refused) and that nothing falls back.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from integration.harness import CONFD, read, wait_for
from integration.servers import terminate
from testsupport.goprograms import GoBuildError, GoPrograms, build_go_programs
from testsupport.plugins import install

DATA = {"/app/name": "demo", "/app/port": "8080", "/app/db/host": "db1", "/application": "no"}
# GetValues(["/app"]) must bring /app/db/host but not /application
TEMPLATE = (
    '{% for kv in gets("/app/*") %}{{ kv.key }}={{ kv.value }}\n{% endfor %}'
    'db={{ getv("/app/db/host") }}\napplication={{ exists("/application") }}\n'
)
EXPECTED = "/app/name=demo\n/app/port=8080\ndb=db1\napplication=false\n"


@pytest.fixture(scope="module")
def go_programs(tmp_path_factory: pytest.TempPathFactory) -> GoPrograms:
    """Build the Go plugin and host once; fail naming the apt package when sources are absent."""
    try:
        return build_go_programs(tmp_path_factory.mktemp("go-bin"))
    except GoBuildError as exc:
        pytest.fail(str(exc))


# -- confd hosting the Go plugin --------------------------------------------------------------


class Site:
    """A confdir with one resource reading /app from the gomem plugin, and its outputs."""

    def __init__(self, root: Path, plugin_dir: Path) -> None:
        self.root = root
        self.plugin_dir = plugin_dir
        self.data = root / "data.json"
        self.dest = root / "out" / "app.conf"
        self.checks = root / "checks.log"
        self.reloads = root / "reloads.log"
        self.tmpdir = root / "tmp"  # go-plugin 1.0.1 puts its socket in $TMPDIR
        for sub in ("conf.d", "templates", "out", "tmp"):
            (root / sub).mkdir()
        self.write(DATA)
        (root / "templates" / "app.tmpl").write_text(TEMPLATE)
        (root / "conf.d" / "app.toml").write_text(
            "[template]\n"
            'src = "app.tmpl"\n'
            f'dest = "{self.dest}"\n'
            'keys = ["/app"]\n'
            f"check_cmd = \"sh -c 'echo check >> {self.checks}'\"\n"
            f"reload_cmd = \"sh -c 'echo reload >> {self.reloads}'\"\n"
        )

    def write(self, data: dict[str, str]) -> None:
        """Replace the JSON file atomically, so the plugin never reads half of it."""
        staged = self.data.with_suffix(".tmp")
        staged.write_text(json.dumps(data))
        staged.replace(self.data)

    def command(self, *extra: str, path: bool = True) -> list[str]:
        if not CONFD.exists():
            raise AssertionError(f"{CONFD} is missing: run scripts/bootstrap")
        opts = ["--backend-opt", f"path={self.data}"] if path else []
        return [
            str(CONFD), "--confdir", str(self.root), "--backend", "gomem",
            "--plugin-dir", str(self.plugin_dir), "--log-level", "debug", *opts, *extra,
        ]

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CONFD_")}
        return {**base, "TMPDIR": str(self.tmpdir), **extra}

    def onetime(
        self, *extra: str, path: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command("--onetime", *extra, path=path), env=self.env(**(env or {})),
            capture_output=True, text=True, timeout=60, check=False,
        )

    def count(self, log: Path, word: str) -> int:
        return read(log).split().count(word)


@pytest.fixture
def site(tmp_path: Path, go_programs: GoPrograms) -> Site:
    return Site(tmp_path, go_programs.plugin_dir)


def test_onetime_renders_from_go_plugin(site: Site) -> None:
    done = site.onetime()
    assert done.returncode == 0, done.stderr
    assert site.dest.read_text() == EXPECTED
    assert (site.count(site.checks, "check"), site.count(site.reloads, "reload")) == (1, 1)
    assert "plugin gomem: configured keys=4" in done.stderr  # the Go plugin's hclog line


def test_onetime_uses_tls_with_go_plugin_p521_certificate(site: Site) -> None:
    """One start, no warning: confd verifies the Go plugin's P-521 certificate over OpenSSL."""
    done = site.onetime()
    assert done.returncode == 0, done.stderr
    assert site.dest.read_text() == EXPECTED
    assert done.stderr.count("plugin gomem: configuring server automatic mTLS") == 1
    assert "plugin gomem sent a P-521 certificate (go-plugin): TLS through the OpenSSL bridge" in (
        done.stderr
    )
    assert "WARNING" not in done.stderr and "plaintext" not in done.stderr
    assert "plugin gomem has no GRPCStdio service" in done.stderr  # go-plugin 1.0.x
    # go-plugin 1.0.x puts its socket in $TMPDIR (it ignores our socket directory); it is
    # removed on exit
    assert list(site.tmpdir.iterdir()) == []


def _plaintext_refused(network: str, address: str) -> None:
    """A plaintext gRPC client gets nothing from the peer at `address`, and a TLS client
    without the host's certificate is refused too."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = f"unix:{address}" if network == "unix" else address
    channel = grpc.insecure_channel(target)
    try:
        with pytest.raises(grpc.RpcError) as info:
            health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="plugin"), timeout=2
            )
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE,
                                     grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        channel.close()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    family = socket.AF_UNIX if network == "unix" else socket.AF_INET
    where: Any = address
    if network == "tcp":
        host, _, port = address.rpartition(":")
        where = (host, int(port))
    with socket.socket(family) as raw:
        raw.settimeout(5)
        raw.connect(where)  # the address is live: what follows is refused, not unreachable
        # TLS 1.3: the missing client certificate is refused after the handshake, at a read
        with pytest.raises((ssl.SSLError, ConnectionError)), context.wrap_socket(
            raw, server_hostname="localhost"
        ) as tls:
            tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            if not tls.recv(1024):
                raise ConnectionError("closed without a word")


def test_go_plugin_session_is_tls_and_refuses_plaintext(
    go_programs: GoPrograms, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from confd.backends.plugin.client import PluginDatabase
    from confd.backends.plugin.launch import LaunchOptions

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    data = tmp_path / "data.json"
    data.write_text(json.dumps(DATA))
    database = PluginDatabase(LaunchOptions("gomem", [str(go_programs.gomem)]))
    try:
        database.configure({"path": str(data)})
        process = database.process
        assert process is not None and process.handshake is not None
        assert process.transport == "TLS (AutoMTLS, P-521 peer: OpenSSL bridge)"
        assert process.bridge is not None and process.bridge.connections >= 1
        _plaintext_refused(process.handshake.network, process.handshake.address)
        assert database.get_values(["/app"]) == {k: v for k, v in DATA.items()
                                                 if k.startswith("/app/")}
        assert database.restarts == 0
    finally:
        database.close()


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (["path={data}", "colour=blue"],
         "backend 'gomem' has no setting 'colour' (its settings: interval, path)"),
        ([], "backend 'gomem': setting 'path' is required"),
        (["path=/nonexistent/data.json"],
         "backend 'gomem': setting 'path': open /nonexistent/data.json: no such file or "
         "directory"),
        (["path={data}", "interval=soon"],
         "backend 'gomem': setting 'interval' is \"soon\", not a positive duration like 50ms"),
    ],
    ids=["unknown", "missing-path", "unreadable-path", "bad-interval"],
)
def test_onetime_bad_setting_names_the_go_plugin(
    site: Site, opts: list[str], message: str
) -> None:
    flags = [f for opt in opts for f in ("--backend-opt", opt.format(data=site.data))]
    done = site.onetime(*flags, path=False)
    assert done.returncode != 0
    assert f"plugin 'gomem': {message}" in done.stderr
    assert not site.dest.exists()


def test_misspelled_setting_is_refused_before_the_go_plugin_configure(site: Site) -> None:
    """The Go plugin describes itself; confd refuses `colour` with its list, and the plugin's
    Configure (which logs `configured`) never runs."""
    done = site.onetime("--backend-opt", "colour=blue")
    assert done.returncode != 0
    assert ("plugin 'gomem': backend 'gomem' has no setting 'colour' (its settings: interval, "
            "path)") in done.stderr
    assert "plugin gomem: configured" not in done.stderr


def test_go_plugin_without_describe_still_works(site: Site) -> None:
    """A plugin built before Describe answers UNIMPLEMENTED: it renders, and its own Configure
    judges settings as before."""
    done = site.onetime(env={"GOMEM_DESCRIBE": "off"})
    assert done.returncode == 0, done.stderr
    assert site.dest.read_text() == EXPECTED
    assert "plugin gomem has no Describe (an older plugin)" in done.stderr
    site.dest.unlink()
    done = site.onetime("--backend-opt", "colour=blue", env={"GOMEM_DESCRIBE": "off"})
    assert done.returncode != 0
    assert ("plugin 'gomem': backend 'gomem': unknown setting \"colour\" (known: interval, "
            "path)") in done.stderr


def _plugin_pids(parent: int, plugin_dir: Path) -> set[int]:
    """Live children of `parent` running a plugin from `plugin_dir`."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and cmdline.startswith(str(plugin_dir).encode()):
            pids.add(int(proc.name))
    return pids


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def watching(site: Site) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """`confd --watch` on the Go plugin, its log file; always stopped at the end."""
    log = site.root / "confd.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            site.command("--watch"), env=site.env(), stdout=handle, stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        yield process, log
    finally:
        terminate(process)


def test_watch_renders_a_change_from_go_plugin_and_exits_on_sigterm(
    site: Site, watching: tuple[subprocess.Popen[str], Path]
) -> None:
    process, log = watching
    wait_for(
        lambda: "gomem: watch started" in read(log) and "; watching" in read(log),
        "the first render and the Go plugin's watch", lambda: read(log),
    )
    assert site.dest.read_text() == EXPECTED
    plugins = _plugin_pids(process.pid, site.plugin_dir)
    assert len(plugins) == 1, read(log)

    site.write({**DATA, "/app/port": "9090"})
    wait_for(lambda: "/app/port=9090" in read(site.dest), "the change rendered", lambda: read(log))
    time.sleep(0.5)  # a second, spurious render would show up here
    assert site.dest.read_text() == EXPECTED.replace("8080", "9090")
    assert (site.count(site.checks, "check"), site.count(site.reloads, "reload")) == (2, 2)

    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0, read(log)
    assert not any(_alive(pid) for pid in plugins), read(log)


# -- a Go host running the Python plugin ------------------------------------------------------


class HostRun(NamedTuple):
    """What gohost did: exit status, its JSON events by name, and its hclog lines."""

    automtls: bool
    code: int
    events: dict[str, dict[str, Any]]
    log: list[dict[str, Any]]


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _run_host(gohost: Path, plugin: Path, data: Path, *extra: str) -> HostRun:
    """Run gohost; $TMPDIR is the data's directory, where a Go plugin puts its socket."""
    done = subprocess.run(
        [str(gohost), "-plugin", str(plugin), "-config", f"path={data}", "-keys", "/app", *extra],
        env={**os.environ, "TMPDIR": str(data.parent)},
        capture_output=True, text=True, timeout=60, check=False,
    )
    events = {e["event"]: e for e in _json_lines(done.stdout)}
    return HostRun("-automtls" in extra, done.returncode, events, _json_lines(done.stderr))


@pytest.fixture(scope="module")
def python_plugin(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The Python jsonfile plugin installed as an executable, and its JSON data file."""
    root = tmp_path_factory.mktemp("python-plugin")
    data = root / "data.json"
    data.write_text(json.dumps(DATA))
    return install(root / "plugins", "jsonfile.py", "jsonfile"), data


@pytest.fixture(scope="module", params=["automtls", "plaintext"])
def host_run(
    request: pytest.FixtureRequest, go_programs: GoPrograms, python_plugin: tuple[Path, Path]
) -> HostRun:
    """gohost driving the Python plugin once (Configure, GetValues, Kill), with go-plugin's
    AutoMTLS (a P-521 client certificate: the plugin serves TLS over OpenSSL) and without."""
    extra = ["-automtls"] if request.param == "automtls" else []
    return _run_host(go_programs.gohost, *python_plugin, *extra)


def test_go_host_gets_values_from_python_plugin(host_run: HostRun) -> None:
    assert host_run.code == 0, (host_run.events, host_run.log[-5:])
    messages = [line["@message"] for line in host_run.log]
    assert ("configuring client automatic mTLS" in messages) is host_run.automtls
    assert host_run.events["started"]["protocol_version"] == 1
    assert host_run.events["values"]["values"] == {
        k: v for k, v in DATA.items() if k.startswith("/app/")
    }


def test_python_plugin_exits_gracefully_when_go_host_is_done(host_run: HostRun) -> None:
    assert host_run.events["killed"] == {"event": "killed", "plugin_exited": True, "pid_gone": True}
    messages = [line["@message"] for line in host_run.log]
    assert "plugin exited" in messages
    assert "plugin failed to exit gracefully" not in messages
    assert not _alive(host_run.events["started"]["pid"])


@pytest.mark.parametrize(
    ("message", "level"),
    [("configured warn-marker", "warn"), ("[ERROR] error-marker", "error"),
     ("plain-marker", "debug")],
)
def test_go_host_logs_python_plugin_stderr_at_its_level(
    host_run: HostRun, message: str, level: str
) -> None:
    levels = [line["@level"] for line in host_run.log if line.get("@message") == message]
    assert levels == [level]


def test_go_host_receives_a_watch_event_from_python_plugin_under_automtls(
    go_programs: GoPrograms, tmp_path: Path
) -> None:
    """Values, a watch and a clean exit with AutoMTLS on (go-plugin's default in a Go host);
    while the watch runs, a plaintext client is refused on the plugin's address."""
    plugin = install(tmp_path / "plugins", "jsonfile.py", "jsonfile")
    data = tmp_path / "data.json"
    data.write_text(json.dumps(DATA))
    process = subprocess.Popen(
        [str(go_programs.gohost), "-plugin", str(plugin), "-config", f"path={data}",
         "-keys", "/app", "-watch", "/app", "-watch-timeout", "15s", "-automtls"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    events: queue.Queue[dict[str, Any]] = queue.Queue()

    def read_events() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            events.put(json.loads(line))

    reader = threading.Thread(target=read_events, daemon=True)
    reader.start()
    try:
        seen: list[str] = []
        started: dict[str, Any] = {}
        deadline = time.monotonic() + 20
        while "killed" not in seen and "error" not in seen and time.monotonic() < deadline:
            if "watching" in seen:
                if started:  # once: the plugin's address speaks only TLS
                    _plaintext_refused(started["network"], started["address"])
                    started = {}
                # rewrite until the plugin's poll (50 ms) sees a change
                data.write_text(json.dumps({**DATA, "/app/port": str(time.monotonic_ns())}))
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.append(event["event"])
            if event["event"] == "started":
                started = event
        assert process.wait(10) == 0, seen
        assert seen == ["started", "values", "watching", "changed", "killed"]
    finally:
        terminate(process)
        reader.join(5)


def test_go_host_automtls_works_with_go_plugin(
    go_programs: GoPrograms, python_plugin: tuple[Path, Path]
) -> None:
    """Go on both sides (P-521 both ways) hand-shakes AutoMTLS: the baseline for the above."""
    run = _run_host(go_programs.gohost, go_programs.gomem, python_plugin[1], "-automtls")
    assert run.code == 0, run.events
    assert run.events["values"]["values"] == {
        k: v for k, v in DATA.items() if k.startswith("/app/")
    }
    assert run.events["killed"]["pid_gone"] is True
