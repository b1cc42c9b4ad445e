"""The confd command as users run it: flags (Go spellings too), exit codes, check, backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from confd.cli.main import normalize_argv


@pytest.fixture
def app_confdir(make_confdir, tmp_path: Path) -> Path:
    return make_confdir(
        templates={"app.tmpl": 'host={{ getv("/db/host") }}\n'},
        resources={"app.toml": f"""
            [template]
            src = "app.tmpl"
            dest = "{tmp_path}/app.conf"
            prefix = "/app"
            keys = ["/db"]
            """},
    )


@pytest.mark.parametrize(
    ("argv", "normalized"),
    [
        (["-onetime", "-backend", "env"], ["--onetime", "--backend", "env"]),
        (["-node=http://x", "-node", "y"], ["--node=http://x", "--node", "y"]),
        (["-onetime=false", "--noop=true"], ["--no-onetime", "--noop"]),
        (["-confdir", "/etc/confd", "check"], ["--confdir", "/etc/confd", "check"]),
        (["-h"], ["-h"]),
        (["exec", "-onetime", "--", "-x"], ["exec", "--onetime", "--", "-x"]),
        (["exec", "-backend", "env", "java", "-version"],
         ["exec", "--backend", "env", "java", "-version"]),
        (["--onetime", "--", "-prefix"], ["--onetime", "--", "-prefix"]),
        (["-prefix", "-weird-but-a-value", "-onetime"],
         ["--prefix", "-weird-but-a-value", "--onetime"]),
        (["-client-insecure=true", "-basic-auth"], ["--client-insecure", "--basic-auth"]),
        (["etcd", "-n", "http://x", "--onetime"],
         ["--backend", "etcd", "-n", "http://x", "--onetime"]),  # the fork's spelling
        (["--onetime", "consul", "--node", "a"], ["--onetime", "--backend", "consul", "--node",
                                                  "a"]),
        (["-n", "env"], ["-n", "env"]),  # a node named like a backend is a value
    ],
)
def test_normalize_argv_accepts_go_spelling(argv: list[str], normalized: list[str]) -> None:
    assert normalize_argv(argv) == normalized


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("-tabel", "no such flag '-tabel' (did you mean -table?)"),
        ("-srv-recrd=x", "no such flag '-srv-recrd' (did you mean -srv-record?)"),
        ("-zzzz", "no such flag '-zzzz'"),
    ],
)
def test_a_flag_go_confd_never_had_is_named_whole(run_confd, flag: str, message: str) -> None:
    result = run_confd("-onetime", flag, "-backend", "env")
    assert result.returncode == 2
    assert message in result.stderr


def test_onetime_renders_and_exits_zero(run_confd, app_confdir: Path, tmp_path: Path) -> None:
    result = run_confd("-onetime", "-backend", "env", f"-confdir={app_confdir}",
                       env={"APP_DB_HOST": "db1"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "app.conf").read_text() == "host=db1\n"
    assert f"INFO Target config {tmp_path / 'app.conf'} has been updated" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "host"),
    [
        ([], {}, "from-toml"),
        ([], {"CONFD_BACKEND_OPT_FILE": "{env}"}, "from-env"),
        (["--backend-opt", "file={flag}"], {"CONFD_BACKEND_OPT_FILE": "{env}"}, "from-flag"),
        (["--file", "{flag}"], {"CONFD_FILE": "{env}"}, "from-flag"),
        ([], {"CONFD_FILE": "{env}"}, "from-env"),
    ],
    ids=["toml", "env-opt", "flag-opt-over-env", "flag-over-env", "env-file"],
)
def test_settings_precedence_end_to_end(
    run_confd, app_confdir: Path, tmp_path: Path, args: list[str], env: dict, host: str
) -> None:
    files = {}
    for layer in ("toml", "env", "flag"):
        files[layer] = tmp_path / f"{layer}.yaml"
        files[layer].write_text(f"app:\n  db:\n    host: from-{layer}\n")
    (app_confdir / "confd.toml").write_text(
        f'backend = "file"\nonetime = true\n[backends.file]\nfile = "{files["toml"]}"\n')
    fill = {k: str(v) for k, v in files.items()}
    result = run_confd(f"--confdir={app_confdir}", *[a.format(**fill) for a in args],
                       env={k: v.format(**fill) for k, v in env.items()})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "app.conf").read_text() == f"host={host}\n"


def test_failed_resources_give_exit_one_and_a_count(
    run_confd, make_confdir, tmp_path: Path
) -> None:
    confdir = make_confdir(
        templates={"ok.tmpl": 'x={{ getv("/app/x") }}\n', "bad.tmpl": '{{ getv("/app/nope") }}\n'},
        resources={
            "a.toml": f'[template]\nsrc = "ok.tmpl"\ndest = "{tmp_path}/a"\nkeys = ["/app"]\n',
            "b.toml": f'[template]\nsrc = "bad.tmpl"\ndest = "{tmp_path}/b"\nkeys = ["/app"]\n',
            "c.toml": '[template]\nsrc = "ok.tmpl"\n',
        },
    )
    result = run_confd("--onetime", "--backend", "env", "--confdir", str(confdir),
                       env={"APP_X": "1"})
    assert result.returncode == 1
    assert "ERROR 2 of 3 resources failed" in result.stderr
    assert "c.toml: template dest is required" in result.stderr
    assert "b.toml" in result.stderr
    assert (tmp_path / "a").read_text() == "x=1\n"
    assert not (tmp_path / "b").exists()
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("missing", ["confdir", "conf.d"])
def test_missing_confdir_is_an_error_without_traceback(
    run_confd, tmp_path: Path, missing: str
) -> None:
    if missing == "conf.d":
        (tmp_path / "confdir").mkdir()
    result = run_confd("--onetime", "--backend", "env", "--confdir", str(tmp_path / "confdir"))
    assert result.returncode == 1
    assert str(tmp_path / "confdir") in result.stderr
    assert "Traceback" not in result.stderr


def test_noop_prints_diff_and_changes_nothing(run_confd, app_confdir: Path, tmp_path: Path
                                              ) -> None:
    (tmp_path / "app.conf").write_text("host=old\n")
    result = run_confd("--onetime", "--noop", "--backend", "env", "--confdir", str(app_confdir),
                       env={"APP_DB_HOST": "new"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "app.conf").read_text() == "host=old\n"
    assert f"+++ {tmp_path / 'app.conf'}" in result.stdout
    assert "-host=old\n+host=new" in result.stdout


def test_json_log_format(run_confd, app_confdir: Path, tmp_path: Path) -> None:
    import json

    result = run_confd("--onetime", "--backend", "env", "--confdir", str(app_confdir),
                       "--log-format", "json", env={"APP_DB_HOST": "h"})
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert {"time", "level", "msg"} <= set(lines[0])
    assert any(e["msg"] == f"Target config {tmp_path / 'app.conf'} has been updated"
               for e in lines)


def test_unknown_backend_is_one_clear_line(run_confd, app_confdir: Path) -> None:
    result = run_confd("--onetime", "--backend", "nosuchdb", "--confdir", str(app_confdir),
                       env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "nosuchdb" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_accepts_a_good_confdir(run_confd, app_confdir: Path, tmp_path: Path) -> None:
    result = run_confd("check", "--confdir", str(app_confdir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 template resource OK" in result.stdout


def test_check_lists_every_problem(run_confd, make_confdir, tmp_path: Path) -> None:
    confdir = make_confdir(
        templates={"broken.tmpl": "{% if %}\n", "ok.tmpl": "x\n"},
        resources={
            "a.toml": f'[template]\nsrc = "broken.tmpl"\ndest = "{tmp_path}/a"\n',
            "b.toml": '[template]\nsrc = "missing.tmpl"\ndest = "/tmp/b"\n',
            "c.toml": '[template]\nsrc = "ok.tmpl"\ndest = "/no/such/dir/c"\n',
            "d.toml": "[template\n",
        },
    )
    result = run_confd("check", "-confdir", str(confdir))
    assert result.returncode == 1
    out = result.stdout
    assert "4 problems found" in out
    for name, words in [("a.toml", "broken.tmpl"), ("b.toml", "does not exist"),
                        ("c.toml", "/no/such/dir does not exist"), ("d.toml", "invalid TOML")]:
        assert any(name in line and words in line for line in out.splitlines()), (name, out)


def test_backends_lists_builtins_with_settings(run_confd) -> None:
    result = run_confd("backends")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in ("env:", "file:", "etcd:"):
        assert name in out
    assert "    file  list" in out
    assert "    password  str" in out and "secret" in out


def test_version(run_confd) -> None:
    result = run_confd("--version")
    assert result.returncode == 0
    assert "confd, version 0.1.0" in result.stdout


def test_bad_flag_value_is_a_usage_error(run_confd) -> None:
    result = run_confd("--log-level", "loud", "--onetime")
    assert result.returncode == 2
    assert "loud" in result.stderr


def test_interval_mode_renders_until_sigterm(make_confdir, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    from testsupport.fixtures import CONFD

    confdir = make_confdir(
        templates={"app.tmpl": 'host={{ getv("/db/host") }}\n'},
        resources={"app.toml": f'[template]\nsrc = "app.tmpl"\ndest = "{tmp_path}/app.conf"\n'
                               'keys = ["/db"]\n'},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFD_")}
    env["DB_HOST"] = "h"
    proc = subprocess.Popen([str(CONFD), "--backend", "env", "--interval", "1", "--confdir",
                             str(confdir)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "app.conf").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "app.conf").read_text() == "host=h\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_common_flags_a_backend_does_not_use_are_ignored_with_one_warning(
    run_confd, app_confdir: Path, tmp_path: Path
) -> None:
    result = run_confd("-onetime", "-backend", "env", f"-confdir={app_confdir}",
                       "-node", "127.0.0.1:2379", "-scheme", "https",
                       env={"APP_DB_HOST": "db1"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "app.conf").read_text() == "host=db1\n"
    warnings = [line for line in result.stderr.splitlines() if "does not use" in line]
    assert len(warnings) == 1, result.stderr
    assert "backend env does not use --node, --scheme; ignored" in warnings[0]


def test_a_bad_backend_setting_is_reported_once_not_per_resource(
    run_confd, make_confdir, tmp_path: Path
) -> None:
    resources = {
        f"r{i}.toml": f'[template]\nsrc = "t.tmpl"\ndest = "{tmp_path}/r{i}"\nkeys = ["/a"]\n'
        for i in range(3)
    }
    confdir = make_confdir(templates={"t.tmpl": "x\n"}, resources=resources)
    result = run_confd("--onetime", "--backend", "env", "--confdir", str(confdir),
                       "--backend-opt", "bogus=1")
    assert result.returncode == 1
    assert result.stderr.count("has no setting 'bogus'") == 1, result.stderr
    assert result.stderr.count("backend 'env' is unavailable (its error is logged above)") == 2
    assert "3 of 3 resources failed" in result.stderr


def test_the_forks_backend_subcommand_spelling_runs(run_confd, app_confdir: Path,
                                                    tmp_path: Path) -> None:
    result = run_confd("env", "--onetime", f"--confdir={app_confdir}", env={"APP_DB_HOST": "db9"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "app.conf").read_text() == "host=db9\n"


def test_help_lists_the_help_and_version_options_and_usage_errors_point_to_it(run_confd) -> None:
    for flag in ("-h", "--help"):
        result = run_confd(flag)
        assert result.returncode == 0
        assert "  --version  " in result.stdout and "Show the version and exit." in result.stdout
        assert "  -h, --help  " in result.stdout
        assert "Show this message and exit." in result.stdout
    result = run_confd("--no-such-flag")
    assert result.returncode == 2
    assert "Try 'confd --help' for help." in result.stderr
