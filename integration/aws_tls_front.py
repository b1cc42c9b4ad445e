"""An HTTPS proxy that makes moto answer for `*.<region>.amazonaws.com`, so Go confd can reach it.

Go confd (aws-sdk-go v1) has no endpoint setting for its AWS backends: only `DYNAMODB_LOCAL`
(`http://localhost:8000`) and `SSM_LOCAL` (`http://localhost:8001`), fixed ports, and no
`AWS_ENDPOINT_URL`. It does honour `HTTPS_PROXY`, and Go reads its trusted roots from
`SSL_CERT_FILE` (its `session.New` ignores `AWS_CA_BUNDLE`: tried). This proxy accepts any
`CONNECT` on 127.0.0.1, answers the TLS handshake itself with a certificate for
`*.<region>.amazonaws.com` signed by a CA of its own (`ca_file`), and relays the decrypted HTTP to
moto on loopback; `env()` gives the variables a Go client needs. Nothing ever leaves the
machine: whatever host a client asks for, the bytes go to moto.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import socketserver
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["AwsTlsFront"]


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _issue(directory: Path, region: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `*.<region>.amazonaws.com`: (CA, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("confd test AWS CA"))
        .issuer_name(_name("confd test AWS CA")).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    names = [f"*.{region}.amazonaws.com", f"*.{region}.api.aws"]
    cert = (
        x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    files = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    return files


def _relay(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes from `source` to `target` until either side closes."""
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class AwsTlsFront:
    """The proxy (see the module docstring): `proxy_url` for HTTPS_PROXY, `ca_file` for
    AWS_CA_BUNDLE; every tunnel ends at moto on 127.0.0.1:`moto_port`."""

    def __init__(self, moto_port: int, region: str = "us-east-1") -> None:
        self.moto_port = moto_port
        self._dir = tempfile.TemporaryDirectory(prefix="confd-test-aws-tls-")
        self.ca_file, cert, key = _issue(Path(self._dir.name), region)
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert, key)
        self._context.set_alpn_protocols(["http/1.1"])
        self.tunnels: list[str] = []  # the host:port of every CONNECT
        self._server: socketserver.ThreadingTCPServer | None = None

    @property
    def proxy_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Variables that send a Go AWS client through this proxy and make it trust its CA."""
        return {
            "HTTPS_PROXY": self.proxy_url,
            "SSL_CERT_FILE": str(self.ca_file),
            "AWS_CA_BUNDLE": str(self.ca_file),
            "NO_PROXY": "",
        }

    def _handler(self) -> type[socketserver.BaseRequestHandler]:
        front = self

        class Tunnel(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request = self.rfile.readline(8192).decode("latin-1").split()
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass  # the CONNECT request's headers
                if len(request) < 2 or request[0] != "CONNECT":
                    self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                    return
                front.tunnels.append(request[1])
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()
                try:
                    client = front._context.wrap_socket(self.connection, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                upstream = socket.create_connection(("127.0.0.1", front.moto_port), timeout=30)
                back = threading.Thread(target=_relay, args=(upstream, client), daemon=True)
                back.start()
                _relay(client, upstream)
                back.join(5)
                upstream.close()

        return Tunnel

    def start(self) -> None:
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="aws-tls-front", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._dir.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
