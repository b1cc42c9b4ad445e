"""SRV discovery (Go confd's -srv-domain/-srv-record) against a DNS double on loopback."""

from __future__ import annotations

import random
from collections.abc import Iterator

import dns.rcode
import pytest

from confd.backends.srv import SRVError, discover_nodes, srv_record_name
from integration.servers import free_port
from testsupport.dns_double import DNSDouble


@pytest.fixture
def dns_server() -> Iterator[DNSDouble]:
    with DNSDouble() as server:
        yield server


def test_record_name_is_go_confds() -> None:
    assert srv_record_name("etcd", "example.test", None) == "_etcd._tcp.example.test."
    assert srv_record_name("etcdv3", "example.test", None) == "_etcdv3._tcp.example.test."
    assert srv_record_name("etcd", "example.test", "_etcd-client._tcp.x.") == "_etcd-client._tcp.x."
    with pytest.raises(SRVError, match="backend 'redis': SRV discovery needs --srv-domain"):
        srv_record_name("redis", None, None)


@pytest.mark.parametrize(
    ("backend", "scheme", "nodes"),
    [
        ("etcd", "http", ["http://etcd1.example.test:2379", "http://etcd2.example.test:2380"]),
        ("etcd", "https", ["https://etcd1.example.test:2379", "https://etcd2.example.test:2380"]),
        ("consul", "https", ["consul1.example.test:8500", "consul2.example.test:8501"]),
        ("redis", "http", ["redis1.example.test:6379", "redis2.example.test:6380"]),
    ],
)
def test_nodes_by_priority_with_the_scheme_only_for_etcd(
    dns_server: DNSDouble, backend: str, scheme: str, nodes: list[str]
) -> None:
    first, second = (n.rsplit("/", 1)[-1].split(":") for n in nodes)
    dns_server.srv[f"_{backend}._tcp.example.test."] = [
        (20, 100, int(second[1]), f"{second[0]}."),  # listed first, tried second
        (10, 0, int(first[1]), f"{first[0]}."),
    ]
    found = discover_nodes(backend, "example.test", None, scheme,
                           nameservers=dns_server.nameservers)
    assert found == nodes
    assert dns_server.asked == [f"_{backend}._tcp.example.test."]


def test_srv_record_wins_over_srv_domain_and_cnames_are_followed(dns_server: DNSDouble) -> None:
    dns_server.cname["_etcd-client._tcp.example.test."] = "etcd-srv.example.test."
    dns_server.srv["etcd-srv.example.test."] = [(0, 0, 2379, "etcd.example.test.")]
    found = discover_nodes("etcd", "ignored.test", "_etcd-client._tcp.example.test.",
                           nameservers=dns_server.nameservers)
    assert found == ["http://etcd.example.test:2379"]


def test_equal_priorities_are_drawn_by_weight(dns_server: DNSDouble) -> None:
    dns_server.srv["_consul._tcp.example.test."] = [
        (1, 90, 8500, "heavy.example.test."), (1, 10, 8500, "light.example.test."),
        (1, 0, 8500, "never-first.example.test."), (0, 1, 8500, "top.example.test."),
    ]
    firsts: dict[str, int] = {}
    draw = random.Random(7)
    for _ in range(200):
        nodes = discover_nodes("consul", "example.test", None, nameservers=dns_server.nameservers,
                               rng=draw)
        assert nodes[0] == "top.example.test:8500"  # priority first, always
        assert nodes[-1] == "never-first.example.test:8500"  # weight 0 after the rest
        firsts[nodes[1]] = firsts.get(nodes[1], 0) + 1
    assert firsts["heavy.example.test:8500"] > 150 and firsts["light.example.test:8500"] > 5


@pytest.mark.parametrize(
    ("setup", "cause"),
    [
        (lambda d: None, r"no such name \(NXDOMAIN from 127.0.0.1:\d+\)"),
        (lambda d: d.empty.add("_etcd._tcp.example.test."), "the name has no SRV records"),
        (lambda d: d.malformed.add("_etcd._tcp.example.test."), "the answer from .* is malformed"),
        (lambda d: d.rcode.update({"_etcd._tcp.example.test.": dns.rcode.SERVFAIL}),
         "answered SERVFAIL"),
        (lambda d: d.srv.update({"_etcd._tcp.example.test.": [(0, 0, 2379, ".")]}),
         "target '.' says the service is not available"),
        (lambda d: d.srv.update({"_etcd._tcp.example.test.": [(0, 0, 0, "etcd.test.")]}),
         "names port 0"),
    ],
    ids=["nxdomain", "no-answer", "malformed", "servfail", "not-available", "port-0"],
)
def test_unusable_answers_are_one_clear_error(dns_server: DNSDouble, setup, cause: str) -> None:
    setup(dns_server)
    with pytest.raises(SRVError, match="backend 'etcd': cannot get nodes from SRV record "
                                       rf"_etcd._tcp.example.test.: (.* )?{cause}"):
        discover_nodes("etcd", "example.test", None, nameservers=dns_server.nameservers)


def test_next_server_is_asked_when_one_fails(dns_server: DNSDouble) -> None:
    dns_server.srv["_etcd._tcp.example.test."] = [(0, 0, 2379, "etcd.example.test.")]
    with DNSDouble() as broken:
        broken.malformed.add("_etcd._tcp.example.test.")
        found = discover_nodes("etcd", "example.test", None,
                               nameservers=broken.nameservers + dns_server.nameservers)
    assert found == ["http://etcd.example.test:2379"]


def test_a_silent_server_is_named_after_the_timeout(monkeypatch) -> None:
    monkeypatch.setattr("confd.backends.srv.TIMEOUT", 0.3)
    port = free_port()  # UDP to a closed port: nothing answers (or ICMP refuses)
    with pytest.raises(SRVError, match=rf"127.0.0.1:{port}"):
        discover_nodes("etcd", "example.test", None, nameservers=[("127.0.0.1", port)])


def test_bad_scheme_is_refused() -> None:
    with pytest.raises(SRVError, match="--scheme must be http or https, got 'ftp'"):
        discover_nodes("etcd", "example.test", None, "ftp", nameservers=[])


def test_the_command_line_finds_redis_through_an_srv_record(
    dns_server: DNSDouble, make_confdir, run_confd, tmp_path
) -> None:
    import redis

    from integration.servers import RedisServer

    with RedisServer() as server:
        client = redis.Redis(port=server.port)
        client.set("/app/x", "found")
        client.close()
        dns_server.srv["_redis._tcp.example.test."] = [(0, 0, server.port, "localhost.")]
        dest = tmp_path / "x.conf"
        confdir = make_confdir(
            templates={"x.tmpl": '{{ getv("/app/x") }}\n'},
            resources={"x.toml": f'[template]\nsrc = "x.tmpl"\ndest = "{dest}"\n'
                                 'keys = ["/app"]\n'},
        )
        host, port = dns_server.nameservers[0]
        result = run_confd("-onetime", "-backend", "redis", "-srv-domain", "example.test",
                           "-node", "127.0.0.1:1", f"--srv-nameserver={host}:{port}",
                           "-confdir", str(confdir))
        assert result.returncode == 0, result.stderr
        assert dest.read_text() == "found\n"
        assert "SRV record set to _redis._tcp.example.test." in result.stderr


def test_the_command_line_names_a_missing_srv_record(
    dns_server: DNSDouble, make_confdir, run_confd, tmp_path
) -> None:
    confdir = make_confdir(templates={"x.tmpl": "x\n"}, resources={
        "x.toml": f'[template]\nsrc = "x.tmpl"\ndest = "{tmp_path}/x"\nkeys = ["/a"]\n'})
    host, port = dns_server.nameservers[0]
    result = run_confd("-onetime", "-backend", "etcdv3", "-srv-domain", "nowhere.test",
                       f"--srv-nameserver={host}:{port}", "-confdir", str(confdir))
    assert result.returncode == 1
    assert "_etcdv3._tcp.nowhere.test." in result.stderr
    assert "Traceback" not in result.stderr
