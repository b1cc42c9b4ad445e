"""Backend nodes from DNS SRV records: Go confd's `-srv-domain` and `-srv-record`.

As Go confd does it: the record is `-srv-record` when given, else `_<backend>._tcp.<srv-domain>.`
(the backend name as the user wrote it, so `-backend etcdv3` asks `_etcdv3._tcp`); each answer
becomes `target:port` (the target without its final dot), and only for the `etcd` backend
`<scheme>://target:port`. Records are ordered as Go's `net.LookupSRV` orders them (RFC 2782):
by priority, and within one priority in a random order weighted by weight. Go confd skips SRV
discovery for the `env` backend; that choice is the caller's.

The servers are asked directly (dnspython's `dns.query`, UDP then TCP when truncated) rather
than through `dns.resolver`, which drops a malformed reply as if it were spoofed and so turns
it into a timeout; here it is an error that says so. dnspython is imported only on a lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from confd.errors import BackendError
from confd.log import get_logger

if TYPE_CHECKING:
    import random

__all__ = ["SRVError", "discover_nodes", "srv_record_name"]

log = get_logger("srv")

TIMEOUT = 2.0  # seconds each DNS server has to answer


class SRVError(BackendError):
    """The SRV lookup gave no usable node; the message names the backend, record and cause."""


class _Record(NamedTuple):
    priority: int
    weight: int
    port: int
    target: str


def srv_record_name(backend: str, srv_domain: str | None, srv_record: str | None) -> str:
    """The record to look up: `srv_record` as given, else Go confd's `_<backend>._tcp.<domain>.`."""
    if srv_record:
        return srv_record
    if srv_domain:
        return f"_{backend}._tcp.{srv_domain}."
    raise SRVError(f"backend {backend!r}: SRV discovery needs --srv-domain or --srv-record")


def discover_nodes(
    backend: str,
    srv_domain: str | None,
    srv_record: str | None,
    scheme: str = "http",
    *,
    nameservers: Sequence[tuple[str, int]] | None = None,
    rng: random.Random | None = None,
) -> list[str]:
    """The nodes of `backend` named by its SRV record, in the order to try them.

    `nameservers` are (address, port) pairs asked in turn (default: the system's, from
    /etc/resolv.conf); `rng` orders records of equal priority (default: a fresh random order, as
    Go). Raises `SRVError` when the name does not exist, has no SRV records, an answer is
    malformed or unusable, or no server answers.
    """
    record = srv_record_name(backend, srv_domain, srv_record)
    if scheme not in ("http", "https"):
        raise SRVError(f"backend {backend!r}: --scheme must be http or https, got {scheme!r}")
    log.info("SRV record set to %s", record)
    nodes = []
    for item in _rfc2782_order(_lookup(backend, record, nameservers), rng):
        host = f"[{item.target}]" if ":" in item.target else item.target
        address = f"{host}:{item.port}"
        nodes.append(f"{scheme}://{address}" if backend == "etcd" else address)
    log.debug("SRV record %s gave nodes %s", record, ", ".join(nodes))
    return nodes


def _system_nameservers() -> list[tuple[str, int]]:
    import dns.resolver

    try:
        system = dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration:
        return []
    return [
        (ns, system.nameserver_ports.get(ns, system.port))
        for ns in system.nameservers
        if isinstance(ns, str)
    ]


def _lookup(
    backend: str, record: str, nameservers: Sequence[tuple[str, int]] | None
) -> list[_Record]:
    """Ask each server in turn until one gives a usable answer."""
    import dns.exception
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdatatype

    def fail(why: str) -> SRVError:
        return SRVError(f"backend {backend!r}: cannot get nodes from SRV record {record}: {why}")

    try:
        query = dns.message.make_query(dns.name.from_text(record), dns.rdatatype.SRV)
    except (dns.exception.DNSException, ValueError) as exc:
        raise fail(f"not a DNS name ({exc})") from None
    servers = list(nameservers) if nameservers is not None else _system_nameservers()
    if not servers:
        raise fail("no DNS server is configured (/etc/resolv.conf)")
    reasons: list[str] = []
    for address, port in servers:
        server = f"{address}:{port}"
        try:
            reply, _ = dns.query.udp_with_fallback(
                query, address, timeout=TIMEOUT, port=port, ignore_unexpected=True
            )
        except dns.exception.Timeout:
            reasons.append(f"{server} did not answer within {TIMEOUT:g}s")
            continue
        except (dns.exception.FormError, EOFError, dns.message.Truncated):
            reasons.append(f"the answer from {server} is malformed")
            continue
        except OSError as exc:
            reasons.append(f"{server}: {exc.strerror or exc}")
            continue
        rcode = reply.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            raise fail(f"no such name (NXDOMAIN from {server})")
        if rcode != dns.rcode.NOERROR:
            reasons.append(f"{server} answered {dns.rcode.to_text(rcode)}")
            continue
        try:
            found = reply.resolve_chaining().answer  # through CNAMEs, as a resolver would
        except (dns.exception.DNSException, KeyError) as exc:
            raise fail(f"the answer from {server} is malformed ({type(exc).__name__})") from None
        if found is None:
            raise fail(f"the name has no SRV records ({server})")
        records = [
            _Record(int(r.priority), int(r.weight), int(r.port),
                    r.target.to_text(omit_final_dot=True))
            for r in found
        ]  # fmt: skip
        if any(r.target in ("", ".") for r in records):
            raise fail("its target '.' says the service is not available at this domain")
        if any(r.port == 0 for r in records):
            raise fail(f"the answer from {server} names port 0")
        return records
    raise fail("; ".join(reasons))


def _rfc2782_order(records: Sequence[_Record], rng: random.Random | None) -> list[_Record]:
    """By priority; within a priority, each next record drawn with probability proportional
    to its weight (records of weight 0 last), as RFC 2782 and Go's net.LookupSRV."""
    import random as _random

    draw = rng or _random.Random()
    ordered: list[_Record] = []
    for priority in sorted({r.priority for r in records}):
        pool = sorted((r for r in records if r.priority == priority), key=lambda r: r.weight)
        while pool:
            total = sum(r.weight for r in pool)
            if total == 0:
                ordered.extend(pool)
                break
            point, running = draw.randrange(total), 0
            for index, item in enumerate(pool):
                running += item.weight
                if running > point:
                    ordered.append(pool.pop(index))
                    break
    return ordered
