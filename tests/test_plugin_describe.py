"""Self-describing plugins: the `Describe` RPC, settings checked before `Configure`,
`confd plugins describe` and `confd backends` showing a plugin's settings, and older plugins
(no `Describe`) working as before."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from confd.backends.plugin.client import PluginDatabase, PluginDatabaseError
from confd.backends.plugin.launch import LaunchOptions
from plugin_sdk import Database, Setting
from plugin_sdk.description import (
    Description,
    SettingDescription,
    check_settings,
    describe,
    from_message,
    to_message,
)
from testsupport.plugins import install

DESCRIBED = Description(
    "described",
    "a test plugin that says what it accepts",
    (
        SettingDescription("path", "str", None, "where the keys live", False, True),
        SettingDescription("retries", "int", "3", "how often to retry", False, False),
        SettingDescription("verbose", "bool", "false", "log each read", False, False),
        SettingDescription("token", "str", None, "API token", True, False),
    ),
    False,
)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "plugins"
    install(directory, "described.py", "described")
    return directory


@pytest.fixture
def opened():
    databases: list[PluginDatabase] = []
    yield databases
    for database in databases:
        database.close()


def _database(opened, plugin_dir: Path, **env: str) -> PluginDatabase:
    command = [str(plugin_dir / "confd-database-described")]
    database = PluginDatabase(LaunchOptions("described", command, env=env))
    opened.append(database)
    return database


def test_sdk_plugin_describes_itself_from_its_class(opened, plugin_dir) -> None:
    database = _database(opened, plugin_dir)
    database.configure({"path": "/srv"})
    assert database.plugin_description == DESCRIBED
    assert database.can_watch is False
    assert database.get_values(["/app"]) == {"/app/path": "/srv"}


def test_misspelled_setting_is_refused_before_configure(opened, plugin_dir, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="confd.backends.plugin")
    database = _database(opened, plugin_dir)
    with pytest.raises(PluginDatabaseError) as info:
        database.configure({"path": "/srv", "retires": "5"})
    assert str(info.value) == (
        "plugin 'described': backend 'described' has no setting 'retires' "
        "(its settings: path, retries, token, verbose)"
    )
    database.configure({"path": "/srv", "retries": "5"})  # same process, now accepted
    deadline = time.monotonic() + 3
    configured = [r for r in caplog.records if "configured-marker" in r.getMessage()]
    while not configured and time.monotonic() < deadline:
        time.sleep(0.05)
        configured = [r for r in caplog.records if "configured-marker" in r.getMessage()]
    assert len(configured) == 1, "Configure ran for the refused settings too"


def test_plugin_without_describe_keeps_working(opened, plugin_dir, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="confd.backends.plugin")
    database = _database(opened, plugin_dir, DESCRIBED_OLD="1")
    database.configure({"path": "/srv", "anything": "goes"})  # the plugin's own Configure
    assert database.plugin_description is None
    assert database.get_values(["/app"]) == {"/app/path": "/srv"}
    assert any("has no Describe (an older plugin)" in r.getMessage() for r in caplog.records)


def test_description_crosses_the_wire_unchanged() -> None:
    class Full(Database):
        name = "full"
        description = "everything"
        settings = (
            Setting("nodes", list, ["a", "b"], "servers"),
            Setting("timeout", float, 2.5),
            Setting("empty", default=""),
            Setting("password", secret=True, default="hunter2"),
        )
        can_watch = True

        def get_values(self, keys):
            return {}

    description = describe(Full)
    assert description.settings[0] == SettingDescription("nodes", "list", "a,b", "servers")
    assert description.settings[1].default == "2.5"
    assert description.settings[2].default == ""  # an empty default is still a default
    assert description.settings[3].default is None  # a secret's default is never described
    assert "hunter2" not in str(to_message(description))
    assert from_message(to_message(description)) == description


def test_check_settings_names_unknown_and_missing_settings() -> None:
    assert check_settings("described", DESCRIBED, {"path": "x", "token": "t"}) == []
    assert check_settings("described", DESCRIBED, {"colour": "1", "size": "2"}) == [
        "backend 'described' has no settings 'colour', 'size' "
        "(its settings: path, retries, token, verbose)",
        "backend 'described': setting 'path' is required",
    ]
    assert "s3cr3t" not in " ".join(check_settings("described", DESCRIBED, {"tokn": "s3cr3t"}))


# -- the commands -----------------------------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), **extra}


def test_plugins_describe_shows_settings_and_tries_configure(
    run_confd, plugin_dir: Path, tmp_path: Path
) -> None:
    result = run_confd("plugins", "describe", "described", "--plugin-dir", str(plugin_dir),
                       "--backend-opt", "path=/srv", env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "about:      a test plugin that says what it accepts\n" in out
    assert "transport:  TLS (AutoMTLS)\n" in out
    assert "watch:      no (polled every --interval)\n" in out
    assert (
        "settings:\n"
        "    path  str  required  - where the keys live\n"
        "    retries  int  default 3  - how often to retry\n"
        "    verbose  bool  default false  - log each read\n"
        "    token  str  secret  - API token\n"
    ) in out
    assert "configure:  ok (path)\n" in out
    assert "builtin-token-value" not in out + result.stderr


def test_plugins_describe_refuses_a_misspelled_setting(
    run_confd, plugin_dir: Path, tmp_path: Path
) -> None:
    result = run_confd("plugins", "describe", "described", "--plugin-dir", str(plugin_dir),
                       "--backend-opt", "path=/srv", "--backend-opt", "verbos=1",
                       env=_env(tmp_path))
    assert result.returncode == 1
    assert ("configure:  failed: backend 'described' has no setting 'verbos' (its settings: "
            "path, retries, token, verbose)") in result.stdout


def test_plugins_describe_of_an_older_plugin(run_confd, plugin_dir: Path, tmp_path: Path) -> None:
    result = run_confd("plugins", "describe", "described", "--plugin-dir", str(plugin_dir),
                       env=_env(tmp_path, DESCRIBED_OLD="1"))
    assert result.returncode == 0, result.stderr
    assert "settings:   not described (the plugin has no Describe" in result.stdout
    assert "configure:  ok (no settings)" in result.stdout


def test_onetime_refuses_a_misspelled_plugin_setting(
    run_confd, plugin_dir: Path, tmp_path: Path
) -> None:
    confdir = tmp_path / "confdir"
    (confdir / "conf.d").mkdir(parents=True)
    (confdir / "templates").mkdir()
    (confdir / "templates" / "app.tmpl").write_text('{{ getv("/app/path") }}\n')
    (confdir / "conf.d" / "app.toml").write_text(
        f'[template]\nsrc = "app.tmpl"\ndest = "{tmp_path / "app.conf"}"\nkeys = ["/app"]\n'
    )
    result = run_confd("--onetime", "--confdir", str(confdir), "--backend", "described",
                       "--plugin-dir", str(plugin_dir), "--backend-opt", "path=/srv",
                       "--backend-opt", "retires=2", env=_env(tmp_path))
    assert result.returncode == 1
    assert ("plugin 'described': backend 'described' has no setting 'retires' (its settings: "
            "path, retries, token, verbose)") in result.stderr
    assert not (tmp_path / "app.conf").exists()


def test_backends_lists_plugin_settings_and_starts_each_plugin_once(
    run_confd, plugin_dir: Path, tmp_path: Path
) -> None:
    starts = tmp_path / "starts.log"
    env = _env(tmp_path, DESCRIBED_STARTS=str(starts))
    listing = (
        f"described: a test plugin that says what it accepts (plugin "
        f"{plugin_dir / 'confd-database-described'})\n"
        "    path  str  required  - where the keys live\n"
        "    retries  int  default 3  - how often to retry\n"
    )
    for _ in range(2):
        result = run_confd("backends", "--plugin-dir", str(plugin_dir), env=env)
        assert result.returncode == 0, result.stderr
        assert listing in result.stdout
        assert "env:" in result.stdout  # the built-ins are still there
    assert starts.read_text().count("started") == 1  # the second listing used the cache
    executable = plugin_dir / "confd-database-described"
    stamp = executable.stat().st_mtime_ns + 1_000_000_000
    os.utime(executable, ns=(stamp, stamp))  # a reinstalled plugin is asked again
    assert run_confd("backends", "--plugin-dir", str(plugin_dir), env=env).returncode == 0
    assert starts.read_text().count("started") == 2
    assert "builtin-token-value" not in (tmp_path / "cache").joinpath(
        "confd", "plugin-descriptions.json").read_text()


def test_backends_shows_a_plugin_that_cannot_start(
    run_confd, tmp_path: Path
) -> None:
    plugins = tmp_path / "plugins"
    install(plugins, "misbehave.py", "broken")
    result = run_confd("backends", "--plugin-dir", str(plugins),
                       env=_env(tmp_path, MISBEHAVE="exit"))
    assert result.returncode == 0, result.stderr
    assert (f"broken: plugin {plugins / 'confd-database-broken'}, cannot describe it: plugin "
            "'broken'") in result.stdout
