"""`confd render --data` (templates tested from a data file, nothing written, no command run,
`--expect` golden files) and the fork's `--check-config`, `--validate [--mock-data]` and
`--resource` spellings."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def confdir(make_confdir, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return make_confdir(
        templates={
            "app.tmpl": 'host: {{ getv("/db/host") }}\nport: {{ getv("/db/port") }}\n',
            "web.tmpl": '{% for u in getvs("/upstream/*") %}server {{ u }};\n{% endfor %}',
            "mock.tmpl": 'name={{ name }} port={{ port }}\n',
        },
        resources={
            "app.toml": f"""
                [template]
                src = "app.tmpl"
                dest = "{out}/app.yaml"
                prefix = "/app"
                keys = ["/db"]
                output_format = "yaml"
                check_cmd = "touch {tmp_path}/checked"
                reload_cmd = "touch {tmp_path}/reloaded"
                """,
            "web.toml": f"""
                [template]
                src = "web.tmpl"
                dest = "{out}/web.conf"
                prefix = "/web"
                keys = ["/upstream"]
                """,
        },
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.yaml"
    path.write_text("app:\n  db:\n    host: db1\n    port: 5432\n"
                    "web:\n  upstream:\n    - 10.0.0.1\n    - 10.0.0.2\n")
    return path


def test_render_prints_one_resource_and_writes_nothing(
    run_confd, confdir: Path, data: Path, tmp_path: Path
) -> None:
    result = run_confd("render", "--data", str(data), "--confdir", str(confdir), "app")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "host: db1\nport: 5432\n"
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "checked").exists() and not (tmp_path / "reloaded").exists()


def test_render_all_resources_with_headers(run_confd, confdir: Path, data: Path) -> None:
    result = run_confd("render", "--data", str(data), "--confdir", str(confdir))
    assert result.returncode == 0, result.stderr
    assert "==> app.toml (" in result.stdout and "==> web.toml (" in result.stdout
    assert "server 10.0.0.1;\nserver 10.0.0.2;\n" in result.stdout


def test_render_missing_key_fails_naming_resource_and_key(
    run_confd, confdir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "partial.json"
    data.write_text('{"app": {"db": {"host": "db1"}}}')
    result = run_confd("render", "--data", str(data), "--confdir", str(confdir), "app.toml")
    assert result.returncode == 1
    assert "app.toml" in result.stderr and 'key "/db/port" not found' in result.stderr


def test_render_checks_output_format(run_confd, confdir: Path, tmp_path: Path) -> None:
    data = tmp_path / "bad.yaml"
    data.write_text("app:\n  db:\n    host: 'a: b: c'\n    port: 1\n")
    result = run_confd("render", "--data", str(data), "--confdir", str(confdir), "app")
    assert result.returncode == 1
    assert "output is not valid YAML at line 1" in result.stderr


def test_render_expect_compares_with_golden_files(
    run_confd, confdir: Path, data: Path, tmp_path: Path
) -> None:
    golden = tmp_path / "golden"
    golden.mkdir()
    (golden / "app.yaml").write_text("host: db1\nport: 5432\n")
    (golden / "web.conf").write_text("server 10.0.0.1;\n")
    result = run_confd("render", "--data", str(data), "--confdir", str(confdir),
                       "--expect", str(golden))
    assert result.returncode == 1
    assert "ok: app.toml matches" in result.stdout
    assert "+server 10.0.0.2;" in result.stdout
    assert "web.toml: output differs from" in result.stderr
    (golden / "web.conf").write_text("server 10.0.0.1;\nserver 10.0.0.2;\n")
    again = run_confd("render", "--data", str(data), "--confdir", str(confdir),
                      "--expect", str(golden))
    assert again.returncode == 0, again.stdout + again.stderr


def test_render_unknown_resource_names_the_known_ones(run_confd, confdir: Path, data: Path) -> None:
    result = run_confd("render", "--data", str(data), "--confdir", str(confdir), "nope")
    assert result.returncode == 1
    assert "no template resource 'nope'" in result.stderr and "app.toml, web.toml" in result.stderr


def test_fork_check_config_with_resource(run_confd, make_confdir, tmp_path: Path) -> None:
    confdir = make_confdir(
        templates={"good.tmpl": "x\n", "bad.tmpl": "{% if %}\n"},
        resources={
            "good.toml": f'[template]\nsrc = "good.tmpl"\ndest = "{tmp_path}/g"\n',
            "bad.toml": f'[template]\nsrc = "bad.tmpl"\ndest = "{tmp_path}/b"\n',
        },
    )
    assert run_confd("--check-config", "--confdir", str(confdir)).returncode == 1
    only_good = run_confd("-check-config", "-resource", "good.toml", "--confdir", str(confdir))
    assert only_good.returncode == 0, only_good.stdout
    assert "1 template resource OK" in only_good.stdout
    validate = run_confd("--validate", "--resource", "bad", "--confdir", str(confdir))
    assert validate.returncode == 1 and "bad.tmpl" in validate.stdout


def test_fork_validate_with_mock_data(run_confd, make_confdir, tmp_path: Path) -> None:
    confdir = make_confdir(
        templates={"app.tmpl": '{"name": "{{ name }}", "port": {{ port }}}\n'},
        resources={"app.toml": f'[template]\nsrc = "app.tmpl"\ndest = "{tmp_path}/a.json"\n'
                               'output_format = "json"\n'},
    )
    mock = tmp_path / "mock.json"
    mock.write_text('{"name": "myapp", "port": 8080}')
    result = run_confd("--validate", "--mock-data", str(mock), "--confdir", str(confdir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"OK: {confdir / 'conf.d' / 'app.toml'}"
    assert not (tmp_path / "a.json").exists()
    mock.write_text('{"name": "my\\"app", "port": 8080}')
    broken = run_confd("--validate", "--mock-data", str(mock), "--confdir", str(confdir))
    assert broken.returncode == 1 and "output is not valid JSON" in broken.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--preflight", "--check-config"], "give one of --check-config, --preflight and --validate"),
    (["--mock-data", "x.json"], "give one of"),
    (["--check-config", "--mock-data", "x.json"], "--mock-data goes with --validate"),
    (["--check-config", "check"], "commands of their own"),
])
def test_fork_mode_flags_misused(run_confd, args: list[str], message: str) -> None:
    result = run_confd(*args)
    assert result.returncode == 2 and message in result.stderr
