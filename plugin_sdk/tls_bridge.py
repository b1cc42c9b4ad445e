"""A TLS bridge that carries grpcio's plaintext HTTP/2 over Python's `ssl` (OpenSSL).

go-plugin (every version up to the newest) signs its AutoMTLS certificates with ECDSA P-521,
and the BoringSSL inside grpcio neither verifies P-521 signatures nor offers them to a client.
So wherever the peer is a Go program, the TLS session runs here instead: grpcio speaks
plaintext on a unix socket inside a private (0700) directory, and the bridge relays each
connection to or from the peer with TLS on the peer's side. Host side (`connect_tls`): grpcio
dials the bridge, the bridge dials the plugin with TLS. Plugin side (`accept_tls`): the host
dials the bridge with TLS, the bridge dials grpcio's private socket.

One asyncio loop in a daemon thread relays every connection (gRPC keeps one or two open).
Measured cost in bench/bench_plugin.py and plugin_sdk/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import threading
from collections.abc import Iterable

# A unix socket path, or a (host, port) TCP address.
Address = str | tuple[str, int]

_CHUNK = 1 << 16
_START_TIMEOUT = 10.0


class BridgeError(Exception):
    """The bridge could not listen (no usable address)."""


class TlsBridge:
    """Relays connections accepted on a local address to `target`, TLS on one side.

    `accept_tls`: TLS (server side) on accepted connections, plaintext to `target`.
    `connect_tls`: plaintext accepted, TLS (client side, `server_hostname`) to `target`.
    `failure` holds the first TLS or connection error seen, for the owner to report; each
    one is also logged (warning) on `log`.
    """

    def __init__(
        self,
        target: Address,
        *,
        accept_tls: ssl.SSLContext | None = None,
        connect_tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        handshake_timeout: float = 10.0,
        log: logging.Logger | None = None,
    ) -> None:
        if (accept_tls is None) == (connect_tls is None):
            raise ValueError("a TLS bridge needs TLS on exactly one side")
        self.target = target
        self.failure: str | None = None
        self.connections = 0
        self._accept_tls = accept_tls
        self._connect_tls = connect_tls
        self._server_hostname = server_hostname
        self._timeout = handshake_timeout
        self._log = log or logging.getLogger("plugin_sdk.tls")
        self._servers: list[asyncio.base_events.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._unix_paths: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tls-bridge", daemon=True
        )
        self._thread.start()

    # -- listening (called from any thread) ------------------------------------------------

    def listen_unix(self, path: str) -> str:
        """Accept on a new unix socket at `path` (its directory should be private)."""
        server = self._call(asyncio.start_unix_server(self._relay, path=path, limit=_CHUNK))
        self._servers.append(server)
        self._unix_paths.append(path)
        return path

    def listen_tcp(self, host: str, ports: Iterable[int]) -> int:
        """Accept on the first free port of `ports` on `host`; returns the port."""
        for port in ports:
            try:
                server = self._call(
                    asyncio.start_server(self._relay, host=host, port=port, limit=_CHUNK)
                )
            except OSError:
                continue
            self._servers.append(server)
            return port
        raise BridgeError(f"no free port on {host} in the range given")

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_START_TIMEOUT)

    # -- relaying (in the loop) ------------------------------------------------------------

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        target_writer: asyncio.StreamWriter | None = None
        try:
            try:
                if self._accept_tls is not None:
                    await writer.start_tls(self._accept_tls, ssl_handshake_timeout=self._timeout)
                target_reader, target_writer = await asyncio.wait_for(
                    self._open_target(), self._timeout
                )
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                self._fail(exc)
                return
            await self._pump_both(reader, writer, target_reader, target_writer)
        except asyncio.CancelledError:
            # close() cancels relays; ending normally keeps Python 3.11's asyncio from logging
            # the cancellation as an error (its connection callback calls task.exception()).
            pass
        finally:
            self._tasks.discard(task)
            for each in (writer, target_writer):
                if each is not None:
                    each.close()

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        tls: dict[str, object] = {}
        if self._connect_tls is not None:
            tls = {"ssl": self._connect_tls, "server_hostname": self._server_hostname,
                   "ssl_handshake_timeout": self._timeout}
        if isinstance(self.target, str):
            return await asyncio.open_unix_connection(self.target, limit=_CHUNK, **tls)
        host, port = self.target
        return await asyncio.open_connection(host, port, limit=_CHUNK, **tls)

    async def _pump_both(self, reader_a, writer_a, reader_b, writer_b) -> None:
        pumps = [
            asyncio.ensure_future(self._pump(reader_a, writer_b)),
            asyncio.ensure_future(self._pump(reader_b, writer_a)),
        ]
        try:
            # Either direction ending ends the connection: HTTP/2 never half-closes.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
        except ssl.SSLError as exc:  # TLS 1.3: a refused certificate shows up at first read
            self._fail(exc)
        except OSError:
            pass  # the other side went away: the connection simply ends

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, ssl.SSLError):
            text = f"TLS handshake failed: {exc.reason or exc}"
        elif isinstance(exc, TimeoutError):
            text = f"TLS handshake timed out after {self._timeout:g} s"
        else:
            text = f"cannot connect: {exc.strerror or exc}"
        if self.failure is None:
            self.failure = text
        self._log.warning("TLS bridge to %s: %s", self.target, text)

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening, end every relayed connection, stop the loop; idempotent."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._call(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
        if not self._thread.is_alive():
            self._loop.close()
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
