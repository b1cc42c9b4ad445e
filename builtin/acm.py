"""The `acm` database: certificates from AWS Certificate Manager, laid out as the fork lays them.

A key is a certificate ARN with a leading `/` (confd's keys are paths):
`/arn:aws:acm:us-east-1:123456789012:certificate/ID`. For each, as the fork gives them:

- the key itself: the certificate (PEM);
- the key + `_chain`: the certificate chain (PEM);
- the key + `_private_key`: the private key, only with `acm_export_private_key` (the fork's
  `--acm-export-private-key`, or `ACM_EXPORT_PRIVATE_KEY` set). It is read with ExportCertificate
  and is the encrypted PKCS#8 PEM that ACM returns, encrypted with the passphrase in the
  `ACM_PASSPHRASE` variable (required then, 4 to 128 characters; never a setting, so it stays out
  of command lines and config files). Only certificates ACM lets export (private CA, or issued
  with export enabled) can be read this way.

A key ending in `_chain` or `_private_key` is read as its certificate. A certificate that does
not exist is absent; a key that is not a certificate ARN, a certificate not issued yet, or one
that cannot be exported are errors naming the key. ACM has no watch, so under `--watch` the
daemon polls it every `--interval` seconds (the fork refuses `--watch`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from builtin.aws import AWS_SETTINGS, AwsDatabase
from plugin_sdk.database import DatabaseError, Setting

__all__ = ["AcmDatabase"]

SUFFIXES = ("_chain", "_private_key")
_FALSE = {"", "0", "false", "f", "no", "n", "off"}


def certificate_key(key: str) -> str:
    """The certificate's own key for `key` (`..._chain` and `..._private_key` read their cert)."""
    for suffix in SUFFIXES:
        if key.endswith(suffix):
            return key.removesuffix(suffix)
    return key


class AcmDatabase(AwsDatabase):
    """Certificates, chains and (when allowed) encrypted private keys from ACM, polled."""

    name = "acm"
    description = "AWS Certificate Manager: /ARN is the certificate, /ARN_chain its chain"
    settings = (
        Setting(
            "acm_export_private_key", bool, None,
            "also read /ARN_private_key (ExportCertificate, encrypted with ACM_PASSPHRASE); "
            "default: ACM_EXPORT_PRIVATE_KEY",
        ),
        *AWS_SETTINGS,
    )  # fmt: skip

    def _prepare(self, environ: Mapping[str, str]) -> None:
        export = self.options["acm_export_private_key"]
        if export is None:
            export = environ.get("ACM_EXPORT_PRIVATE_KEY", "").strip().lower() not in _FALSE
        self._passphrase: bytes | None = None
        if export:
            passphrase = environ.get("ACM_PASSPHRASE", "")
            if not passphrase:
                raise DatabaseError(
                    "exporting private keys (acm_export_private_key) needs the "
                    "passphrase to encrypt them with in the ACM_PASSPHRASE environment variable"
                )
            if not 4 <= len(passphrase.encode()) <= 128:
                raise DatabaseError(
                    "ACM_PASSPHRASE must be 4 to 128 bytes long (ACM's limits)"
                )
            self._passphrase = passphrase.encode()

    def _read(self, key: str, values: dict[str, str]) -> None:
        arn = key.removeprefix("/")
        if not arn.startswith("arn:"):
            raise DatabaseError(
                f"key {key!r} is not a certificate ARN "
                "(keys are /arn:aws:acm:REGION:ACCOUNT:certificate/ID)"
            )
        if self._passphrase is not None:
            reply = self._aws.call(
                "export_certificate", f"exporting certificate {key!r}",
                absent=("ResourceNotFoundException",),
                CertificateArn=arn, Passphrase=self._passphrase,
            )  # fmt: skip
        else:
            reply = self._aws.call(
                "get_certificate", f"reading certificate {key!r}",
                absent=("ResourceNotFoundException",), CertificateArn=arn,
            )  # fmt: skip
        if reply is None:
            return
        for suffix, field in (("", "Certificate"), ("_chain", "CertificateChain"),
                              ("_private_key", "PrivateKey")):  # fmt: skip
            if reply.get(field) is not None:
                values[key + suffix] = reply[field]

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for key in dict.fromkeys(certificate_key(k.removesuffix("/*").rstrip("/")) for k in keys):
            self._read(key, values)
        return values
