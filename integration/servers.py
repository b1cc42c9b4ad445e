"""Real etcd, Redis and moto servers for the tests: free 127.0.0.1 ports, temporary data, always
stopped.

On a fresh machine running as root, missing servers are installed from Debian's apt
(`etcd-server`, `redis-server`); moto comes with the `test` extra (`scripts/bootstrap`). A missing
or failing server is an error that says what to install or what the server printed. Nothing here
ever skips a test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

__all__ = [
    "EtcdServer",
    "MotoServer",
    "RedisServer",
    "ServerError",
    "free_port",
    "aws_environment",
    "require_binary",
    "terminate",
]


class ServerError(RuntimeError):
    """A test server could not be installed or started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_binary(name: str, package: str, fallback: str | None = None) -> str:
    """Path of executable `name`; apt-get installs `package` when missing and running as root."""
    found = shutil.which(name) or (fallback if fallback and os.path.exists(fallback) else None)
    if found:
        return found
    if os.geteuid() != 0:
        raise ServerError(f"{name} is not installed: run `apt-get install {package}` (as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ServerError(f"`{' '.join(cmd)}` failed:\n{done.stderr[-2000:]}")
    found = shutil.which(name) or (fallback if fallback and os.path.exists(fallback) else None)
    if not found:
        raise ServerError(f"installed {package} but {name} is still not on PATH")
    return found


def terminate(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop `process` if it still runs: SIGTERM, then SIGKILL after `timeout` seconds; reaped."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class _Server:
    """A server process with a temporary directory, a log file and start/stop/restart."""

    name = "server"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"confd-test-{self.name}-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "server.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return _port_open(self.port)

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until it answers; fail with its log tail if it does not."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise ServerError(f"{self.name} did not start on 127.0.0.1:{self.port}; its log:\n{tail}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for its port to close."""
        process, self.process = self.process, None
        if process is not None:
            terminate(process)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        """Start the server; the `with` block (or fixture) then always cleans it up."""
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


class EtcdServer(_Server):
    """A single-member etcd 3.x; with `tls` set, clients must present a certificate."""

    name = "etcd"

    def __init__(self, tls: dict[str, str] | None = None) -> None:
        super().__init__()
        self.binary = require_binary("etcd", "etcd-server", "/usr/bin/etcd")
        self.peer_port = free_port()
        self.tls = tls

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        if not _port_open(self.port):
            return False
        if self.tls:
            return True
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as reply:
                return b'"true"' in reply.read()
        except OSError:
            return False

    def command(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [
            self.binary,
            "--name", "confd-test",
            "--data-dir", str(self.dir / "data"),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"confd-test={peer}",
            "--log-level", "warn",
            "--logger", "zap",
        ]  # fmt: skip
        if self.tls:
            cmd += [
                "--cert-file", self.tls["cert"],
                "--key-file", self.tls["key"],
                "--trusted-ca-file", self.tls["ca"],
                "--client-cert-auth",
            ]  # fmt: skip
        return cmd


class RedisServer(_Server):
    """A Redis without persistence, on a TCP port and a unix socket."""

    name = "redis"

    def __init__(self, extra: list[str] | None = None) -> None:
        super().__init__()
        self.binary = require_binary("redis-server", "redis-server")
        self.socket = self.dir / "redis.sock"
        self.extra = extra or []

    def command(self) -> list[str]:
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            *self.extra,
        ]  # fmt: skip


def aws_environment(url: str, access_key: str, secret_key: str, region: str) -> dict[str, str]:
    """Variables that point the AWS SDKs at `url` with these credentials, isolated from the
    machine's own AWS configuration (no profile files, no instance metadata)."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class MotoServer(_Server):
    """moto in server mode (`moto_server`): AWS's APIs, in memory, on a real HTTP endpoint.

    Every AWS service moto knows answers on the one port (`url`), for any region and any access
    key, until `require_auth()` makes it check signatures against IAM users created in it.
    `reset()` forgets every resource. `env()` is what a process needs to reach it.
    """

    name = "moto"
    region = "us-east-1"
    access_key = "AKIAMOTOTESTKEY00001"
    secret_key = "moto-test-secret-key-that-must-never-be-logged"

    def __init__(self) -> None:
        super().__init__()
        self.binary = str(Path(sys.executable).with_name("moto_server"))
        if not os.path.exists(self.binary):
            raise ServerError(
                f"{self.binary} is missing: run scripts/bootstrap (moto[server] is in the "
                "`test` extra)"
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [self.binary, "-H", "127.0.0.1", "-p", str(self.port)]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1) as reply:
                return reply.status == 200
        except OSError:
            return False

    def _post(self, path: str, body: bytes = b"") -> None:
        request = urllib.request.Request(
            f"{self.url}{path}", data=body, method="POST",
            headers={"Content-Type": "application/json"},  # moto reads the raw body
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as reply:
            reply.read()

    def reset(self) -> None:
        """Drop every table, parameter, secret, certificate and IAM user moto holds."""
        self._post("/moto-api/reset")

    def require_auth(self) -> None:
        """From now on, check every request's signature against moto's IAM users and policies."""
        self._post("/moto-api/reset-auth", b"0")

    def env(
        self, access_key: str | None = None, secret_key: str | None = None
    ) -> dict[str, str]:
        """Variables that point a process's AWS SDK at this server (see `aws_environment`)."""
        return aws_environment(
            self.url, access_key or self.access_key, secret_key or self.secret_key, self.region
        )

    def client(self, service: str, **overrides: str) -> Any:
        """A boto3 client of `service` talking to this server (for filling it in tests)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=overrides.get("access_key", self.access_key),
            aws_secret_access_key=overrides.get("secret_key", self.secret_key),
        )
