"""AutoMTLS certificates as go-plugin makes them (self-signed ECDSA for `localhost`), and the
OpenSSL contexts that carry a session with a Go peer.

go-plugin uses P-521, but the BoringSSL inside grpcio cannot verify P-521 signatures
(NO_COMMON_SIGNATURE_ALGORITHMS), so confd and plugin_sdk make P-384 certificates, which Go
accepts. A P-521 peer (any go-plugin host or plugin) is served through `tls_bridge` with the
contexts below, which use Python's `ssl` (OpenSSL verifies and offers P-521).

Both sides use `make_certificate`; the host puts its PEM in PLUGIN_CLIENT_CERT and the plugin
returns its DER in handshake field 6, base64 without padding.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import os
import ssl
import tempfile
from dataclasses import dataclass

_CURVES = {"secp384r1": "SECP384R1", "secp521r1": "SECP521R1"}

# gRPC runs over HTTP/2; grpc-go (≥ 1.67, as in the newest go-plugin) refuses TLS without it.
ALPN = ["h2"]


@dataclass(frozen=True)
class Certificate:
    """A certificate with its private key: PEM for gRPC credentials, DER for the handshake."""

    cert_pem: bytes
    key_pem: bytes
    cert_der: bytes


def make_certificate(curve: str = "secp384r1") -> Certificate:
    """A fresh self-signed certificate usable as CA, for client and server auth.

    P-384 by default; `curve="secp521r1"` makes one as go-plugin does (tests use it to stand
    in for a Go peer)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(getattr(ec, _CURVES[curve])())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA512() if curve == "secp521r1" else hashes.SHA384())
    )
    return Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert_der=cert.public_bytes(serialization.Encoding.DER),
    )


def encode_der(der: bytes) -> str:
    """DER as base64 without padding (Go's base64.RawStdEncoding), for handshake field 6."""
    return base64.b64encode(der).decode("ascii").rstrip("=")


def decode_der(text: str) -> bytes:
    """Inverse of `encode_der`; also accepts padded base64. Raises ValueError on garbage."""
    text = text.strip()
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def der_to_pem(der: bytes) -> bytes:
    """Wrap a DER certificate in PEM armour, as gRPC credentials want it."""
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    text = "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
    return text.encode()


def grpc_can_verify(der: bytes) -> bool:
    """False for certificates grpcio's TLS cannot use (P-521 keys, as Go's go-plugin makes)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    key = x509.load_der_x509_certificate(der).public_key()
    return not (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp521r1")


def pem_to_der(pem: str | bytes) -> bytes:
    """The first certificate of a PEM text as DER; ValueError if there is none."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    data = pem.encode() if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)


def _base_context(
    purpose: ssl._SSLMethod, own: Certificate, peer_der: bytes, directory: str
) -> ssl.SSLContext:
    """TLS ≥ 1.2 trusting exactly `peer_der`, presenting `own`, ALPN h2."""
    context = ssl.SSLContext(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=peer_der)  # exactly the peer's self-signed cert
    context.set_alpn_protocols(ALPN)
    # ssl loads keys only from files: one in the caller's private directory, gone at once.
    fd, path = tempfile.mkstemp(prefix="tls-", suffix=".pem", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(own.cert_pem + own.key_pem)
        context.load_cert_chain(path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return context


def client_context(own: Certificate, server_der: bytes, directory: str) -> ssl.SSLContext:
    """The host's side of a session with a plugin: verify exactly the plugin's certificate
    for server name `localhost`, present `own` as the client certificate."""
    context = _base_context(ssl.PROTOCOL_TLS_CLIENT, own, server_der, directory)
    context.check_hostname = True
    return context


def server_context(own: Certificate, client_der: bytes, directory: str) -> ssl.SSLContext:
    """The plugin's side of a session with a host: require and verify exactly the host's
    client certificate, present `own`. OpenSSL's default signature algorithms include
    ecdsa_secp521r1_sha512, so a Go host's P-521 certificate is asked for and verified."""
    return _base_context(ssl.PROTOCOL_TLS_SERVER, own, client_der, directory)
