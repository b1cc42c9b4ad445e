"""Interop with real Go: hashicorp/go-plugin 1.0.1 (Debian) on both sides of confd's protocol.

A Go database plugin (`integration/go/.../confd-database-gomem`) is run by confd, and a Go host
(`integration/go/.../gohost`, plugin.NewClient) runs the Python `testsupport/plugins/jsonfile.py`
plugin. Both programs are built once per module, offline in GOPATH mode against
/usr/share/gocode; the build cache (GOCACHE) persists under ~/.cache so reruns are quick.

AutoMTLS: go-plugin 1.0.1 makes ECDSA P-521 certificates. confd (grpcio) sees the Go plugin's
P-521 certificate and restarts it in plaintext; a Go host with AutoMTLS cannot use a Python
plugin at all (grpcio's TLS does not offer P-521 signatures, so Go sends no client certificate).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from integration.harness import CONFD, read, wait_for
from integration.servers import terminate
from testsupport.plugins import install

GO_TREE = Path(__file__).parent / "go"
GOCODE = Path("/usr/share/gocode/src")
# what the build needs -> the Debian package that provides it
GO_SOURCES = {
    "github.com/hashicorp/go-plugin": "golang-github-hashicorp-go-plugin-dev",
    "google.golang.org/grpc": "golang-google-grpc-dev",
    "google.golang.org/protobuf": "golang-google-protobuf-dev",
    "github.com/golang/protobuf": "golang-github-golang-protobuf-1-5-dev",
}
GO_PACKAGES = ("confdinterop/confd-database-gomem", "confdinterop/gohost")

DATA = {"/app/name": "demo", "/app/port": "8080", "/app/db/host": "db1", "/application": "no"}
# GetValues(["/app"]) must bring /app/db/host but not /application
TEMPLATE = (
    '{% for kv in gets("/app/*") %}{{ kv.key }}={{ kv.value }}\n{% endfor %}'
    'db={{ getv("/app/db/host") }}\napplication={{ exists("/application") }}\n'
)
EXPECTED = "/app/name=demo\n/app/port=8080\ndb=db1\napplication=False\n"


class GoPrograms(NamedTuple):
    """The built Go programs: a plugin directory holding confd-database-gomem, and gohost."""

    plugin_dir: Path
    gohost: Path


def _go_binary() -> str:
    found = shutil.which("go") or next(
        (p for p in ("/usr/lib/go/bin/go", "/usr/lib/go-1.19/bin/go") if os.path.exists(p)), None
    )
    if not found:
        pytest.fail("no Go toolchain: run `apt-get install golang-go` (or scripts/test as root)")
    return found


def _go_env() -> dict[str, str]:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "confd-go-interop"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(
        GO111MODULE="off",
        GOPATH=f"{GO_TREE}:{GOCODE.parent}",
        GOCACHE=str(cache),
        GOPROXY="off",
        GOTOOLCHAIN="local",
        GOFLAGS="",
    )
    return env


@pytest.fixture(scope="module")
def go_programs(tmp_path_factory: pytest.TempPathFactory) -> GoPrograms:
    """Build the Go plugin and host once; fail naming the apt package when sources are absent."""
    go = _go_binary()
    missing = [pkg for path, pkg in GO_SOURCES.items() if not (GOCODE / path).is_dir()]
    if missing:
        pytest.fail(f"Go sources missing under {GOCODE}: run `apt-get install {' '.join(missing)}`")
    out = tmp_path_factory.mktemp("go-bin")
    done = subprocess.run(
        [go, "build", "-o", f"{out}/", *GO_PACKAGES],
        cwd=GO_TREE, env=_go_env(), capture_output=True, text=True, timeout=300, check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"go build {' '.join(GO_PACKAGES)} failed:\n{done.stderr[-3000:]}")
    plugin_dir = out / "plugins"
    plugin_dir.mkdir()
    (out / "confd-database-gomem").rename(plugin_dir / "confd-database-gomem")
    return GoPrograms(plugin_dir, out / "gohost")


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

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CONFD_")}
        return {**base, "TMPDIR": str(self.tmpdir)}

    def onetime(self, *extra: str, path: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command("--onetime", *extra, path=path), env=self.env(),
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


def test_onetime_falls_back_to_plaintext_for_go_plugin_p521_certificate(site: Site) -> None:
    done = site.onetime()
    assert done.returncode == 0, done.stderr
    assert "plugin gomem: configuring server automatic mTLS" in done.stderr
    assert (
        "plugin 'gomem' sent a P-521 AutoMTLS certificate, which grpcio's TLS cannot verify; "
        "restarting it without AutoMTLS" in done.stderr
    )
    assert "plugin gomem has no GRPCStdio service" in done.stderr  # go-plugin 1.0.x
    # The killed P-521 plugin's socket (in $TMPDIR: go-plugin 1.0.x ignores our socket
    # directory) is removed, as is the plaintext plugin's.
    assert list(site.tmpdir.iterdir()) == []


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (["path={data}", "colour=blue"], "unknown setting \"colour\" (known: interval, path)"),
        ([], "setting 'path' is required"),
        (["path=/nonexistent/data.json"],
         "setting 'path': open /nonexistent/data.json: no such file or directory"),
        (["path={data}", "interval=soon"],
         "setting 'interval' is \"soon\", not a positive duration like 50ms"),
    ],
    ids=["unknown", "missing-path", "unreadable-path", "bad-interval"],
)
def test_onetime_bad_setting_names_the_go_plugin(
    site: Site, opts: list[str], message: str
) -> None:
    flags = [f for opt in opts for f in ("--backend-opt", opt.format(data=site.data))]
    done = site.onetime(*flags, path=False)
    assert done.returncode != 0
    assert f"plugin 'gomem': backend 'gomem': {message}" in done.stderr
    assert not site.dest.exists()


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
    return HostRun(done.returncode, events, _json_lines(done.stderr))


@pytest.fixture(scope="module")
def python_plugin(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The Python jsonfile plugin installed as an executable, and its JSON data file."""
    root = tmp_path_factory.mktemp("python-plugin")
    data = root / "data.json"
    data.write_text(json.dumps(DATA))
    return install(root / "plugins", "jsonfile.py", "jsonfile"), data


@pytest.fixture(scope="module")
def host_run(go_programs: GoPrograms, python_plugin: tuple[Path, Path]) -> HostRun:
    """gohost (plaintext) driving the Python plugin once: Configure, GetValues, Kill."""
    return _run_host(go_programs.gohost, *python_plugin)


def test_go_host_gets_values_from_python_plugin(host_run: HostRun) -> None:
    assert host_run.code == 0, host_run.events
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


def test_go_host_receives_a_watch_event_from_python_plugin(
    go_programs: GoPrograms, tmp_path: Path
) -> None:
    plugin = install(tmp_path / "plugins", "jsonfile.py", "jsonfile")
    data = tmp_path / "data.json"
    data.write_text(json.dumps(DATA))
    process = subprocess.Popen(
        [str(go_programs.gohost), "-plugin", str(plugin), "-config", f"path={data}",
         "-keys", "/app", "-watch", "/app", "-watch-timeout", "15s"],
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
        deadline = time.monotonic() + 20
        while "killed" not in seen and "error" not in seen and time.monotonic() < deadline:
            if "watching" in seen:  # rewrite until the plugin's poll (50 ms) sees a change
                data.write_text(json.dumps({**DATA, "/app/port": str(time.monotonic_ns())}))
            try:
                seen.append(events.get(timeout=0.2)["event"])
            except queue.Empty:
                continue
        assert process.wait(10) == 0, seen
        assert seen == ["started", "values", "watching", "changed", "killed"]
    finally:
        terminate(process)
        reader.join(5)


def test_go_host_automtls_cannot_reach_python_plugin(
    go_programs: GoPrograms, python_plugin: tuple[Path, Path]
) -> None:
    """go-plugin 1.0.1's P-521 client certificate is never sent: grpcio's TLS does not offer
    P-521 signatures, so the plugin refuses the connection (PEER_DID_NOT_RETURN_A_CERTIFICATE)."""
    run = _run_host(go_programs.gohost, *python_plugin, "-automtls")
    assert run.code == 1
    assert run.events["error"]["stage"] == "ping"
    assert "code = Unavailable" in run.events["error"]["error"]
    messages = [line["@message"] for line in run.log]
    assert "configuring client automatic mTLS" in messages
    assert "plugin failed to exit gracefully" in messages  # killed after go-plugin's 2 s
    assert not _alive(run.events["started"]["pid"])


def test_go_host_automtls_works_with_go_plugin(
    go_programs: GoPrograms, python_plugin: tuple[Path, Path]
) -> None:
    """Go on both sides (P-521 both ways) hand-shakes AutoMTLS: the baseline for the above."""
    run = _run_host(
        go_programs.gohost, go_programs.plugin_dir / "confd-database-gomem", python_plugin[1],
        "-automtls",
    )
    assert run.code == 0, run.events
    assert run.events["values"]["values"] == {
        k: v for k, v in DATA.items() if k.startswith("/app/")
    }
    assert run.events["killed"]["pid_gone"] is True
