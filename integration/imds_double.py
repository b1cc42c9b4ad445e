"""A test double of the EC2 instance metadata service (IMDS): no EC2 instance is available here.

It is a double, not IMDS: one in-memory tree of paths and values, served over HTTP on 127.0.0.1.
What it does follow is the part of the service's documented behaviour that clients depend on,
in IMDSv2-only mode (`HttpTokens = required`):

- `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds: N` (1..21600) answers a
  session token and echoes the TTL header; without the header or out of range: 400; a request
  carrying `X-Forwarded-For` is refused with 403, as IMDS refuses proxied token requests.
- `GET /latest/<path>` needs `X-aws-ec2-metadata-token` with a live token, else 401.
- A directory (`meta-data/`, `meta-data/placement`, ...) answers its listing, one entry per
  line, sub-directories with a trailing `/`; `meta-data/public-keys/` lists `0=<key name>`
  entries as IMDS does. A value answers its text. Anything else: 404.
- The tree: `meta-data/...`, `dynamic/...` and `user-data`, as paths below `/latest/`.

Test hooks: `load(tree)`, `set(path, value)`, `delete(path)`, `expire_tokens()` (every issued
token now gets 401), `max_ttl` (tokens live at most this long, whatever was asked),
`refuse_tokens` (an HTTP status for every token request, e.g. 403 when IMDS is disabled),
`fail` (path -> HTTP status to answer instead), and `log`: (method, path, whether a token was
sent, status answered) of every request.
"""

from __future__ import annotations

import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import unquote, urlsplit

__all__ = ["ImdsDouble", "INSTANCE"]

TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"

# A plausible instance: what the tests read, laid out as IMDS lays it out.
INSTANCE: dict[str, str] = {
    "meta-data/ami-id": "ami-0abcdef1234567890",
    "meta-data/hostname": "ip-10-0-1-23.ec2.internal",
    "meta-data/instance-id": "i-0123456789abcdef0",
    "meta-data/instance-type": "t3.micro",
    "meta-data/local-ipv4": "10.0.1.23",
    "meta-data/mac": "0e:49:61:0f:c3:11",
    "meta-data/placement/availability-zone": "us-east-1a",
    "meta-data/placement/region": "us-east-1",
    "meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/local-ipv4s": "10.0.1.23",
    "meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/subnet-id": "subnet-0123456789abcdef0",
    "meta-data/public-keys/0/openssh-key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI deploy",
    "meta-data/tags/instance/Name": "web-1",
    "dynamic/instance-identity/document": (
        '{\n  "accountId" : "123456789012",\n  "region" : "us-east-1",\n'
        '  "instanceId" : "i-0123456789abcdef0"\n}'
    ),
    "user-data": "#!/bin/sh\necho hello\n",
}
PUBLIC_KEY_NAMES = {"0": "deploy"}


class ImdsDouble:
    """An in-memory IMDSv2 metadata service on 127.0.0.1 (see the module docstring)."""

    def __init__(self, tree: dict[str, str] | None = None) -> None:
        self.tree: dict[str, str] = dict(INSTANCE if tree is None else tree)
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.max_ttl: int | None = None
        self.refuse_tokens: int | None = None
        self.fail: dict[str, int] = {}
        self.log: list[tuple[str, str, bool, int]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- the tree -----------------------------------------------------------------------------

    def load(self, tree: dict[str, str]) -> None:
        with self._lock:
            self.tree = dict(tree)

    def set(self, path: str, value: str) -> None:
        with self._lock:
            self.tree[path.strip("/")] = value

    def delete(self, path: str) -> None:
        with self._lock:
            self.tree.pop(path.strip("/"), None)

    def expire_tokens(self) -> None:
        """Every token issued so far is now refused (401), as after its TTL."""
        with self._lock:
            self.tokens.clear()

    def _answer(self, path: str) -> str | None:
        """The value at `path`, or the listing when it is a directory, or None."""
        path = path.strip("/")
        with self._lock:
            if path in self.tree:
                return self.tree[path]
            below = path + "/" if path else ""
            children: dict[str, bool] = {}
            for name in self.tree:
                if name.startswith(below):
                    head, sep, _ = name[len(below) :].partition("/")
                    children[head] = children.get(head, False) or bool(sep)
        if not children:
            return None
        lines = []
        for name, directory in sorted(children.items()):
            if path == "meta-data/public-keys" and name in PUBLIC_KEY_NAMES:
                lines.append(f"{name}={PUBLIC_KEY_NAMES[name]}")
            else:
                lines.append(name + "/" if directory else name)
        return "\n".join(lines)

    # --- HTTP ---------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, body: str = "", headers: dict[str, str] | None = None
                       ) -> None:
                path = urlsplit(self.path).path
                double.log.append((self.command, path, bool(self.headers.get(TOKEN_HEADER)),
                                   status))  # fmt: skip
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
                path = urlsplit(self.path).path
                if path != "/latest/api/token":
                    return self._reply(404)
                if double.refuse_tokens is not None:
                    return self._reply(double.refuse_tokens)
                if self.headers.get("X-Forwarded-For"):
                    return self._reply(403)
                try:
                    ttl = int(self.headers.get(TTL_HEADER, ""))
                except ValueError:
                    return self._reply(400)
                if not 1 <= ttl <= 21600:
                    return self._reply(400)
                if double.max_ttl is not None:
                    ttl = min(ttl, double.max_ttl)
                token = secrets.token_urlsafe(32)
                with double._lock:
                    double.tokens[token] = time.monotonic() + ttl
                self._reply(200, token, {TTL_HEADER: str(ttl)})

            def do_GET(self) -> None:  # noqa: N802
                path = urlsplit(self.path).path
                token = self.headers.get(TOKEN_HEADER)
                with double._lock:
                    expiry = double.tokens.get(token or "")
                if expiry is None or expiry < time.monotonic():
                    return self._reply(401)
                if not path.startswith("/latest/"):
                    return self._reply(404)
                if path in double.fail:
                    return self._reply(double.fail[path])
                answer = double._answer(unquote(path[len("/latest/") :]))
                if answer is None:
                    return self._reply(404)
                self._reply(200, answer)

        return Handler

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="imds-double", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
