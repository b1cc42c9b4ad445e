"""The etcd v3 backend, over gRPC with etcd-sdk-python's generated stubs (`pyetcd.etcdrpc`).

Reads: every requested key is read with prefix semantics (`/app` gives `/app` and `/app/x`, not
`/application`), all keys at one revision: the first transaction of up to 128 range requests
fixes the revision and later batches read at it.

Watches without gaps: `get_values` remembers the revision it read each key at. `watch_prefix`
starts its etcd watches at the oldest such revision + 1, so a change made between the daemon's
read and the start of the watch arrives as the first event instead of being lost. Keys never read
are watched from "now". When etcd has compacted that history, the watch yields once (something
may have changed) and resumes from the compaction revision.

Nodes are tried in order; a node that is down or times out is skipped (failover), and a request
fails only when no node answers. Username/password authenticate per node (a token in metadata,
renewed when etcd says it expired); TLS uses the client certificate, key and CA files.

`client_insecure` (Go confd's -client-insecure) skips verifying etcd's certificate. gRPC's own
TLS cannot skip it, so each TLS node is then reached through a local relay (plugin_sdk's
TlsBridge: grpcio speaks plaintext on a private unix socket, the relay speaks TLS to etcd with
Python's `ssl`, unverified), and a warning says so once.
"""

from __future__ import annotations

import os
import queue
import shutil
import ssl
import tempfile
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from pyetcd import etcdrpc
from pyetcd.etcdrpc import kv_pb2
from pyetcd.utils import prefix_range_end

from plugin_sdk.database import Database, DatabaseError, Setting, backend_logger, select_prefix

log = backend_logger("etcd")

_DELETE = kv_pb2.Event.DELETE
MAX_TXN_OPS = 128  # etcd's default --max-txn-ops
_FAILOVER_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
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

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.target.rpartition(":")
        return host.strip("[]"), int(port)


class _InsecureRelay:
    """A TLS relay to one node that does not verify its certificate (`client_insecure`): gRPC
    dials `target` (a unix socket in a private directory), the relay dials the node."""

    def __init__(self, node: _Node, cert: str | None, key: str | None) -> None:
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
                    f"backend 'etcd': settings 'client_cert'/'client_key': cannot load "
                    f"{cert} and {key}: {getattr(exc, 'strerror', None) or exc}"
                ) from None
        host, port = node.address
        self._directory = tempfile.mkdtemp(prefix="confd-etcd-")  # 0700: only we may dial it
        self.bridge = TlsBridge((host, port), connect_tls=context, server_hostname=host, log=log)
        self.target = "unix:" + self.bridge.listen_unix(os.path.join(self._directory, "etcd"))

    def close(self) -> None:
        self.bridge.close()
        shutil.rmtree(self._directory, ignore_errors=True)


def _parse_node(raw: str, scheme: str) -> _Node:
    text = raw if "://" in raw else f"{scheme}://{raw}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DatabaseError(
            f"backend 'etcd': node {raw!r} is not host:port or http(s)://host:port"
        )
    try:
        port = parts.port or 2379
    except ValueError:
        raise DatabaseError(f"backend 'etcd': node {raw!r} has a bad port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return _Node(raw, f"{host}:{port}", parts.scheme == "https")


def _read_file(setting: str, path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DatabaseError(
            f"backend 'etcd': setting {setting!r}: cannot read {path}: {exc.strerror}"
        ) from None


def _key_range(key: str) -> tuple[bytes, bytes]:
    """The etcd [key, range_end) holding `key` and everything below it."""
    base = key.rstrip("/")
    if not base:
        return b"\0", b"\0"  # the whole keyspace
    raw = base.encode()
    return raw, prefix_range_end(raw)


def _normalize(keys: Sequence[str]) -> list[str]:
    """Requested keys without confd's `/*` suffix, duplicates dropped, order kept."""
    return list(dict.fromkeys(k.removesuffix("/*") or "/" for k in keys))


def _outermost(keys: Sequence[str]) -> list[str]:
    """Keys not already covered by another key's prefix (what a watch needs)."""
    keys = _normalize(keys)
    return [k for k in keys if not any(o != k and select_prefix(k, o) for o in keys)]


def _watched(prefix: str, ranges: list[str]) -> list[str]:
    """The key ranges to open watchers on: the resource prefix once when it holds every range
    (one etcd watcher per prefix, as Go confd), else each range. Events are still filtered to
    `ranges`, so keys nobody reads never count as changes."""
    root = prefix.removesuffix("/*").rstrip("/")
    if len(ranges) > 1 and root and all(select_prefix(r, root) for r in ranges):
        return [root]
    return ranges


class EtcdDatabase(Database):
    """Keys and values from an etcd v3 cluster, with native watches."""

    name = "etcd"
    description = "etcd v3 cluster over gRPC (native watch, TLS, username/password)"
    can_watch = True
    settings = (
        Setting("nodes", list, ["http://127.0.0.1:2379"], "etcd endpoints, tried in order"),
        Setting("scheme", str, "http", "scheme for nodes given without one (http or https)"),
        Setting("client_cert", str, None, "PEM client certificate file for TLS"),
        Setting("client_key", str, None, "PEM client key file for TLS"),
        Setting("client_ca_keys", str, None, "PEM CA certificate file to verify etcd"),
        Setting("client_insecure", bool, False,
                "do not verify etcd's TLS certificate (insecure: anyone can pose as etcd)"),
        Setting("username", str, None, "etcd user (authentication is on when set)"),
        Setting("password", str, None, "password of the etcd user", secret=True),
        Setting("timeout", float, 5.0, "seconds to wait for each etcd request"),
    )

    def configure(self, config: Mapping[str, str]) -> None:
        super().configure(config)
        opts = self.options
        if opts["scheme"] not in ("http", "https"):
            raise DatabaseError(
                f"backend 'etcd': setting 'scheme' must be http or https, got {opts['scheme']!r}"
            )
        self._nodes = [_parse_node(n, opts["scheme"]) for n in opts["nodes"]]
        if not self._nodes:
            raise DatabaseError("backend 'etcd': setting 'nodes' is empty")
        if opts["timeout"] <= 0:
            raise DatabaseError("backend 'etcd': setting 'timeout' must be above 0")
        if bool(opts["client_cert"]) != bool(opts["client_key"]):
            raise DatabaseError(
                "backend 'etcd': settings 'client_cert' and 'client_key' go together"
            )
        if bool(opts["username"]) != bool(opts["password"]):
            raise DatabaseError("backend 'etcd': settings 'username' and 'password' go together")
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
            log.warning("backend 'etcd': client_insecure: etcd's TLS certificate is not verified")
        self._timeout: float = opts["timeout"]
        self._lock = threading.Lock()
        self._current = 0
        self._channel: grpc.Channel | None = None
        self._relay: _InsecureRelay | None = None
        self._token: str | None = None
        self._revisions: dict[str, int] = {}
        self._closed = False

    # --- connection ---------------------------------------------------------------------------

    @property
    def _node(self) -> _Node:
        return self._nodes[self._current]

    def _session(self) -> tuple[grpc.Channel, tuple[tuple[str, str], ...]]:
        """The channel to the current node and the call metadata (auth token), made on demand."""
        with self._lock:
            if self._closed:
                raise DatabaseError("backend 'etcd': used after close")
            if self._channel is None:
                node = self._node
                if (node.secure or self._tls) and self._insecure:
                    self._relay = _InsecureRelay(
                        node, self.options["client_cert"], self.options["client_key"]
                    )
                    self._channel = grpc.insecure_channel(
                        self._relay.target,
                        options=[*_CHANNEL_OPTIONS, ("grpc.default_authority", node.target)],
                    )
                elif node.secure or self._tls:
                    assert self._credentials is not None
                    self._channel = grpc.secure_channel(
                        node.target, self._credentials, options=_CHANNEL_OPTIONS
                    )
                else:
                    self._channel = grpc.insecure_channel(node.target, options=_CHANNEL_OPTIONS)
                self._token = None
            channel = self._channel
            need_token = self.options["username"] and self._token is None
        if need_token:
            request = etcdrpc.AuthenticateRequest(
                name=self.options["username"], password=self.options["password"]
            )
            try:
                reply = etcdrpc.AuthStub(channel).Authenticate(request, timeout=self._timeout)
            except grpc.RpcError as exc:
                if exc.code() in _FAILOVER_CODES:
                    raise
                raise DatabaseError(
                    f"backend 'etcd': node {self._node.url}: authentication as user "
                    f"{self.options['username']!r} failed: {exc.details()}"
                ) from None
            with self._lock:
                self._token = reply.token
        token = self._token
        return channel, ((("token", token),) if token else ())

    def _drop_channel(self) -> None:
        """Close the current node's channel (and its relay); the caller holds the lock."""
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        if self._relay is not None:
            self._relay.close()
        self._relay = None

    def _tls_failure(self) -> str:
        """What the insecure relay saw go wrong (a refused client certificate...), or ""."""
        relay = self._relay
        return f" ({relay.bridge.failure})" if relay and relay.bridge.failure else ""

    def _fail_over(self) -> None:
        """Drop the current node's channel and move on to the next node."""
        with self._lock:
            self._drop_channel()
            self._token = None
            self._current = (self._current + 1) % len(self._nodes)

    def _kv(self, method: str, request: Any) -> Any:
        """Call a KV method, failing over across nodes and renewing an expired token once."""
        errors: list[str] = []
        renewed = False
        attempts = len(self._nodes)
        while attempts:
            node = self._node
            try:
                channel, metadata = self._session()
                call = getattr(etcdrpc.KVStub(channel), method)
                return call(request, timeout=self._timeout, metadata=metadata)
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.UNAUTHENTICATED and not renewed:
                    renewed = True
                    with self._lock:
                        self._token = None
                    continue
                if code in _FAILOVER_CODES:
                    errors.append(f"{node.url}: {code.name.lower()}{self._tls_failure()}")
                    self._fail_over()
                    attempts -= 1
                    continue
                raise DatabaseError(
                    f"backend 'etcd': node {node.url}: {method} failed: {exc.details()}"
                ) from None
        raise DatabaseError(f"backend 'etcd': no node answered ({'; '.join(errors)})")

    # --- the Database contract ----------------------------------------------------------------

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        wanted = _normalize(keys)
        values: dict[str, str] = {}
        revision = 0
        for start in range(0, len(wanted), MAX_TXN_OPS):
            batch = wanted[start : start + MAX_TXN_OPS]
            ops = []
            for key in batch:
                low, high = _key_range(key)
                rng = etcdrpc.RangeRequest(key=low, range_end=high, revision=revision)
                ops.append(etcdrpc.RequestOp(request_range=rng))
            reply = self._kv("Txn", etcdrpc.TxnRequest(success=ops))
            if not revision:
                revision = reply.header.revision
            for key, op in zip(batch, reply.responses, strict=True):
                for kv in op.response_range.kvs:
                    name = kv.key.decode("utf-8", "replace")
                    if select_prefix(name, key):
                        values[name] = kv.value.decode("utf-8", "replace")
        with self._lock:
            for key in wanted:
                self._revisions[key] = revision
        return values

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[Collection[str] | None]:
        ranges = _outermost(keys or [prefix])
        with self._lock:
            known = [self._revisions.get(k) for k in ranges]
        start = min(known) + 1 if known and all(known) else 0  # type: ignore[type-var]
        requests: queue.Queue[Any] = queue.Queue()

        def create(key: str, revision: int) -> Any:
            low, high = _key_range(key)
            return etcdrpc.WatchRequest(
                create_request=etcdrpc.WatchCreateRequest(
                    key=low, range_end=high, start_revision=revision
                )
            )

        def outgoing() -> Iterator[Any]:
            while (item := requests.get()) is not None:
                yield item

        node = self._node
        try:
            channel, metadata = self._session()
        except grpc.RpcError as exc:
            self._fail_over()
            raise DatabaseError(
                f"backend 'etcd': node {node.url}: cannot watch {prefix!r}: {exc.code().name}"
            ) from None
        pending: list[str] = []
        for key in _watched(prefix, ranges):
            pending.append(key)
            requests.put(create(key, start))
        call = etcdrpc.WatchStub(channel).Watch(outgoing(), metadata=metadata)
        done = threading.Event()

        def cancel_on_stop() -> None:
            while not done.wait(0.2):
                if stop.is_set() or self._closed:
                    call.cancel()
                    return

        stopper = threading.Thread(target=cancel_on_stop, name="etcd-watch-stop", daemon=True)
        stopper.start()
        by_id: dict[int, str] = {}
        try:
            for reply in call:
                if reply.created and pending:
                    by_id[reply.watch_id] = pending.pop(0)
                key = by_id.get(reply.watch_id, "")
                if reply.compact_revision:
                    # The history we asked for is gone: report a change and resume after it.
                    if reply.canceled and key:
                        pending.append(key)
                        requests.put(create(key, reply.compact_revision))
                    yield None
                    continue
                if reply.canceled:
                    raise DatabaseError(
                        f"backend 'etcd': node {node.url}: watch on {key or prefix!r} was "
                        f"canceled: {reply.cancel_reason or 'no reason given'}"
                    )
                # Each changed key with its new value (None: deleted), so the daemon needs no
                # read to tell a real change from a put of the same value.
                changed: dict[str, str | None] = {}
                for event in reply.events:
                    name = event.kv.key.decode("utf-8", "replace")
                    if any(select_prefix(name, r) for r in ranges):
                        changed[name] = (
                            None if event.type == _DELETE
                            else event.kv.value.decode("utf-8", "replace")
                        )
                if changed:
                    yield changed
        except grpc.RpcError as exc:
            if stop.is_set() or self._closed:
                return
            self._fail_over()
            raise DatabaseError(
                f"backend 'etcd': node {node.url}: watch on {prefix!r} lost: "
                f"{exc.code().name.lower()}"
            ) from None
        finally:
            done.set()
            requests.put(None)
            call.cancel()
        if not (stop.is_set() or self._closed):
            raise DatabaseError(f"backend 'etcd': node {node.url}: watch on {prefix!r} ended")

    def close(self) -> None:
        if not hasattr(self, "_lock"):
            return  # never configured
        with self._lock:
            self._closed = True
            self._drop_channel()
