"""Security properties a user relies on (see SECURITY.md), through the real `confd` command.

Store values are data: never template code, never shell. Sandbox escapes from templates are
refused end to end. Passwords, tokens and key values never reach the log at any level, in
either format, on success or failure. A restarted plugin gets a fresh private socket directory,
and a built-in served out of process refuses clients without the AutoMTLS certificate.
tests/test_render.py and tests/test_plugin_protocol.py hold the unit-level cases.
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from confd.backends.plugin.client import PluginDatabase
from confd.backends.plugin.host import open_plugin
from confd.backends.plugin.launch import LaunchOptions
from confd.config.settings import Settings
from testsupport.plugins import install

SECRET_VALUE = "s3cr3t-VALUE-7f2c"
PASSWORD = "hunter2-PASSWORD-91ab"
TOKEN = "tok-TOKEN-55e0d1"
SECRETS = (SECRET_VALUE, PASSWORD, TOKEN)


def assert_no_secret(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output, f"{secret!r} leaked into confd's output:\n{output}"


def write_confdir(base: Path, templates: dict[str, str], resources: dict[str, str]) -> Path:
    confdir = base / "confdir"
    (confdir / "templates").mkdir(parents=True)
    (confdir / "conf.d").mkdir()
    for name, text in templates.items():
        (confdir / "templates" / name).write_text(text)
    for name, text in resources.items():
        (confdir / "conf.d" / name).write_text(text)
    return confdir


def resource(name: str, dest: Path, extra: str = "", keys: str = '["/app"]') -> str:
    return f'[template]\nsrc = "{name}.tmpl"\ndest = "{dest}"\nkeys = {keys}\n{extra}'


# -- values are data ------------------------------------------------------------------------

HOSTILE_VALUES = {
    "/app/tmpl": "{{ 7*7 }}",
    "/app/block": "{% for x in range(3) %}{{ x }}{% endfor %}",
    "/app/subst": "$(touch MARKER)",
    "/app/backtick": "`touch MARKER`",
    "/app/semicolon": "x; touch MARKER; #",
    "/app/quote": "'\"; touch MARKER; echo \"'",
    "/app/dotsrc": "{{.src}} {{.dest}}",
}


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    marker = tmp_path / "pwned"
    values = {k: v.replace("MARKER", str(marker)) for k, v in HOSTILE_VALUES.items()}
    (tmp_path / "values.json").write_text(json.dumps(_nest(values)))
    return marker, values


def _nest(flat: dict[str, str]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.strip("/").split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def test_template_syntax_in_values_is_rendered_verbatim(
    tmp_path: Path, run_confd, hostile: tuple[Path, dict[str, str]]
) -> None:
    marker, values = hostile
    dest = tmp_path / "out.conf"
    template = "".join(f'{key}={{{{ getv("{key}") }}}}\n' for key in values)
    confdir = write_confdir(tmp_path, {"app.tmpl": template}, {"app.toml": resource("app", dest)})
    result = run_confd("--onetime", "--backend", "file", "--file", str(tmp_path / "values.json"),
                       "--confdir", str(confdir))
    assert result.returncode == 0, result.stderr
    assert dest.read_text() == "".join(f"{key}={value}\n" for key, value in values.items())
    assert "49" not in dest.read_text()
    assert not marker.exists()


def test_shell_syntax_in_values_never_runs(
    tmp_path: Path, run_confd, hostile: tuple[Path, dict[str, str]]
) -> None:
    """Values land in the file check_cmd and reload_cmd read, never on their command line."""
    marker, values = hostile
    dest = tmp_path / "out dir; touch pwned" / "app $(touch pwned).conf"
    dest.parent.mkdir()
    template = "".join(f'{{{{ getv("{key}") }}}}\n' for key in values)
    copy = tmp_path / "copy.conf"
    extra = (
        'check_cmd = "sh -n {{.src}} || true; test -s {{.src}}"\n'
        f'reload_cmd = "cp {{{{.dest}}}} {copy}"\n'
    )
    confdir = write_confdir(tmp_path, {"app.tmpl": template},
                            {"app.toml": resource("app", dest, extra)})
    result = run_confd("--onetime", "--backend", "file", "--file", str(tmp_path / "values.json"),
                       "--confdir", str(confdir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert copy.read_text() == dest.read_text() == "".join(f"{v}\n" for v in values.values())
    assert not marker.exists()
    assert not (tmp_path / "pwned").exists()


# -- the sandbox, end to end ----------------------------------------------------------------

ESCAPES = [
    "cycler.__init__.__globals__.os.system('touch MARKER')",
    "joiner.__init__.__globals__['os'].popen('touch MARKER').read()",
    "lipsum.__globals__['os'].system('touch MARKER')",
    "''.__class__.__mro__[1].__subclasses__()",
    "''|attr('__class__')|attr('__mro__')",
    "self.__init__.__globals__.__builtins__.open('MARKER', 'w').write('x')",
    "getenv.__globals__['os'].system('touch MARKER')",
    "json.__globals__['json'].__loader__",
    "get('/app/port').__class__.__init__.__globals__",
    "range.__self__.__import__('os').system('touch MARKER')",
    "'{0.__class__.__init__.__globals__}'.format(cycler)",
    "'%s'|format(cycler.__init__)",
    "namespace.__init__.__globals__",
    "datetime().__class__.__init__.__globals__",
    "(getv|attr('__globals__'))['os']",
    "ls.__self__",
]


@pytest.mark.parametrize("expression", ESCAPES)
def test_sandbox_escape_fails_the_resource_and_runs_nothing(
    tmp_path: Path, run_confd, expression: str
) -> None:
    marker = tmp_path / "escaped"
    dest, good = tmp_path / "evil.conf", tmp_path / "good.conf"
    confdir = write_confdir(
        tmp_path,
        {"evil.tmpl": "line\n{{ " + expression.replace("MARKER", str(marker)) + " }}\n",
         "good.tmpl": "ok\n"},
        {"evil.toml": resource("evil", dest), "good.toml": resource("good", good)},
    )
    result = run_confd("--onetime", "--backend", "env", "--confdir", str(confdir),
                       env={"APP_PORT": "80"})
    assert result.returncode == 1, result.stderr
    # ls.__self__ also parses as Go (an identifier with a field chain): Go adds the column
    where = re.escape(str(confdir / "templates" / "evil.tmpl"))
    assert re.search(rf"{where}:2:(\d+:)? ", result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
    assert not dest.exists()
    assert good.read_text() == "ok\n"


GO_ESCAPES = [
    '(getv "/app/port").__class__',
    "(datetime).__class__.__init__.__globals__",
    '(get "/app/port")._asdict',
    'call (index (json "{}") "__class__")',
    '(get "/app/port").Key.upper',
]


@pytest.mark.parametrize("expression", GO_ESCAPES)
def test_go_templates_reach_no_python_attribute(tmp_path: Path, run_confd, expression: str) -> None:
    dest = tmp_path / "evil.conf"
    confdir = write_confdir(
        tmp_path, {"evil.tmpl": "line\n{{ " + expression + " }}\n"},
        {"evil.toml": resource("evil", dest, 'template_syntax = "go"\n')},
    )
    result = run_confd("--onetime", "--backend", "env", "--confdir", str(confdir),
                       env={"APP_PORT": "80"})
    where = re.escape(str(confdir / "templates" / "evil.tmpl"))
    assert result.returncode == 1, result.stderr
    assert re.search(rf"{where}:2:\d+: ", result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert not dest.exists()


# -- nothing secret in the log --------------------------------------------------------------

LEAKY_TEMPLATES = {
    "plain": '{{ getv("/app/secret") }}\n',
    "atoi": '{{ atoi(getv("/app/secret")) }}\n',
    "parsebool": '{{ parseBool(getv("/app/secret")) }}\n',
    "json": '{{ json(getv("/app/secret")) }}\n',
    "jsonarray": '{{ jsonArray(getv("/app/secret")) }}\n',
    "base64": '{{ base64Decode(getv("/app/secret")) }}\n',
    "arith": '{{ add(getv("/app/secret"), 1) }}\n',
    "concat": '{{ getv("/app/secret") + 1 }}\n',
    "attr": '{{ getv("/app/secret").nope }}\n',
    "lookup": '{{ json("{}")[getv("/app/secret")] }}\n',
    "dictattr": '{{ map("a", 1)[getv("/app/secret")] }}\n',
    "missing": '{{ getv("/app/" ~ getv("/app/secret")) }}\n',
    "checkfail": '{{ getv("/app/secret") }}\n',
}


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_values_never_reach_the_log_even_when_templates_fail(
    tmp_path: Path, run_confd, log_format: str
) -> None:
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"app": {"secret": SECRET_VALUE}}))
    resources = {
        f"{name}.toml": resource(name, tmp_path / f"{name}.conf",
                                 'check_cmd = "false"\n' if name == "checkfail" else "")
        for name in LEAKY_TEMPLATES
    }
    templates = {f"{name}.tmpl": text for name, text in LEAKY_TEMPLATES.items()}
    confdir = write_confdir(tmp_path, templates, resources)
    result = run_confd("--onetime", "--log-level", "debug", "--log-format", log_format,
                       "--backend", "file", "--file", str(values), "--confdir", str(confdir))
    assert result.returncode == 1
    assert f"{len(LEAKY_TEMPLATES) - 1} of {len(LEAKY_TEMPLATES)} resources failed" in result.stderr
    assert (tmp_path / "plain.conf").read_text() == SECRET_VALUE + "\n"
    for name in LEAKY_TEMPLATES:
        if name != "plain":
            assert f"{name}.tmpl" in result.stderr or f"{name}.conf" in result.stderr, name
    assert "lookup.tmpl:1: 'dict object' has no attribute '<value hidden>'" in result.stderr
    assert "missing.tmpl:1: key " in result.stderr and "/app/<value hidden>" in result.stderr
    assert_no_secret(result.stdout + result.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["--backend", "etcd", "--node", "http://127.0.0.1:9", "--username", "u",
         "--password", PASSWORD],
        ["--backend", "consul", "--node", "127.0.0.1:9", "--backend-opt", f"token={TOKEN}"],
        ["--backend", "redis", "--node", "127.0.0.1:9", "--password", PASSWORD],
        ["--backend", "env", "--backend-opt", f"token={TOKEN}"],
        ["--backend", "env", "--isolate", "--backend-opt", f"password={PASSWORD}"],
    ],
    ids=["etcd-down", "consul-down", "redis-down", "env-unknown-setting", "isolated-env"],
)
def test_credentials_never_appear_in_backend_errors(tmp_path: Path, run_confd, args) -> None:
    confdir = write_confdir(tmp_path, {"app.tmpl": "x\n"},
                            {"app.toml": resource("app", tmp_path / "app.conf")})
    result = run_confd("--onetime", "--log-level", "debug", *args, "--confdir", str(confdir),
                       timeout=90)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert_no_secret(output)


def test_backends_listing_hides_secret_defaults(run_confd) -> None:
    result = run_confd("backends", env={"CONFD_PASSWORD": PASSWORD})
    assert result.returncode == 0
    assert "secret" in result.stdout
    assert_no_secret(result.stdout + result.stderr)


# -- plugin transport -------------------------------------------------------------------------


def _socket_dir(database: PluginDatabase) -> Path:
    assert database.process is not None and database.process.handshake is not None
    return Path(database.process.handshake.address).parent


def test_restarted_plugin_gets_a_fresh_private_socket_directory(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    install(plugins, "jsonfile.py", "jsonfile")
    store = tmp_path / "store.json"
    store.write_text(json.dumps({"/app/a": "1"}))
    database = PluginDatabase(
        LaunchOptions("jsonfile", [str(plugins / "confd-database-jsonfile")])
    )
    try:
        database.configure({"path": str(store)})
        first_dir, first_pid = _socket_dir(database), database.process.pid
        os.kill(first_pid, 9)
        assert database.get_values(["/app"]) == {"/app/a": "1"}
        second_dir = _socket_dir(database)
        assert database.process.pid != first_pid
        assert second_dir != first_dir
        assert stat.S_IMODE(second_dir.stat().st_mode) == 0o700
        assert second_dir.stat().st_uid == os.geteuid()
        deadline = time.monotonic() + 5
        while first_dir.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not first_dir.exists(), "the dead plugin's socket directory was left behind"
    finally:
        database.close()


def test_isolated_builtin_refuses_clients_without_the_host_certificate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APP_X", "1")
    database = open_plugin("env", {}, Settings(isolate=True))
    try:
        process = database.process
        assert process.tls, "the out-of-process built-in did not use AutoMTLS"
        target = process.handshake.target
        request = health_pb2.HealthCheckRequest(service="plugin")
        outcome: list[BaseException] = []

        def probe() -> None:
            channel = grpc.insecure_channel(target)
            try:
                health_pb2_grpc.HealthStub(channel).Check(request, timeout=2)
            except grpc.RpcError as exc:
                outcome.append(exc)
            finally:
                channel.close()

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join(10)
        assert outcome and outcome[0].code() in (
            grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED
        )
        assert database.get_values(["/app"]) == {"/app/x": "1"}
    finally:
        database.close()
