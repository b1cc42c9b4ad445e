"""etcd backend settings (bad values are refused at configure, before anything is read), how
nodes become members, and the order members are tried in."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from builtin.etcd import EtcdDatabase, _Cluster, _endpoints, _key_range, _Member, _parse_node
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


def test_an_address_is_one_member_and_a_name_one_per_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _endpoints(_parse_node("http://10.0.0.1:2379", "http")) == [
        ("http://10.0.0.1:2379", "10.0.0.1:2379", None)
    ]

    def resolve(host: str, port: int, **_: object) -> list[tuple]:
        if host == "gone.example":
            raise socket.gaierror("no such name")
        found = {"one.example": ["10.0.0.9"], "all.example": ["10.0.0.1", "10.0.0.2", "fd00::3"]}
        return [(0, socket.SOCK_STREAM, 6, "", (a, port)) for a in found[host]]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    assert _endpoints(_parse_node("all.example:4001", "https")) == [
        ("all.example:4001 (10.0.0.1)", "ipv4:10.0.0.1:4001", "all.example"),
        ("all.example:4001 (10.0.0.2)", "ipv4:10.0.0.2:4001", "all.example"),
        ("all.example:4001 (fd00::3)", "ipv6:[fd00::3]:4001", "all.example"),
    ]
    # One address, or none yet: the name stays for gRPC to resolve (and to re-resolve later).
    assert _endpoints(_parse_node("one.example", "http")) == [
        ("one.example", "one.example:2379", None)
    ]
    assert _endpoints(_parse_node("gone.example", "http")) == [
        ("gone.example", "gone.example:2379", None)
    ]


def _header(revision: int, cluster_id: int = 7) -> SimpleNamespace:
    return SimpleNamespace(revision=revision, cluster_id=cluster_id)


def test_members_are_tried_from_the_last_that_answered_and_failed_ones_last() -> None:
    members = [_Member(f"m{i}", object()) for i in range(3)]  # channels that tell no state
    cluster = _Cluster(members)
    assert [m.name for m in cluster.candidates()] == ["m0", "m1", "m2"]
    cluster.answered(members[1], _header(5))
    assert [m.name for m in cluster.candidates()] == ["m1", "m2", "m0"]
    cluster.failed(members[1])  # the preferred member failed: the next one leads
    assert [m.name for m in cluster.candidates()] == ["m2", "m0", "m1"]
    cluster.failed(members[0])
    assert [m.name for m in cluster.candidates()] == ["m2", "m0", "m1"]


def test_a_reply_below_the_newest_revision_seen_comes_from_a_member_behind() -> None:
    cluster = _Cluster([_Member("m0", object())])
    cluster.saw(_header(10))  # a watch event at revision 10 was reported
    assert cluster.behind(_header(9))
    assert not cluster.behind(_header(10))
    assert not cluster.behind(_header(3, cluster_id=8))  # another cluster: no floor yet
    cluster.answered(cluster.members[0], _header(3, cluster_id=8))
    assert cluster.floor == 3
