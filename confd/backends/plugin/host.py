"""The entry point the backend factory calls for a backend that runs as a plugin."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from confd.backends.plugin.client import PluginDatabase
from confd.backends.plugin.discover import find_plugin
from confd.backends.registry import BUILTINS
from plugin_sdk.database import Database


def plugin_command(name: str, plugin_dirs: list[str], isolate: bool) -> list[str]:
    """The command that serves backend `name`: an isolated built-in, or a found plugin."""
    if isolate and name in BUILTINS:
        return [sys.executable, "-m", "confd", "internal-plugin", "database", name]
    return [str(find_plugin(name, plugin_dirs))]


def open_plugin(name: str, config: Mapping[str, str], settings: Any) -> Database:
    """Start plugin `name` (or built-in `name` out of process when `settings.isolate`),
    configure it with `config`, and return it as a `Database`.

    `settings` needs `.plugin_dirs` and `.isolate`; optional `.plugin_start_timeout`
    (seconds, default 10) and `.plugin_auto_mtls` (default True).
    """
    command = plugin_command(
        name, list(getattr(settings, "plugin_dirs", None) or []),
        bool(getattr(settings, "isolate", False)),
    )
    database = PluginDatabase(
        name,
        command,
        auto_mtls=bool(getattr(settings, "plugin_auto_mtls", True)),
        start_timeout=float(getattr(settings, "plugin_start_timeout", None) or 10.0),
    )
    database.configure(config)
    return database
