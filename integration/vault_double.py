"""A test double of the part of HashiCorp Vault's HTTP API confd uses (no Vault can be installed
here).

It is a double, not Vault: no seal, no storage, no leases on secrets, no policy language. What it
follows is the documented shape of the requests and answers that confd's vault backend (hvac)
and Go confd's (the Go Vault client) send and read:

- Auth methods at `/v1/auth/<mount>/login` (POST or PUT, JSON body): approle (`role_id`,
  `secret_id`), app-id (`app_id`, `user_id`), github (`token`), kubernetes (`jwt`, `role`), cert
  (the TLS client certificate, so the double must serve TLS), and userpass at
  `/v1/auth/<mount>/login/<username>` (`password`). A login answers `{"auth": {"client_token",
  "lease_duration", "renewable", "policies", ...}}`; bad credentials answer 400 (403 for
  kubernetes) with Vault's error texts; a mount with no method answers 404 "no handler for route".
- Tokens: `X-Vault-Token` on every other request; `GET /v1/auth/token/lookup-self`,
  `POST|PUT /v1/auth/token/renew-self` (400 "lease is not renewable" for a non-renewable token).
  A token past its TTL, revoked or unknown gets 403 "permission denied".
- `GET /v1/sys/internal/ui/mounts/<path>`: the mount holding `<path>` (`path`, `type`, `options`
  with the KV `version`), or 403 with Vault's "preflight capability check" error when there is
  none, as Vault answers so that mounts cannot be probed.
- KV version 1: `GET /v1/<mount>/<path>` reads (`{"data": {...}}`, 404 `{"errors": []}` when
  missing, also for a secret at the mount's root path ""), `LIST` or `GET ?list=true` (hvac
  sends `list=True`; any spelling Go's `strconv.ParseBool` takes as true) lists one
  level (`{"data": {"keys": ["a", "dir/"]}}`, 404 when empty).
- KV version 2: `GET /v1/<mount>/data/<path>` (`{"data": {"data": {...}, "metadata": {...}}}`;
  a deleted latest version answers 404 with its metadata and `"data": null`), listing at
  `/v1/<mount>/metadata/<path>`; a v1-style path on a v2 mount answers 404 with Vault's
  "Invalid path for a versioned K/V secrets engine" warning.
- A token may be limited to path prefixes (`allowed`): elsewhere it gets 403; any other path
  with no mount answers 404 "no handler for route".

Test hooks: `put`/`delete` secrets, `enable_kv`, `add_login` (credentials per auth method),
`issue_token`, `revoke`, `stop`/`start`/`restart` on the same port, and `requests`, the
(method, path) of every request, for tests that count logins, renewals or reads.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from integration.http_double import DoubleHandler, HttpDouble

__all__ = ["VaultDouble"]


@dataclass
class _Token:
    ttl: float  # seconds; 0: never expires (a root token)
    renewable: bool
    policies: list[str]
    allowed: tuple[str, ...] | None  # path prefixes this token may read; None: everything
    issued: float = field(default_factory=time.monotonic)
    renewals: int = 0

    def expired(self) -> bool:
        return bool(self.ttl) and time.monotonic() > self.issued + self.ttl


@dataclass
class _Mount:
    version: int  # 1 or 2
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> data
    deleted: set[str] = field(default_factory=set)  # v2: latest version soft-deleted
    versions: dict[str, int] = field(default_factory=dict)


@dataclass
class _Login:
    kind: str  # approle, app-id, github, kubernetes, userpass, cert
    credentials: dict[str, str]  # what the login body must hold (userpass: username -> password)
    ttl: float
    renewable: bool


class VaultDouble(HttpDouble):
    """An in-memory Vault KV and auth API served over HTTP (or HTTPS) on 127.0.0.1."""

    def __init__(
        self,
        root_token: str = "root-token",
        tls: tuple[str, str, str | None] | None = None,
    ) -> None:
        """`tls` is (server cert file, server key file, CA file for client certificates)."""
        super().__init__()
        self.root_token = root_token
        self.tls = tls
        self.tokens: dict[str, _Token] = {
            root_token: _Token(ttl=0, renewable=False, policies=["root"], allowed=None)
        }
        self.mounts: dict[str, _Mount] = {}  # "secret/" -> mount
        self.logins: dict[str, _Login] = {}  # auth mount ("approle") -> method
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def address(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def server_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        cert, key, client_ca = self.tls
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        if client_ca:
            context.load_verify_locations(client_ca)
            context.verify_mode = ssl.CERT_OPTIONAL  # cert login checks it is there
        return context

    # --- test hooks ---------------------------------------------------------------------------

    def enable_kv(self, mount: str, version: int = 1) -> None:
        """Mount a KV engine at `mount` (`secret` or `secret/`), replacing any there."""
        with self._lock:
            self.mounts[mount.strip("/") + "/"] = _Mount(version)

    def put(self, path: str, data: dict[str, Any]) -> None:
        """Write the secret at `path` (`/mount/rest`, without `data/` for v2)."""
        mount, rest = self._split(path)
        with self._lock:
            mount.secrets[rest] = dict(data)
            mount.deleted.discard(rest)
            mount.versions[rest] = mount.versions.get(rest, 0) + 1

    def delete(self, path: str) -> None:
        """Delete the secret at `path` (v2: soft-delete its latest version)."""
        mount, rest = self._split(path)
        with self._lock:
            if mount.version == 2:
                if rest in mount.secrets:
                    mount.deleted.add(rest)
            else:
                mount.secrets.pop(rest, None)

    def clear(self) -> None:
        with self._lock:
            self.mounts.clear()

    def _split(self, path: str) -> tuple[_Mount, str]:
        inner = path.strip("/")
        for name, mount in self.mounts.items():
            if (inner + "/").startswith(name):
                return mount, inner[len(name) :]
        raise KeyError(f"no mount holds {path!r}: call enable_kv first")

    def add_login(
        self,
        kind: str,
        credentials: dict[str, str],
        mount: str | None = None,
        ttl: float = 3600,
        renewable: bool = True,
    ) -> None:
        """Enable auth method `kind` at `mount` (default: its usual path) accepting
        `credentials` (userpass: {username: password}; others: the login body's fields)."""
        path = mount or {"app-role": "approle"}.get(kind, kind)
        self.logins[path] = _Login(kind, credentials, ttl, renewable)

    def issue_token(
        self,
        ttl: float = 0,
        renewable: bool = False,
        allowed: tuple[str, ...] | None = None,
    ) -> str:
        token = "s." + secrets.token_urlsafe(18)
        with self._lock:
            self.tokens[token] = _Token(ttl, renewable, ["default"], allowed)
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self.tokens.pop(token, None)

    def count(self, method: str, path: str) -> int:
        """How many requests of `method` reached `path` (path without the query)."""
        return sum(1 for m, p in self.requests if m == method and p == path)


class _Handler(DoubleHandler):
    store: VaultDouble

    # --- plumbing -----------------------------------------------------------------------------

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int, *errors: str) -> None:
        self._reply(status, {"errors": list(errors)})

    def _secret(self, data: dict[str, Any] | None = None, auth: dict[str, Any] | None = None,
                warnings: list[str] | None = None) -> dict[str, Any]:
        return {
            "request_id": str(uuid.uuid4()),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": data,
            "wrap_info": None,
            "warnings": warnings,
            "auth": auth,
        }

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _route(self) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = unquote(parts.path)
        if not path.startswith("/v1/"):
            return "", query
        return path[len("/v1/") :].lstrip("/"), query  # Go's client may send /v1//x

    def _token(self) -> _Token | None:
        token = self.store.tokens.get(self.headers.get("X-Vault-Token") or "")
        if token is None or token.expired():
            return None
        return token

    # --- verbs --------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path, query = self._route()
        listing = query.get("list") in ("1", "t", "T", "true", "TRUE", "True")  # Go's ParseBool
        self._handle("LIST" if listing else "GET", path, {})

    def do_LIST(self) -> None:  # noqa: N802
        path, _ = self._route()
        self._handle("LIST", path, {})

    def do_POST(self) -> None:  # noqa: N802
        path, _ = self._route()
        self._handle("POST", path, self._body())

    do_PUT = do_POST  # noqa: N815 - Go's Vault client writes with PUT

    def _handle(self, method: str, path: str, body: dict[str, Any]) -> None:
        store = self.store
        with store._lock:
            store.requests.append((method, path))
        if path.startswith("auth/token/"):
            self._token_api(method, path)
        elif path.startswith("auth/"):
            self._login(method, path, body)
        elif path.startswith("sys/internal/ui/mounts/"):
            self._mount_info(path[len("sys/internal/ui/mounts/") :])
        elif method in ("GET", "LIST"):
            self._kv(method, path)
        else:
            self._error(405, "unsupported operation")

    # --- auth ---------------------------------------------------------------------------------

    def _issue(self, login: _Login, policies: list[str]) -> None:
        token = "s." + secrets.token_urlsafe(18)
        with self.store._lock:
            self.store.tokens[token] = _Token(login.ttl, login.renewable, policies, None)
        auth = {
            "client_token": token,
            "accessor": secrets.token_urlsafe(12),
            "policies": policies,
            "token_policies": policies,
            "metadata": {},
            "lease_duration": int(login.ttl),
            "renewable": login.renewable,
            "entity_id": "",
            "token_type": "service",
            "orphan": True,
        }
        self._reply(200, self._secret(auth=auth))

    def _login(self, method: str, path: str, body: dict[str, Any]) -> None:
        parts = path.split("/")  # auth/<mount>/login[/<username>]
        login = self.store.logins.get(parts[1]) if len(parts) >= 3 else None
        if method != "POST" or login is None or parts[2] != "login":
            self._error(404, f'no handler for route "{path}". route entry not found.')
            return
        wanted = login.credentials
        if login.kind == "userpass":
            user = parts[3] if len(parts) > 3 else ""
            if not user or wanted.get(user) != body.get("password"):
                self._error(400, "invalid username or password")
                return
        elif login.kind == "cert":
            if not self.store.tls or not self.connection.getpeercert():  # type: ignore[attr-defined]
                self._error(400, "client certificate must be supplied")
                return
        elif login.kind == "kubernetes":
            if body.get("role") != wanted.get("role") or body.get("jwt") != wanted.get("jwt"):
                self._error(403, "permission denied")
                return
        elif any(body.get(k) != v for k, v in wanted.items()):
            self._error(400, {
                "approle": "invalid role or secret ID",
                "app-id": "invalid user ID or app ID",
                "github": "user is not part of required org",
            }.get(login.kind, "invalid credentials"))  # fmt: skip
            return
        self._issue(login, ["default", login.kind])

    def _token_api(self, method: str, path: str) -> None:
        token = self._token()
        if token is None:
            self._error(403, "permission denied")
            return
        if path == "auth/token/lookup-self" and method == "GET":
            ttl = max(0, int(token.issued + token.ttl - time.monotonic())) if token.ttl else 0
            data = {
                "id": self.headers.get("X-Vault-Token"),
                "ttl": ttl,
                "creation_ttl": int(token.ttl),
                "renewable": token.renewable,
                "policies": token.policies,
                "type": "service",
                "expire_time": None,
            }
            self._reply(200, self._secret(data=data))
        elif path == "auth/token/renew-self" and method == "POST":
            if not token.renewable:
                self._error(400, "lease is not renewable")
                return
            with self.store._lock:
                token.issued = time.monotonic()
                token.renewals += 1
            auth = {
                "client_token": self.headers.get("X-Vault-Token"),
                "policies": token.policies,
                "lease_duration": int(token.ttl),
                "renewable": True,
            }
            self._reply(200, self._secret(auth=auth))
        else:
            self._error(404, f'no handler for route "{path}". route entry not found.')

    # --- mounts and KV ------------------------------------------------------------------------

    def _find_mount(self, path: str) -> tuple[str, _Mount] | None:
        for name, mount in self.store.mounts.items():
            if (path.strip("/") + "/").startswith(name):
                return name, mount
        return None

    def _mount_info(self, path: str) -> None:
        token = self._token()
        found = self._find_mount(path)
        if token is None or found is None or not self._allowed(token, found[0]):
            self._error(
                403,
                "preflight capability check returned 403, please ensure client's policies "
                f'grant access to path "{path.strip("/")}/"',
            )
            return
        name, mount = found
        data = {
            "path": name,
            "type": "kv",
            "description": "key/value secret storage",
            "options": {"version": str(mount.version)},
            "config": {"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": False},
            "local": False,
            "seal_wrap": False,
            "external_entropy_access": False,
            "accessor": "kv_" + name.strip("/"),
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        }
        self._reply(200, self._secret(data=data))

    @staticmethod
    def _allowed(token: _Token, path: str) -> bool:
        return token.allowed is None or any(path.startswith(p) for p in token.allowed)

    def _kv(self, method: str, path: str) -> None:
        token = self._token()
        if token is None or not self._allowed(token, path):
            self._error(403, "permission denied")
            return
        found = self._find_mount(path)
        if found is None:
            self._error(404, f'no handler for route "{path}". route entry not found.')
            return
        name, mount = found
        inner = (path.strip("/") + "/")[len(name) :].rstrip("/")
        with self.store._lock:
            if mount.version == 2:
                self._kv2(method, mount, inner)
            else:
                self._kv1(method, mount, inner)

    @staticmethod
    def _children(names: list[str], prefix: str) -> list[str]:
        """One level of `names` below `prefix` ("" is the mount's root): files and `dir/`s."""
        start = prefix + "/" if prefix else ""
        found = set()
        for name in names:
            if name.startswith(start) and name != prefix and name[len(start) :]:
                rest = name[len(start) :]
                head, slash, _ = rest.partition("/")
                found.add(head + "/" if slash else head)
        return sorted(found)

    def _kv1(self, method: str, mount: _Mount, inner: str) -> None:
        if method == "LIST":
            keys = self._children(list(mount.secrets), inner)
            if not keys:
                self._error(404)
                return
            self._reply(200, self._secret(data={"keys": keys}))
        elif inner in mount.secrets:
            self._reply(200, self._secret(data=mount.secrets[inner]))
        else:
            self._error(404)

    def _kv2(self, method: str, mount: _Mount, inner: str) -> None:
        kind, _, rest = inner.partition("/")
        if kind == "metadata" and method == "LIST":
            keys = self._children(list(mount.secrets), rest)
            if not keys:
                self._error(404)
                return
            self._reply(200, self._secret(data={"keys": keys}))
        elif kind == "data" and method == "GET" and rest in mount.secrets:
            deleted = rest in mount.deleted
            metadata = {
                "created_time": "2024-01-01T00:00:00.000000Z",
                "custom_metadata": None,
                "deletion_time": "2024-01-02T00:00:00.000000Z" if deleted else "",
                "destroyed": False,
                "version": mount.versions.get(rest, 1),
            }
            data = None if deleted else mount.secrets[rest]
            self._reply(404 if deleted else 200, self._secret(
                data={"data": data, "metadata": metadata}
            ))  # fmt: skip
        elif kind in ("data", "metadata"):
            self._error(404)
        else:
            self._reply(404, self._secret(warnings=[
                "Invalid path for a versioned K/V secrets engine. See the API docs for the "
                "appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' "
                "for this operation."
            ]))  # fmt: skip


VaultDouble.handler = _Handler  # defined after the double, whose type it names
