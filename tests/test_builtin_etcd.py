"""etcd backend settings: bad values are refused at configure, before anything is read."""

from __future__ import annotations

import pytest

from builtin.etcd import EtcdDatabase, _key_range, _parse_node
from plugin_sdk.database import DatabaseError


@pytest.mark.parametrize(
    ("raw", "scheme", "target", "secure"),
    [
        ("http://127.0.0.1:2379", "http", "127.0.0.1:2379", False),
        ("https://etcd.example:2380", "http", "etcd.example:2380", True),
        ("10.0.0.1:4001", "https", "10.0.0.1:4001", True),
        ("etcd", "http", "etcd:2379", False),
        ("http://[::1]:2379", "http", "[::1]:2379", False),
    ],
)
def test_nodes_are_parsed_as_go_confd_accepts_them(
    raw: str, scheme: str, target: str, secure: bool
) -> None:
    node = _parse_node(raw, scheme)
    assert (node.target, node.secure) == (target, secure)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"nodes": "ftp://x:1"}, "node 'ftp://x:1'"),
        ({"scheme": "gopher"}, "'scheme' must be http or https"),
        ({"timeout": "soon"}, "'timeout' must be float"),
        ({"timeout": "0"}, "'timeout' must be above 0"),
        ({"username": "root"}, "'username' and 'password' go together"),
        ({"client_cert": "/c.pem"}, "'client_cert' and 'client_key' go together"),
        ({"client_ca_keys": "/nonexistent/ca.pem"}, "cannot read /nonexistent/ca.pem"),
        ({"nodez": "x"}, "has no setting 'nodez'"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(config: dict, message: str) -> None:
    with pytest.raises(DatabaseError, match=message):
        EtcdDatabase().configure(config)


def test_password_is_never_shown_in_errors() -> None:
    with pytest.raises(DatabaseError) as caught:
        EtcdDatabase().configure({"password": "hunter2"})
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "low", "high"),
    [("/app", b"/app", b"/apq"), ("/app/", b"/app", b"/apq"), ("/", b"\0", b"\0")],
)
def test_key_range_covers_the_key_and_below(key: str, low: bytes, high: bytes) -> None:
    assert _key_range(key) == (low, high)
