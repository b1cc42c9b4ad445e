"""Redis backend settings and key mapping: nodes, databases, separators, Go confd's quirks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from builtin.redis import RedisDatabase, _parse_node, _parse_sentinel
from integration.servers import RedisServer
from plugin_sdk.database import DatabaseError


@pytest.mark.parametrize(
    ("raw", "host", "port", "path", "db"),
    [
        ("127.0.0.1:6379", "127.0.0.1", 6379, None, None),
        ("redis.example:6380/4", "redis.example", 6380, None, 4),
        ("redis", "redis", 6379, None, None),
        ("/run/redis.sock", None, None, "/run/redis.sock", None),
        ("/run/redis.sock/2", None, None, "/run/redis.sock", 2),
        ("unix:///run/redis.sock", None, None, "/run/redis.sock", None),
    ],
)
def test_nodes_are_host_port_db_or_sockets(raw, host, port, path, db) -> None:
    node = _parse_node(raw)
    assert (node.host, node.port, node.path, node.db) == (host, port, path, db)


@pytest.mark.parametrize(
    ("raw", "address"),
    [
        ("10.0.0.5:26380", ("10.0.0.5", 26380)),
        ("sentinel://10.0.0.5:26380", ("10.0.0.5", 26380)),
        ("sentinel-a", ("sentinel-a", 26379)),  # Sentinel's own default port
        ("[::1]:26381", ("::1", 26381)),
    ],
)
def test_sentinel_nodes_are_host_port(raw: str, address: tuple[str, int]) -> None:
    assert _parse_sentinel(raw) == address


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"nodes": "redis:port"}, "is not host:port"),
        ({"db": "one"}, "'db' must be int"),
        ({"db": "-1"}, "'db' must be 0 or more"),
        ({"separator": ""}, "'separator' is empty"),
        ({"poll_interval": "0"}, "must be above 0"),
        ({"failover_timeout": "0"}, "'failover_timeout' must be above 0"),
        ({"sentinel_master": "m", "nodes": "127.0.0.1:26379/1"}, "is not a Sentinel's host:port"),
        ({"sentinel_master": "m", "nodes": "/run/redis.sock"}, "is not a Sentinel's host:port"),
        ({"nodes": "sentinel://10.0.0.1:26379"}, "is a Sentinel: set 'sentinel_master'"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(config: dict, message: str) -> None:
    with pytest.raises(DatabaseError, match=message):
        RedisDatabase().configure(config)


@pytest.mark.parametrize(
    ("separator", "key", "in_redis", "pattern"),
    [
        ("/", "/app/db", "/app/db", "/app/db/*"),
        (":", "/app/db", "app:db", "app:db:*"),
        (":", "/", "", "*"),
        ("/", "/we[i]rd*", "/we[i]rd*", "/we\\[i\\]rd\\*/*"),
    ],
)
def test_keys_map_to_the_separator(separator, key, in_redis, pattern) -> None:
    database = RedisDatabase()
    database.configure({"separator": separator})
    assert database._to_redis(key) == in_redis
    assert database._pattern(key) == pattern
    if key != "/":
        assert database._from_redis(in_redis) == key


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def test_every_wildcard_in_a_key_is_dropped_as_go_confd_redis_does(
    redis_server: RedisServer,
) -> None:
    """Go confd's redis backend reads `/app/*/db` as `/app/db` (it strips every `/*`), so a
    resource written for it reads the same keys here, not a literal `*` key."""
    with redis.Redis(port=redis_server.port, decode_responses=True) as client:
        client.flushdb()
        client.mset({"/app/db/host": "h1", "/app/*/db/host": "literal"})
    database = RedisDatabase()
    database.configure({"nodes": f"127.0.0.1:{redis_server.port}"})
    try:
        assert database.get_values(["/app/*/db"]) == {"/app/db/host": "h1"}
    finally:
        database.close()


PASSWORD = "pw-REDIS-4e1b"


@pytest.fixture(scope="module")
def redis_with_password() -> Iterator[RedisServer]:
    with RedisServer(extra=["--requirepass", PASSWORD]) as server:
        with redis.Redis(port=server.port, password=PASSWORD) as client:
            client.set("/app/name", "locked")
        yield server


@pytest.mark.parametrize(
    ("flags", "status", "hint"),
    [
        (["--client-key", PASSWORD], 0, "deprecated, give it as --password"),
        (["--password", PASSWORD, "--client-key", "wrong"], 0, "'client_key' is ignored"),
        (["--password", "wrong", "--client-key", PASSWORD], 1, "'client_key' is ignored"),
    ],
)
def test_go_confds_client_key_is_the_password_unless_password_is_set(
    tmp_path, make_confdir, run_confd, redis_with_password: RedisServer,
    flags: list[str], status: int, hint: str,
) -> None:
    dest = tmp_path / "app.conf"
    confdir = make_confdir(
        {"app.tmpl": '{{ getv("/app/name") }}\n'},
        {"app.toml": f'[template]\nsrc = "app.tmpl"\ndest = "{dest}"\nkeys = ["/app"]\n'},
    )
    done = run_confd(
        "--onetime", "--backend", "redis", "--node", f"127.0.0.1:{redis_with_password.port}",
        "--confdir", str(confdir), *flags,
    )
    output = done.stdout + done.stderr
    assert done.returncode == status, output
    assert output.count(hint) == 1, output
    assert PASSWORD not in output
    if status == 0:
        assert dest.read_text() == "locked\n"
    else:
        assert "authentication failed" in output and not dest.exists()
