"""The Vault backend, with hvac, reading secrets the way Go confd does.

A requested key is walked as Go confd's `walkTree`: the key is read and listed, each listed
folder (`dir/`) is listed in turn and each listed secret read. A secret whose only field is a
string named `value` is that string (`/key` holding `{"value": "foobar"}` is `/key` = `foobar`);
any other secret is its JSON (Go's encoding: sorted keys, no spaces, `<>&` escaped) at its own
key, and each string field below it too, objects flattened level by level
(`/secret/app` holding `{"user": "x", "db": {"port": "5432"}}` gives `/secret/app` = the JSON,
`/secret/app/user` = `x`, `/secret/app/db/port` = `5432`). Other field types (numbers, booleans,
lists, null) appear only in the JSON, with a warning naming the key, as in Go confd.

KV version 2 mounts, which Go confd cannot read, are read here too: the mount and its version come
from `sys/internal/ui/mounts/<path>` (as the Vault CLI finds them), once per mount per read;
secrets are read at `<mount>/data/<path>` and listed at `<mount>/metadata/<path>`, and their keys
have no `data/` in them (`/secret/app/user`, as for v1). A soft-deleted secret gives nothing.

Authentication is Go confd's `-auth-type`: token, approle (Go's spelling `app-role` too), app-id,
kubernetes, userpass, github, cert; each logs in at `auth/<path>/login` (`path` defaults to the
method's name). A renewable token is renewed in the background at two thirds of its TTL; a
login-based token is replaced by a new login when renewal fails or the token is rejected.
Unset settings fall back to Vault's own environment variables (`VAULT_ADDR`, `VAULT_TOKEN`,
`VAULT_CACERT`, `VAULT_CAPATH`, `VAULT_CLIENT_CERT`, `VAULT_CLIENT_KEY`, `VAULT_SKIP_VERIFY`);
a setting given explicitly wins, and an empty one counts as unset. Secrets (tokens, secret ids,
passwords) never appear in errors or logs: Vault's error texts are scrubbed of them too.

Vault has no watch for KV secrets, so `watch_prefix` raises `WatchUnsupported` and the daemon
polls every `--interval` seconds (Go confd's vault watch never fires at all).
"""

from __future__ import annotations

import json
import os
import posixpath
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from plugin_sdk.database import Database, DatabaseError, Setting, backend_logger, parse_settings

log = backend_logger("vault")

K8S_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"

# auth type -> (settings it needs, the Go confd flags that set them)
_AUTH: dict[str, tuple[tuple[str, ...], str]] = {
    "token": (("auth_token",), "-auth-token"),
    "approle": (("role_id", "secret_id"), "-role-id, -secret-id"),
    "app-id": (("app_id", "user_id"), "-app-id, -user-id"),
    "kubernetes": (("role_id",), "-role-id"),
    "userpass": (("username", "password"), "-username, -password"),
    "github": (("auth_token",), "-auth-token"),
    "cert": (("client_cert", "client_key"), "-client-cert, -client-key"),
}
_ALIASES = {"app-role": "approle"}  # Go confd's name for AppRole

# setting -> Vault's environment variable used when the setting is unset
_ENV = {
    "nodes": ("VAULT_ADDR",),
    "client_ca_keys": ("VAULT_CACERT", "VAULT_CAPATH"),
    "client_cert": ("VAULT_CLIENT_CERT",),
    "client_key": ("VAULT_CLIENT_KEY",),
    "client_insecure": ("VAULT_SKIP_VERIFY",),
}
_SECRET_SETTINGS = ("auth_token", "secret_id", "user_id", "password")


def _go_json(data: Any) -> str:
    """`data` as Go's `json.Marshal` writes a map: sorted keys, no spaces, HTML-safe escapes."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(raw, escaped)
    return text


def _join(key: str, name: str) -> str:
    """Go's `path.Join(key, "/", name)`: cleaned, so `a/b` nests and `..` climbs."""
    joined = posixpath.normpath(f"{key}/{name}")
    return "/" + joined.lstrip("/")


@dataclass(frozen=True)
class _Mount:
    """Where a key's secrets engine is mounted (`secret/`) and its KV version."""

    path: str
    version: int


class VaultDatabase(Database):
    """Secrets from HashiCorp Vault (KV v1 and v2), polled under `--watch`."""

    name = "vault"
    description = "HashiCorp Vault KV v1/v2 (Go confd's auth types and key layout; polled)"
    can_watch = False
    settings = (
        Setting("nodes", list, None,
                "Vault address (first that answers); default $VAULT_ADDR, else "
                "http://127.0.0.1:8200"),
        Setting("auth_type", str, "token",
                "token, approle (app-role), app-id, kubernetes, userpass, github or cert"),
        Setting("auth_token", str, None,
                "token for auth_type token (default $VAULT_TOKEN), GitHub token for github",
                secret=True),
        Setting("role_id", str, None, "AppRole role id; the role for kubernetes"),
        Setting("secret_id", str, None, "AppRole secret id", secret=True),
        Setting("app_id", str, None, "app id for auth_type app-id"),
        Setting("user_id", str, None, "user id for auth_type app-id", secret=True),
        Setting("username", str, None, "user for auth_type userpass"),
        Setting("password", str, None, "password for auth_type userpass", secret=True),
        Setting("path", str, None, "mount path of the auth method (default: its name)"),
        Setting("client_cert", str, None, "PEM client certificate (TLS; auth_type cert)"),
        Setting("client_key", str, None, "PEM client key (TLS; auth_type cert)"),
        Setting("client_ca_keys", str, None, "PEM CA file (or directory) to verify Vault"),
        Setting("client_insecure", bool, False, "skip TLS verification (not for production)"),
        Setting("scheme", str, "http", "scheme for nodes given without one (http or https)"),
        Setting("kubernetes_token_path", str, K8S_TOKEN,
                "service account token file for auth_type kubernetes"),
        Setting("timeout", float, 10.0, "seconds to wait for each Vault request"),
    )  # fmt: skip

    def configure(self, config: Mapping[str, str]) -> None:
        given = {k: v for k, v in config.items() if v != ""}  # empty means unset
        parse_settings(self.name, self.settings, given)  # unknown names and bad types first
        for setting, variables in _ENV.items():
            if setting not in given:
                found = next((os.environ[v] for v in variables if os.environ.get(v)), None)
                if found is not None:
                    given[setting] = found
        auth_type = _ALIASES.get(given.get("auth_type", "token"), given.get("auth_type", "token"))
        if auth_type == "token" and "auth_token" not in given and os.environ.get("VAULT_TOKEN"):
            given["auth_token"] = os.environ["VAULT_TOKEN"]
        self.options = opts = parse_settings(self.name, self.settings, given)
        opts["auth_type"] = auth_type
        if auth_type not in _AUTH:
            raise DatabaseError(
                f"unknown auth_type {auth_type!r} "
                f"(one of: {', '.join(sorted([*_AUTH, *_ALIASES]))})"
            )
        needed, flags = _AUTH[auth_type]
        missing = [s for s in needed if not opts[s]]
        if missing:
            hint = " (or VAULT_TOKEN)" if auth_type == "token" else ""
            raise DatabaseError(
                f"auth_type {auth_type!r} needs setting "
                f"{', '.join(map(repr, missing))}{hint} (Go confd: {flags})"
            )
        if bool(opts["client_cert"]) != bool(opts["client_key"]):
            raise DatabaseError(
                "settings 'client_cert' and 'client_key' go together"
            )
        if opts["scheme"] not in ("http", "https"):
            raise DatabaseError(
                f"setting 'scheme' must be http or https, got {opts['scheme']!r}"
            )
        if opts["timeout"] <= 0:
            raise DatabaseError("setting 'timeout' must be above 0")
        for setting in ("client_cert", "client_key", "client_ca_keys"):
            path = opts[setting]
            if path and not os.access(path, os.R_OK):
                raise DatabaseError(
                    f"setting {setting!r}: cannot read {path}"
                )
        self._urls = [self._url(n) for n in opts["nodes"] or ["http://127.0.0.1:8200"]]
        try:
            import hvac
        except ImportError:
            raise DatabaseError(
                "backend 'vault' needs the hvac package: pip install 'confd-py[vault]'"
            ) from None
        self._hvac = hvac
        if opts["client_insecure"]:
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            if any(u.startswith("https:") for u in self._urls):
                log.warning("client_insecure: Vault's TLS certificate is "
                            "not verified")
        self._secrets = [opts[s] for s in _SECRET_SETTINGS if opts[s]]
        self._lock = threading.RLock()
        self._clients: list[Any] = [self._client(url) for url in self._urls]
        self._current = 0
        self._token: str | None = None
        self._renewer: threading.Thread | None = None
        self._closed = threading.Event()
        self._warned: set[str] = set()

    def _url(self, node: str) -> str:
        text = node if "://" in node else f"{self.options['scheme']}://{node}"
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DatabaseError(f"node {node!r} is not http(s)://host:port")
        try:
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            raise DatabaseError(f"node {node!r} has a bad port") from None
        return text.rstrip("/")

    def _client(self, url: str) -> Any:
        opts = self.options
        verify: bool | str = True
        if opts["client_ca_keys"]:
            verify = opts["client_ca_keys"]
        if opts["client_insecure"]:
            verify = False
        cert = (opts["client_cert"], opts["client_key"]) if opts["client_cert"] else None
        # Everything explicit: hvac would otherwise read VAULT_* and ~/.vault-token itself.
        return self._hvac.Client(
            url=url, token="", cert=cert, verify=verify, timeout=opts["timeout"]
        )

    # --- errors -------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<hidden>")
        return text

    def _explain(self, exc: Exception) -> str:
        errors = getattr(exc, "errors", None)
        if isinstance(errors, list) and errors:
            text = "; ".join(str(e) for e in errors)
        else:
            text = type(exc).__name__
        return self._scrub(text)

    # --- requests -----------------------------------------------------------------------------

    def _call(self, what: str, request: Any) -> Any:
        """Run `request(client)` on the current node, failing over on connection errors."""
        import requests

        errors: list[str] = []
        for _ in self._clients:
            with self._lock:
                index = self._current
                client = self._clients[index]
            try:
                return request(client)
            except requests.exceptions.SSLError as exc:
                reason = self._scrub(str(exc.args[0] if exc.args else exc))
                errors.append(f"{self._urls[index]}: TLS error: {reason[-200:]}")
            except (requests.ConnectionError, requests.Timeout) as exc:
                errors.append(f"{self._urls[index]}: {type(exc).__name__}")
            except self._hvac.exceptions.VaultDown:
                errors.append(f"{self._urls[index]}: sealed or down")
            with self._lock:
                self._current = (index + 1) % len(self._clients)
        raise DatabaseError(f"{what}: no node answered ({'; '.join(errors)})")

    def _login(self) -> None:
        """Authenticate as `auth_type` says and give every node's client the token."""
        opts = self.options
        kind = opts["auth_type"]
        mount = (opts["path"] or kind).strip("/")
        if kind == "token":
            token = opts["auth_token"]
            self._set_token(token)
            reply = self._authenticated("looking up the token", lambda c: c.read(
                "auth/token/lookup-self"
            ))  # fmt: skip
            data = (reply or {}).get("data") or {}
            self._schedule(data.get("ttl") or 0, bool(data.get("renewable")))
            return
        url, body = f"auth/{mount}/login", {}
        if kind == "approle":
            body = {"role_id": opts["role_id"], "secret_id": opts["secret_id"]}
        elif kind == "app-id":
            body = {"app_id": opts["app_id"], "user_id": opts["user_id"]}
        elif kind == "github":
            body = {"token": opts["auth_token"]}
        elif kind == "userpass":
            url += "/" + opts["username"]
            body = {"password": opts["password"]}
        elif kind == "kubernetes":
            path = opts["kubernetes_token_path"]
            try:
                with open(path) as file:
                    jwt = file.read().strip()
            except OSError as exc:
                raise DatabaseError(
                    f"auth_type 'kubernetes': cannot read the service account "
                    f"token {path} (setting 'kubernetes_token_path'): {exc.strerror}"
                ) from None
            self._secrets.append(jwt)
            body = {"jwt": jwt, "role": opts["role_id"]}
        reply = self._authenticated(
            f"login with auth_type {kind!r} at auth/{mount}",
            lambda c: c.write_data(url, data=body),
        )
        auth = (reply or {}).get("auth") or {}
        token = auth.get("client_token")
        if not token:
            raise DatabaseError(
                f"login with auth_type {kind!r} at auth/{mount} gave no token"
            )
        self._set_token(token)
        log.debug("logged in with auth_type %s", kind)
        self._login_ttl = auth.get("lease_duration") or 0
        self._schedule(self._login_ttl, bool(auth.get("renewable")))

    def _authenticated(self, what: str, request: Any) -> Any:
        errors = self._hvac.exceptions
        try:
            return self._call(what, request)
        except (errors.Forbidden, errors.Unauthorized, errors.InvalidRequest,
                errors.InvalidPath) as exc:  # fmt: skip
            raise DatabaseError(
                f"{what} failed: {self._explain(exc)}"
            ) from None
        except errors.VaultError as exc:
            raise DatabaseError(f"{what} failed: {self._explain(exc)}") from None

    def _set_token(self, token: str) -> None:
        with self._lock:
            self._token = token
            if token not in self._secrets:
                self._secrets.append(token)
            for client in self._clients:
                client.token = token

    def _ensure_token(self) -> None:
        with self._lock:
            if self._closed.is_set():
                raise DatabaseError("used after close")
            if self._token is not None:
                return
            self._login()

    # --- token renewal ------------------------------------------------------------------------

    def _schedule(self, ttl: float, renewable: bool) -> None:
        """Renew a renewable token at two thirds of its TTL, in one background thread."""
        self._renew_at = time.monotonic() + ttl * 2 / 3 if renewable and ttl > 0 else None
        if self._renew_at is None or self._renewer is not None:
            return
        self._renewer = threading.Thread(
            target=self._renew_loop, name="vault-token-renewal", daemon=True
        )
        self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._closed.is_set():
            due = self._renew_at
            wait = 1.0 if due is None else max(0.05, min(1.0, due - time.monotonic()))
            if self._closed.wait(wait) or due is None or time.monotonic() < due:
                continue
            try:
                self._renew()
            except DatabaseError as exc:
                log.error("%s", exc)
                self._renew_at = time.monotonic() + 5  # retry soon; reads re-login if needed

    def _renew(self) -> None:
        with self._lock:
            try:
                reply = self._call("renewing the token", lambda c: c.adapter.post(
                    "/v1/auth/token/renew-self"
                ))  # fmt: skip
                auth = (reply or {}).get("auth") or {}
                ttl = auth.get("lease_duration") or 0
            except self._hvac.exceptions.VaultError as exc:
                if self.options["auth_type"] == "token":
                    self._renew_at = None
                    raise DatabaseError(
                        f"renewing the token failed: {self._explain(exc)}"
                    ) from None
                ttl = 0
            if self.options["auth_type"] != "token" and ttl < self._login_ttl / 3:
                # Renewal failed, or the token nears its maximum TTL: a new login is cheaper
                # than renewing ever shorter leases.
                log.info("token near its maximum TTL; logging in again")
                self._token = None
                self._login()
                return
            log.debug("token renewed for %ss", ttl)
            self._schedule(ttl, bool(auth.get("renewable")))

    # --- reads --------------------------------------------------------------------------------

    def _request(self, what: str, request: Any, forbidden_ok: bool = False) -> Any:
        """A request with the current token; a rejected login-based token is replaced once.
        With `forbidden_ok`, a refusal that survives that gives None (Go confd ignores a
        refused LIST, so a token that may read but not list still reads the key itself)."""
        errors = self._hvac.exceptions
        for attempt in (1, 2):
            self._ensure_token()
            try:
                return self._call(what, request)
            except errors.Forbidden as exc:
                if attempt == 1 and self.options["auth_type"] != "token":
                    with self._lock:
                        self._token = None  # expired or revoked: log in again
                    continue
                if forbidden_ok:
                    log.debug("%s: permission denied, skipped", what)
                    return None
                raise DatabaseError(
                    f"{what}: {self._explain(exc)} (check the token's policy)"
                ) from None
            except errors.VaultError as exc:
                raise DatabaseError(
                    f"{what} failed: {self._explain(exc)}"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _mount(self, key: str, cache: dict[str, _Mount]) -> _Mount:
        """The mount holding `key`, from Vault's preflight endpoint (cached per read)."""
        inner = key.strip("/")
        for path, mount in cache.items():
            if (inner + "/").startswith(path):
                return mount
        first = inner.split("/")[0] + "/"
        errors = self._hvac.exceptions
        self._ensure_token()
        try:
            reply = self._call(
                f"finding the mount of {key!r}",
                lambda c: c.adapter.get(f"/v1/sys/internal/ui/mounts/{inner}"),
            )
        except (errors.Forbidden, errors.InvalidPath):
            # Vault answers 403 when no mount holds the path (so mounts cannot be probed),
            # and Vaults before 0.10 have no such endpoint: read it the v1 way, like Go confd.
            return _Mount(first, 1)
        except errors.VaultError as exc:
            raise DatabaseError(
                f"finding the mount of {key!r} failed: {self._explain(exc)}"
            ) from None
        data = (reply or {}).get("data") or {}
        version = str((data.get("options") or {}).get("version") or "1")
        mount = _Mount(str(data.get("path") or first), 2 if version == "2" else 1)
        cache[mount.path] = mount
        return mount

    def _walk(self, key: str, mount: _Mount) -> list[str]:
        """Go confd's `walkTree`: the paths to read, at and below `key`. Go reads and lists every
        path it meets; listed names say which is which (`dir/` a folder, `name` a secret; a path
        may be both), so each is only read or listed here, with the same result."""
        reads, folders = [key], [key]
        listed = {key}
        while folders:
            folder = folders.pop()
            reply = self._request(f"listing {folder!r}", lambda c, f=folder: c.list(
                self._api_path(f, mount, "metadata")
            ), forbidden_ok=True)  # fmt: skip
            names = ((reply or {}).get("data") or {}).get("keys") or []
            for name in names if isinstance(names, list) else []:
                if not isinstance(name, str):
                    continue
                child = _join(folder, name)
                if not name.endswith("/"):
                    reads.append(child)
                elif child not in listed:
                    listed.add(child)
                    folders.append(child)
        return list(dict.fromkeys(reads))

    @staticmethod
    def _api_path(key: str, mount: _Mount, kind: str) -> str:
        """The API path of `key`: as is for v1, with `data/` or `metadata/` after a v2 mount."""
        inner = key.strip("/")
        if mount.version != 2:
            return inner
        rest = inner[len(mount.path) :] if (inner + "/").startswith(mount.path) else inner
        return f"{mount.path}{kind}/{rest}".rstrip("/")

    def _read(self, key: str, mount: _Mount, values: dict[str, str]) -> None:
        if mount.version == 2 and key.strip("/") + "/" == mount.path:
            return  # a v2 mount's root holds no secret
        reply = self._request(f"reading {key!r}", lambda c: c.read(
            self._api_path(key, mount, "data")
        ))  # fmt: skip
        data = (reply or {}).get("data")
        if mount.version == 2 and isinstance(data, dict):
            data = data.get("data")
        if not isinstance(data, dict) or not data:
            return
        value = data.get("value")
        if len(data) == 1 and isinstance(value, str):
            values[key] = value
            return
        values[key] = _go_json(data)
        self._flatten(key, data, values)

    def _flatten(self, key: str, value: Any, values: dict[str, str]) -> None:
        if isinstance(value, str):
            values[key] = value
        elif isinstance(value, dict):
            for name, inner in value.items():
                self._flatten(_join(key, str(name)), inner, values)
        elif key not in self._warned:
            self._warned.add(key)
            log.warning(
                "%s: a %s is not a key value (only strings and objects "
                "are; it stays in its secret's JSON)", key, _go_type(value),
            )

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        mounts: dict[str, _Mount] = {}
        done: set[str] = set()
        for raw in keys:
            key = "/" + raw.replace("/*", "").strip("/")
            if key == "/":
                raise DatabaseError(
                    "key '/' names no secrets engine; keys start with a "
                    "mount path (/secret/...)"
                )
            if key in done:
                continue
            done.add(key)
            mount = self._mount(key, mounts)
            for path in self._walk(key, mount):
                self._read(path, mount, values)
        return values

    def close(self) -> None:
        if not hasattr(self, "_closed"):
            return
        self._closed.set()
        for client in self._clients:
            client.adapter.close()


def _go_type(value: Any) -> str:
    """The JSON type of `value`, named as a user reads it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list"
    return "null" if value is None else type(value).__name__
