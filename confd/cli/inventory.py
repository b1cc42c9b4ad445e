"""`confd backends`: the built-in backends and the installed plugins, with the settings each
accepts.

Plugins are described from a cache (`confd.backends.plugin.describe`) keyed by the
executable's path, size and mtime: only a plugin that is new or changed since the last call is
started, and only to answer `Describe`. `--refresh` asks every plugin again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from confd.errors import ConfdError

if TYPE_CHECKING:
    from plugin_sdk.description import Description


def setting_lines(description: Description) -> list[str]:
    """One line per setting: name, type, required or default, secret, help."""
    if not description.settings:
        return ["    (no settings)"]
    lines = []
    for setting in description.settings:
        parts = [f"    {setting.name}", setting.type]
        if setting.required:
            parts.append("required")
        elif setting.default not in (None, ""):
            parts.append("default <hidden>" if setting.secret else f"default {setting.default}")
        if setting.secret:
            parts.append("secret")
        lines.append("  ".join(parts) + (f"  - {setting.help}" if setting.help else ""))
    return lines


@click.command("backends")
@click.option("--plugin-dir", "plugin_dirs", multiple=True, help="extra plugin directory")
@click.option("--refresh", is_flag=True, help="ask every plugin again instead of the cache")
@click.pass_context
def backends_command(ctx: click.Context, plugin_dirs: tuple[str, ...], refresh: bool) -> None:
    """List the built-in backends and installed plugins with the settings each accepts."""
    from confd.backends.registry import default_registry
    from plugin_sdk.description import describe

    registry = default_registry()
    for entry in registry:
        try:
            cls = entry.load()
        except ConfdError as exc:
            click.echo(f"{entry.name}: unavailable ({exc})")
            continue
        click.echo(f"{entry.name}: {cls.description}" if cls.description else entry.name)
        for line in setting_lines(describe(cls)):
            click.echo(line)
    _list_plugins(ctx, plugin_dirs, refresh, {entry.name for entry in registry})


def _list_plugins(
    ctx: click.Context, plugin_dirs: tuple[str, ...], refresh: bool, builtins: set[str]
) -> None:
    from confd.backends.plugin.describe import DescriptionCache, describe_executable
    from confd.backends.plugin.discover import list_plugins
    from confd.backends.plugin.launch import LaunchOptions
    from confd.cli.main import settings_from_context

    settings = settings_from_context(ctx)
    found = list_plugins([*plugin_dirs, *settings.plugin_dirs])
    if not found:
        return
    cache = DescriptionCache()
    try:
        for name, path in found:
            where = f"plugin {path}"
            if name in builtins:
                click.echo(f"{name}: {where} (not used: the built-in {name} is selected first)")
                continue
            known, description = cache.get(path)
            if refresh or not known:
                options = LaunchOptions(name, [str(path)],
                                        start_timeout=float(settings.plugin_start_timeout))
                try:
                    description = describe_executable(options)
                except ConfdError as exc:
                    click.echo(f"{name}: {where}, cannot describe it: {str(exc).splitlines()[0]}")
                    continue
                cache.put(path, description)
            if description is None:
                click.echo(f"{name}: {where}")
                click.echo("    (does not describe itself: built before Describe; its "
                           "Configure checks the settings)")
                continue
            text = f"{description.description} ({where})" if description.description else where
            click.echo(f"{name}: {text}")
            for line in setting_lines(description):
                click.echo(line)
    finally:
        cache.save()
