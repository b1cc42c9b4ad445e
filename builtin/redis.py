"""The Redis backend, with redis-py, following confd's key semantics.

A requested key is read by its Redis type: a string is its value (`GET`), a hash gives one key
per field (`/app/db` with field `host` is `/app/db/host`), anything else (usually: no such key)
is a directory, read as every string below it (`SCAN` for `app/*`, then `MGET`). With
`separator` set (e.g. `:`), confd's `/app/db/host` is Redis's `app:db:host` and back.

Nodes are `host:port`, `host:port/db` or a unix socket path (optionally `/path.sock/db`), tried
in order until one answers. Go confd passed its `-client-key` as the Redis password; setting
`client_key` still is, with a deprecation warning, unless `password` is set.

Watches use keyspace notifications: the backend turns them on (`CONFIG SET
notify-keyspace-events`, adding only the missing classes) and subscribes to the watched keys'
patterns. When the server refuses (CONFIG disabled, ACL), it logs a warning and polls instead,
comparing values every `poll_interval` seconds. Either way, right after the watch starts it
compares the store with what `get_values` last returned, so a change made in between is
reported rather than lost.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from plugin_sdk.database import Database, DatabaseError, Setting, select_prefix
from plugin_sdk.keys import normalize_keys, outermost_keys

log = logging.getLogger(__name__)

_NOTIFY_CLASSES = "K$hgxe"  # keyspace channel; string, hash, generic, expired, evicted events
_GLOB = re.compile(r"([\\*?\[\]])")


@dataclass(frozen=True)
class _Node:
    """A Redis endpoint: TCP host/port or unix socket path, and a database number."""

    text: str
    host: str | None
    port: int | None
    path: str | None
    db: int | None


def _parse_node(raw: str) -> _Node:
    text = raw.removeprefix("unix://")
    if text.startswith("/") or os.path.exists(text):
        base, _, tail = text.rpartition("/")
        if tail.isdigit() and base and not os.path.exists(text):
            return _Node(raw, None, None, base, int(tail))
        return _Node(raw, None, None, text, None)
    address, _, db = text.partition("/")
    host, _, port = address.rpartition(":")
    if not host:
        host, port = address, "6379"
    try:
        return _Node(raw, host.strip("[]"), int(port), None, int(db) if db else None)
    except ValueError:
        raise DatabaseError(
            f"backend 'redis': node {raw!r} is not host:port[/db] or a unix socket path"
        ) from None


class RedisDatabase(Database):
    """Keys and values from Redis, watched with keyspace notifications."""

    name = "redis"
    description = "Redis strings and hashes (keyspace-notification watch, unix sockets, ACL)"
    can_watch = True
    settings = (
        Setting("nodes", list, ["127.0.0.1:6379"], "host:port[/db] or socket paths, in order"),
        Setting("username", str, None, "Redis ACL user (Redis 6+)"),
        Setting("password", str, None, "Redis password", secret=True),
        Setting(
            "client_key", str, None, "deprecated: the password, as Go confd's -client-key",
            secret=True,
        ),
        Setting("db", int, 0, "database number, unless a node names one (host:port/db)"),
        Setting("separator", str, "/", "key separator in Redis (confd's / is mapped to it)"),
        Setting("timeout", float, 5.0, "seconds to wait to connect and for each answer"),
        Setting("poll_interval", float, 2.0, "seconds between reads when watching by polling"),
    )

    def configure(self, config: Mapping[str, str]) -> None:
        super().configure(config)
        opts = self.options
        self._nodes = [_parse_node(n) for n in opts["nodes"]]
        if not self._nodes:
            raise DatabaseError("backend 'redis': setting 'nodes' is empty")
        if not opts["separator"]:
            raise DatabaseError("backend 'redis': setting 'separator' is empty")
        if opts["timeout"] <= 0 or opts["poll_interval"] <= 0:
            raise DatabaseError(
                "backend 'redis': settings 'timeout' and 'poll_interval' must be above 0"
            )
        if opts["db"] < 0:
            raise DatabaseError("backend 'redis': setting 'db' must be 0 or more")
        self._sep: str = opts["separator"]
        self._password: str | None = self._choose_password()
        self._lock = threading.Lock()
        self._client: redis.Redis | None = None
        self._node: _Node = self._nodes[0]
        self._reads: dict[str, dict[str, str]] = {}

    def _choose_password(self) -> str | None:
        """`password`, else `client_key` (Go confd passed -client-key as the Redis password)."""
        password, key = self.options["password"], self.options["client_key"]
        if key and password:
            log.warning("backend 'redis': setting 'client_key' is ignored: 'password' is set")
        elif key:
            log.warning(
                "backend 'redis': using 'client_key' as the password, as Go confd did; this is "
                "deprecated, give it as --password (or setting 'password')"
            )
            return key
        return password

    # --- connection ---------------------------------------------------------------------------

    def _db(self, node: _Node) -> int:
        return node.db if node.db is not None else self.options["db"]

    def _connect(self, node: _Node) -> redis.Redis:
        opts = self.options
        common = {
            "db": self._db(node),
            "username": opts["username"],
            "password": self._password,
            "socket_timeout": opts["timeout"],
            "socket_connect_timeout": opts["timeout"],
            "retry": Retry(NoBackoff(), 0),
            "decode_responses": True,
            "encoding_errors": "replace",
        }
        if node.path:
            return redis.Redis(unix_socket_path=node.path, **common)
        return redis.Redis(host=node.host, port=node.port, **common)

    def _redis(self) -> redis.Redis:
        """A client to the first node that answers PING."""
        with self._lock:
            if self._client is not None:
                return self._client
        errors: list[str] = []
        for node in self._nodes:
            client = self._connect(node)
            try:
                client.ping()
            except redis.AuthenticationError:
                client.close()
                raise DatabaseError(
                    f"backend 'redis': node {node.text}: authentication failed "
                    "(check username and password)"
                ) from None
            except redis.RedisError as exc:
                client.close()
                errors.append(f"{node.text}: {type(exc).__name__}")
                continue
            with self._lock:
                self._client, self._node = client, node
            return client
        raise DatabaseError(f"backend 'redis': no node answered ({'; '.join(errors)})")

    def _drop(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # --- keys ---------------------------------------------------------------------------------

    def _to_redis(self, key: str) -> str:
        if self._sep == "/":
            return key
        return key.strip("/").replace("/", self._sep)

    def _from_redis(self, name: str) -> str:
        if self._sep != "/":
            name = name.replace(self._sep, "/")
        return name if name.startswith("/") else "/" + name

    def _pattern(self, key: str) -> str:
        """The SCAN/PSUBSCRIBE glob for everything below `key`."""
        if key in ("", "/"):
            return "*"
        return _GLOB.sub(r"\\\1", self._to_redis(key).rstrip(self._sep)) + self._sep + "*"

    def _read(self, client: redis.Redis, key: str) -> dict[str, str]:
        found: dict[str, str] = {}
        name = self._to_redis(key)
        kind = client.type(name) if key != "/" else "none"
        if kind == "string":
            value = client.get(name)
            if value is not None:
                found[key] = value
        elif kind == "hash":
            base = self._from_redis(name).rstrip("/")
            for field, value in client.hscan_iter(name, count=1000):
                found[f"{base}/{field}"] = value
        else:
            batch: list[str] = []
            for item in client.scan_iter(match=self._pattern(key), count=1000, _type="STRING"):
                batch.append(item)
                if len(batch) >= 500:
                    found.update(self._mget(client, batch, key))
                    batch = []
            found.update(self._mget(client, batch, key))
        return found

    def _mget(self, client: redis.Redis, names: list[str], key: str) -> dict[str, str]:
        if not names:
            return {}
        pairs = zip(names, client.mget(names), strict=True)
        cleaned = ((self._from_redis(n), v) for n, v in pairs if v is not None)
        return {n: v for n, v in cleaned if select_prefix(n, key)}

    def _read_all(self, keys: Sequence[str]) -> dict[str, dict[str, str]]:
        client = self._redis()
        node = self._node
        try:
            wanted = normalize_keys(keys, every_wildcard=True)  # Go confd's redis meaning of /*
            return {key: self._read(client, key) for key in wanted}
        except redis.ConnectionError as exc:
            self._drop()
            raise DatabaseError(
                f"backend 'redis': node {node.text}: connection lost: {exc}"
            ) from None
        except redis.RedisError as exc:
            raise DatabaseError(f"backend 'redis': node {node.text}: read failed: {exc}") from None

    # --- the Database contract ----------------------------------------------------------------

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        reads = self._read_all(keys)
        with self._lock:
            self._reads.update(reads)
        values: dict[str, str] = {}
        for found in reads.values():
            values.update(found)
        return values

    def _changes(
        self, watched: list[str], baseline: dict[str, str]
    ) -> tuple[set[str], dict[str, str]]:
        """Keys whose value differs from `baseline` now, and the current values."""
        current: dict[str, str] = {}
        for found in self._read_all(watched).values():
            current.update(found)
        both = current.keys() | baseline.keys()
        return {k for k in both if current.get(k) != baseline.get(k)}, current

    def _enable_notifications(self, client: redis.Redis) -> str | None:
        """Turn keyspace notifications on; return why not when the server refuses."""
        try:
            reply = client.config_get("notify-keyspace-events")
            current = reply.get("notify-keyspace-events", "")
            wanted = "K" + ("" if "A" in current else "$hgxe")
            missing = "".join(c for c in wanted if c not in current)
            if missing:
                client.config_set("notify-keyspace-events", current + missing)
        except redis.ConnectionError:
            raise
        except redis.RedisError as exc:
            return str(exc)
        return None

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[Collection[str] | None]:
        watched = outermost_keys(keys or [prefix], every_wildcard=True)
        with self._lock:
            reads = [self._reads.get(k) for k in watched]
        baseline: dict[str, str] | None = None
        if all(r is not None for r in reads):
            baseline = {k: v for r in reads if r for k, v in r.items()}
        client = self._redis()
        node = self._node
        try:
            refused = self._enable_notifications(client)
            if refused is not None:
                log.warning(
                    "backend 'redis': node %s refused to enable keyspace notifications (%s); "
                    "polling every %ss instead",
                    node.text,
                    refused,
                    self.options["poll_interval"],
                )
                yield from self._poll(watched, baseline, stop)
                return
            yield from self._listen(client, node, watched, baseline, stop)
        except redis.ConnectionError as exc:
            self._drop()
            raise DatabaseError(
                f"backend 'redis': node {node.text}: watch on {prefix!r} lost: {exc}"
            ) from None
        except redis.RedisError as exc:
            raise DatabaseError(
                f"backend 'redis': node {node.text}: watch on {prefix!r} failed: {exc}"
            ) from None

    def _poll(
        self, watched: list[str], baseline: dict[str, str] | None, stop: threading.Event
    ) -> Iterator[Collection[str]]:
        if baseline is None:
            _, baseline = self._changes(watched, {})
        while not stop.wait(self.options["poll_interval"]):
            changed, baseline = self._changes(watched, baseline)
            if changed:
                yield changed

    def _listen(
        self,
        client: redis.Redis,
        node: _Node,
        watched: list[str],
        baseline: dict[str, str] | None,
        stop: threading.Event,
    ) -> Iterator[Collection[str]]:
        channel_prefix = f"__keyspace@{self._db(node)}__:"
        patterns = {channel_prefix + self._pattern_for_watch(w) for w in watched}
        pubsub = client.pubsub()
        try:
            pubsub.psubscribe(*patterns)
            confirmed = 0
            while confirmed < len(patterns):  # subscribed before we compare, so nothing slips by
                reply = pubsub.get_message(timeout=self.options["timeout"])
                if reply is None:
                    raise redis.TimeoutError("no answer to PSUBSCRIBE")
                confirmed += reply["type"] == "psubscribe"
            if baseline is not None:  # what changed between get_values and now
                changed, _ = self._changes(watched, baseline)
                if changed:
                    yield changed
            while not stop.is_set():
                message = pubsub.get_message(timeout=0.25)
                changed = set()
                while message is not None:
                    if message["type"] != "pmessage":
                        message = pubsub.get_message(timeout=0)
                        continue
                    name = self._from_redis(message["channel"].removeprefix(channel_prefix))
                    if any(select_prefix(name, w) for w in watched):
                        changed.add(name)
                    message = pubsub.get_message(timeout=0)
                if changed:
                    yield changed
        finally:
            pubsub.close()

    def _pattern_for_watch(self, key: str) -> str:
        """The channel glob for `key` itself and everything below it."""
        if key in ("", "/"):
            return "*"
        return _GLOB.sub(r"\\\1", self._to_redis(key).rstrip(self._sep)) + "*"

    def close(self) -> None:
        if hasattr(self, "_lock"):
            self._drop()
