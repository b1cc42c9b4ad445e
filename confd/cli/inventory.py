"""`confd backends`: the built-in backends and the settings each accepts."""

from __future__ import annotations

import click

from confd.errors import ConfdError


@click.command("backends")
def backends_command() -> None:
    """List the built-in backends and the settings each accepts."""
    from confd.backends.registry import default_registry

    for entry in default_registry():
        try:
            cls = entry.load()
        except ConfdError as exc:
            click.echo(f"{entry.name}: unavailable ({exc})")
            continue
        click.echo(f"{entry.name}: {cls.description}" if cls.description else entry.name)
        if not cls.settings:
            click.echo("    (no settings)")
        for setting in cls.settings:
            if setting.secret and setting.default not in (None, ""):
                default = "<hidden>"
            else:
                default = "" if setting.default is None else repr(setting.default)
            parts = [f"    {setting.name}", setting.type.__name__]
            if setting.required:
                parts.append("required")
            elif default:
                parts.append(f"default {default}")
            if setting.secret:
                parts.append("secret")
            click.echo("  ".join(parts) + (f"  - {setting.help}" if setting.help else ""))
