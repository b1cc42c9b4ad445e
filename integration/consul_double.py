"""A test double of Consul's KV HTTP API (no Consul server can be installed here).

It is a double, not Consul: one in-memory datacenter, no Raft. What it does follow is the part
of Consul's documented KV API that clients depend on:

- `GET /v1/kv/<key>` (404 when missing), `?recurse` (raw string prefix, as Consul: `app`
  also matches `application`), `?keys`; values base64 in JSON, `X-Consul-Index` on every answer.
- `PUT /v1/kv/<key>` (body is the value, answers `true`), `DELETE /v1/kv/<key>[?recurse]`.
- Blocking queries: with `?index=N` (N > 0) the request waits until the index of what it reads
  exceeds N, or until `wait` (default 5m, at most 10m) plus up to wait/16 of jitter.
- The index of a listing is the highest ModifyIndex under the prefix, deletions included
  (tombstones), else the whole KV table's index — so a deletion wakes a watcher.
- ACL: with a token set, requests without `X-Consul-Token`/`?token=` get 403 `Permission denied`.
- `?dc=` other than the double's datacenter gets 500 `No path to datacenter`.

Test hooks: `restart()` drops every connection and serves again on the same port (data kept),
`stop()` leaves the port closed, `reset_index(n)` makes the index go backwards (as after a
snapshot restore), `requests` counts GETs, `queries` keeps each GET's query parameters and
`headers` every request's headers.

Several agents: `ConsulDouble(agent_of=first)` is another agent of the same datacenter, as
Consul's agents are: its own port and lifecycle, the same KV data and the same index (real agents
forward to the same Raft servers), so a blocking query's index means the same on both and a
stopped agent leaves the others serving. With `ssl_context` the agent serves HTTPS (the context
decides what it presents and whether it asks for a client certificate).
"""

from __future__ import annotations

import base64
import json
import random
import re
import ssl
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from integration.http_double import DoubleHandler, HttpDouble

__all__ = ["ConsulDouble"]

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    parts = re.findall(r"([\d.]+)(ns|us|µs|ms|s|m|h)", text)
    if not parts:
        raise ValueError(text)
    return sum(float(n) * _UNITS[u] for n, u in parts)


@dataclass
class _Entry:
    value: bytes
    create_index: int
    modify_index: int
    flags: int = 0


@dataclass
class _Data:
    """What the agents of one datacenter share: the KV table, tombstones and the index."""

    kv: dict[str, _Entry] = field(default_factory=dict)
    tombstones: dict[str, int] = field(default_factory=dict)
    index: int = 10
    cond: threading.Condition = field(default_factory=threading.Condition)


class ConsulDouble(HttpDouble):
    """An in-memory Consul KV store served over HTTP on 127.0.0.1."""

    def __init__(
        self,
        token: str | None = None,
        datacenter: str = "dc1",
        *,
        agent_of: ConsulDouble | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__()
        self.token = token
        self.datacenter = datacenter
        self.ssl_context = ssl_context
        self._data = agent_of._data if agent_of else _Data()
        self._cond = self._data.cond  # one datacenter: a write wakes every agent's watchers
        self.requests = 0
        self.headers: list[dict[str, str]] = []
        self.queries: list[dict[str, str]] = []
        self._generation = 0

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def kv(self) -> dict[str, _Entry]:
        return self._data.kv

    @property
    def tombstones(self) -> dict[str, int]:
        return self._data.tombstones

    @property
    def index(self) -> int:
        return self._data.index

    @index.setter
    def index(self, value: int) -> None:
        self._data.index = value

    def server_context(self) -> ssl.SSLContext | None:
        return self.ssl_context

    def _stopping(self) -> None:
        with self._cond:  # blocking queries return, unanswered, as from a dying agent
            self._generation += 1
            self._cond.notify_all()

    # --- data ---------------------------------------------------------------------------------

    def put(self, key: str, value: str | bytes) -> None:
        raw = value.encode() if isinstance(value, str) else value
        with self._cond:
            self.index += 1
            old = self.kv.get(key)
            self.kv[key] = _Entry(raw, old.create_index if old else self.index, self.index)
            self.tombstones.pop(key, None)
            self._cond.notify_all()

    def delete(self, key: str, recurse: bool = False) -> None:
        with self._cond:
            gone = [k for k in self.kv if k.startswith(key)] if recurse else [key]
            gone = [k for k in gone if k in self.kv]
            if not gone:
                return
            self.index += 1
            for k in gone:
                del self.kv[k]
                self.tombstones[k] = self.index
            self._cond.notify_all()

    def clear(self) -> None:
        self.delete("", recurse=True)

    def reset_index(self, index: int) -> None:
        """Make every index go back to at most `index`, as Consul allows after a restore."""
        with self._cond:
            self.index = index
            for entry in self.kv.values():
                entry.modify_index = min(entry.modify_index, index)
                entry.create_index = min(entry.create_index, index)
            self.tombstones.clear()
            self._cond.notify_all()

    def _list_index(self, prefix: str, recurse: bool) -> int:
        def hit(k: str) -> bool:
            return k.startswith(prefix) if recurse else k == prefix

        found = [e.modify_index for k, e in self.kv.items() if hit(k)]
        found += [i for k, i in self.tombstones.items() if hit(k)]
        return max(found, default=0) or self.index


class _Handler(DoubleHandler):
    store: ConsulDouble

    def _reply(
        self, status: int, body: bytes, index: int | None = None, kind: str = "json"
    ) -> None:
        self.send_response(status)
        ctype = "application/json" if kind == "json" else "text/plain; charset=utf-8"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if index is not None:
            self.send_header("X-Consul-Index", str(index))
            self.send_header("X-Consul-KnownLeader", "true")
            self.send_header("X-Consul-LastContact", "0")
        self.end_headers()
        self.wfile.write(body)

    def _parse(self) -> tuple[str, dict[str, str]] | None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if not parts.path.startswith("/v1/kv/"):
            self._reply(404, b"Not found", kind="text")
            return None
        double = self.store
        with double._cond:
            double.headers.append(dict(self.headers.items()))
        token = self.headers.get("X-Consul-Token") or query.get("token")
        if double.token is not None and token != double.token:
            self._reply(403, b"Permission denied", kind="text")
            return None
        if query.get("dc", double.datacenter) != double.datacenter:
            self._reply(500, b"No path to datacenter", kind="text")
            return None
        return unquote(parts.path[len("/v1/kv/") :]), query

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parsed = self._parse()
        if parsed is None:
            return
        key, query = parsed
        double = self.store
        recurse = "recurse" in query or "keys" in query
        try:
            wanted = int(query.get("index", "0") or 0)
            wait = min(_duration(query["wait"]) if "wait" in query else 300.0, 600.0)
        except ValueError:
            self._reply(400, b"Invalid wait or index", kind="text")
            return
        with double._cond:
            double.requests += 1
            double.queries.append(query)
            generation = double._generation
            if wanted > 0:
                deadline = wait + random.uniform(0, wait / 16)
                double._cond.wait_for(
                    lambda: double._generation != generation
                    or double._list_index(key, recurse) > wanted,
                    timeout=deadline,
                )
                if double._generation != generation:
                    self.close_connection = True
                    return  # the "server" went away: no answer at all
            index = double._list_index(key, recurse)
            if recurse:
                hits = sorted((k, e) for k, e in double.kv.items() if k.startswith(key))
            else:
                hits = [(key, double.kv[key])] if key in double.kv else []
        if not hits:
            self._reply(404, b"", index)
            return
        if "keys" in query:
            self._reply(200, json.dumps([k for k, _ in hits]).encode(), index)
            return
        body = [
            {
                "LockIndex": 0,
                "Key": k,
                "Flags": e.flags,
                "Value": base64.b64encode(e.value).decode() if e.value else None,
                "CreateIndex": e.create_index,
                "ModifyIndex": e.modify_index,
            }
            for k, e in hits
        ]
        self._reply(200, json.dumps(body).encode(), index)

    def do_PUT(self) -> None:  # noqa: N802
        parsed = self._parse()
        if parsed is None:
            return
        key, _ = parsed
        length = int(self.headers.get("Content-Length") or 0)
        self.store.put(key, self.rfile.read(length))
        self._reply(200, b"true", self.store.index)

    def do_DELETE(self) -> None:  # noqa: N802
        parsed = self._parse()
        if parsed is None:
            return
        key, query = parsed
        self.store.delete(key, recurse="recurse" in query)
        self._reply(200, b"true", self.store.index)


ConsulDouble.handler = _Handler  # defined after the double, whose type it names
