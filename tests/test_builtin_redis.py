"""Redis backend settings and key mapping: nodes, Sentinels, databases, separators."""

from __future__ import annotations

import pytest

from builtin.redis import RedisDatabase, _parse_node, _parse_sentinel
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
