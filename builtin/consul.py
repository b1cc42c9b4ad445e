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

Several agents in `nodes` are tried in order, starting from the one that last answered; a
request (a blocking query too, with its index: agents of one datacenter share it) that cannot
reach an agent goes to the next one, and the move is logged once. The environment variables
Go's `api.DefaultConfig` reads fill settings the user did not set (see `_ENVIRONMENT`).
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import consul
import requests
from requests.adapters import HTTPAdapter

from plugin_sdk.database import (
    Database,
    DatabaseError,
    Setting,
    backend_logger,
    changed_values,
    idle_wait,
    select_prefix,
    when_stopped,
)
from plugin_sdk.keys import normalize_keys, outermost_keys

log = backend_logger("consul")

_Snapshot = dict[str, int]  # key -> ModifyIndex

# Setting -> the variable Go's api.DefaultConfig fills it from (an empty variable is unset).
# CONSUL_HTTP_AUTH, CONSUL_HTTP_SSL, CONSUL_HTTP_SSL_VERIFY and CONSUL_HTTP_TOKEN_FILE are
# read in `_access` because they do not map one to one.
_ENVIRONMENT = {
    "nodes": "CONSUL_HTTP_ADDR",
    "token": "CONSUL_HTTP_TOKEN",
    "client_cert": "CONSUL_CLIENT_CERT",
    "client_key": "CONSUL_CLIENT_KEY",
    "client_ca_keys": "CONSUL_CACERT",
    "tls_server_name": "CONSUL_TLS_SERVER_NAME",
}
# Read by Go's client, not here: said once instead of ignored silently.
_UNSUPPORTED = {
    "CONSUL_CAPATH": "a CA directory is not supported; give one file as CONSUL_CACERT",
    "CONSUL_NAMESPACE": "Consul Enterprise namespaces are not supported",
    "CONSUL_PARTITION": "Consul Enterprise admin partitions are not supported",
}
_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # strconv.ParseBool
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _env_bool(name: str) -> bool | None:
    raw = _env(name)
    if raw is None:
        return None
    if raw in _GO_TRUE or raw in _GO_FALSE:
        return raw in _GO_TRUE
    raise DatabaseError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class _Access:
    """How to reach Consul, settings merged with the environment; `origin` names where each
    value came from (a setting or a variable), for error messages."""

    nodes: list[str]
    scheme: str
    token: str | None
    auth: tuple[str, str] | None
    cert: tuple[str, str] | None
    verify: bool | str
    server_name: str | None
    origin: dict[str, str]


def _cause(exc: Exception) -> str:
    """Why a request reached no agent, short: the exception's name, or the TLS reason."""
    if isinstance(exc, requests.exceptions.SSLError):
        found = re.search(r"\[SSL[^\]]*\] ([^(]+)", str(exc))
        return "TLS: " + (found.group(1).strip().rstrip(".") if found else "handshake failed")
    return type(exc).__name__


class _ServerName(HTTPAdapter):
    """Sends `server_name` as SNI and verifies the certificate against it instead of the
    node's host, as Go's TLSConfig.ServerName (CONSUL_TLS_SERVER_NAME) does."""

    def __init__(self, server_name: str) -> None:
        self._server_name = server_name
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["server_hostname"] = self._server_name
        super().init_poolmanager(*args, **kwargs)


class ConsulDatabase(Database):
    """Keys and values from Consul's KV store, watched with blocking queries."""

    name = "consul"
    description = "Consul KV store (blocking-query watch, several agents, ACL token, TLS)"
    can_watch = True
    settings = (
        Setting(
            "nodes", list, ["127.0.0.1:8500"], "Consul agents (host:port), tried in order; "
            "default: CONSUL_HTTP_ADDR, else 127.0.0.1:8500",
        ),
        Setting(
            "scheme", str, "http",
            "http or https, for nodes given without a scheme (default: CONSUL_HTTP_SSL)",
        ),
        Setting("client_cert", str, None, "PEM client certificate file (or CONSUL_CLIENT_CERT)"),
        Setting("client_key", str, None, "PEM client key file (or CONSUL_CLIENT_KEY)"),
        Setting("client_ca_keys", str, None, "PEM CA file to verify Consul (or CONSUL_CACERT)"),
        Setting(
            "client_insecure", bool, False,
            "do not verify Consul's certificate (default: CONSUL_HTTP_SSL_VERIFY=false)",
        ),
        Setting(
            "tls_server_name", str, None,
            "name to verify Consul's certificate against (or CONSUL_TLS_SERVER_NAME)",
        ),
        Setting("username", str, None, "HTTP basic auth user (or CONSUL_HTTP_AUTH user:pass)"),
        Setting("password", str, None, "HTTP basic auth password", secret=True),
        Setting(
            "token", str, None,
            "Consul ACL token (or CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_TOKEN)", secret=True,
        ),
        Setting("datacenter", str, None, "datacenter to read from (default: the agent's)"),
        Setting("timeout", float, 10.0, "seconds to wait for an answer (beyond a watch's wait)"),
        Setting("watch_wait", int, 60, "seconds a blocking query may wait (Consul caps at 600)"),
    )

    def configure(self, config: Mapping[str, str]) -> None:
        super().configure(config)
        opts = self.options
        if not 1 <= opts["watch_wait"] <= 600:
            raise DatabaseError("setting 'watch_wait' must be 1..600 seconds")
        if opts["timeout"] <= 0:
            raise DatabaseError("setting 'timeout' must be above 0")
        access = self._access(config)
        self._clients = [self._client(node, access) for node in access.nodes]
        self._current = 0
        self._lock = threading.Lock()
        self._reads: dict[str, tuple[int, _Snapshot]] = {}

    def _access(self, config: Mapping[str, str]) -> _Access:
        """Settings the user set win; the rest come from Go's variables, then the defaults."""
        opts = self.options
        origin: dict[str, str] = {}

        def pick(setting: str) -> str | None:
            if opts[setting]:
                origin[setting] = f"setting {setting!r}"
                return opts[setting]
            value = _env(_ENVIRONMENT[setting])
            if value is not None:
                origin[setting] = _ENVIRONMENT[setting]
            return value

        for variable, why in _UNSUPPORTED.items():
            if _env(variable):
                log.warning("%s is ignored: %s", variable, why)

        if "nodes" in config:
            nodes, origin["nodes"] = opts["nodes"], "setting 'nodes'"
            if not nodes:
                raise DatabaseError("setting 'nodes' is empty")
        elif _env("CONSUL_HTTP_ADDR"):
            nodes, origin["nodes"] = [os.environ["CONSUL_HTTP_ADDR"]], "CONSUL_HTTP_ADDR"
        else:
            nodes, origin["nodes"] = list(opts["nodes"]), "setting 'nodes'"

        scheme = opts["scheme"] if config.get("scheme") else None
        if scheme is None:
            scheme = "https" if _env_bool("CONSUL_HTTP_SSL") else "http"
        if scheme not in ("http", "https"):
            raise DatabaseError(
                f"setting 'scheme' must be http or https, got {scheme!r}"
            )

        token = opts["token"] or self._token_file() or _env("CONSUL_HTTP_TOKEN")

        auth: tuple[str, str] | None = None
        if opts["username"]:
            auth = (opts["username"], opts["password"] or "")
        elif _env("CONSUL_HTTP_AUTH"):
            user, _, password = os.environ["CONSUL_HTTP_AUTH"].partition(":")
            auth = (user, password)

        cert_file, key_file = pick("client_cert"), pick("client_key")
        ca_file = pick("client_ca_keys")
        if bool(cert_file) != bool(key_file):
            given = origin.get("client_cert") or origin.get("client_key")
            raise DatabaseError(
                "settings 'client_cert' and 'client_key' go together "
                f"(only {given} is set)"
            )
        for setting, path in (("client_cert", cert_file), ("client_key", key_file),
                              ("client_ca_keys", ca_file)):  # fmt: skip
            if path:
                try:
                    with open(path, "rb"):
                        pass
                except OSError as exc:
                    raise DatabaseError(
                        f"{origin[setting]}: cannot read {path}: {exc.strerror}"
                    ) from None

        if config.get("client_insecure"):
            insecure, why = opts["client_insecure"], "setting 'client_insecure'"
        else:
            insecure, why = _env_bool("CONSUL_HTTP_SSL_VERIFY") is False, "CONSUL_HTTP_SSL_VERIFY"
        if insecure:
            log.warning("Consul's TLS certificate is not verified (%s)", why)

        server_name = pick("tls_server_name")
        if server_name and server_name.rfind(":") > server_name.rfind("]"):
            server_name = server_name.rpartition(":")[0]  # Go drops a port here too
        return _Access(
            nodes=nodes,
            scheme=scheme,
            token=token,
            auth=auth,
            cert=(cert_file, key_file) if cert_file and key_file else None,
            verify=False if insecure else (ca_file or True),
            server_name=server_name.strip("[]") if server_name else None,
            origin=origin,
        )

    @staticmethod
    def _token_file() -> str | None:
        """The token in CONSUL_HTTP_TOKEN_FILE (Go prefers it to CONSUL_HTTP_TOKEN), if any."""
        path = _env("CONSUL_HTTP_TOKEN_FILE")
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as file:
                return file.read().strip() or None
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise DatabaseError(
                f"CONSUL_HTTP_TOKEN_FILE: cannot read {path}: {why}"
            ) from None

    def _client(self, node: str, access: _Access) -> tuple[str, consul.Consul]:
        opts = self.options
        where = f"node {node!r}" + (
            f" (from {access.origin['nodes']})" if access.origin["nodes"] != "setting 'nodes'"
            else ""
        )
        parts = urlsplit(node if "://" in node else f"{access.scheme}://{node}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DatabaseError(f"{where} is not host:port or http(s)://host:port")
        try:
            port = parts.port or 8500
        except ValueError:
            raise DatabaseError(f"{where} has a bad port") from None
        client = consul.Consul(
            host=parts.hostname,
            port=port,
            scheme=parts.scheme,
            token=access.token,
            dc=opts["datacenter"],
            verify=access.verify,
            cert=access.cert,
            connections_timeout=opts["timeout"],
        )
        client.token = access.token  # py-consul would let CONSUL_HTTP_TOKEN beat the setting
        session = client.http.session
        if access.auth:
            session.auth = access.auth
        if access.server_name and parts.scheme == "https":
            session.mount("https://", _ServerName(access.server_name))
        return f"{parts.scheme}://{parts.hostname}:{port}", client

    def _list(self, key: str, index: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """Recursive read of `key` (blocking when `index` is set), from the agent that last
        answered, else the next ones in order; the first agent that answers becomes current."""
        wait = f"{self.options['watch_wait']}s" if index else None
        with self._lock:
            first = self._current
        errors: list[str] = []
        count = len(self._clients)
        for step in range(count):
            at = (first + step) % count
            url, client = self._clients[at]
            try:
                new_index, entries = client.kv.get(
                    key.strip("/"), recurse=True, index=index or None, wait=wait
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                errors.append(f"{url}: {_cause(exc)}")
                continue
            except consul.ACLPermissionDenied:
                raise DatabaseError(
                    f"node {url}: permission denied reading {key!r} "
                    "(check the ACL token)"
                ) from None
            except consul.ConsulException as exc:
                raise DatabaseError(
                    f"node {url}: reading {key!r} failed: {exc}"
                ) from None
            if at != first:
                self._fail_over(first, at, errors)
            return int(new_index or 0), entries or []
        raise DatabaseError(f"no node answered ({'; '.join(errors)})")

    def _fail_over(self, first: int, at: int, errors: list[str]) -> None:
        """Make agent `at` current, logging the move once however many requests made it."""
        with self._lock:
            if self._current != first:
                return  # a concurrent request moved already, and said so
            self._current = at
        log.warning(
            "failing over to agent %s (%s)",
            self._clients[at][0],
            "; ".join(errors),
        )

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

        answers: queue.Queue[Any] = queue.Queue()  # a query's answer or error; None: look

        def ask(at: int) -> None:
            try:
                answers.put(self._list(query, at))
            except BaseException as exc:  # handed to the watching thread
                answers.put(exc)

        forget = when_stopped(stop, lambda: answers.put(None))
        tick = idle_wait(stop)
        try:
            while not stop.is_set():
                asked = time.monotonic()
                threading.Thread(target=ask, args=(index,), name="consul-watch",
                                 daemon=True).start()
                while True:
                    try:
                        answer = answers.get(timeout=tick)
                    except queue.Empty:
                        answer = None
                    if stop.is_set():
                        return  # the query thread ends by itself within `watch_wait`
                    if answer is not None:
                        break
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
                    changed = set(changed_values(baseline, current))
                    if changed:
                        yield changed
                baseline = current
                if new_index == index and time.monotonic() - asked < 1.0:
                    stop.wait(1.0)  # answered at once without news: do not hammer the agent
                index = new_index
        finally:
            if forget is not None:
                forget()

    def close(self) -> None:
        for _, client in getattr(self, "_clients", ()):
            client.http.session.close()
