"""Throw-away TLS files for tests: a CA, a server certificate for one DNS name, a client one.

The server certificate names only `server_name` (no IP), so a client that connects to
127.0.0.1 verifies it only when told which name to expect (e.g. CONSUL_TLS_SERVER_NAME).
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TLSFiles", "write_tls_files"]


@dataclass(frozen=True)
class TLSFiles:
    """Paths of the PEM files `write_tls_files` made."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        """A server-side context presenting the server certificate; optionally demanding a
        client certificate signed by the CA."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.ca)
        return context


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    subject: str, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey, *, ca: bool = False, dns: str | None = None,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_tls_files(directory: Path, server_name: str) -> TLSFiles:
    """Write a CA, a server certificate for `server_name` and a client certificate to
    `directory` (PEM, keys unencrypted)."""
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "confd test CA")])
    ca = _issue("confd test CA", ca_name, ca_key, ca_key, ca=True)
    server = _issue(server_name, ca_name, ca_key, server_key, dns=server_name,
                    usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client = _issue("confd", ca_name, ca_key, client_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    files = TLSFiles(*(directory / n for n in ("ca.pem", "server.pem", "server-key.pem",
                                                "client.pem", "client-key.pem")))
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(_pem_key(server_key))
    files.client_cert.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    files.client_key.write_bytes(_pem_key(client_key))
    return files
