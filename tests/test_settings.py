"""Settings precedence (flags > CONFD_* > confd.toml > defaults) and backend config maps."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from confd.backends.config import backend_config
from confd.backends.pool import open_database
from confd.config.settings import load_settings
from confd.errors import BackendError, ConfigError


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    (tmp_path / "confd.toml").write_text(
        'backend = "file"\n'
        'log-level = "debug"\n'
        'nodes = ["http://toml:2379"]\n'
        'interval = 30\n'
        'sync-only = true\n'
        'client_cakeys = "/toml/ca.pem"\n'
        '[backends.etcd]\n'
        'timeout = 7\n'
        'username = "toml-user"\n'
        '[backends.file]\n'
        'file = ["/a.yaml", "/b.yaml"]\n'
    )
    return tmp_path


@pytest.mark.parametrize(
    ("flags", "env", "backend", "nodes"),
    [
        ({}, {}, "file", ["http://toml:2379"]),
        ({}, {"CONFD_BACKEND": "redis", "CONFD_NODE": "a:1,b:2"}, "redis", ["a:1", "b:2"]),
        ({"backend": "etcd", "nodes": ["flag:1"]}, {"CONFD_BACKEND": "redis", "CONFD_NODE": "x"},
         "etcd", ["flag:1"]),
    ],
    ids=["toml", "env-over-toml", "flag-over-env"],
)
def test_precedence(confdir: Path, flags: dict, env: dict, backend: str, nodes: list) -> None:
    settings = load_settings({"confdir": str(confdir), **flags}, env)
    assert (settings.backend, settings.nodes) == (backend, nodes)


def test_defaults_without_any_config(tmp_path: Path) -> None:
    settings = load_settings({"confdir": str(tmp_path)}, {})
    assert (settings.backend, settings.interval, settings.log_level, settings.prefix) == (
        "etcd", 600, "info", "")
    assert settings.source("backend") == "default"


def test_toml_dash_and_underscore_names_and_go_aliases(confdir: Path) -> None:
    settings = load_settings({"confdir": str(confdir)}, {})
    assert settings.log_level == "debug"
    assert settings.sync_only is True
    assert settings.interval == 30
    assert settings.client_ca_keys == "/toml/ca.pem"


def test_plugin_start_timeout_layers(tmp_path: Path) -> None:
    (tmp_path / "confd.toml").write_text("plugin_start_timeout = 4\n")
    assert load_settings({"confdir": str(tmp_path)}, {}).plugin_start_timeout == 4.0
    env = {"CONFD_PLUGIN_START_TIMEOUT": "2.5"}
    assert load_settings({"confdir": str(tmp_path)}, env).plugin_start_timeout == 2.5
    flags = {"confdir": str(tmp_path), "plugin_start_timeout": 1.5}
    assert load_settings(flags, env).plugin_start_timeout == 1.5


def test_confdir_from_env_locates_confd_toml(confdir: Path) -> None:
    assert load_settings({}, {"CONFD_CONFDIR": str(confdir)}).backend == "file"


def test_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file .*nope.toml does not exist"):
        load_settings({"config_file": str(tmp_path / "nope.toml")}, {})


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "confd.toml").write_text('backend = "env"\nprefix = /x\n')
    with pytest.raises(ConfigError, match=r"confd.toml: invalid TOML: .*line 2"):
        load_settings({"confdir": str(tmp_path)}, {})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CONFD_INTERVAL": "soon"}, "CONFD_INTERVAL: interval must be a whole number"),
        ({"CONFD_ONETIME": "maybe"}, "CONFD_ONETIME: onetime must be true or false"),
        ({"CONFD_LOG_FORMAT": "xml"},
         "CONFD_LOG_FORMAT: log_format 'xml' is not one of text, json"),
        ({"CONFD_PLUGIN_START_TIMEOUT": "0"},
         "CONFD_PLUGIN_START_TIMEOUT: plugin_start_timeout must be a positive number"),
    ],
)
def test_bad_environment_values_name_the_variable(
    tmp_path: Path, env: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({"confdir": str(tmp_path)}, env)


def test_unknown_toml_key_is_warned(tmp_path: Path, confd_log: io.StringIO) -> None:
    (tmp_path / "confd.toml").write_text('backnd = "env"\n')
    load_settings({"confdir": str(tmp_path)}, {})
    expected = f"WARNING {tmp_path / 'confd.toml'}: unknown key 'backnd' ignored"
    assert expected in confd_log.getvalue()


def test_backend_config_layers(confdir: Path) -> None:
    settings = load_settings(
        {"confdir": str(confdir), "backend": "etcd", "username": "flag-user"},
        {"CONFD_BACKEND_OPT_TIMEOUT": "9", "CONFD_PASSWORD": "pw"},
        flag_backend_opts={"dial_timeout": "2"},
    )
    assert backend_config(settings, "etcd").config == {
        "nodes": "http://toml:2379",  # top-level confd.toml
        "client_ca_keys": "/toml/ca.pem",
        "timeout": "9",  # env option beats [backends.etcd]
        "username": "flag-user",  # flag beats [backends.etcd]
        "password": "pw",
        "dial_timeout": "2",
    }
    # a table for another backend applies to that backend only, without the common flags
    assert backend_config(settings, "file").config == {"file": "/a.yaml,/b.yaml"}


def test_common_flags_reach_a_backend_selected_by_its_go_alias(tmp_path: Path) -> None:
    # Go confd's `-backend etcdv3 -node URL`: the node reaches the etcd backend
    settings = load_settings({"confdir": str(tmp_path), "backend": "etcdv3",
                              "nodes": ["http://10.0.0.1:2379"], "username": "u"}, {})
    assert backend_config(settings, "etcd").config == {"nodes": "http://10.0.0.1:2379",
                                                       "username": "u"}


def test_unset_common_flags_are_not_passed(tmp_path: Path) -> None:
    settings = load_settings({"confdir": str(tmp_path), "backend": "env"}, {})
    assert backend_config(settings, "env").config == {}


def test_open_database_builds_a_configured_builtin(tmp_path: Path) -> None:
    settings = load_settings({"confdir": str(tmp_path), "backend": "file",
                              "file": [str(tmp_path / "v.yaml")]}, {})
    (tmp_path / "v.yaml").write_text("app:\n  port: 80\n")
    database = open_database(settings)
    try:
        assert database.get_values(["/app"]) == {"/app/port": "80"}
    finally:
        database.close()


def test_unknown_backend_without_plugin_is_a_clear_error(tmp_path: Path) -> None:
    settings = load_settings({"confdir": str(tmp_path), "backend": "nosuchdb",
                              "plugin_dirs": [str(tmp_path)]}, {"PATH": str(tmp_path)})
    with pytest.raises(BackendError, match="nosuchdb"):
        open_database(settings)


def test_bad_backend_setting_names_backend_and_setting(tmp_path: Path) -> None:
    settings = load_settings({"confdir": str(tmp_path), "backend": "env"}, {},
                             flag_backend_opts={"bogus": "1"})
    with pytest.raises(BackendError, match="backend 'env' has no setting 'bogus'"):
        open_database(settings)


def test_the_settings_table_in_the_docs_is_generated_from_the_options() -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "gen-settings-doc"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_every_option_is_a_flag_an_environment_variable_and_a_toml_key(tmp_path: Path) -> None:
    from confd.cli.main import cli
    from confd.config.options import OPTIONS, Duration

    flags = {opt for param in cli.params for opt in getattr(param, "opts", ())}
    for option in OPTIONS:
        assert option.long_flag in flags
        value = "2" if option.type in (int, float, Duration) or option.name == "wait" else "x"
        if option.type is bool:
            value = "true"
        if option.choices:
            value = option.choices[-1]
        if option.name in ("config_file", "confdir"):
            value = str(tmp_path / "confd.toml") if option.name == "config_file" else str(tmp_path)
            (tmp_path / "confd.toml").touch()
        settings = load_settings({}, {"CONFD_CONFDIR": str(tmp_path), option.env_names[0]: value})
        assert settings.source(option.name) == "env", option.name
