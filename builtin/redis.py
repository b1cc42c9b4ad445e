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

Redis Sentinel: with `sentinel_master` set (the name the Sentinels monitor), every node is a
Sentinel (`host:port` or `sentinel://host:port`, port 26379 by default; a `sentinel://` node
without `sentinel_master` is an error saying so) and the master is the one they name (redis-py's
`Sentinel`; each new connection asks them again). `password`/`username` are the master's,
`sentinel_password`/`sentinel_username` the Sentinels' own. When the master is lost (its
connection breaks, or the Sentinels name another one), a watch keeps running: it waits up to
`failover_timeout` seconds for the Sentinels to name a reachable master, enables notifications
and re-subscribes there, then yields None so the daemon re-reads every watched key and
renders what changed meanwhile. The loss and the new master are logged once each, however many
watches and reads notice them.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from plugin_sdk.database import (
    Database,
    DatabaseError,
    LastReads,
    Setting,
    backend_logger,
    changed_values,
    select_prefix,
)
from plugin_sdk.keys import normalize_keys, outermost_keys

log = backend_logger("redis")

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
            f"node {raw!r} is not host:port[/db] or a unix socket path"
        ) from None


def _parse_sentinel(raw: str) -> tuple[str, int]:
    address = raw.removeprefix("sentinel://")
    host, colon, port = address.rpartition(":")
    if not colon:
        host, port = address, "26379"
    if not host or "/" in address or not port.isdigit():
        raise DatabaseError(
            f"node {raw!r} is not a Sentinel's host:port "
            "(with 'sentinel_master' set, every node is a Sentinel)"
        )
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class _Link:
    """The client in use and what it reaches: `where` for messages (`node host:port`, or
    `master 'name' at host:port`), the database number, and the master's address (Sentinel)."""

    client: redis.Redis
    where: str
    db: int
    address: tuple[str, int] | None = None


class RedisDatabase(Database):
    """Keys and values from Redis (a node, or the master Sentinels name), watched with keyspace
    notifications."""

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
        Setting(
            "sentinel_master", str, None,
            "master name: the nodes are then Redis Sentinels (host:port, port 26379 by default)",
        ),
        Setting("sentinel_username", str, None, "the Sentinels' ACL user"),
        Setting("sentinel_password", str, None, "the Sentinels' password", secret=True),
        Setting(
            "failover_timeout", float, 30.0,
            "seconds a watch waits for the Sentinels to name a reachable new master",
        ),
    )

    def configure(self, config: Mapping[str, str]) -> None:
        super().configure(config)
        opts = self.options
        self._master_name: str | None = opts["sentinel_master"] or None
        self._sentinel: Sentinel | None = None
        if self._master_name:
            given = opts["nodes"] if "nodes" in config else ["127.0.0.1:26379"]
            sentinels = [_parse_sentinel(n) for n in given]
            if not sentinels:
                raise DatabaseError("setting 'nodes' is empty")
        else:
            for node in opts["nodes"]:
                if node.startswith("sentinel://"):
                    raise DatabaseError(
                        f"node {node!r} is a Sentinel: set 'sentinel_master' "
                        "to the name of the master it monitors"
                    )
            self._nodes = [_parse_node(n) for n in opts["nodes"]]
            if not self._nodes:
                raise DatabaseError("setting 'nodes' is empty")
        if not opts["separator"]:
            raise DatabaseError("setting 'separator' is empty")
        for name in ("timeout", "poll_interval", "failover_timeout"):
            if opts[name] <= 0:
                raise DatabaseError(f"setting {name!r} must be above 0")
        if opts["db"] < 0:
            raise DatabaseError("setting 'db' must be 0 or more")
        self._sep: str = opts["separator"]
        self._password: str | None = self._choose_password()
        self._lock = threading.Lock()  # guards _link and _lost
        self._opening = threading.Lock()  # one thread at a time opens a new link
        self._link: _Link | None = None
        self._lost: _Link | None = None  # the master lost and not yet replaced (Sentinel)
        self._reads = LastReads()  # what each key held: a watch starts from there
        if self._master_name:
            self._sentinel = Sentinel(
                sentinels,
                sentinel_kwargs={
                    "username": opts["sentinel_username"],
                    "password": opts["sentinel_password"],
                    "socket_timeout": opts["timeout"],
                    "socket_connect_timeout": opts["timeout"],
                    "retry": Retry(NoBackoff(), 0),
                },
            )

    def _choose_password(self) -> str | None:
        """`password`, else `client_key` (Go confd passed -client-key as the Redis password)."""
        password, key = self.options["password"], self.options["client_key"]
        if key and password:
            log.warning("setting 'client_key' is ignored: 'password' is set")
        elif key:
            log.warning(
                "using 'client_key' as the password, as Go confd did; this is "
                "deprecated, give it as --password (or setting 'password')"
            )
            return key
        return password

    # --- connection ---------------------------------------------------------------------------

    def _options(self, db: int) -> dict[str, Any]:
        opts = self.options
        return {
            "db": db,
            "username": opts["username"],
            "password": self._password,
            "socket_timeout": opts["timeout"],
            "socket_connect_timeout": opts["timeout"],
            "retry": Retry(NoBackoff(), 0),
            "decode_responses": True,
            "encoding_errors": "replace",
        }

    def _connection(self) -> _Link:
        """The link in use, else a new one: to the first node that answers PING, or to the
        master the Sentinels name."""
        with self._lock:
            if self._link is not None:
                return self._link
        with self._opening:
            with self._lock:
                if self._link is not None:
                    return self._link
            link = self._open_master() if self._sentinel else self._open_node()
            with self._lock:
                self._link, lost, self._lost = link, self._lost, None
        if lost is not None:
            moved = "failed over to" if link.address != lost.address else "back at"
            log.warning("%s %s", moved, link.where)
        return link

    def _open_node(self) -> _Link:
        errors: list[str] = []
        for node in self._nodes:
            db = node.db if node.db is not None else self.options["db"]
            if node.path:
                client = redis.Redis(unix_socket_path=node.path, **self._options(db))
            else:
                client = redis.Redis(host=node.host, port=node.port, **self._options(db))
            try:
                client.ping()
            except redis.AuthenticationError:
                client.close()
                raise DatabaseError(
                    f"node {node.text}: authentication failed "
                    "(check username and password)"
                ) from None
            except redis.RedisError as exc:
                client.close()
                errors.append(f"{node.text}: {type(exc).__name__}")
                continue
            return _Link(client, f"node {node.text}", db)
        raise DatabaseError(f"no node answered ({'; '.join(errors)})")

    def _open_master(self) -> _Link:
        assert self._sentinel is not None and self._master_name is not None
        db = self.options["db"]
        client = self._sentinel.master_for(self._master_name, **self._options(db))
        try:
            host, port = client.connection_pool.get_master_address()
        except MasterNotFoundError:
            client.close()
            raise DatabaseError(self._no_master()) from None
        where = f"master {self._master_name!r} at {host}:{port}"
        try:
            client.ping()
        except redis.AuthenticationError:
            client.close()
            raise DatabaseError(
                f"{where}: authentication failed (check username and password)"
            ) from None
        except redis.RedisError as exc:
            client.close()
            raise DatabaseError(
                f"{where}, named by the Sentinels, does not answer "
                f"({type(exc).__name__})"
            ) from None
        return _Link(client, where, db, (host, int(port)))

    def _no_master(self) -> str:
        """Why no Sentinel named a usable master, Sentinel by Sentinel (asked again)."""
        assert self._sentinel is not None
        name = self._master_name
        reasons = []
        for sentinel in self._sentinel.sentinels:
            kwargs = sentinel.connection_pool.connection_kwargs
            address = f"{kwargs.get('host')}:{kwargs.get('port')}"
            try:
                state = sentinel.sentinel_master(name)
            except redis.AuthenticationError:
                reasons.append(f"{address}: authentication failed (check sentinel_password)")
            except redis.ResponseError as exc:
                unknown = "no such master" in str(exc).lower()
                reasons.append(f"{address}: " + (f"does not monitor {name!r}" if unknown
                                                 else str(exc)))
            except redis.RedisError as exc:
                reasons.append(f"{address}: {type(exc).__name__}")
            else:
                down = state.get("is_sdown") or state.get("is_odown")
                named = f"{state.get('ip')}:{state.get('port')}"
                reasons.append(f"{address}: " + (f"reports {named} down" if down
                                                 else f"names {named}"))
        return (
            f"no Sentinel names a reachable master {name!r} "
            f"({'; '.join(reasons)})"
        )

    def _lose(self, link: _Link, exc: Exception) -> None:
        """Stop using `link` after `exc`; the first to notice a lost master says so."""
        with self._lock:
            if self._link is not link:
                return  # dropped already (by another read or watch)
            self._link = None
            first = self._sentinel is not None and self._lost is None
            if first:
                self._lost = link
        link.client.close()
        if first:
            log.warning(
                "lost %s (%s); asking the Sentinels for the master",
                link.where,
                type(exc).__name__,
            )

    def _check_master(self, link: _Link) -> None:
        """Raise ConnectionError when the Sentinels name a master other than `link`'s (a
        failover that did not break our connection); their silence changes nothing."""
        assert self._sentinel is not None
        try:
            host, port = self._sentinel.discover_master(self._master_name)
        except MasterNotFoundError:
            return
        if (host, int(port)) != link.address:
            raise redis.ConnectionError(f"the Sentinels name {host}:{port} now")

    # --- keys ---------------------------------------------------------------------------------

    def _to_redis(self, key: str) -> str:
        if self._sep == "/":
            return key
        return key.strip("/").replace("/", self._sep)

    def _from_redis(self, name: str) -> str:
        if self._sep != "/":
            name = name.replace(self._sep, "/")
        return name if name.startswith("/") else "/" + name

    def _pattern(self, key: str, *, itself: bool = False) -> str:
        """The glob for everything below `key` (SCAN), or with `itself` for `key` too (the
        keyspace-notification channels)."""
        if key in ("", "/"):
            return "*"
        escaped = _GLOB.sub(r"\\\1", self._to_redis(key).rstrip(self._sep))
        return escaped + ("*" if itself else self._sep + "*")

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
        wanted = normalize_keys(keys, every_wildcard=True)  # Go confd's redis meaning of /*
        attempts = 2 if self._sentinel else 1  # a lost master: once more, at the one named now
        for attempt in range(attempts):
            link = self._connection()
            try:
                return {key: self._read(link.client, key) for key in wanted}
            except redis.ConnectionError as exc:
                self._lose(link, exc)
                if attempt + 1 == attempts:
                    raise DatabaseError(
                        f"{link.where}: connection lost: {exc}"
                    ) from None
            except redis.RedisError as exc:
                raise DatabaseError(
                    f"{link.where}: read failed: {exc}"
                ) from None
        raise AssertionError("unreachable")

    # --- the Database contract ----------------------------------------------------------------

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        reads = self._read_all(keys)
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
        return set(changed_values(baseline, current)), current

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
        baseline = self._reads.held(watched)
        failover_until: float | None = None  # set while waiting for a new master
        while True:
            try:
                link = self._connection()
            except DatabaseError as exc:
                if failover_until is None:
                    raise
                if stop.is_set() or time.monotonic() > failover_until:
                    raise DatabaseError(
                        f"{exc} (watch on {prefix!r}: none within "
                        f"{self.options['failover_timeout']:g}s)"
                    ) from None
                stop.wait(0.1)
                continue
            try:
                refused = self._enable_notifications(link.client)
                if refused is not None:
                    log.warning(
                        "%s refused to enable keyspace notifications (%s); "
                        "polling every %ss instead",
                        link.where,
                        refused,
                        self.options["poll_interval"],
                    )
                    yield from self._poll(watched, baseline, stop)
                    return
                resumed = failover_until is not None
                yield from self._listen(link, watched, baseline, stop, resumed)
                return
            except redis.ConnectionError as exc:
                self._lose(link, exc)
                if self._sentinel is None or stop.is_set():
                    raise DatabaseError(
                        f"{link.where}: watch on {prefix!r} lost: {exc}"
                    ) from None
                failover_until = time.monotonic() + self.options["failover_timeout"]
            except redis.RedisError as exc:
                raise DatabaseError(
                    f"{link.where}: watch on {prefix!r} failed: {exc}"
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
        link: _Link,
        watched: list[str],
        baseline: dict[str, str] | None,
        stop: threading.Event,
        resumed: bool,
    ) -> Iterator[Collection[str] | None]:
        """Follow keyspace notifications on `link`. `resumed`: on a new master after a
        failover, so yield None first (re-read everything: writes made meanwhile)."""
        channel_prefix = f"__keyspace@{link.db}__:"
        patterns = {channel_prefix + self._pattern(w, itself=True) for w in watched}
        pubsub = link.client.pubsub()
        try:
            pubsub.psubscribe(*patterns)
            confirmed = 0
            while confirmed < len(patterns):  # subscribed before we compare, so nothing slips by
                reply = pubsub.get_message(timeout=self.options["timeout"])
                if reply is None:
                    raise redis.TimeoutError("no answer to PSUBSCRIBE")
                confirmed += reply["type"] == "psubscribe"
            if resumed:
                yield None
            elif baseline is not None:  # what changed between get_values and now
                changed, _ = self._changes(watched, baseline)
                if changed:
                    yield changed
            check_at = time.monotonic() + self.options["poll_interval"]
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
                if link.address is not None and time.monotonic() >= check_at:
                    self._check_master(link)
                    check_at = time.monotonic() + self.options["poll_interval"]
        finally:
            pubsub.close()

    def close(self) -> None:
        if not hasattr(self, "_lock"):
            return
        with self._lock:
            link, self._link = self._link, None
        if link is not None:
            link.client.close()
        if self._sentinel is not None:
            for sentinel in self._sentinel.sentinels:
                sentinel.close()
