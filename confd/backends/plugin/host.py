"""The entry point the backend factory calls for a backend that runs as a plugin."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from confd.backends.plugin.client import PluginDatabase
from confd.backends.plugin.discover import find_plugin
from confd.backends.plugin.launch import LaunchOptions
from confd.backends.registry import BUILTINS
from plugin_sdk.database import Database

if TYPE_CHECKING:
    from confd.config.settings import Settings


def plugin_command(name: str, plugin_dirs: list[str], isolate: bool) -> list[str]:
    """The command that serves backend `name`: an isolated built-in, or a found plugin."""
    if isolate and name in BUILTINS:
        return [sys.executable, "-m", "confd", "internal-plugin", "database", name]
    return [str(find_plugin(name, plugin_dirs))]


def open_plugin(name: str, config: Mapping[str, str], settings: Settings) -> Database:
    """Start plugin `name` (or built-in `name` out of process when `settings.isolate`),
    configure it with `config`, and return it as a `Database`."""
    database = PluginDatabase(launch_options(name, settings))
    database.configure(config)
    return database


def launch_options(name: str, settings: Settings) -> LaunchOptions:
    """How backend `name` is started under `settings` (plugin dirs, isolation, timeout)."""
    command = plugin_command(name, list(settings.plugin_dirs), bool(settings.isolate))
    return LaunchOptions(name, command, start_timeout=float(settings.plugin_start_timeout))
