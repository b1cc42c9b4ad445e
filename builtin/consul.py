"""The Consul KV backend, with py-consul; keys are re-rooted at `/` (Consul's `app/x` is `/app/x`).

Reads are recursive: `/app` gives `/app` and `/app/...`, never `/application` (Consul matches
raw string prefixes; the extra keys are dropped here). Folder markers (keys ending in `/`) hold
no value and are skipped.

Watches are Consul blocking queries on the prefix (`?recurse&index=N&wait=...`), with the index
rules Consul documents: an index that goes backwards resets to 0, an index below 1 becomes 1,
and a query that returns quickly without news is rate-limited. A blocking query may return
without a change, so each answer is compared with the last one (keys and ModifyIndex) and the
watch yields only the keys that really changed under the watched keys. `get_values` remembers
the index and the keys it read, so the first query starts from there and a change made between
the read and the watch is reported, not lost.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import consul
import requests

from plugin_sdk.database import Database, DatabaseError, Setting, select_prefix
from plugin_sdk.keys import normalize_keys, outermost_keys

_Snapshot = dict[str, int]  # key -> ModifyIndex


class ConsulDatabase(Database):
    """Keys and values from Consul's KV store, watched with blocking queries."""

    name = "consul"
    description = "Consul KV store (blocking-query watch, ACL token, TLS)"
    can_watch = True
    settings = (
        Setting("nodes", list, ["127.0.0.1:8500"], "Consul agents (host:port), tried in order"),
        Setting("scheme", str, "http", "http or https, for nodes given without a scheme"),
        Setting("client_cert", str, None, "PEM client certificate file for TLS"),
        Setting("client_key", str, None, "PEM client key file for TLS"),
        Setting("client_ca_keys", str, None, "PEM CA certificate file to verify Consul"),
        Setting("username", str, None, "HTTP basic auth user"),
        Setting("password", str, None, "HTTP basic auth password", secret=True),
        Setting("token", str, None, "Consul ACL token", secret=True),
        Setting("datacenter", str, None, "datacenter to read from (default: the agent's)"),
        Setting("timeout", float, 10.0, "seconds to wait for an answer (beyond a watch's wait)"),
        Setting("watch_wait", int, 60, "seconds a blocking query may wait (Consul caps at 600)"),
    )

    def configure(self, config: Mapping[str, str]) -> None:
        super().configure(config)
        opts = self.options
        if opts["scheme"] not in ("http", "https"):
            raise DatabaseError(
                f"backend 'consul': setting 'scheme' must be http or https, got {opts['scheme']!r}"
            )
        if not opts["nodes"]:
            raise DatabaseError("backend 'consul': setting 'nodes' is empty")
        if not 1 <= opts["watch_wait"] <= 600:
            raise DatabaseError("backend 'consul': setting 'watch_wait' must be 1..600 seconds")
        if opts["timeout"] <= 0:
            raise DatabaseError("backend 'consul': setting 'timeout' must be above 0")
        if bool(opts["client_cert"]) != bool(opts["client_key"]):
            raise DatabaseError(
                "backend 'consul': settings 'client_cert' and 'client_key' go together"
            )
        for setting in ("client_cert", "client_key", "client_ca_keys"):
            path = opts[setting]
            if path:
                try:
                    with open(path, "rb"):
                        pass
                except OSError as exc:
                    raise DatabaseError(
                        f"backend 'consul': setting {setting!r}: "
                        f"cannot read {path}: {exc.strerror}"
                    ) from None
        self._clients = [self._client(node) for node in opts["nodes"]]
        self._current = 0
        self._lock = threading.Lock()
        self._reads: dict[str, tuple[int, _Snapshot]] = {}

    def _client(self, node: str) -> tuple[str, consul.Consul]:
        opts = self.options
        parts = urlsplit(node if "://" in node else f"{opts['scheme']}://{node}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DatabaseError(f"backend 'consul': node {node!r} is not host:port")
        try:
            port = parts.port or 8500
        except ValueError:
            raise DatabaseError(f"backend 'consul': node {node!r} has a bad port") from None
        cert = (opts["client_cert"], opts["client_key"]) if opts["client_cert"] else None
        client = consul.Consul(
            host=parts.hostname,
            port=port,
            scheme=parts.scheme,
            token=opts["token"],
            dc=opts["datacenter"],
            verify=opts["client_ca_keys"] or True,
            cert=cert,
            connections_timeout=opts["timeout"],
        )
        client.token = opts["token"]  # py-consul lets CONSUL_HTTP_TOKEN win; the setting does
        if opts["username"]:
            client.http.session.auth = (opts["username"], opts["password"] or "")
        return f"{parts.scheme}://{parts.hostname}:{port}", client

    def _list(self, key: str, index: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """Recursive read of `key` (optionally blocking), failing over across nodes."""
        errors: list[str] = []
        for _ in self._clients:
            with self._lock:
                url, client = self._clients[self._current]
            try:
                wait = f"{self.options['watch_wait']}s" if index else None
                new_index, entries = client.kv.get(
                    key.strip("/"), recurse=True, index=index or None, wait=wait
                )
                return int(new_index or 0), entries or []
            except (requests.ConnectionError, requests.Timeout) as exc:
                errors.append(f"{url}: {type(exc).__name__}")
                with self._lock:
                    self._current = (self._current + 1) % len(self._clients)
            except consul.ACLPermissionDenied:
                raise DatabaseError(
                    f"backend 'consul': node {url}: permission denied reading {key!r} "
                    "(check the ACL token)"
                ) from None
            except consul.ConsulException as exc:
                raise DatabaseError(
                    f"backend 'consul': node {url}: reading {key!r} failed: {exc}"
                ) from None
        raise DatabaseError(f"backend 'consul': no node answered ({'; '.join(errors)})")

    @staticmethod
    def _entries(key: str, entries: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
        for entry in entries:
            raw = entry["Key"]
            if raw.endswith("/"):
                continue  # a folder marker, not a value
            name = "/" + raw
            if select_prefix(name, key):
                yield name, entry

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        reads: dict[str, tuple[int, _Snapshot]] = {}
        for key in normalize_keys(keys):
            index, entries = self._list(key)
            snapshot: _Snapshot = {}
            for name, entry in self._entries(key, entries):
                value = entry.get("Value") or b""
                if isinstance(value, bytes):
                    value = value.decode("utf-8", "replace")
                values[name] = value
                snapshot[name] = int(entry.get("ModifyIndex", 0))
            reads[key] = (index, snapshot)
        with self._lock:
            self._reads.update(reads)
        return values

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[Collection[str] | None]:
        watched = outermost_keys(keys or [prefix])
        query = prefix if all(select_prefix(k, prefix) for k in watched) else "/"

        def restrict(snapshot: _Snapshot) -> _Snapshot:
            return {k: v for k, v in snapshot.items() if any(select_prefix(k, w) for w in watched)}

        with self._lock:
            reads = [self._reads.get(k) for k in watched]
        baseline: _Snapshot | None = None
        index = 0
        if reads and all(reads):
            index = max(1, min(r[0] for r in reads if r))
            baseline = restrict({k: v for r in reads if r for k, v in r[1].items()})

        answers: queue.Queue[tuple[int, list[dict[str, Any]]] | BaseException] = queue.Queue()

        def ask(at: int) -> None:
            try:
                answers.put(self._list(query, at))
            except BaseException as exc:  # handed to the watching thread
                answers.put(exc)

        while not stop.is_set():
            asked = time.monotonic()
            threading.Thread(target=ask, args=(index,), name="consul-watch", daemon=True).start()
            while True:
                try:
                    answer = answers.get(timeout=0.2)
                    break
                except queue.Empty:
                    if stop.is_set():
                        return  # the query thread ends by itself within `watch_wait`
            if isinstance(answer, BaseException):
                raise DatabaseError(f"{answer} (watching {prefix!r})") from None
            new_index, entries = answer
            if new_index < index:
                new_index = 0  # the index went backwards (e.g. a restore): start over
            elif new_index < 1:
                new_index = 1
            current = restrict(
                {n: int(e.get("ModifyIndex", 0)) for n, e in self._entries(query, entries)}
            )
            if baseline is not None:
                both = current.keys() | baseline.keys()
                changed = {k for k in both if current.get(k) != baseline.get(k)}
                if changed:
                    yield changed
            baseline = current
            if new_index == index and time.monotonic() - asked < 1.0:
                stop.wait(1.0)  # answered at once without news: do not hammer the agent
            index = new_index

    def close(self) -> None:
        for _, client in getattr(self, "_clients", ()):
            client.http.session.close()
