"""A DNS server double for SRV discovery tests: UDP on 127.0.0.1, answers built with dnspython.

It is a double, not a DNS server: it answers from a table the test fills, for any class and
without recursion. Names it does not know get NXDOMAIN. Test hooks: `srv[name]` SRV records
(priority, weight, port, target), `cname[name]` an alias, `empty` names that exist without SRV
data (NOERROR, empty answer), `rcode[name]` another error code (e.g. SERVFAIL), `malformed`
names answered with bytes that are not a DNS message, and `asked` the names queried.
"""

from __future__ import annotations

import socket
import threading
from typing import Self

import dns.flags
import dns.message
import dns.rcode
import dns.rrset

__all__ = ["DNSDouble"]


class DNSDouble:
    """Answers DNS queries on 127.0.0.1:`port` (UDP) from the tables it holds."""

    def __init__(self) -> None:
        self.srv: dict[str, list[tuple[int, int, int, str]]] = {}
        self.cname: dict[str, str] = {}
        self.empty: set[str] = set()
        self.rcode: dict[str, int] = {}
        self.malformed: set[str] = set()
        self.asked: list[str] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port: int = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-double", daemon=True)

    @property
    def nameservers(self) -> list[tuple[str, int]]:
        """What `confd.backends.srv.discover_nodes(nameservers=...)` takes to ask this server."""
        return [("127.0.0.1", self.port)]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, client = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                reply = self._answer(wire)
            except Exception:  # noqa: BLE001 - a query we cannot parse gets no answer
                continue
            self._socket.sendto(reply, client)

    def _answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        name = query.question[0].name.to_text()
        self.asked.append(name)
        if name in self.malformed:
            # the query's id and a header claiming one answer, then nothing: not a message
            return wire[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x03abc"
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        while name in self.cname:
            target = self.cname[name]
            response.answer.append(dns.rrset.from_text(name, 300, "IN", "CNAME", target))
            name = target
        if name in self.srv:
            rdatas = [f"{p} {w} {port} {target}" for p, w, port, target in self.srv[name]]
            response.answer.append(dns.rrset.from_text(name, 300, "IN", "SRV", *rdatas))
        elif name in self.rcode:
            response.set_rcode(self.rcode[name])
        elif name not in self.empty:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()
