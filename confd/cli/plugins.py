"""CLI commands of the plugin system: `confd plugins [describe NAME]`, `confd internal-plugin`."""

from __future__ import annotations

import time
from pathlib import Path

import click

from confd.errors import ConfdError


def _settings(ctx: click.Context, plugin_dirs: tuple[str, ...]):
    from confd.cli.main import settings_from_context

    settings = settings_from_context(ctx)
    if plugin_dirs:
        settings.plugin_dirs = [*plugin_dirs, *settings.plugin_dirs]
    return settings


@click.group("plugins", invoke_without_command=True)
@click.option("--plugin-dir", "plugin_dirs", multiple=True, help="extra plugin directory")
@click.pass_context
def plugins(ctx: click.Context, plugin_dirs: tuple[str, ...]) -> None:
    """List the database plugins found (name and path), without starting any."""
    ctx.ensure_object(dict)["plugin_dirs"] = plugin_dirs
    if ctx.invoked_subcommand is not None:
        return
    from confd.backends.plugin.discover import list_plugins

    found = list_plugins(_settings(ctx, plugin_dirs).plugin_dirs)
    if not found:
        click.echo("no plugins found (confd-database-NAME in the plugin dirs or PATH)")
        return
    width = max(len(name) for name, _ in found)
    for name, path in found:
        click.echo(f"{name:<{width}}  {path}")


@plugins.command("describe")
@click.argument("name")
@click.option("--plugin-dir", "plugin_dirs", multiple=True, help="extra plugin directory")
@click.option("--backend-opt", "backend_opts", multiple=True, metavar="KEY=VALUE",
              help="a setting to try with the plugin's Configure (repeatable)")
@click.pass_context
def describe(
    ctx: click.Context, name: str, plugin_dirs: tuple[str, ...], backend_opts: tuple[str, ...]
) -> None:
    """Start plugin NAME and show what it is and which settings it accepts; with settings
    (--backend-opt, the common flags, confd.toml, CONFD_*), check them and try Configure."""
    import grpc

    from confd.backends.config import backend_config
    from confd.backends.plugin.describe import DescriptionCache, request_description
    from confd.backends.plugin.host import launch_options
    from confd.backends.plugin.process import PluginProcess
    from confd.cli.inventory import setting_lines
    from confd.cli.main import CliState

    group_dirs = ctx.obj.get("plugin_dirs", ()) if isinstance(ctx.obj, dict) else ()
    state = (ctx.find_object(CliState) or CliState()).merged({"backend": name}, backend_opts)
    try:
        settings = state.settings()
        settings.plugin_dirs = [*plugin_dirs, *group_dirs, *settings.plugin_dirs]
        options = launch_options(name, settings)
        config = backend_config(settings, name).config
        process = PluginProcess(options)
        started = time.monotonic()
        process.start()
    except ConfdError as exc:
        raise click.ClickException(str(exc)) from None
    ready_ms = (time.monotonic() - started) * 1000
    failed = False
    try:
        try:
            description = request_description(process.channel)
        except grpc.RpcError as exc:
            raise click.ClickException(
                f"plugin {name!r}: Describe failed: {exc.code().name}: {exc.details()}"
            ) from None
        if options.command and len(options.command) == 1:
            cache = DescriptionCache()  # `confd backends` need not start it again
            cache.put(Path(options.command[0]), description)
            cache.save()
        shake = process.handshake
        assert shake is not None
        stdio = "streamed"
        if process.stdio_supported is False:
            stdio = "not supported (go-plugin 1.0.x)"
        rows = [
            ("plugin", name),
            ("about", description.description if description else ""),
            ("command", " ".join(options.command)),
            ("pid", str(process.pid)),
            ("protocol", f"core {shake.core_version}, app {shake.app_version}, {shake.protocol}"),
            ("address", f"{shake.network} {shake.address}"),
            ("transport", process.transport),
            ("health", "SERVING"),
            ("stdio", stdio),
            ("ready in", f"{ready_ms:.0f} ms"),
        ]
        if description is not None:
            rows.append(("watch", "yes (WatchPrefix)" if description.can_watch
                         else "no (polled every --interval)"))
        for key, value in rows:
            if value:
                click.echo(f"{key + ':':<11} {value}")
        if description is None:
            click.echo("settings:   not described (the plugin has no Describe: built before "
                       "it); its Configure checks them")
        else:
            click.echo("settings:")
            for line in setting_lines(description):
                click.echo(line)
        outcome = _try_configure(process, description, name, config)
        failed = outcome.startswith("failed")
        click.echo(f"{'configure:':<11} {outcome}")
    finally:
        process.stop()
    if failed:
        ctx.exit(1)


def _try_configure(process, description, name: str, config: dict[str, str]) -> str:
    """What Configure says to `config`, after the same check confd makes before it."""
    import grpc

    from plugin_sdk.description import check_settings
    from plugin_sdk.proto.confd_plugin import database_pb2, database_pb2_grpc

    if description is not None:
        missing = [s.name for s in description.settings if s.required and s.name not in config]
        if not config and missing:
            return (f"not tried (required: {', '.join(missing)}; give settings with "
                    "--backend-opt KEY=VALUE)")
        problems = check_settings(name, description, config)
        if problems:
            return "failed: " + "; ".join(problems)
    try:
        database_pb2_grpc.DatabaseStub(process.channel).Configure(
            database_pb2.ConfigureRequest(config=config), timeout=30
        )
    except grpc.RpcError as exc:
        return f"failed: {exc.details() or exc.code().name}"
    return f"ok ({', '.join(sorted(config))})" if config else "ok (no settings)"


@click.command("internal-plugin", hidden=True)
@click.argument("kind", type=click.Choice(["database"]))
@click.argument("name")
def internal_plugin(kind: str, name: str) -> None:
    """Serve built-in database NAME over the plugin protocol (run by confd itself)."""
    from confd.backends.plugin.internal import serve_builtin

    serve_builtin(name)
