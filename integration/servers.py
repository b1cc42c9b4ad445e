"""Real etcd, Redis (with Sentinel), ZooKeeper and moto (AWS) servers for the tests: free
127.0.0.1 ports, temporary data, always stopped.

On a fresh machine running as root, missing servers are installed from Debian's apt
(`etcd-server`, `redis-server`, `redis-sentinel`, `zookeeper`); moto comes with the `test`
extra (`scripts/bootstrap`). A missing or failing server is an error that says what to install
or what the server printed. Nothing here ever skips a test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

__all__ = [
    "EtcdServer",
    "MotoServer",
    "RedisSentinelCluster",
    "RedisServer",
    "ServerError",
    "ZooKeeperServer",
    "aws_environment",
    "free_port",
    "require_binary",
    "require_file",
    "terminate",
    "wait_serving",
]


class ServerError(RuntimeError):
    """A test server could not be installed or started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _apt_install(package: str, what: str) -> None:
    """apt-get install `package` (which provides `what`) when running as root, else fail."""
    if os.geteuid() != 0:
        raise ServerError(f"{what} is not installed: run `apt-get install {package}` (as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ServerError(f"`{' '.join(cmd)}` failed:\n{done.stderr[-2000:]}")


def require_binary(name: str, package: str, fallback: str | None = None) -> str:
    """Path of executable `name`; apt-get installs `package` when missing and running as root."""

    def find() -> str | None:
        return shutil.which(name) or (fallback if fallback and os.path.exists(fallback) else None)

    found = find()
    if found:
        return found
    _apt_install(package, name)
    found = find()
    if not found:
        raise ServerError(f"installed {package} but {name} is still not on PATH")
    return found


def require_file(path: str, package: str) -> str:
    """`path`, which Debian's `package` installs; apt-get installs it when missing (as root)."""
    if not os.path.exists(path):
        _apt_install(package, path)
        if not os.path.exists(path):
            raise ServerError(f"installed {package} but {path} is still missing")
    return path


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


class _Sentinel(_Server):
    """One Redis Sentinel watching `master` (its config file is its own: Sentinel rewrites it)."""

    name = "redis-sentinel"

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.binary = require_binary("redis-sentinel", "redis-sentinel")
        self.config = self.dir / "sentinel.conf"
        head = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}", "daemonize no"]
        self.config.write_text("\n".join(head + lines) + "\n")

    def command(self) -> list[str]:
        return [self.binary, str(self.config)]


class RedisSentinelCluster:
    """A Redis master, one replica and three Sentinels (quorum 2) on free loopback ports, with
    failover timings short enough for tests: a master is down after `down_after_ms`.

    `password` protects master and replica, `sentinel_password` the Sentinels (and is what they
    use with each other). As a context manager it starts everything and waits until the
    Sentinels know each other and the replica, so a failover can happen; it always cleans up.
    """

    def __init__(
        self,
        master_name: str = "confd-master",
        password: str | None = None,
        sentinel_password: str | None = None,
        down_after_ms: int = 1000,
    ) -> None:
        self.master_name = master_name
        self.password = password
        self.sentinel_password = sentinel_password
        auth = ["--requirepass", password, "--masterauth", password] if password else []
        self.master = RedisServer(extra=auth)
        self.replica = RedisServer(
            extra=["--replicaof", "127.0.0.1", str(self.master.port), *auth]
        )
        lines = [
            f"sentinel monitor {master_name} 127.0.0.1 {self.master.port} 2",
            f"sentinel down-after-milliseconds {master_name} {down_after_ms}",
            f"sentinel failover-timeout {master_name} {max(3 * down_after_ms, 3000)}",
            f"sentinel parallel-syncs {master_name} 1",
        ]
        if password:
            lines.append(f"sentinel auth-pass {master_name} {password}")
        if sentinel_password:
            lines += [
                f"requirepass {sentinel_password}",
                f"sentinel sentinel-pass {sentinel_password}",
            ]
        self.sentinels = [_Sentinel(lines) for _ in range(3)]

    @property
    def nodes(self) -> str:
        """The Sentinels as confd's `--node` list."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def client(self, port: int) -> Any:
        """A redis-py client of the master or replica on `port`."""
        import redis

        return redis.Redis(port=port, password=self.password, decode_responses=True,
                           socket_timeout=5)

    def _sentinel_client(self, port: int) -> Any:
        import redis

        return redis.Redis(port=port, password=self.sentinel_password, decode_responses=True,
                           socket_timeout=2)

    def master_port(self) -> int | None:
        """The master's port as a majority of the Sentinels name it now (None: no majority)."""
        import redis

        named: list[int] = []
        for sentinel in self.sentinels:
            if sentinel.process is None:
                continue
            try:
                with self._sentinel_client(sentinel.port) as client:
                    address = client.sentinel_get_master_addr_by_name(self.master_name)
            except redis.RedisError:
                continue
            if address:
                named.append(int(address[1]))
        for port in set(named):
            if named.count(port) >= 2:
                return port
        return None

    def _ready(self) -> bool:
        import redis

        try:
            with self.client(self.replica.port) as replica:
                if replica.info("replication").get("master_link_status") != "up":
                    return False
            for sentinel in self.sentinels:
                with self._sentinel_client(sentinel.port) as client:
                    state = client.sentinel_master(self.master_name)
                if state.get("num-other-sentinels") != 2 or state.get("num-slaves") != 1:
                    return False
        except redis.RedisError:
            return False
        return True

    def kill_master(self) -> int:
        """SIGKILL the master (no goodbye to its clients); returns its port."""
        process = self.master.process
        assert process is not None, "the master is not running"
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.master.process = None
        return self.master.port

    def wait_for_failover(self, old_port: int, timeout: float = 20.0) -> int:
        """Wait until the Sentinels name a master other than `old_port`; returns its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.master_port()
            if port is not None and port != old_port:
                return port
            time.sleep(0.1)
        logs = "\n".join(s.log_path.read_text(errors="replace")[-1500:] for s in self.sentinels)
        raise ServerError(f"the Sentinels did not fail over within {timeout}s; their logs:\n{logs}")

    def __enter__(self) -> Self:
        servers: list[_Server] = [self.master, self.replica, *self.sentinels]
        try:
            for server in servers:
                server.start()
            deadline = time.monotonic() + 30
            while not self._ready():
                if time.monotonic() > deadline:
                    logs = "\n".join(s.log_path.read_text(errors="replace")[-1500:]
                                     for s in self.sentinels)
                    raise ServerError(f"Sentinels not ready within 30s; their logs:\n{logs}")
                time.sleep(0.1)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for server in (*self.sentinels, self.replica, self.master):
            server.cleanup()
ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"  # Debian's libzookeeper-java (via `zookeeper`)
_SLF4J_SIMPLE = "/usr/share/java/slf4j-simple.jar"  # so the server's log says why it failed


class ZooKeeperServer(_Server):
    """A ZooKeeper 3.x from Debian's jars (`QuorumPeerMain` with a generated zoo.cfg).

    Alone by default (a standalone server). For an ensemble, build the members with
    `ZooKeeperServer.ensemble(3)`: each gets its `server_id`, peer and election ports and the
    shared `server.N=` list, then start them all (`start(wait=False)` each, then `serving()`),
    since a member serves only once a quorum is up. The data directory survives `restart()`
    (sessions too, when the restart is quicker than their timeout). `tick_ms` bounds the session
    timeouts the server grants: 2 to 20 ticks.
    """

    name = "zookeeper"

    def __init__(self, server_id: int = 1, tick_ms: int = 200) -> None:
        super().__init__()
        self.java = require_binary("java", "zookeeper")
        self.jar = require_file(ZOOKEEPER_JAR, "zookeeper")
        self.server_id = server_id
        self.tick_ms = tick_ms
        self.peer_port = free_port()
        self.election_port = free_port()
        self.members: list[str] = []  # `server.N=...` lines; empty: standalone

    @classmethod
    def ensemble(cls, size: int = 3, tick_ms: int = 200) -> list[ZooKeeperServer]:
        """`size` members (ids 1..size) that know each other, none started."""
        servers = [cls(server_id=n, tick_ms=tick_ms) for n in range(1, size + 1)]
        lines = [s.member_line for s in servers]
        for server in servers:
            server.members = list(lines)
        return servers

    @property
    def member_line(self) -> str:
        """This server's entry in an ensemble's server list."""
        return (
            f"server.{self.server_id}=127.0.0.1:{self.peer_port}:{self.election_port}"
            f";127.0.0.1:{self.port}"
        )

    @property
    def address(self) -> str:
        """`host:port` as clients (and confd's `--node`) name it."""
        return f"127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = [
            f"tickTime={self.tick_ms}",
            "initLimit=20",
            "syncLimit=10",
            f"dataDir={self.dir / 'data'}",
            f"clientPort={self.port}",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",  # its Jetty would take port 8080
            "4lw.commands.whitelist=srvr,ruok,stat,cons",
            "maxClientCnxns=0",
            "autopurge.purgeInterval=0",
        ]
        if self.members:
            lines += ["standaloneEnabled=false", *self.members]
        return "\n".join(lines) + "\n"

    def command(self) -> list[str]:
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        (data / "myid").write_text(f"{self.server_id}\n")
        cfg = self.dir / "zoo.cfg"
        cfg.write_text(self.config())
        classpath = self.jar + (f":{_SLF4J_SIMPLE}" if os.path.exists(_SLF4J_SIMPLE) else "")
        return [
            self.java,
            "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-Dzookeeper.jmx.log4j.disable=true",
            "-cp", classpath,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(cfg),
        ]  # fmt: skip

    def four_letter(self, command: str, timeout: float = 1.0) -> str:
        """The answer to a four-letter command (`ruok`, `srvr`), or "" when there is none."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(command.encode())
                chunks = []
                while chunk := sock.recv(4096):
                    chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
        except OSError:
            return ""

    def serving(self) -> bool:
        """True when the server answers client requests (standalone, leader or follower)."""
        return "Mode: " in self.four_letter("srvr")

    def ready(self) -> bool:
        if self.members:
            return self.four_letter("ruok") == "imok"  # up; serving needs the quorum
        return self.serving()

    def start(self, timeout: float = 30.0, wait: bool = True) -> None:
        """Start the server; with `wait` (default) return once it serves."""
        if wait:
            super().start(timeout)
            return
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
            )


def wait_serving(servers: Sequence[ZooKeeperServer], timeout: float = 60.0) -> None:
    """Wait until every ensemble member serves; fail with their log tails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(s.serving() for s in servers):
            return
        time.sleep(0.1)
    tails = "\n".join(
        f"--- {s.member_line}\n{s.log_path.read_text(errors='replace')[-1500:]}" for s in servers
    )
    raise ServerError(f"ZooKeeper ensemble did not form within {timeout}s:\n{tails}")


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
