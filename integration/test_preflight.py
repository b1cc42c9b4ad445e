"""`confd preflight` against a real etcd: all keys there, a key missing, the server stopped, a
server that never answers (the timeout); nothing is ever written and no command runs."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.servers import EtcdServer
from integration.stores import EtcdStore


@pytest.fixture
def etcd(etcd_server: EtcdServer) -> Iterator[EtcdStore]:
    store = EtcdStore(etcd_server)
    store.load({"/shop/db/host": "db1", "/shop/db/port": "5432", "/shop/cache/url": "redis://c"})
    yield store
    store.close()


@pytest.fixture
def confdir(make_confdir, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    resource = """
        [template]
        src = "{src}"
        dest = "{out}/{src}.conf"
        prefix = "/shop"
        keys = {keys}
        check_cmd = "touch {tmp}/checked"
        reload_cmd = "touch {tmp}/reloaded"
        """
    return make_confdir(
        templates={
            "db": 'host={{ getv("/db/host") }}\nport={{ getv("/db/port") }}\n'
                  'user={{ getv("/db/user") }}\npass={{ getv("/db/password") }}\n'
                  'opt={{ getv("/db/opt", "none") }}\n',
            "cache": 'url={{ getv("/cache/url") }}\n',
        },
        resources={
            "db.toml": resource.format(src="db", out=out, tmp=tmp_path, keys='["/db"]'),
            "cache.toml": resource.format(src="cache", out=out, tmp=tmp_path,
                                          keys='["/cache", "/optional"]'),
        },
    )


def _nothing_written(tmp_path: Path) -> None:
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "checked").exists() and not (tmp_path / "reloaded").exists()


def test_preflight_passes_when_every_key_is_there(
    run_confd, etcd: EtcdStore, confdir: Path, tmp_path: Path
) -> None:
    etcd.set("/shop/db/user", "shop")
    etcd.set("/shop/db/password", "hunter22")
    result = run_confd("preflight", "--backend", "etcd", "--node", etcd.server.url,
                       "--confdir", str(confdir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: db.toml: 4 keys read from etcd, template renders" in result.stdout
    assert "ok: cache.toml: 1 key read from etcd" in result.stdout
    assert "warning: cache.toml: nothing under /shop/optional" in result.stdout
    assert "preflight: 2 resources OK" in result.stdout
    assert "hunter22" not in result.stdout + result.stderr
    _nothing_written(tmp_path)


def test_preflight_lists_every_missing_key(
    run_confd, etcd: EtcdStore, confdir: Path, tmp_path: Path
) -> None:
    result = run_confd("--preflight", "--backend", "etcd", "--node", etcd.server.url,
                       "--confdir", str(confdir))
    assert result.returncode == 1
    assert "FAILED: db.toml (etcd): missing keys /shop/db/user, /shop/db/password" \
        in result.stdout
    assert "/shop/db/opt" not in result.stdout  # read with a default: not needed
    assert "ok: cache.toml" in result.stdout
    assert "preflight: 1 of 2 resources failed" in result.stdout
    _nothing_written(tmp_path)


def test_preflight_of_one_resource(run_confd, etcd: EtcdStore, confdir: Path) -> None:
    result = run_confd("preflight", "--resource", "cache", "--backend", "etcd",
                       "--node", etcd.server.url, "--confdir", str(confdir))
    assert result.returncode == 0, result.stdout
    assert "db.toml" not in result.stdout


def test_preflight_reports_a_stopped_etcd(run_confd, confdir: Path, tmp_path: Path) -> None:
    with EtcdServer() as server:
        url = server.url
        server.stop()
        started = time.monotonic()
        result = run_confd("preflight", "--backend", "etcd", "--node", url,
                           "--confdir", str(confdir), "--retry-max-attempts", "1")
    assert result.returncode == 1
    assert time.monotonic() - started < 10
    for name in ("db.toml", "cache.toml"):
        assert f"FAILED: {name} (etcd): backend unreachable: " in result.stdout
    assert "no node answered" in result.stdout and url in result.stdout
    assert "preflight: 2 of 2 resources failed" in result.stdout
    _nothing_written(tmp_path)


def test_preflight_timeout_bounds_a_backend_that_never_answers(
    run_confd, confdir: Path, tmp_path: Path
) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = run_confd("preflight", "--backend", "etcd", "--node", url,
                           "--confdir", str(confdir), "--preflight-timeout", "1s",
                           "--backend-timeout", "20s")
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed < 8
    assert "preflight: timed out after 1s (--preflight-timeout) while checking cache.toml" \
        in result.stdout
    _nothing_written(tmp_path)
