"""The `ssm` database: AWS Systems Manager Parameter Store, read with boto3 (the `aws` extra).

Keys are parameter names, as Go confd maps them: `/app/db/host` is the parameter
`/app/db/host`. A requested key is read as Go confd reads it, `GetParametersByPath` (recursive,
with decryption, every page), so `/app` gives the parameters below `/app/` and never
`/application`; the parameter named exactly as the key is read as well (`GetParameters`, ten
names per request). Go confd reads that one only when nothing lies below the key, so where both
`/app` and `/app/x` exist it returns only `/app/x`; here both are returned. SecureString values
are decrypted; StringList values are the comma-separated text, as Go confd gives them.

Names that Parameter Store cannot hold (characters other than `a-zA-Z0-9_.-/`) are not asked
for: such a key is simply absent. The store has no watch, so under `--watch` the daemon polls it
every `--interval` seconds (Go confd refuses `-watch` with this backend and exits).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from builtin.aws import AWS_SETTINGS, AwsDatabase
from plugin_sdk.database import select_prefix
from plugin_sdk.keys import outermost_keys

__all__ = ["SSMDatabase"]

_NAME = re.compile(r"^/[A-Za-z0-9_.\-/]*$")
BATCH = 10  # names per GetParameters request (the API's limit)


class SSMDatabase(AwsDatabase):
    """Parameters from AWS SSM Parameter Store (recursive, decrypted), polled."""

    name = "ssm"
    description = "AWS SSM Parameter Store: parameter names are keys (SecureString decrypted)"
    settings = AWS_SETTINGS

    def _below(self, key: str) -> dict[str, str]:
        values: dict[str, str] = {}
        for page in self._aws.pages(
            "get_parameters_by_path", f"reading parameters below {key!r}",
            Path=key, Recursive=True, WithDecryption=True,
        ):  # fmt: skip
            for parameter in page.get("Parameters", ()):
                name = parameter.get("Name", "")
                if select_prefix(name, key):
                    values[name] = parameter.get("Value", "")
        return values

    def _exact(self, names: list[str]) -> dict[str, str]:
        values: dict[str, str] = {}
        for start in range(0, len(names), BATCH):
            batch = names[start : start + BATCH]
            shown = ", ".join(map(repr, batch))
            reply = self._aws.call(
                "get_parameters", f"reading parameter(s) {shown}",
                Names=batch, WithDecryption=True,
            )  # fmt: skip
            for parameter in (reply or {}).get("Parameters", ()):
                values[parameter["Name"]] = parameter.get("Value", "")
        return values

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        wanted = [k for k in outermost_keys(keys) if _NAME.match(k)]
        values: dict[str, str] = {}
        for key in wanted:
            values.update(self._below(key))
        values.update(self._exact([k for k in wanted if k != "/"]))
        return values
