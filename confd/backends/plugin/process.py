"""One running plugin process: launch, handshake, connect, health-check, stdio, shutdown.

Restarts are the caller's business (see `client.PluginDatabase`); this class owns exactly one
child process and cleans up its socket directory.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from typing import TYPE_CHECKING

import grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from confd.backends.plugin.handshake import Handshake, parse_handshake
from confd.backends.plugin.launch import LaunchOptions
from confd.backends.plugin.stderr import relay
from confd.errors import PluginError
from confd.log import get_logger
from plugin_sdk import protocol
from plugin_sdk.mtls import (
    Certificate,
    client_context,
    der_to_pem,
    grpc_can_verify,
    make_certificate,
)
from plugin_sdk.proto.confd_plugin import (
    grpc_controller_pb2,
    grpc_controller_pb2_grpc,
    grpc_stdio_pb2,
    grpc_stdio_pb2_grpc,
)

if TYPE_CHECKING:
    from plugin_sdk.tls_bridge import TlsBridge

_TAIL_LINES = 20
_LINE_LIMIT = 64 * 1024
SHUTDOWN_GRACE = 2.0
_NO_SDK = "No module named 'plugin_sdk'"
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]


class PluginProcess:
    """A started, hand-shaken plugin with a ready gRPC channel (`channel`).

    Under AutoMTLS the session is TLS or the start fails: grpcio's own TLS for a P-384 plugin
    (plugin_sdk), the OpenSSL bridge (`plugin_sdk.tls_bridge`) for a P-521 one (go-plugin).
    """

    def __init__(self, options: LaunchOptions) -> None:
        self.options = options
        self.name = options.name
        self.command = list(options.command)
        self.log = get_logger(f"confd.backends.plugin.{options.name}")
        self.handshake: Handshake | None = None
        self.channel: grpc.Channel | None = None
        self.stdio_supported: bool | None = None
        self.tls = False
        self.bridge: TlsBridge | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._socket_dir = ""
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._threads: list[threading.Thread] = []

    @property
    def transport(self) -> str:
        """How the session is carried, for `confd plugins describe` and logs."""
        if self.bridge is not None:
            return "TLS (AutoMTLS, P-521 peer: OpenSSL bridge)"
        return "TLS (AutoMTLS)" if self.tls else "plaintext"

    # -- start -----------------------------------------------------------------------------

    def start(self) -> None:
        """Launch and connect; PluginError naming the plugin, its output and stderr tail."""
        options = self.options
        deadline = time.monotonic() + options.start_timeout
        self._socket_dir = tempfile.mkdtemp(prefix="confd-plugin-")
        os.chmod(self._socket_dir, 0o700)
        cert = make_certificate() if options.auto_mtls else None
        env = dict(os.environ)
        env.update(options.env)
        env.update(
            {
                protocol.MAGIC_COOKIE_KEY: protocol.MAGIC_COOKIE_VALUE,
                protocol.ENV_PROTOCOL_VERSIONS: ",".join(map(str, options.versions)),
                protocol.ENV_MIN_PORT: env.get(protocol.ENV_MIN_PORT, "10000"),
                protocol.ENV_MAX_PORT: env.get(protocol.ENV_MAX_PORT, "25000"),
                protocol.ENV_UNIX_SOCKET_DIR: self._socket_dir,
            }
        )
        env.pop(protocol.ENV_CLIENT_CERT, None)
        if cert is not None:
            env[protocol.ENV_CLIENT_CERT] = cert.cert_pem.decode()
        try:
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            self._cleanup_dir()
            raise PluginError(
                f"plugin {self.name!r}: cannot start {self.command[0]}: {exc}"
            ) from exc
        try:
            self._connect(deadline, cert)
        except BaseException:
            self.stop(graceful=False)
            raise

    def _connect(self, deadline: float, cert: Certificate | None) -> None:
        assert self._proc is not None and self._proc.stdout and self._proc.stderr
        self._spawn(self._read_stderr, self._proc.stderr)
        lines: queue.Queue[bytes] = queue.Queue()
        self._spawn(self._read_stdout, self._proc.stdout, lines)
        try:
            raw = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise self._failure(
                f"printed no handshake line within {self.options.start_timeout:g} s"
            ) from None
        if not raw:
            code = self._wait_exit(1.0)
            raise self._failure(f"exited with status {code} before its handshake")
        line = raw.decode("utf-8", "replace")
        try:
            self.handshake = parse_handshake(self.name, line, self.options.versions)
        except PluginError as exc:
            raise PluginError(f"{exc}{self._tail_text()}") from None
        self.channel = self._dial(cert)
        ready = grpc.channel_ready_future(self.channel)
        while True:
            try:
                ready.result(timeout=0.05)
                break
            except grpc.FutureTimeoutError:
                self._raise_tls_failure()
                if time.monotonic() >= deadline:
                    raise self._failure(
                        f"announced {self.handshake.target} but no gRPC connection could be "
                        "made" + (" (TLS handshake failed?)" if self.tls else "")
                    ) from None
        self._check_health(deadline)
        self._start_stdio()

    def _dial(self, cert: Certificate | None) -> grpc.Channel:
        """The channel to the plugin: plaintext only when AutoMTLS is off, else TLS by grpcio
        (a P-384 plugin) or by the OpenSSL bridge (a P-521 plugin), never a fallback."""
        assert self.handshake is not None
        shake = self.handshake
        if cert is None:
            return grpc.insecure_channel(shake.target, options=CHANNEL_OPTIONS)
        server_cert = shake.server_cert
        if server_cert is None:
            raise self._failure(
                "answered without a TLS certificate although confd asked for AutoMTLS "
                f"({protocol.ENV_CLIENT_CERT} was set): confd never talks to a plugin in "
                "plaintext; build it with go-plugin (>= 1.0) or plugin_sdk, which both "
                "answer AutoMTLS"
            )
        self.tls = True
        if not grpc_can_verify(server_cert):
            return self._dial_bridge(cert, server_cert)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=der_to_pem(server_cert),
            private_key=cert.key_pem,
            certificate_chain=cert.cert_pem,
        )
        options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", "localhost")]
        return grpc.secure_channel(shake.target, credentials, options=options)

    def _dial_bridge(self, cert: Certificate, server_cert: bytes) -> grpc.Channel:
        """grpcio in plaintext to a socket in our 0700 directory; the bridge carries the
        session to the plugin over OpenSSL, verifying exactly its certificate as `localhost`."""
        from plugin_sdk.tls_bridge import TlsBridge  # asyncio: loaded only for Go plugins

        assert self.handshake is not None
        shake = self.handshake
        target: str | tuple[str, int] = shake.address
        if shake.network == "tcp":
            host, _, port = shake.address.rpartition(":")
            target = (host.strip("[]"), int(port))
        self.bridge = TlsBridge(
            target,
            connect_tls=client_context(cert, server_cert, self._socket_dir),
            server_hostname="localhost",
            log=self.log,
        )
        path = os.path.join(self._socket_dir, "tls.sock")
        try:
            self.bridge.listen_unix(path)
        except OSError as exc:  # a path over 107 bytes (the plugin's own is longer)
            raise self._failure(
                f"needs a TLS bridge, which cannot listen on {path}: {exc}"
            ) from None
        self.log.debug(
            "plugin %s sent a P-521 certificate (go-plugin): TLS through the OpenSSL bridge",
            self.name,
        )
        return grpc.insecure_channel(f"unix:{path}", options=CHANNEL_OPTIONS)

    def _raise_tls_failure(self) -> None:
        if self.bridge is not None and self.bridge.failure:
            raise self._failure(
                f"could not open its AutoMTLS session ({self.bridge.failure}); confd does not "
                "fall back to plaintext"
            )

    def _check_health(self, deadline: float) -> None:
        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=protocol.HEALTH_SERVICE),
                timeout=max(0.5, deadline - time.monotonic()),
            )
        except grpc.RpcError as exc:
            self._raise_tls_failure()
            raise self._failure(
                f"failed its health check: {exc.code().name}: {exc.details()}"
            ) from None
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise self._failure(f"reports health {reply.status}, not SERVING")

    def _start_stdio(self) -> None:
        stub = grpc_stdio_pb2_grpc.GRPCStdioStub(self.channel)
        call = stub.StreamStdio(empty_pb2.Empty())
        self._spawn(self._relay_stdio, call)

    # -- readers ---------------------------------------------------------------------------

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(
            target=target, args=args, name=f"plugin-{self.name}-{target.__name__}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _read_stderr(self, pipe) -> None:
        with contextlib.suppress(ValueError, OSError):
            for raw in iter(lambda: pipe.readline(_LINE_LIMIT), b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self._tail.append(line[:500])
                relay(self.log, self.name, line)

    def _read_stdout(self, pipe, lines: queue.Queue[bytes]) -> None:
        with contextlib.suppress(ValueError, OSError):
            lines.put(pipe.readline(_LINE_LIMIT))
            # Later stdout is never parsed: drained so the plugin cannot block on it.
            for raw in iter(lambda: pipe.readline(_LINE_LIMIT), b""):
                self.log.debug("plugin %s stdout: %s", self.name,
                               raw.decode("utf-8", "replace").rstrip())
            return
        lines.put(b"")

    def _relay_stdio(self, call) -> None:
        try:
            for chunk in call:
                channel = "stderr" if chunk.channel == grpc_stdio_pb2.StdioData.STDERR else "stdout"
                for line in chunk.data.decode("utf-8", "replace").splitlines():
                    self.log.debug("plugin %s %s: %s", self.name, channel, line)
            self.stdio_supported = True
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                self.stdio_supported = False  # go-plugin 1.0.x: no GRPCStdio service
                self.log.debug("plugin %s has no GRPCStdio service", self.name)
            else:
                self.stdio_supported = True

    # -- state and errors ------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stderr_tail(self) -> list[str]:
        return list(self._tail)

    def _wait_exit(self, timeout: float) -> int | None:
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for thread in self._threads:
            if thread.name.endswith("_read_stderr"):
                thread.join(0.5)
        return code

    def _tail_text(self) -> str:
        if self._proc is not None and self._proc.poll() is None:
            time.sleep(0.05)  # let the stderr reader catch up with what was just written
        tail = [line for line in self._tail if line.strip()][-8:]
        return ("; stderr tail:\n  " + "\n  ".join(tail)) if tail else "; stderr was empty"

    def _failure(self, what: str) -> PluginError:
        text = f"plugin {self.name!r} ({self.command[-1]}) {what}{self._tail_text()}"
        if any(_NO_SDK in line for line in self._tail):
            text += (
                "\n  (the plugin's Python cannot import plugin_sdk: install the plugin into "
                "confd's environment as a console script, see plugin_sdk/README.md, Packaging)"
            )
        return PluginError(text)

    # -- stop ------------------------------------------------------------------------------

    def stop(self, *, graceful: bool = True) -> None:
        """Shutdown over gRPC, wait up to 2 s for the exit, then kill; always cleans up."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            if graceful and self.channel is not None:
                with contextlib.suppress(grpc.RpcError):
                    grpc_controller_pb2_grpc.GRPCControllerStub(self.channel).Shutdown(
                        grpc_controller_pb2.Empty(), timeout=SHUTDOWN_GRACE
                    )
            try:
                proc.wait(SHUTDOWN_GRACE if graceful else 0.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5.0)
        elif proc is not None:
            proc.poll()
        if self.channel is not None:
            self.channel.close()
        if self.bridge is not None:
            self.bridge.close()
        for thread in self._threads:
            thread.join(0.5)
        if proc is not None:
            for pipe in (proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):
                    pipe and pipe.close()
            if proc.returncode is not None:
                self._remove_stray_socket()
        self._cleanup_dir()

    def _remove_stray_socket(self) -> None:
        """Unlink the exited plugin's unix socket, wherever it is (go-plugin 1.0.x ignores
        PLUGIN_UNIX_SOCKET_DIR and a killed plugin leaves it behind); only a socket of ours."""
        if self.handshake is None or self.handshake.network != "unix":
            return
        with contextlib.suppress(OSError):
            st = os.lstat(self.handshake.address)
            if stat.S_ISSOCK(st.st_mode) and st.st_uid == os.getuid():
                os.unlink(self.handshake.address)

    def _cleanup_dir(self) -> None:
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = ""

