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

from testsupport.ports import free_port

__all__ = [
    "EtcdCluster",
    "EtcdMember",
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

    def __init__(self, parent: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"confd-test-{self.name}-", dir=parent))
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

    def metrics(self, *names: str) -> tuple[float, ...]:
        """The values of `names` on etcd's /metrics page now (plain http only), e.g.
        `etcd_mvcc_range_total`: ranges served, those inside transactions included."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        found: dict[str, float] = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in names:
                found[name] = float(value)
        return tuple(found[name] for name in names)

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


# -- a 3-member etcd cluster for the failover tests -------------------------------------------


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _free_port_on(hosts: Sequence[str]) -> int:
    """A port nothing listens on at any of `hosts` (members sharing one port on several
    loopback addresses, as behind a DNS name that resolves to each of them)."""
    for _ in range(50):
        port = free_port()
        try:
            for host in hosts:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                with socket.socket(family) as sock:
                    sock.bind((host, port))
        except OSError:
            continue
        return port
    raise ServerError(f"no free port on all of {', '.join(hosts)}")


# What etcd answers while it elects, recovers or is overloaded: worth asking again.
_RETRY_DETAILS = (
    "leader changed", "no leader", "timed out", "too many requests", "deadline exceeded",
    "not capable", "stopped",
)


class EtcdMember(_Server):
    """One member of an `EtcdCluster`: its own data directory (on tmpfs when asked), client and
    peer URLs; restarting it keeps its data, so it rejoins as the same member."""

    name = "etcd"

    def __init__(
        self, cluster: EtcdCluster, index: int, host: str, port: int, parent: str | None
    ) -> None:
        super().__init__(parent)
        self.binary = require_binary("etcd", "etcd-server", "/usr/bin/etcd")
        self.cluster = cluster
        self.member = f"m{index}"
        self.host = host
        self.port = port
        self.peer_port = free_port()

    @property
    def url(self) -> str:
        return f"http://{_bracket(self.host)}:{self.port}"

    @property
    def target(self) -> str:
        """The gRPC target of this member alone."""
        return f"{_bracket(self.host)}:{self.port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family) as sock:
            sock.settimeout(0.2)
            return sock.connect_ex((self.host, self.port)) == 0

    def command(self) -> list[str]:
        cluster = self.cluster
        return [
            self.binary,
            "--name", self.member,
            "--data-dir", str(self.dir / "data"),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", ",".join(f"{m.member}={m.peer_url}" for m in cluster.members),
            "--initial-cluster-token", cluster.token,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", str(cluster.heartbeat_ms),
            "--election-timeout", str(cluster.election_ms),
            "--log-level", "warn",
            "--logger", "zap",
            *cluster.extra,
        ]  # fmt: skip

    def launch(self) -> None:
        """Start the process without waiting for it to serve (a member alone cannot)."""
        if self.running:
            return
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
            )

    def signal(self, signum: int) -> None:
        if self.process is None:
            raise ServerError(f"etcd member {self.member} is not running")
        self.process.send_signal(signum)


class EtcdCluster:
    """`size` etcd members on free loopback ports with temporary data (on /dev/shm when
    `tmpfs`, so a WAL fsync costs no disk flush), started together and always removed on exit.

    Faults by member index: `kill` (SIGKILL), `pause`/`resume` (SIGSTOP/SIGCONT), `start` again
    on the same ports and data, `cut` (destroy the member's client TCP connections with
    `ss -K`, as a network cut would). `leader()` asks the maintenance API; `compact()` compacts
    the store at its current revision; `put`/`get` retry across members, as a client must while
    the cluster elects. `enable_auth()` turns authentication on (user root), after which the
    cluster's own calls authenticate. `hosts` places member i on hosts[i]; with `same_port`
    every member listens on one port (a DNS name resolving to each host then reaches them all);
    `extra` adds etcd flags to every member.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        hosts: Sequence[str] | None = None,
        same_port: bool = False,
        tmpfs: bool = True,
        heartbeat_ms: int = 100,
        election_ms: int = 1000,
        extra: Sequence[str] = (),
    ) -> None:
        hosts = list(hosts or ["127.0.0.1"] * size)
        if len(hosts) != size:
            raise ServerError(f"EtcdCluster: {size} members need {size} hosts, got {hosts}")
        self.heartbeat_ms = heartbeat_ms
        self.extra = list(extra)  # more etcd flags for every member
        self._auth: tuple[str, str] | None = None
        self._token: str | None = None
        self.election_ms = election_ms
        self.token = f"confd-test-{os.getpid()}-{id(self)}"
        parent = "/dev/shm" if tmpfs and os.path.isdir("/dev/shm") else None
        shared = _free_port_on(sorted(set(hosts))) if same_port else None
        self.members: list[EtcdMember] = []
        for index, host in enumerate(hosts):
            port = shared or _free_port_on([host])
            self.members.append(EtcdMember(self, index, host, port, parent))
        self._channels: dict[int, Any] = {}
        self._last_good = 0

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        return [m.url for m in self.members]

    def __enter__(self) -> Self:
        try:
            for member in self.members:
                member.launch()
            self.wait_healthy(timeout=30)
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Stop every member (resuming paused ones first) and remove their data."""
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        for member in self.members:
            if member.running:
                member.signal(signal.SIGCONT)
            member.cleanup()

    def wait_healthy(self, members: Sequence[int] | None = None, timeout: float = 20) -> None:
        """Wait until each of `members` (default: all) answers a linearizable read."""
        indices = range(len(self.members)) if members is None else members
        deadline = time.monotonic() + timeout
        for index in indices:
            member = self.members[index]
            while not self.serves(index):
                if not member.running or time.monotonic() > deadline:
                    tail = member.log_path.read_text(errors="replace")[-3000:]
                    raise ServerError(
                        f"etcd member {member.member} ({member.url}) does not serve; "
                        f"its log:\n{tail}"
                    )
                time.sleep(0.05)

    # -- faults ---------------------------------------------------------------------------------

    def kill(self, index: int) -> None:
        """SIGKILL member `index` (no goodbye to its clients or peers) and reap it."""
        member = self.members[index]
        process, member.process = member.process, None
        if process is not None:
            process.kill()
            process.wait()

    def start(self, index: int, wait: bool = True) -> None:
        """Start member `index` again on its ports and data; with `wait`, until it serves."""
        self.members[index].launch()
        if wait:
            self.wait_healthy([index])

    def pause(self, index: int) -> None:
        """SIGSTOP member `index`: its sockets stay open, nothing answers."""
        self.members[index].signal(signal.SIGSTOP)

    def resume(self, index: int) -> None:
        self.members[index].signal(signal.SIGCONT)

    def cut(self, index: int) -> None:
        """Destroy every client TCP connection of member `index` (both ends), as a network cut
        does: its clients see the connection fail and must reconnect."""
        ss = require_binary("ss", "iproute2")
        member = self.members[index]
        where = f"{_bracket(member.host)}:{member.port}"
        done = subprocess.run(
            [ss, "-K", "-t", "-n", f"( src {where} or dst {where} )"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise ServerError(f"`ss -K` failed to cut {where}: {done.stderr.strip()}")

    # -- the cluster's own view -----------------------------------------------------------------

    def _channel(self, index: int) -> Any:
        import grpc

        channel = self._channels.get(index)
        if channel is None:
            channel = self._channels[index] = grpc.insecure_channel(self.members[index].target)
        return channel

    def status(self, index: int, timeout: float = 1.0) -> Any | None:
        """Member `index`'s maintenance status (leader, raft term, revision), None if silent."""
        import grpc
        from pyetcd import etcdrpc

        if not self.members[index].running:
            return None
        try:
            stub = etcdrpc.MaintenanceStub(self._channel(index))
            return stub.Status(etcdrpc.StatusRequest(), timeout=timeout)
        except grpc.RpcError:
            return None

    def serves(self, index: int) -> bool:
        """True when member `index` answers a linearizable read now."""
        import grpc
        from pyetcd import etcdrpc

        if not self.members[index].running:
            return False
        metadata = self._metadata(index)
        if metadata is None:
            return False
        try:
            stub = etcdrpc.KVStub(self._channel(index))
            stub.Range(etcdrpc.RangeRequest(key=b"health"), timeout=1.0, metadata=metadata)
        except grpc.RpcError:
            return False
        return True

    def leader(self, timeout: float = 20) -> int:
        """Index of the member that leads now (waiting through an election)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index in range(len(self.members)):
                status = self.status(index)
                if status is not None and status.leader == status.header.member_id != 0:
                    return index
            time.sleep(0.05)
        raise ServerError(f"no etcd member leads after {timeout}s")

    def lead(self, index: int, timeout: float = 20) -> None:
        """Make member `index` the leader (the leader hands over with MoveLeader)."""
        from pyetcd import etcdrpc

        deadline = time.monotonic() + timeout
        while (leader := self.leader(timeout)) != index:
            status = self.status(index)
            if status is None or time.monotonic() > deadline:
                raise ServerError(f"etcd member m{index} could not take the lead")
            stub = etcdrpc.MaintenanceStub(self._channel(leader))
            try:
                stub.MoveLeader(etcdrpc.MoveLeaderRequest(targetID=status.header.member_id),
                                timeout=5)
            except Exception:  # noqa: BLE001 - an election raced us: ask again
                time.sleep(0.05)

    def watch_streams(self, index: int) -> int:
        """How many watch streams member `index` serves now (its /metrics gauge)."""
        member = self.members[index]
        if not member.running:
            return 0
        try:
            with urllib.request.urlopen(f"{member.url}/metrics", timeout=2) as reply:
                text = reply.read().decode()
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith("etcd_debugging_mvcc_watch_stream_total "):
                return int(float(line.split()[1]))
        return 0

    def _retrying(self, call: str, request: Any, timeout: float) -> Any:
        """Send a KV `call` to the members in turn until one succeeds (elections, dead members),
        starting with the member that answered last."""
        import grpc
        from pyetcd import etcdrpc

        deadline = time.monotonic() + timeout
        errors: list[str] = []
        turn = self._last_good
        while time.monotonic() < deadline:
            index = turn % len(self.members)
            turn += 1
            if not self.members[index].running:
                continue
            metadata = self._metadata(index)
            if metadata is None:
                errors.append(f"{self.members[index].member}: cannot authenticate")
                time.sleep(0.01)
                continue
            try:
                stub = etcdrpc.KVStub(self._channel(index))
                reply = getattr(stub, call)(request, timeout=1.0, metadata=metadata)
            except grpc.RpcError as exc:
                errors.append(f"{self.members[index].member}: {exc.details()}")
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    self._token = None  # expired: authenticate again
                    continue
                if exc.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.UNKNOWN,  # "raft proposal dropped", "context deadline..."
                ) and not any(d in (exc.details() or "") for d in _RETRY_DETAILS):
                    raise ServerError(f"etcd {call} failed: {exc.details()}") from None
                time.sleep(0.01)
                continue
            self._last_good = index
            return reply
        raise ServerError(f"etcd {call} failed on every member for {timeout}s: {errors[-3:]}")

    def enable_auth(self, password: str) -> None:
        """Create user root (role root) with `password` and turn authentication on."""
        from pyetcd import etcdrpc

        auth = etcdrpc.AuthStub(self._channel(self.leader()))
        auth.UserAdd(etcdrpc.AuthUserAddRequest(name="root", password=password), timeout=10)
        auth.RoleAdd(etcdrpc.AuthRoleAddRequest(name="root"), timeout=10)
        auth.UserGrantRole(etcdrpc.AuthUserGrantRoleRequest(user="root", role="root"), timeout=10)
        auth.AuthEnable(etcdrpc.AuthEnableRequest(), timeout=10)
        self._auth = ("root", password)

    def _metadata(self, index: int) -> tuple[tuple[str, str], ...] | None:
        """The call's auth token (none without auth); None when member `index` cannot
        authenticate us now (the caller tries the next member: a call without the token would
        be refused as 'user name is empty', which is no reason to retry)."""
        import grpc
        from pyetcd import etcdrpc

        if self._auth is None:
            return ()
        if self._token is None:
            request = etcdrpc.AuthenticateRequest(name=self._auth[0], password=self._auth[1])
            try:
                reply = etcdrpc.AuthStub(self._channel(index)).Authenticate(request, timeout=1.0)
            except grpc.RpcError:
                return None
            self._token = reply.token
        return (("token", self._token),)

    def put(self, key: str, value: str, timeout: float = 20, *, newer: bool = False) -> int:
        """Write `key`, retrying through elections; the revision it was written at.

        With `newer`, the put applies only while the stored value sorts before `value` (keep
        values fixed-width): a put that a paused member hands to the cluster after its client
        gave up and wrote later values then cannot take the key back.
        """
        from pyetcd import etcdrpc

        put = etcdrpc.PutRequest(key=key.encode(), value=value.encode())
        if not newer:
            return self._retrying("Put", put, timeout).header.revision
        older = etcdrpc.Compare(
            result=etcdrpc.Compare.LESS, target=etcdrpc.Compare.VALUE, key=put.key, value=put.value
        )
        request = etcdrpc.TxnRequest(compare=[older], success=[etcdrpc.RequestOp(request_put=put)])
        return self._retrying("Txn", request, timeout).header.revision

    def get(self, key: str, timeout: float = 20) -> tuple[str | None, int]:
        """A linearizable read of `key`: its value (None when absent) and the store revision."""
        from pyetcd import etcdrpc

        reply = self._retrying("Range", etcdrpc.RangeRequest(key=key.encode()), timeout)
        value = reply.kvs[0].value.decode() if reply.kvs else None
        return value, reply.header.revision

    def compact(self, timeout: float = 20) -> int:
        """Compact the store at its current revision (physically); that revision."""
        from pyetcd import etcdrpc

        _, revision = self.get("compact", timeout)
        request = etcdrpc.CompactionRequest(revision=revision, physical=True)
        self._retrying("Compact", request, timeout)
        return revision
