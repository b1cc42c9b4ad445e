"""The `dynamodb` database: Go confd's table layout, read with boto3 (the `aws` extra).

Go confd's layout: one item per key, the key in the string attribute `key` (the table's hash key)
and the value in the string attribute `value`, e.g. `{"key": "/app/db/host", "value": "10.0.0.1"}`.
An item whose `value` is not a string is skipped with a warning naming the key (once), as Go
confd skips it.

Reads: one paginated Scan per `get_values`, filtered to `begins_with(key, K)` for each requested
key K, then cut to confd's prefix semantics (`/app` gives `/app` and `/app/x`, never
`/application`, which Go confd's string prefix lets through). Go confd instead reads an existing
item `K` alone (GetItem) and scans only when there is none, one Scan per key and only its first
page; this returns the item and everything below it, all pages, in one pass over the table.

A missing table is an error naming the table. DynamoDB has no change feed confd could watch
without Streams, so under `--watch` the daemon polls the table every `--interval` seconds (Go
confd refuses `-watch` with this backend and exits).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from builtin.aws import AWS_SETTINGS, AwsDatabase
from plugin_sdk.database import DatabaseError, Setting, backend_logger, select_prefix
from plugin_sdk.keys import outermost_keys

__all__ = ["DynamoDBDatabase"]

log = backend_logger("dynamodb")

SCAN_CHUNK = 100  # requested keys per Scan filter (DynamoDB caps an expression at 4 KB)


class DynamoDBDatabase(AwsDatabase):
    """Keys and values from a DynamoDB table in Go confd's layout (`key`, `value`), polled."""

    name = "dynamodb"
    description = "AWS DynamoDB table in Go confd's layout: string attributes key and value"
    settings = (
        Setting("table", str, None, "the DynamoDB table (Go confd's -table)", required=True),
        *AWS_SETTINGS,
    )

    def _prepare(self, environ: Mapping[str, str]) -> None:
        if not self.options["table"]:
            raise DatabaseError("setting 'table' is empty")
        self._table: str = self.options["table"]
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def _missing_table(self) -> None:
        raise DatabaseError(
            f"table {self._table!r} does not exist ({self._aws.where()})"
        )

    def _scan(self, keys: list[str]) -> list[dict[str, Any]]:
        """Items whose `key` begins with one of `keys` (every item for `/`)."""
        params: dict[str, Any] = {
            "TableName": self._table,
            "ProjectionExpression": "#k, #v",
            "ExpressionAttributeNames": {"#k": "key", "#v": "value"},
        }
        if "/" not in keys:
            params["FilterExpression"] = " OR ".join(
                f"begins_with(#k, :k{i})" for i in range(len(keys))
            )
            params["ExpressionAttributeValues"] = {
                f":k{i}": {"S": key} for i, key in enumerate(keys)
            }
        items: list[dict[str, Any]] = []
        for page in self._aws.pages(
            "scan", f"reading table {self._table!r}",
            absent=("ResourceNotFoundException",), on_absent=self._missing_table, **params,
        ):  # fmt: skip
            items.extend(page.get("Items", ()))
        return items

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        wanted = outermost_keys(keys)
        values: dict[str, str] = {}
        for start in range(0, len(wanted), SCAN_CHUNK):
            chunk = wanted[start : start + SCAN_CHUNK]
            for item in self._scan(chunk):
                key = item.get("key", {}).get("S")
                if key is None or not any(select_prefix(key, k) for k in chunk):
                    continue
                value = item.get("value", {})
                if "S" in value:
                    values[key] = value["S"]
                elif "value" in item:
                    self._warn_once(key)
        return values

    def _warn_once(self, key: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning("skipping key %r: its 'value' is not a string", key)
