"""confd database plugin: keys from a SQLite table `(key TEXT PRIMARY KEY, value TEXT)`."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence

from plugin_sdk import Database, DatabaseError, LastReads, Setting, select_prefix

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
POLL_SECONDS = 0.5


class SqliteDatabase(Database):
    """Reads keys from one table; a watch reports changed keys by comparing snapshots."""

    name = "sqlite"
    description = "keys from a SQLite table (key TEXT PRIMARY KEY, value TEXT)"
    settings = (
        Setting("path", help="the SQLite database file", required=True),
        Setting("table", default="kv", help="the table holding key and value columns"),
    )
    can_watch = True

    def __init__(self) -> None:
        super().__init__()
        self._reads = LastReads()

    def configure(self, config):
        super().configure(config)
        if not _TABLE_NAME.match(self.options["table"]):
            raise DatabaseError("backend 'sqlite': setting 'table' is not a table name")
        self._snapshot()  # fail now, not at the first render, if the table is unusable

    def _connect(self) -> sqlite3.Connection:
        uri = f"file:{self.options['path']}?mode=ro"
        try:
            return sqlite3.connect(uri, uri=True, timeout=5)
        except sqlite3.Error as exc:
            path = self.options["path"]
            raise DatabaseError(f"backend 'sqlite': cannot open {path}: {exc}") from None

    def _snapshot(self, connection: sqlite3.Connection | None = None) -> dict[str, str]:
        own = connection is None
        connection = connection or self._connect()
        try:
            rows = connection.execute(f'SELECT key, value FROM "{self.options["table"]}"')
            return {str(key): "" if value is None else str(value) for key, value in rows}
        except sqlite3.Error as exc:
            raise DatabaseError(
                f"backend 'sqlite': cannot read table {self.options['table']!r} of "
                f"{self.options['path']}: {exc}"
            ) from None
        finally:
            if own:
                connection.close()

    def get_values(self, keys: Sequence[str]) -> dict[str, str]:
        data = self._snapshot()
        values = {k: v for k, v in data.items() if any(select_prefix(k, r) for r in keys)}
        self._reads.remember(keys, values)  # a watch reports any change made since
        return values

    def watch_prefix(
        self, prefix: str, keys: Sequence[str], stop: threading.Event
    ) -> Iterator[list[str]]:
        connection = self._connect()
        try:
            version = connection.execute("PRAGMA data_version").fetchone()[0]
            now = self._under(self._snapshot(connection), prefix)
            # confd read its baseline just before it watches: start from that read, so a
            # change made in between is reported (from the table as it is now, if never read)
            changed = self._reads.changed_since(list(keys or [prefix]), now)
            if changed:
                yield changed
            before = now
            while not stop.wait(POLL_SECONDS):
                now_version = connection.execute("PRAGMA data_version").fetchone()[0]
                if now_version == version:
                    continue
                version = now_version
                after = self._under(self._snapshot(connection), prefix)
                changed = sorted(
                    k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
                )
                before = after
                if changed:
                    yield changed
        finally:
            connection.close()

    @staticmethod
    def _under(data: dict[str, str], prefix: str) -> dict[str, str]:
        return {k: v for k, v in data.items() if select_prefix(k, prefix)}


def main() -> None:
    """Console script `confd-database-sqlite`: serve the plugin to confd."""
    from plugin_sdk import serve

    serve(SqliteDatabase())
