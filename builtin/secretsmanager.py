"""The `secretsmanager` database: AWS Secrets Manager, read as the fork (abtreece/confd) reads it.

A key names a secret: `/myapp/api-key` is the secret `myapp/api-key` (one leading `/` dropped).
- A string secret is the key's value; a binary secret is its base64 text.
- A JSON object secret is flattened one level, as the fork does: `/myapp/db` holding
  `{"host": "h", "port": 5432}` gives `/myapp/db/host` = `h` and `/myapp/db/port` = `5432`
  (and no `/myapp/db`). Setting `secretsmanager_no_flatten` keeps the JSON text at `/myapp/db`.
- A key with no secret of its name is looked up as a field of a JSON secret above it:
  `/myapp/db/host` is field `host` of secret `myapp/db`, `/a/b/c` field `b/c` of secret `a`.
- A key that names no secret and no field is absent (a template asking for it reports it).

Field values print the way the other backends print scalars: strings as they are, numbers as
written in JSON (`1000000`, where the fork prints `1e+06`), `true`/`false`, `null` as the empty
string (the fork: `<nil>`), nested objects and arrays as compact JSON (the fork: Go's `map[...]`
text, which no template can use).

`secretsmanager_version_stage` picks the version (`AWSCURRENT` by default). Each secret is read
once per `get_values`. Secret values appear in no log or error. Secrets Manager has no watch, so
under `--watch` the daemon polls it every `--interval` seconds (the fork refuses `--watch`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from builtin.aws import AWS_SETTINGS, AwsDatabase
from builtin.file import format_scalar
from plugin_sdk.database import DatabaseError, Setting
from plugin_sdk.keys import normalize_keys

__all__ = ["SecretsManagerDatabase", "field_text"]

_MISSING = ("ResourceNotFoundException",)


def field_text(value: Any) -> str:
    """A JSON field's value as confd gives it (see the module docstring)."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return format_scalar(value)


def _object(text: str) -> dict[str, Any] | None:
    """`text` parsed as a JSON object, else None (plain text, or JSON that is not an object)."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


class SecretsManagerDatabase(AwsDatabase):
    """Secrets from AWS Secrets Manager, JSON secrets flattened as the fork does, polled."""

    name = "secretsmanager"
    description = "AWS Secrets Manager: a key names a secret; JSON secrets give one key per field"
    settings = (
        Setting(
            "secretsmanager_version_stage", str, "AWSCURRENT",
            "version stage to read (AWSCURRENT, AWSPREVIOUS or a custom label)",
        ),
        Setting(
            "secretsmanager_no_flatten", bool, False,
            "give a JSON secret's text as is instead of one key per field",
        ),
        *AWS_SETTINGS,
    )  # fmt: skip

    def _prepare(self, environ: Mapping[str, str]) -> None:
        if not self.options["secretsmanager_version_stage"]:
            raise DatabaseError(
                "setting 'secretsmanager_version_stage' is empty"
            )

    def _secret(self, name: str, cache: dict[str, Any]) -> dict[str, Any] | None:
        """The GetSecretValue answer for secret `name`, None when there is none; read once."""
        if name not in cache:
            cache[name] = self._aws.call(
                "get_secret_value", f"reading secret {name!r}", absent=_MISSING,
                SecretId=name, VersionStage=self.options["secretsmanager_version_stage"],
            )  # fmt: skip
        return cache[name]

    def _read(self, key: str, cache: dict[str, Any], values: dict[str, str]) -> None:
        name = key.removeprefix("/")
        if not name:
            return
        flatten = not self.options["secretsmanager_no_flatten"]
        secret = self._secret(name, cache)
        if secret is not None:
            text = secret.get("SecretString")
            if text is None:
                blob = secret.get("SecretBinary")
                if blob is not None:
                    values[key] = base64.b64encode(blob).decode("ascii")
                return
            fields = _object(text) if flatten else None
            if fields is None:
                values[key] = text
            else:
                for field, value in fields.items():
                    values[f"{key}/{field}"] = field_text(value)
            return
        if not flatten:
            return
        parts = name.split("/")
        for cut in range(len(parts) - 1, 0, -1):
            parent = self._secret("/".join(parts[:cut]), cache)
            if parent is None or parent.get("SecretString") is None:
                continue
            fields = _object(parent["SecretString"])
            field = "/".join(parts[cut:])
            if fields is not None and field in fields:
                values[key] = field_text(fields[field])
                return

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        cache: dict[str, Any] = {}
        values: dict[str, str] = {}
        for key in normalize_keys(keys):
            self._read(key, cache, values)
        return values
