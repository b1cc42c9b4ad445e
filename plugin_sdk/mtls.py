"""AutoMTLS certificates as go-plugin makes them: self-signed ECDSA for `localhost`.

go-plugin uses P-521, but the BoringSSL inside grpcio cannot verify P-521 signatures
(NO_COMMON_SIGNATURE_ALGORITHMS), so confd and plugin_sdk use P-384, which Go accepts too.

Both sides use `make_certificate`; the host puts its PEM in PLUGIN_CLIENT_CERT and the plugin
returns its DER in handshake field 6, base64 without padding.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass


@dataclass(frozen=True)
class Certificate:
    """A certificate with its private key: PEM for gRPC credentials, DER for the handshake."""

    cert_pem: bytes
    key_pem: bytes
    cert_der: bytes


def make_certificate() -> Certificate:
    """A fresh self-signed P-384 certificate usable as CA, for client and server auth."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP384R1())
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
        .sign(key, hashes.SHA384())
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
