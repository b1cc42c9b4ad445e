"""The etcd v3 backend, over gRPC with etcd-sdk-python's generated stubs (`pyetcd.etcdrpc`), using
a cluster the way etcd's own clients do.

Members: one gRPC channel per endpoint (a `--node` whose name resolves to several addresses is one
endpoint per address), all opened on first use and kept. All requests, reads and watches alike,
share one view of the members (`_Cluster`): the member that answered last comes first, then
members whose connection is up, and last those that failed lately or whose connection is not up
(a restarted member accepts TCP connections long before it serves); looking asks a dropped
connection to reconnect, so a member that comes back is known before a request needs it.
grpcio's own balancing (an `ipv4:a:p,b:p` target with the `round_robin` policy) does spread calls
over connected members, but cannot send a retry to another member than the one that just failed
or stalled (a SIGSTOPped member keeps its share of calls until keepalive notices, 13 s), nor say
which member a watch rides on; hence a channel per member.

Reads: every requested key is read with prefix semantics (`/app` gives `/app` and `/app/x`, not
`/application`), all keys at one revision: the first transaction of up to 128 range requests fixes
the revision and later batches read at it. A read that fails on a member for a reason another
member may not share (unavailable, "leader changed", no leader) goes to the next member at once;
one unanswered after `_HEDGE_AFTER` (or four times the usual read time, for stores whose reads
are that slow) is also sent to the next (hedged: the first answer wins), so a member that accepts
but does not serve costs a quarter second, not the whole `timeout`, which bounds the request
across all members. A failed read never touches a watch.

Never older than seen: the newest store revision any reply carried (reads, watch events) is a
floor, and a read answered below it (a member behind the cluster: etcd has had stale-read bugs
around read-index retries) is asked elsewhere. So a render never writes a value older than one a
watch already reported, which the daemon would otherwise take as the truth and never correct.

Watches without gaps: `get_values` remembers the newest revision it read each key at and
`watch_prefix` starts its etcd watchers right after it, so a change made between the daemon's read
and the watch arrives as the first event. When the member carrying a watch fails, the watchers
move to another member and resume after the last event they delivered: no re-read, one warning
line. When etcd has compacted that history, the watch yields once (the daemon re-reads
everything) and resumes after that read. `watch_prefix` raises only when no member takes it.
The watches on one member share one Watch stream (`_WatchStream`), as etcd's clients do: a
stream each would hold two threads per prefix, each waking ten times a second while idle.
After a read found no member answering, the watches probe the store and yield once when it
answers again, so the daemon retries the renders that failed meanwhile even if nothing changes.

Username/password authenticate per member (a token in metadata, renewed when etcd says it
expired); TLS uses the client certificate, key and CA files. `client_insecure` (Go confd's
-client-insecure) skips verifying etcd's certificate: gRPC's own TLS cannot, so each TLS member
is then reached through a local relay (plugin_sdk's TlsBridge: grpcio speaks plaintext on a
private unix socket, the relay speaks TLS to etcd with Python's `ssl`, unverified), with one
warning.
"""

from __future__ import annotations

import ipaddress
import os
import queue
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from pyetcd import etcdrpc
from pyetcd.etcdrpc import kv_pb2
from pyetcd.utils import prefix_range_end

from plugin_sdk.database import (
    STOP_POLL,
    Database,
    DatabaseError,
    Setting,
    backend_logger,
    idle_wait,
    select_prefix,
    when_stopped,
)
from plugin_sdk.keys import normalize_keys, outermost_keys

log = backend_logger("etcd")

_DELETE = kv_pb2.Event.DELETE
MAX_TXN_OPS = 128  # etcd's default --max-txn-ops
_HEDGE_AFTER = 0.25  # s without an answer before a read is also sent to the next member...
_HEDGE_LATENCIES = 4  # ...or this many times the usual read time, when reads are that slow
_CREATE_AFTER = 1.0  # s a member may take to answer a new watch before the next one is tried
_QUARANTINE = 2.0  # s a member that failed is tried after the others
_BEHIND_GRACE = 1.0  # s reads below the floor are retried before the store is taken to go back
_RETRY_PAUSE = (0.025, 0.5)  # pause between rounds over every member: first, largest
_PROBE_EVERY = 0.5  # s between reads asking whether a store that stopped answering is back
_PROBE_TIMEOUT = 1.0
_TICK = 0.2  # s between a watch's looks at the store while reads fail (probing for their end)
# Answers a member gives for the cluster's state, not its own: the member itself is fine.
_CLUSTER_WIDE = ("leader changed", "no leader", "request timed out", "too many requests")
_RETRY_CODES = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
)
_READY = grpc.ChannelConnectivity.READY
_IDLE = grpc.ChannelConnectivity.IDLE
_CONNECTIVITY = {state.value[0]: state for state in grpc.ChannelConnectivity}
_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 3_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    # No client-side cap on message size (gRPC's default receive limit is 4 MB): the server's
    # --max-request-bytes decides what a value may be, and a range reply holds many values.
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]


@dataclass(frozen=True)
class _Node:
    """One etcd endpoint: the URL as given, the gRPC target and whether it speaks TLS."""

    url: str
    target: str
    secure: bool
    host: str = ""
    port: int = 2379


def _parse_node(raw: str, scheme: str) -> _Node:
    text = raw if "://" in raw else f"{scheme}://{raw}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DatabaseError(
            f"node {raw!r} is not host:port or http(s)://host:port"
        )
    try:
        port = parts.port or 2379
    except ValueError:
        raise DatabaseError(f"node {raw!r} has a bad port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return _Node(raw, f"{host}:{port}", parts.scheme == "https", parts.hostname, port)


class _InsecureRelay:
    """A TLS relay to one member that does not verify its certificate (`client_insecure`):
    gRPC dials `target` (a unix socket in a private directory), the relay dials the member."""

    def __init__(self, host: str, port: int, cert: str | None, key: str | None) -> None:
        from plugin_sdk.tls_bridge import TlsBridge

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        if cert and key:
            try:
                context.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as exc:
                raise DatabaseError(
                    f"settings 'client_cert'/'client_key': cannot load {cert} and {key}: "
                    f"{getattr(exc, 'strerror', None) or exc}"
                ) from None
        self._directory = tempfile.mkdtemp(prefix="confd-etcd-")  # 0700: only we may dial it
        self.bridge = TlsBridge((host, port), connect_tls=context, server_hostname=host, log=log)
        self.target = "unix:" + self.bridge.listen_unix(os.path.join(self._directory, "etcd"))

    def close(self) -> None:
        self.bridge.close()
        shutil.rmtree(self._directory, ignore_errors=True)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _endpoints(node: _Node) -> list[tuple[str, str, str | None]]:
    """(name for messages, gRPC target, TLS name) of each address behind `node`.

    A name resolving to several addresses (`localhost` as 127.0.0.1 and ::1, a DNS name for the
    whole cluster) gives one endpoint per address, as etcd clients list members; the TLS name
    stays the name given. A name that does not resolve now is left to gRPC to resolve later.
    """
    if _is_address(node.host):
        return [(node.url, node.target, None)]
    try:
        found = socket.getaddrinfo(node.host, node.port, type=socket.SOCK_STREAM)
    except OSError:
        return [(node.url, node.target, None)]
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if len(addresses) < 2:
        return [(node.url, node.target, None)]
    return [
        (f"{node.url} ({address})",
         f"ipv6:[{address}]:{node.port}" if ":" in address else f"ipv4:{address}:{node.port}",
         node.host)
        for address in addresses
    ]  # fmt: skip


def _read_file(setting: str, path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DatabaseError(
            f"setting {setting!r}: cannot read {path}: {exc.strerror}"
        ) from None


def _key_range(key: str) -> tuple[bytes, bytes]:
    """The etcd [key, range_end) holding `key` and everything below it."""
    base = key.rstrip("/")
    if not base:
        return b"\0", b"\0"  # the whole keyspace
    raw = base.encode()
    return raw, prefix_range_end(raw)


def _watched(prefix: str, ranges: list[str]) -> list[str]:
    """The key ranges to open watchers on: the resource prefix once when it holds every range
    (one etcd watcher per prefix, as Go confd), else each range. Events are still filtered to
    `ranges`, so keys nobody reads never count as changes."""
    root = prefix.removesuffix("/*").rstrip("/")
    if len(ranges) > 1 and root and all(select_prefix(r, root) for r in ranges):
        return [root]
    return ranges


def _describe(exc: grpc.RpcError, member: _Member | None = None) -> str:
    """A short cause for messages: the status code, and etcd's or gRPC's first detail line (or
    what the member's TLS relay saw go wrong, a refused client certificate...)."""
    relay = member.relay if member is not None else None
    if relay is not None and relay.bridge.failure:
        return f"{exc.code().name.lower()} ({relay.bridge.failure})"
    details = (exc.details() or "").split("\n")[0]
    return f"{exc.code().name.lower()}: {details[:160]}" if details else exc.code().name.lower()


def _connectivity(channel: grpc.Channel) -> grpc.ChannelConnectivity | None:
    """The channel's state now, asking an idle one (its connection dropped) to connect again so a
    member that comes back is known before a request needs it; None when grpcio does not tell.

    grpcio offers a sync channel's state only by subscription, whose polling thread races a
    close (it then dies on "Channel closed!"), so this asks the core channel directly.
    """
    try:
        return _CONNECTIVITY[channel._channel.check_connectivity_state(True)]  # type: ignore[attr-defined]
    except (AttributeError, KeyError, ValueError):
        return None


class _Compacted(Exception):
    """A read at a fixed revision found it compacted (between the batches of one read)."""


class _Member:
    """One endpoint: its channel, its auth token, its failures."""

    def __init__(self, name: str, channel: grpc.Channel,
                 relay: _InsecureRelay | None = None) -> None:
        self.name = name
        self.channel = channel
        self.relay = relay  # client_insecure: the TLS relay in front of the member
        self.token: str | None = None
        self.failed_until = 0.0  # monotonic time until which it is tried after the others
        self.lost_reported = False  # its loss was logged; reset when it serves again


class _Cluster:
    """The members and what every request has learnt of them: the one failover state that the
    reads and the watches share, and the newest store revision seen (the floor of reads)."""

    def __init__(self, members: list[_Member]) -> None:
        self.members = members
        self._lock = threading.Lock()
        self._preferred = 0
        self.floor = 0
        self._cluster_id = 0

    def candidates(self) -> list[_Member]:
        """Every member, in the order to try them now."""
        now = time.monotonic()
        with self._lock:
            start = self._preferred
        count = len(self.members)
        rotated = [self.members[(start + i) % count] for i in range(count)]

        def rank(member: _Member) -> int:
            state = _connectivity(member.channel)
            if member.failed_until > now:
                return 2
            if state is _READY:
                return 0
            if state in (None, _IDLE):
                return 1  # not connected: one connection attempt tells
            return 2  # connecting (accepted, not serving yet) or failing to connect

        return sorted(rotated, key=rank)

    def answered(self, member: _Member, header: Any) -> None:
        """`member` answered: prefer it, and raise the floor to the revision it reported."""
        with self._lock:
            self._preferred = self.members.index(member)
            member.failed_until = 0.0
            member.lost_reported = False
            self._raise_floor(header)

    def carries(self, member: _Member) -> None:
        """A watch opened on `member`: it serves (a later loss of it is news again)."""
        with self._lock:
            member.failed_until = 0.0
            member.lost_reported = False

    def saw(self, header: Any) -> None:
        """A watch reply came: its revision is committed, so later reads must reach it."""
        with self._lock:
            self._raise_floor(header)

    def _raise_floor(self, header: Any) -> None:
        if header.cluster_id and header.cluster_id != self._cluster_id:
            self._cluster_id, self.floor = header.cluster_id, 0  # another cluster: start over
        self.floor = max(self.floor, header.revision)

    def behind(self, header: Any) -> bool:
        """True when a reply comes from a member that has not caught up with what was seen."""
        with self._lock:
            same = not header.cluster_id or header.cluster_id == self._cluster_id
            return same and header.revision < self.floor

    def rewind(self, header: Any) -> None:
        """Every member agrees on a revision below the floor: the store went back (restored
        from a backup); follow it."""
        with self._lock:
            log.warning("the store's revision went back from %d to %d (restored from a "
                        "backup?); following it", self.floor, header.revision)
            self.floor = header.revision

    def failed(self, member: _Member) -> None:
        """`member` failed on its own account: try the others first for a while."""
        with self._lock:
            member.failed_until = time.monotonic() + _QUARANTINE
            if self.members[self._preferred] is member:
                self._preferred = (self._preferred + 1) % len(self.members)

    def report_moved(self, lost: _Member, reason: str, to: _Member, what: str) -> None:
        """Log the loss of `lost` once (whatever number of watches moved off it)."""
        with self._lock:
            first = not lost.lost_reported
            lost.lost_reported = True
        if first:
            log.warning("lost node %s (%s); %s failing over to %s",
                        lost.name, reason, what, to.name)
        else:
            log.debug("%s moved from %s to %s", what, lost.name, to.name)


_WAKE = ("", None)  # put in a watch's queue: look at the stop flag and the store's state


class _WatchStream:
    """One gRPC Watch stream on one member, shared by every watch riding on that member (as
    etcd's own client shares one): a single stream and reader thread however many prefixes are
    watched, where a stream each cost two threads waking ten times a second while idle.

    etcd answers the creates of one stream in the order they were sent, so a "created" reply
    belongs to the oldest create still waiting; the watch id it gives routes the replies after
    it. A watch receives `(range, reply)` pairs, and `("", error)` when the stream ends, in its
    own queue (`sink`), so it can wait with a timeout and notice a stop.
    """

    def __init__(self, member: _Member, metadata: Any,
                 on_end: Callable[[_WatchStream], None]) -> None:
        self.member = member
        self.metadata = metadata
        self.ended = False  # set (under the lock) once no watch may join any more
        self._on_end = on_end
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._sinks: set[queue.SimpleQueue[Any]] = set()
        self._waiting: deque[tuple[queue.SimpleQueue[Any] | None, str]] = deque()
        self._routes: dict[int, tuple[queue.SimpleQueue[Any], str]] = {}
        self._call = etcdrpc.WatchStub(member.channel).Watch(self._outgoing(), metadata=metadata)
        threading.Thread(
            target=self._pump, name=f"etcd-watch {member.name}", daemon=True
        ).start()

    def join(self, sink: queue.SimpleQueue[Any], creates: list[tuple[str, Any]]) -> bool:
        """Send `creates` (watched range, request) for the watch reading `sink`; False when the
        stream has ended (the caller opens another)."""
        with self._lock:
            if self.ended:
                return False
            self._sinks.add(sink)
            for key, request in creates:
                self._waiting.append((sink, key))
                self._requests.put(request)
        return True

    def leave(self, sink: queue.SimpleQueue[Any]) -> None:
        """Cancel the watchers of `sink`; the stream closes when its last watch leaves."""
        with self._lock:
            if sink not in self._sinks:
                return
            self._sinks.discard(sink)
            if self.ended:
                return  # the stream is gone, and its watchers with it
            for watch_id, (owner, _) in list(self._routes.items()):
                if owner is sink:
                    del self._routes[watch_id]
                    self._cancel(watch_id)
            # creates not answered yet: their watchers are cancelled when the answer comes
            self._waiting = deque((None if s is sink else s, k) for s, k in self._waiting)
            last = self.ended = not self._sinks
        if last:
            self._requests.put(None)
            self._call.cancel()
            self._on_end(self)

    def wake(self) -> None:
        """Wake every watch on the stream (to look at the store's state)."""
        with self._lock:
            sinks = list(self._sinks)
        for sink in sinks:
            sink.put(_WAKE)

    def _cancel(self, watch_id: int) -> None:
        self._requests.put(etcdrpc.WatchRequest(
            cancel_request=etcdrpc.WatchCancelRequest(watch_id=watch_id)))

    def _outgoing(self) -> Iterator[Any]:
        while (request := self._requests.get()) is not None:
            yield request

    def _route(self, reply: Any) -> None:
        with self._lock:
            if reply.created and self._waiting:
                sink, key = self._waiting.popleft()
                if sink is None:  # its watch left before the answer came
                    if not reply.canceled:
                        self._cancel(reply.watch_id)
                    return
                if not reply.canceled:
                    self._routes[reply.watch_id] = (sink, key)
            else:
                route = self._routes.get(reply.watch_id)
                if route is None:
                    return  # a watcher cancelled meanwhile
                sink, key = route
                if reply.canceled:
                    del self._routes[reply.watch_id]
        sink.put((key, reply))

    def _pump(self) -> None:
        error: Exception
        try:
            for reply in self._call:
                self._route(reply)
            error = ConnectionError("the watch stream ended")
        except grpc.RpcError as exc:
            error = exc
        with self._lock:
            ended, self.ended = self.ended, True
            sinks = list(self._sinks)
        for sink in sinks:
            sink.put(("", error))
        if not ended:
            self._requests.put(None)
            self._on_end(self)


class _Lost(Exception):
    """The member under a watch failed; the watch moves on."""


class _TokenExpired(Exception):
    """A member refused a new watch for an expired auth token; the watch asks again."""


@dataclass
class _Watch:
    """One `watch_prefix` call: what it watches, where each watcher resumes, and the last read
    outage whose end it reported."""

    what: str  # "watch on '/prefix'", for messages
    ranges: list[str]  # the key ranges whose events count
    watched: list[str]  # the ranges etcd watchers are opened on
    resume: dict[str, int]  # watched range -> the revision its watcher starts (again) at
    handled: int  # outages reported to the daemon
    renewals: int = 0  # auth tokens renewed since the last event


class EtcdDatabase(Database):
    """Keys and values from an etcd v3 cluster, with native watches that follow its members."""

    name = "etcd"
    description = "etcd v3 cluster over gRPC (native watch, failover, TLS, username/password)"
    can_watch = True
    settings = (
        Setting("nodes", list, ["http://127.0.0.1:2379"],
                "etcd endpoints (a name with several addresses counts as one per address)"),
        Setting("scheme", str, "http", "scheme for nodes given without one (http or https)"),
        Setting("client_cert", str, None, "PEM client certificate file for TLS"),
        Setting("client_key", str, None, "PEM client key file for TLS"),
        Setting("client_ca_keys", str, None, "PEM CA certificate file to verify etcd"),
        Setting("client_insecure", bool, False,
                "do not verify etcd's TLS certificate (insecure: anyone can pose as etcd)"),
        Setting("basic_auth", bool, False,
                "Go confd's -basic-auth: authentication is on whenever username is set"),
        Setting("username", str, None, "etcd user (authentication is on when set)"),
        Setting("password", str, None, "password of the etcd user", secret=True),
        Setting("timeout", float, 5.0,
                "seconds a request may take, over every member it is tried on"),
    )  # fmt: skip

    def configure(self, config: Mapping[str, str]) -> None:
        super().configure(config)
        opts = self.options
        if opts["scheme"] not in ("http", "https"):
            raise DatabaseError(
                f"setting 'scheme' must be http or https, got {opts['scheme']!r}"
            )
        self._nodes = [_parse_node(n, opts["scheme"]) for n in opts["nodes"]]
        if not self._nodes:
            raise DatabaseError("setting 'nodes' is empty")
        if opts["timeout"] <= 0:
            raise DatabaseError("setting 'timeout' must be above 0")
        if bool(opts["client_cert"]) != bool(opts["client_key"]):
            raise DatabaseError(
                "settings 'client_cert' and 'client_key' go together"
            )
        if bool(opts["username"]) != bool(opts["password"]):
            raise DatabaseError("settings 'username' and 'password' go together")
        ca = _read_file("client_ca_keys", opts["client_ca_keys"])
        key = _read_file("client_key", opts["client_key"])
        cert = _read_file("client_cert", opts["client_cert"])
        self._tls = ca is not None or cert is not None
        self._credentials = (
            grpc.ssl_channel_credentials(ca, key, cert)
            if self._tls or any(n.secure for n in self._nodes)
            else None
        )
        self._insecure: bool = opts["client_insecure"]
        if self._insecure and (self._tls or any(n.secure for n in self._nodes)):
            log.warning("client_insecure: etcd's TLS certificate is not verified")
        self._relays: list[_InsecureRelay] = []
        self._timeout: float = opts["timeout"]
        self._lock = threading.Lock()
        self._cluster: _Cluster | None = None
        self._read_revisions: dict[str, int] = {}
        self._streams: dict[tuple[str, Any], _WatchStream] = {}  # (member, metadata) ->
        self._closed = False
        # Read outages (no member answered a read) so far, whether one lasts, and when a watch
        # last probed for its end: the watches tell the daemon when the store answers again,
        # so renders that failed meanwhile are retried even if nothing changes afterwards.
        self._outages = 0
        self._down = False
        self._probed = 0.0
        self._latency = 0.0  # s a read usually takes (moving average), for the hedge delay

    # --- members ------------------------------------------------------------------------------

    def _connect(self) -> _Cluster:
        """The cluster view, its channels opened (and followed) on first use."""
        with self._lock:
            if self._closed:
                raise DatabaseError("used after close")
            if self._cluster is None:
                members = []
                for node in self._nodes:
                    for name, target, tls_name in _endpoints(node):
                        members.append(_Member(name, *self._channel(node, target, tls_name)))
                self._cluster = _Cluster(members)
                for member in members:
                    _connectivity(member.channel)  # connect to every member now
            return self._cluster

    def _channel(
        self, node: _Node, target: str, tls_name: str | None
    ) -> tuple[grpc.Channel, _InsecureRelay | None]:
        """The channel to one member, and the TLS relay it goes through (`client_insecure`)."""
        options = list(_CHANNEL_OPTIONS)
        if (node.secure or self._tls) and self._insecure:
            host = target.removeprefix("ipv4:").removeprefix("ipv6:").rpartition(":")[0]
            relay = _InsecureRelay(host.strip("[]"), node.port, self.options["client_cert"],
                                   self.options["client_key"])
            self._relays.append(relay)
            options.append(("grpc.default_authority", f"{tls_name or node.host}:{node.port}"))
            return grpc.insecure_channel(relay.target, options=options), relay
        if node.secure or self._tls:
            assert self._credentials is not None
            if tls_name:  # an address behind a name: verify the certificate for the name
                options.append(("grpc.ssl_target_name_override", tls_name))
                options.append(("grpc.default_authority", f"{tls_name}:{node.port}"))
            return grpc.secure_channel(target, self._credentials, options=options), None
        return grpc.insecure_channel(target, options=options), None

    def _metadata(self, member: _Member, timeout: float) -> tuple[tuple[str, str], ...]:
        """Call metadata for `member`: its auth token, fetched on first need."""
        username = self.options["username"]
        if not username:
            return ()
        token = member.token
        if token is None:
            request = etcdrpc.AuthenticateRequest(name=username, password=self.options["password"])
            try:
                reply = etcdrpc.AuthStub(member.channel).Authenticate(request, timeout=timeout)
            except grpc.RpcError as exc:
                if exc.code() in _RETRY_CODES:
                    raise
                raise DatabaseError(
                    f"node {member.name}: authentication as user "
                    f"{username!r} failed: {exc.details()}"
                ) from None
            token = member.token = reply.token
        return (("token", token),)

    # --- reads --------------------------------------------------------------------------------

    def _read(self, method: str, request: Any, timeout: float | None = None) -> Any:
        """One read-only KV request on the best member; retried on the next member after an
        error another member may not share, also sent to the next when the first is slow, and
        refused from a member behind the revisions already seen."""
        cluster = self._connect()
        timeout = timeout or self._timeout
        deadline = time.monotonic() + timeout
        done: queue.SimpleQueue[tuple[_Member, Any]] = queue.SimpleQueue()
        flying: dict[Any, tuple[_Member, float]] = {}  # future -> its member, when it was sent
        errors: dict[str, str] = {}
        todo = cluster.candidates()
        hedge = max(_HEDGE_AFTER, _HEDGE_LATENCIES * self._latency)
        pause = _RETRY_PAUSE[0]
        renewed: set[int] = set()
        refused: set[str] = set()  # members nothing listens on (connection refused): no wait
        behind: Any = None
        behind_since = 0.0

        def launch(member: _Member) -> None:
            left = deadline - time.monotonic()
            try:
                metadata = self._metadata(member, left)
                call = getattr(etcdrpc.KVStub(member.channel), method)
                future = call.future(request, timeout=left, metadata=metadata)
            except grpc.RpcError as exc:
                errors[member.name] = _describe(exc, member)
                cluster.failed(member)
                return
            except ValueError:  # the channel was closed under us
                raise DatabaseError("used after close") from None
            flying[future] = (member, time.monotonic())
            future.add_done_callback(lambda f, m=member: done.put((m, f)))

        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not flying:
                    if not todo and len(refused) == len(cluster.members):
                        break  # nothing listens on any member: no election to wait out
                    if not todo:  # a round over every member failed: pause, then another
                        time.sleep(min(pause, left))
                        pause = min(pause * 2, _RETRY_PAUSE[1])
                        todo = cluster.candidates()
                        continue
                    launch(todo.pop(0))
                    continue
                try:
                    member, future = done.get(timeout=min(hedge, left))
                except queue.Empty:
                    if todo:
                        launch(todo.pop(0))  # the member is slow: ask the next one too
                    continue
                _, sent = flying.pop(future)
                exc = future.exception()
                if exc is None:
                    reply = future.result()
                    if not cluster.behind(reply.header):
                        cluster.answered(member, reply.header)
                        self._down = False
                        took = time.monotonic() - sent
                        self._latency += (took - self._latency) * 0.3
                        return reply
                    errors[member.name] = (
                        f"behind: revision {reply.header.revision} < {cluster.floor}"
                    )
                    if behind is None or reply.header.revision > behind.header.revision:
                        behind = reply
                    behind_since = behind_since or time.monotonic()
                    cluster.failed(member)
                    if time.monotonic() - behind_since > _BEHIND_GRACE:
                        cluster.rewind(behind.header)
                        cluster.answered(member, behind.header)
                        self._down = False
                        return behind
                    continue
                if self._closed:
                    raise DatabaseError("used after close")
                code, details = exc.code(), exc.details() or ""
                if code == grpc.StatusCode.UNAUTHENTICATED and id(member) not in renewed:
                    renewed.add(id(member))
                    member.token = None
                    todo.insert(0, member)
                    continue
                if code == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
                    raise _Compacted
                retry = code in _RETRY_CODES or (
                    code == grpc.StatusCode.OUT_OF_RANGE and "future revision" in details
                )
                if not retry:
                    raise DatabaseError(
                        f"node {member.name}: {method} failed: {details}"
                    )
                errors[member.name] = _describe(exc, member)
                if "Connection refused" in details or "failed to connect" in details:
                    refused.add(member.name)
                else:
                    refused.discard(member.name)
                log.debug("%s on %s failed (%s); trying another member",
                          method, member.name, errors[member.name])
                if not any(reason in details for reason in _CLUSTER_WIDE):
                    cluster.failed(member)
        finally:
            for future, (member, _) in flying.items():
                future.cancel()
                errors.setdefault(member.name, "no answer")
        with self._lock:
            began = not self._down
            if began:
                self._down = True
                self._outages += 1
        if began:  # the watches look every _TICK while it lasts, and probe for its end
            self._wake_watches()
        causes = "; ".join(f"{name}: {error}" for name, error in errors.items())
        if refused and len(refused) == len(cluster.members):
            raise DatabaseError(f"no node answered ({causes})")
        raise DatabaseError(f"no node answered within {timeout:g}s ({causes})")

    def _wake_watches(self) -> None:
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream.wake()

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        wanted = normalize_keys(keys)
        for _ in range(3):
            try:
                values, revision = self._read_at_one_revision(wanted)
                break
            except _Compacted:
                continue  # compacted between two batches: read again from the first
        else:
            raise DatabaseError("the store was compacted during every read")
        with self._lock:
            for key in wanted:
                self._read_revisions[key] = max(self._read_revisions.get(key, 0), revision)
        return values

    def _read_at_one_revision(self, wanted: list[str]) -> tuple[dict[str, str], int]:
        values: dict[str, str] = {}
        revision = 0
        for start in range(0, len(wanted), MAX_TXN_OPS):
            batch = wanted[start : start + MAX_TXN_OPS]
            ops = []
            for key in batch:
                low, high = _key_range(key)
                rng = etcdrpc.RangeRequest(key=low, range_end=high, revision=revision)
                ops.append(etcdrpc.RequestOp(request_range=rng))
            reply = self._read("Txn", etcdrpc.TxnRequest(success=ops))
            if not revision:
                revision = reply.header.revision
            for key, op in zip(batch, reply.responses, strict=True):
                for kv in op.response_range.kvs:
                    name = kv.key.decode("utf-8", "replace")
                    if select_prefix(name, key):
                        values[name] = kv.value.decode("utf-8", "replace")
        return values, revision

    # --- watches ------------------------------------------------------------------------------

    def _watch_start(self, ranges: list[str]) -> int:
        """The revision after the newest read of every range; 0 ("now") if one was never read."""
        with self._lock:
            known = [self._read_revisions.get(k, 0) for k in ranges]
        return min(known) + 1 if known and all(known) else 0

    def _stopped(self, stop: threading.Event) -> bool:
        return stop.is_set() or self._closed

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[Collection[str] | None]:
        cluster = self._connect()
        ranges = outermost_keys(keys or [prefix])
        watched = _watched(prefix, ranges)
        with self._lock:
            handled = self._outages - (1 if self._down else 0)
        watch = _Watch(
            f"watch on {prefix or '/'!r}", ranges, watched,
            dict.fromkeys(watched, self._watch_start(ranges)), handled,
        )  # fmt: skip
        lost: tuple[_Member, str] | None = None
        while not self._stopped(stop):
            opened = self._open_watch(cluster, watch, stop)
            if opened is None:
                return
            stream, sink, first = opened
            forget = when_stopped(stop, lambda sink=sink: sink.put(_WAKE))
            if lost is not None:
                cluster.report_moved(lost[0], lost[1], stream.member, watch.what)
                lost = None
            cluster.carries(stream.member)
            try:
                yield from self._follow(cluster, stream, sink, first, watch, stop)
            except _Lost as exc:
                cluster.failed(stream.member)
                lost = (stream.member, str(exc))
            except _TokenExpired:
                watch.renewals += 1
                if watch.renewals > 2:
                    raise DatabaseError(
                        f"node {stream.member.name}: cannot {watch.what}: "
                        f"its auth token is refused even just after authenticating"
                    ) from None
            finally:
                stream.leave(sink)
                if forget is not None:
                    forget()

    def _open_watch(
        self, cluster: _Cluster, watch: _Watch, stop: threading.Event
    ) -> tuple[_WatchStream, queue.SimpleQueue[Any], Any] | None:
        """The watchers of `watch`, created from where they resume on the stream of the first
        member that answers: that stream, the queue their replies come in and the first of
        them; None on a stop. Raises when no member answers within the timeout."""
        deadline = time.monotonic() + self._timeout
        errors: dict[str, str] = {}
        pause = _RETRY_PAUSE[0]
        creates = []
        for key in watch.watched:
            low, high = _key_range(key)
            creates.append((key, etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(
                key=low, range_end=high, start_revision=watch.resume[key]))))
        while time.monotonic() < deadline:
            for member in cluster.candidates():
                if self._stopped(stop):
                    return None
                if time.monotonic() >= deadline:
                    break
                try:
                    metadata = self._metadata(member, max(deadline - time.monotonic(), 0.1))
                    sink: queue.SimpleQueue[Any] = queue.SimpleQueue()
                    stream = self._watch_stream(member, metadata)
                    while not stream.join(sink, creates):  # it ended just now
                        stream = self._watch_stream(member, metadata)
                except grpc.RpcError as exc:
                    errors[member.name] = _describe(exc, member)
                    cluster.failed(member)
                    continue
                except ValueError:  # the channel was closed under us
                    return None
                first = self._first_reply(sink, stop)
                if first is None:
                    stream.leave(sink)
                    return None
                failure = first[1]
                if isinstance(failure, grpc.RpcError | ConnectionError | TimeoutError):
                    stream.leave(sink)
                    if self._stopped(stop):
                        return None
                    if isinstance(failure, grpc.RpcError):
                        if failure.code() == grpc.StatusCode.UNAUTHENTICATED:
                            member.token = None
                        elif failure.code() not in _RETRY_CODES:
                            raise DatabaseError(
                                f"node {member.name}: cannot {watch.what}: "
                                f"{failure.details()}"
                            )
                        errors[member.name] = _describe(failure)
                    else:
                        errors[member.name] = str(failure)
                    cluster.failed(member)
                    continue
                return stream, sink, first
            time.sleep(pause)
            pause = min(pause * 2, _RETRY_PAUSE[1])
        causes = "; ".join(f"{name}: {error}" for name, error in errors.items())
        raise DatabaseError(f"cannot {watch.what}: no node answered ({causes})")

    def _watch_stream(self, member: _Member, metadata: Any) -> _WatchStream:
        """The stream the watches on `member` with `metadata` (its auth token) share, opened
        when there is none (a renewed token opens a new one; the old ends with its watches)."""
        with self._lock:
            stream = self._streams.get((member.name, metadata))
            if stream is None or stream.ended:
                stream = _WatchStream(member, metadata, self._stream_ended)
                self._streams[(member.name, metadata)] = stream
            return stream

    def _stream_ended(self, stream: _WatchStream) -> None:
        with self._lock:
            if self._streams.get((stream.member.name, stream.metadata)) is stream:
                del self._streams[(stream.member.name, stream.metadata)]

    def _first_reply(self, sink: queue.SimpleQueue[Any], stop: threading.Event) -> Any:
        """The first `(range, reply or error)` for a new watch, `("", TimeoutError)` when none
        comes in time, or None on a stop."""
        deadline = time.monotonic() + min(_CREATE_AFTER, self._timeout)
        while not self._stopped(stop):
            left = deadline - time.monotonic()
            if left <= 0:
                return "", TimeoutError(f"no answer to a new watch within {_CREATE_AFTER:g}s")
            try:
                item = sink.get(timeout=min(left, STOP_POLL))
            except queue.Empty:
                continue
            if item is not _WAKE:
                return item
        return None

    def _follow(
        self,
        cluster: _Cluster,
        stream: _WatchStream,
        sink: queue.SimpleQueue[Any],
        first: tuple[str, Any],
        watch: _Watch,
        stop: threading.Event,
    ) -> Iterator[Mapping[str, str | None] | None]:
        """Yield the changes `stream` reports for `watch` (into `sink`) until a stop; raises
        `_Lost` when its member fails, returns after a compaction (`watch.resume` then says
        where to start again). Looks at the store's state every `idle_wait(stop)` seconds (a
        stop and the start of a read outage wake it), and every `_TICK` while reads fail."""
        tick = idle_wait(stop)
        key, reply = first
        while True:
            if isinstance(reply, grpc.RpcError | ConnectionError):
                if self._stopped(stop):
                    return
                if isinstance(reply, grpc.RpcError):
                    if reply.code() == grpc.StatusCode.UNAUTHENTICATED:
                        stream.member.token = None
                    elif reply.code() not in _RETRY_CODES:
                        raise DatabaseError(
                            f"node {stream.member.name}: {watch.what} failed: "
                            f"{reply.details()}"
                        )
                    raise _Lost(_describe(reply))
                raise _Lost(str(reply))
            if reply is None:
                if self._answers_again(watch):
                    yield None  # reads failed meanwhile: the daemon re-reads, retries renders
            else:
                cluster.saw(reply.header)
                if reply.compact_revision:
                    # The history asked for is gone: the daemon re-reads everything, and the
                    # watch starts again after that read (never before the compaction).
                    log.debug("%s: revision %d is compacted; reading everything again",
                              watch.what, reply.compact_revision)
                    yield None
                    start = max(self._watch_start(watch.ranges), reply.compact_revision)
                    for name in watch.resume:
                        watch.resume[name] = max(watch.resume[name], start)
                    return
                if reply.canceled and "invalid auth token" in reply.cancel_reason:
                    stream.member.token = None  # it expired: authenticate, watch again
                    raise _TokenExpired
                if reply.canceled:
                    raise DatabaseError(
                        f"node {stream.member.name}: {watch.what} was "
                        f"canceled: {reply.cancel_reason or 'no reason given'}"
                    )
                if reply.created and key and not watch.resume[key]:
                    watch.resume[key] = reply.header.revision + 1  # watched from "now"
                changed = self._changes(reply, key, watch.ranges, watch.resume)
                if reply.events:
                    watch.renewals = 0
                if changed:
                    yield changed
            if self._stopped(stop):
                return
            try:
                key, reply = sink.get(timeout=_TICK if self._down else tick)
            except queue.Empty:
                reply = None

    def _answers_again(self, watch: _Watch) -> bool:
        """True once per read outage, when the store answers reads again: the renders that
        failed meanwhile must run again even if nothing changes afterwards. While an outage
        lasts, the watches probe the store with a count-only read, one probe at a time."""
        now = time.monotonic()
        with self._lock:
            outages, down = self._outages, self._down
            probe = down and now - self._probed >= _PROBE_EVERY
            if probe:
                self._probed = now
        if probe:
            low, high = _key_range(watch.ranges[0])
            request = etcdrpc.RangeRequest(key=low, range_end=high, count_only=True)
            try:
                self._read("Range", request, timeout=_PROBE_TIMEOUT)
            except DatabaseError:
                return False
            with self._lock:
                outages, down = self._outages, self._down
        if down or outages <= watch.handled:
            return False
        watch.handled = outages
        log.debug("%s: the store answers reads again", watch.what)
        return True

    @staticmethod
    def _changes(
        reply: Any, key: str, ranges: list[str], resume: dict[str, int]
    ) -> dict[str, str | None]:
        """Each changed key of a watch reply with its new value (None: deleted), so the daemon
        needs no read to tell a real change from a put of the same value."""
        changed: dict[str, str | None] = {}
        for event in reply.events:
            if key:
                resume[key] = max(resume[key], event.kv.mod_revision + 1)
            name = event.kv.key.decode("utf-8", "replace")
            if any(select_prefix(name, r) for r in ranges):
                changed[name] = (
                    None if event.type == _DELETE else event.kv.value.decode("utf-8", "replace")
                )
        return changed

    def close(self) -> None:
        if not hasattr(self, "_lock"):
            return  # never configured
        with self._lock:
            self._closed = True
            cluster, self._cluster = self._cluster, None
        if cluster is not None:
            for member in cluster.members:
                member.channel.close()
        for relay in self._relays:
            relay.close()
        self._relays.clear()

