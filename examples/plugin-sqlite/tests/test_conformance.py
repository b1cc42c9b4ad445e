"""The SQLite plugin against confd's conformance kit (`plugin_sdk.testing`): every check runs
through the real protocol (the plugin as a subprocess, confd's host in this process)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

from confd_database_sqlite import SqliteDatabase

from plugin_sdk.testing import DatabaseConformance


class SqliteStore:
    """A database file with the `kv` table; `put` commits, as another writer would."""

    def __init__(self, root: Path) -> None:
        self.path = root / "config.db"
        with sqlite3.connect(self.path) as connection:
            connection.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT)")
        connection.close()

    @property
    def settings(self) -> Mapping[str, str]:
        return {"path": str(self.path)}

    def put(self, values: Mapping[str, str]) -> None:
        with sqlite3.connect(self.path) as connection:
            connection.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", values.items())
        connection.close()


class TestSqliteConformance(DatabaseConformance):
    plugin = SqliteDatabase
    bad_settings = (
        {"path": "/nonexistent/dir/config.db"},
        {"table": "missing"},
        {"table": "kv; DROP TABLE kv"},
    )

    def make_store(self, tmp_path: Path) -> SqliteStore:
        return SqliteStore(tmp_path)
