"""What a confd database plugin author imports.

`Database` is the contract; `serve(database)` runs it as a go-plugin compatible
gRPC plugin. `serve` is imported lazily so importing `plugin_sdk` stays light.
"""

from __future__ import annotations

from typing import Any

from plugin_sdk.database import (
    Database,
    DatabaseError,
    LastReads,
    Setting,
    WatchUnsupported,
    backend_logger,
    parse_settings,
    select_prefix,
)

__all__ = [
    "Database",
    "DatabaseError",
    "LastReads",
    "Setting",
    "WatchUnsupported",
    "backend_logger",
    "parse_settings",
    "select_prefix",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name == "serve":
        from plugin_sdk.server import serve

        return serve
    raise AttributeError(name)
