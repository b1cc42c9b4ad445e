"""Template resource files: every field, and every bad input named by file and key."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from confd.config.resource import (
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_RELOAD_TIMEOUT,
    BackendRef,
    join_key,
    load_resource,
    load_resources,
    store_key,
)
from confd.errors import ConfigError


def write(confdir: Path, body: str, name: str = "app.toml") -> Path:
    path = confdir / "conf.d" / name
    path.write_text(body)
    return path


@pytest.fixture
def confdir(make_confdir) -> Path:
    return make_confdir(templates={"app.tmpl": "x\n"})


def test_every_field_is_parsed(confdir: Path, tmp_path: Path) -> None:
    path = write(confdir, f"""
[template]
src = "app.tmpl"
dest = "{tmp_path}/out/app.conf"
keys = ["/db", "/cache"]
prefix = "myapp"
mode = "0600"
uid = 65534
gid = 65534
check_cmd = "test -s {{{{.src}}}}"
reload_cmd = "systemctl reload app"
check_cmd_timeout = 5
reload_cmd_timeout = "1m"
wait = "2s:10s"
min_reload_interval = "30s"

[backend]
name = "etcd"
nodes = ["http://a:2379", "http://b:2379"]
timeout = 3
""")
    r = load_resource(path, confdir / "templates", prefix="/global")
    assert r.src == "app.tmpl"
    assert r.src_path == (confdir / "templates" / "app.tmpl").resolve()
    assert r.dest == tmp_path / "out" / "app.conf"
    assert r.keys == ("/db", "/cache")
    assert r.prefix == "/global"  # Go confd: -prefix replaces the resource's prefix
    assert r.backend_keys() == ["/global/db", "/global/cache"]
    assert (r.mode, r.uid, r.gid) == (0o600, 65534, 65534)
    assert r.check_cmd == "test -s {{.src}}"
    assert r.reload_cmd == "systemctl reload app"
    assert (r.check_cmd_timeout, r.reload_cmd_timeout) == (5.0, 60.0)
    assert (r.wait.min, r.wait.max) == (2.0, 10.0)
    assert r.min_reload_interval == 30.0
    nodes = "http://a:2379,http://b:2379"
    assert r.backend == BackendRef("etcd", (("nodes", nodes), ("timeout", "3")))


def test_defaults_keep_destination_metadata(confdir: Path) -> None:
    r = load_resource(write(confdir, '[template]\nsrc = "app.tmpl"\ndest = "/tmp/x"\n'),
                      confdir / "templates")
    assert (r.mode, r.uid, r.gid, r.keys, r.prefix, r.backend, r.wait) == (
        None, None, None, (), "/", None, None)
    assert (r.check_cmd_timeout, r.reload_cmd_timeout) == (
        DEFAULT_CHECK_TIMEOUT, DEFAULT_RELOAD_TIMEOUT)


def test_relative_dest_is_relative_to_working_directory(confdir: Path) -> None:
    r = load_resource(write(confdir, '[template]\nsrc = "app.tmpl"\ndest = "out/a.conf"\n'),
                      confdir / "templates")
    assert r.dest == Path(os.getcwd()) / "out" / "a.conf"


@pytest.mark.parametrize(
    ("raw", "mode"),
    [('"644"', 0o644), ('"0644"', 0o644), ('"0o600"', 0o600), ("644", 0o644), ('"4755"', 0o4755)],
)
def test_mode_is_octal_however_written(confdir: Path, raw: str, mode: int) -> None:
    path = write(confdir, f'[template]\nsrc = "app.tmpl"\ndest = "/tmp/x"\nmode = {raw}\n')
    assert load_resource(path, confdir / "templates").mode == mode


def test_owner_and_group_names_resolve(confdir: Path) -> None:
    path = write(confdir, '[template]\nsrc = "app.tmpl"\ndest = "/tmp/x"\n'
                          'owner = "nobody"\ngroup = "root"\n')
    r = load_resource(path, confdir / "templates")
    assert (r.uid, r.gid) == (65534, 0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('dest = "/tmp/x"', "template src is required"),
        ('src = "app.tmpl"', "template dest is required"),
        ('src = "app.tmpl"\ndest = 5', "template dest must be a string"),
        ('src = "../../etc/passwd"\ndest = "/tmp/x"', "points outside"),
        ('src = "/etc/passwd"\ndest = "/tmp/x"', "points outside"),
        ('src = "missing.tmpl"\ndest = "/tmp/x"', "does not exist"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\nmode = "0999"', "not an octal file mode"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\nmode = "rw-r--r--"', "not an octal file mode"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\nmode = true', "mode must be an octal string"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\nkeys = "/db"', "keys must be a list of strings"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\nkeys = [1]', "keys must be a list of strings"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\nuid = "root"', "uid must be a non-negative integer"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\ngid = -1', "gid must be a non-negative integer"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\nowner = "no-such-user-x"', "is not a user"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\ngroup = "no-such-group-x"', "is not a group"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\nowner = "nobody"\nuid = 0', "disagrees with uid"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\ncheck_cmd = ["a"]', "check_cmd must be a string"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\ncheck_cmd_timeout = "soon"', "bad duration"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\nreload_cmd_timeout = -1', "must not be negative"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\nwait = "10s:2s"', "min <= max"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\nwait = 5', "wait must be a string"),
        ('src = "app.tmpl"\ndest = "/tmp/x"\n[backend]\nnodes = "x"', "[backend] needs name"),
    ],
)
def test_bad_resource_is_a_config_error_naming_the_file(
    confdir: Path, body: str, message: str
) -> None:
    path = write(confdir, "[template]\n" + body + "\n")
    with pytest.raises(ConfigError) as info:
        load_resource(path, confdir / "templates")
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_template_table_is_an_error(confdir: Path) -> None:
    path = write(confdir, 'src = "app.tmpl"\n')
    with pytest.raises(ConfigError, match=r"missing \[template\] table"):
        load_resource(path, confdir / "templates")


def test_bad_toml_names_file_and_line(confdir: Path) -> None:
    path = write(confdir, '[template]\nsrc = "app.tmpl"\ndest = /tmp/x\n')
    with pytest.raises(ConfigError) as info:
        load_resource(path, confdir / "templates")
    assert str(path) in str(info.value)
    assert "line 3" in str(info.value)


def test_unknown_keys_are_warned_with_file_and_key(confdir: Path, confd_log: io.StringIO) -> None:
    path = write(confdir, '[template]\nsrc = "app.tmpl"\ndest = "/tmp/x"\nreload = "x"\n'
                          '[extra]\na = 1\n')
    load_resource(path, confdir / "templates")
    log = confd_log.getvalue()
    assert f"WARNING {path}: unknown key 'reload' in [template] ignored" in log
    assert f"WARNING {path}: unknown key 'extra' ignored" in log


def test_one_bad_file_does_not_stop_the_others(confdir: Path) -> None:
    write(confdir, '[template]\nsrc = "app.tmpl"\ndest = "/tmp/a"\n', "a.toml")
    write(confdir, "[template\n", "b.toml")
    write(confdir, '[template]\nsrc = "app.tmpl"\ndest = "/tmp/c"\n', "c.toml")
    resources, errors = load_resources(confdir)
    assert [r.name for r in resources] == ["a.toml", "c.toml"]
    assert len(errors) == 1 and "b.toml" in str(errors[0])


@pytest.mark.parametrize("missing", ["confdir", "conf.d"])
def test_missing_confdir_or_conf_d_is_an_error(tmp_path: Path, missing: str) -> None:
    if missing == "conf.d":
        (tmp_path / "confdir").mkdir()
    with pytest.raises(ConfigError, match="does not exist|no conf.d"):
        load_resources(tmp_path / "confdir")


@pytest.mark.parametrize(
    ("parts", "joined"),
    [(("", ""), "/"), (("/", "/db"), "/db"), (("myapp", "db"), "/myapp/db"),
     (("/a/", "/b/"), "/a/b"), (("/a", "../b"), "/b"), (("//a//b", "./c"), "/a/b/c")],
)
def test_join_key_is_go_path_join(parts: tuple[str, str], joined: str) -> None:
    assert join_key(*parts) == joined


@pytest.mark.parametrize(
    ("key", "prefix", "seen"),
    [("/myapp/db/url", "/myapp", "/db/url"), ("/db/url", "/", "/db/url"),
     ("/myapp", "/myapp", "/"), ("/myapplication/x", "/myapp", "/lication/x")],
)
def test_store_key_strips_prefix_like_confd(key: str, prefix: str, seen: str) -> None:
    assert store_key(key, prefix) == seen
