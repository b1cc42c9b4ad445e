"""The `imds` database: EC2 instance metadata over IMDSv2 session tokens, in the fork's key layout.

Keys, as the fork (abtreece/confd) lays them out: `/meta-data/...` (e.g. `/meta-data/instance-id`,
`/meta-data/placement/region`, `/meta-data/tags/instance/Name`), `/dynamic/...` (e.g.
`/dynamic/instance-identity/document`) and `/user-data`. A key without one of those roots is read
below `meta-data` (`/instance-id` is `/meta-data/instance-id`), and a leading `/latest` is dropped;
such keys are reported both under the canonical name and as spelled.

A key names a value or a directory; a directory is read whole (every value below it). What is a
directory is decided the way the metadata service lists it: an entry ending in `/` (and the
`0=name` entries of `public-keys`) is one, anything else is a value. The fork instead guesses
from newlines in an answer, which reads a one-tag `tags/instance` as a value and a multi-line
value (the identity document, role credentials) as a directory; this follows the listing.

IMDSv2: a session token from `PUT /latest/api/token` (TTL `token_ttl`, at most six hours) is sent
on every read, fetched again shortly before it expires, and once more if the service answers 401.
No fallback to IMDSv1. Answers are cached for `imds_cache_ttl` (the fork's 60 s by default; `0`
turns caching off). A missing path (404) is an absent key; every other failure is an error naming
the backend and the path, never the token. The service is polled (it has no watch).

The endpoint is the `endpoint` setting, else `IMDS_ENDPOINT` (the fork's, for tests), else
`AWS_EC2_METADATA_SERVICE_ENDPOINT` (the AWS SDKs'), else `http://169.254.169.254` (or
`http://[fd00:ec2::254]` with `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`). Requests never go
through an HTTP proxy. `AWS_EC2_METADATA_DISABLED=true` is an error, as in the AWS SDKs.
"""

from __future__ import annotations

import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from plugin_sdk.database import Database, DatabaseError, Setting, select_prefix
from plugin_sdk.keys import normalize_keys

__all__ = ["ImdsDatabase", "MetadataClient", "imds_endpoint", "instance_region", "parse_duration"]

DEFAULT_ENDPOINT = "http://169.254.169.254"
IPV6_ENDPOINT = "http://[fd00:ec2::254]"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
MAX_TOKEN_TTL = 21600  # six hours, the service's limit
MAX_NODES = 10_000  # a directory walk stops here rather than run away
CATEGORIES = ("meta-data", "dynamic", "user-data")

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (`90s`, `1m30s`, `500ms`) or a plain number of seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(text)
    return sum(float(n) * _UNITS[u] for n, u in parts)


def imds_endpoint(setting: str | None, environ: Mapping[str, str]) -> str:
    """The metadata service's base URL (see the module docstring for the order)."""
    for candidate in (
        setting,
        environ.get("IMDS_ENDPOINT"),
        environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT"),
    ):
        if candidate:
            return candidate.rstrip("/")
    if environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "").lower() == "ipv6":
        return IPV6_ENDPOINT
    return DEFAULT_ENDPOINT


class _Unreachable(DatabaseError):
    """The metadata service did not answer at all (no route, refused, timed out)."""


class MetadataClient:
    """Reads paths below `/latest/` of the metadata service with an IMDSv2 session token.

    `get(path)` gives the text at `path` (a directory listing when it ends in `/`), or None when
    the service answers 404. Answers are cached for `cache_ttl` seconds. Thread-safe.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 5.0,
        token_ttl: int = MAX_TOKEN_TTL,
        cache_ttl: float = 0.0,
        backend: str = "imds",
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DatabaseError(
                f"endpoint {endpoint!r} is not an http(s):// URL"
            )
        self.endpoint = endpoint.rstrip("/")
        self.backend = backend
        self._timeout = timeout
        self._token_ttl = token_ttl
        self._cache_ttl = cache_ttl
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_expires = 0.0
        self._cache: dict[str, tuple[float, str | None]] = {}

    # --- HTTP ---------------------------------------------------------------------------------

    def _send(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        request = urllib.request.Request(
            f"{self.endpoint}/latest/{path}", method=method, headers=headers
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as reply:
                return reply.status, reply.headers, reply.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.headers, b""
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            text = "timed out" if isinstance(reason, TimeoutError) else str(
                getattr(reason, "strerror", None) or type(reason).__name__
            )
            raise _Unreachable(
                f"cannot reach the instance metadata service at "
                f"{self.endpoint} ({text}); is this an EC2 instance?"
            ) from None

    def _fresh_token(self) -> str:
        """A session token, fetched when there is none or the current one is about to expire."""
        now = time.monotonic()
        if self._token is not None and now < self._token_expires:
            return self._token
        status, headers, body = self._send("PUT", "api/token", {TTL_HEADER: str(self._token_ttl)})
        if status != 200 or not body:
            hint = {
                403: "the metadata service is disabled for this instance",
                404: "this metadata service does not offer IMDSv2 session tokens",
                405: "this metadata service does not offer IMDSv2 session tokens",
            }.get(status, "unexpected answer")
            raise DatabaseError(
                f"the instance metadata service at {self.endpoint} "
                f"refused a session token (HTTP {status}: {hint})"
            )
        try:
            ttl = int(headers.get(TTL_HEADER) or self._token_ttl)
        except ValueError:
            ttl = self._token_ttl
        # Renew ahead of expiry: a tenth of the TTL early, at most a minute.
        self._token_expires = now + ttl - min(60.0, ttl / 10)
        self._token = body.decode("ascii", "replace").strip()
        return self._token

    def _fetch(self, path: str) -> str | None:
        for attempt in range(2):
            with self._lock:
                token = self._fresh_token()
            status, _, body = self._send("GET", path, {TOKEN_HEADER: token})
            if status == 200:
                return body.decode("utf-8", "replace")
            if status == 404:
                return None
            if status == 401 and attempt == 0:
                with self._lock:  # expired or revoked early: one new token, one retry
                    if self._token == token:
                        self._token = None
                continue
            raise DatabaseError(
                f"reading {path!r} from the instance metadata service "
                f"at {self.endpoint} failed: HTTP {status}"
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, path: str) -> str | None:
        """The text at `/latest/<path>`, or None when the service has no such path."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and now - cached[0] < self._cache_ttl:
            return cached[1]
        value = self._fetch(path)
        if self._cache_ttl > 0:
            with self._lock:
                self._cache[path] = (time.monotonic(), value)
        return value


def instance_region(environ: Mapping[str, str], timeout: float = 1.0) -> str | None:
    """This EC2 instance's region from the metadata service, or None when there is none."""
    try:
        client = MetadataClient(imds_endpoint(None, environ), timeout=timeout, token_ttl=60)
        region = client.get("meta-data/placement/region")
    except DatabaseError:
        return None
    return region.strip() if region else None


def _split(key: str) -> tuple[str, str]:
    """(category, path inside it) for a requested key, as the fork reads keys."""
    path = key.strip("/")
    path = path.removeprefix("latest/") if path != "latest" else ""
    for category in CATEGORIES:
        if path == category or path.startswith(category + "/"):
            return category, path[len(category) :].strip("/")
    return "meta-data", path


def _entries(listing: str) -> list[tuple[str, bool]]:
    """(name, is directory) for each line of a directory listing; `0=key-name` (public-keys)
    is directory `0`."""
    entries = []
    for line in listing.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.endswith("/"):
            entries.append((line.rstrip("/"), True))
        elif "=" in line:
            entries.append((line.split("=", 1)[0], True))
        else:
            entries.append((line, False))
    return entries


def _url_path(category: str, path: str, directory: bool) -> str:
    joined = f"{category}/{path}" if path else category
    return quote(joined, safe="/=@:+,._-~") + ("/" if directory else "")


class ImdsDatabase(Database):
    """EC2 instance metadata (IMDSv2), polled; the fork's key layout."""

    name = "imds"
    description = "EC2 instance metadata service (IMDSv2 tokens, /meta-data, /dynamic, /user-data)"
    settings = (
        Setting(
            "imds_cache_ttl", str, "60s",
            "how long answers are reused, as a duration (60s, 5m) or seconds; 0: no cache",
        ),
        Setting(
            "endpoint", str, None,
            "metadata service URL (default: IMDS_ENDPOINT, AWS_EC2_METADATA_SERVICE_ENDPOINT, "
            "http://169.254.169.254)",
        ),
        Setting("timeout", float, 5.0, "seconds to connect, and to wait for each answer"),
        Setting("token_ttl", int, MAX_TOKEN_TTL, "seconds an IMDSv2 session token lives (1-21600)"),
    )  # fmt: skip

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def configure(self, config: Mapping[str, str]) -> None:
        super().configure(config)
        opts = self.options
        try:
            cache_ttl = parse_duration(opts["imds_cache_ttl"])
        except ValueError:
            raise DatabaseError(
                f"setting 'imds_cache_ttl' must be a duration such as 60s or 5m, "
                f"got {opts['imds_cache_ttl']!r}"
            ) from None
        if cache_ttl < 0:
            raise DatabaseError("setting 'imds_cache_ttl' must not be negative")
        if not 1 <= opts["token_ttl"] <= MAX_TOKEN_TTL:
            raise DatabaseError(
                f"setting 'token_ttl' must be 1..{MAX_TOKEN_TTL} seconds"
            )
        if opts["timeout"] <= 0:
            raise DatabaseError("setting 'timeout' must be above 0")
        environ = os.environ if self._environ is None else self._environ
        if environ.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() == "true":
            raise DatabaseError(
                "AWS_EC2_METADATA_DISABLED=true turns the instance metadata "
                "service off for this process (as the AWS SDKs, and so the fork, read it)"
            )
        self._client = MetadataClient(
            imds_endpoint(opts["endpoint"], environ),
            timeout=opts["timeout"],
            token_ttl=opts["token_ttl"],
            cache_ttl=cache_ttl,
        )

    def _kind(self, category: str, path: str) -> bool | None:
        """True for a directory, False for a value, None when there is no such path."""
        if category == "user-data":
            return False
        if not path:
            return True
        parent, _, name = path.rpartition("/")
        listing = self._client.get(_url_path(category, parent, True))
        if listing is None:
            return None
        for entry, directory in _entries(listing):
            if entry == name:
                return directory
        return None

    def _read(self, category: str, path: str, into: dict[str, str]) -> None:
        """Every value at or below `category/path`, by canonical key, into `into`."""
        kind = self._kind(category, path)
        if kind is None:
            return
        pending = [(path, kind)]
        while pending:
            current, directory = pending.pop()
            if len(into) + len(pending) > MAX_NODES:
                raise DatabaseError(
                    f"more than {MAX_NODES} paths below /{category}/{path}"
                )
            text = self._client.get(_url_path(category, current, directory))
            if text is None:
                continue  # gone between the listing and the read
            if not directory:
                into["/" + "/".join(p for p in (category, current) if p)] = text
                continue
            for entry, child_is_dir in _entries(text):
                pending.append((f"{current}/{entry}" if current else entry, child_is_dir))

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for key in normalize_keys(keys):
            category, path = _split(key)
            canonical = "/" + "/".join(p for p in (category, path) if p)
            found: dict[str, str] = {}
            self._read(category, path, found)
            values.update(found)
            spelled = "/" + key.strip("/")
            if spelled != canonical and spelled != "/":
                # `/instance-id` or `/latest/meta-data/x`: also under the key as requested.
                for name, value in found.items():
                    if select_prefix(name, canonical):
                        values[spelled + name[len(canonical) :]] = value
        return values
