"""CLI commands of the plugin system: `confd plugins [describe NAME]`, `confd internal-plugin`."""

from __future__ import annotations

import time

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
@click.pass_context
def describe(ctx: click.Context, name: str) -> None:
    """Start plugin NAME, show what it reports, configure it with the backend settings."""
    import grpc

    from confd.backends.config import backend_config
    from confd.backends.plugin.host import launch_options
    from confd.backends.plugin.process import PluginProcess
    from plugin_sdk.proto.confd_plugin import database_pb2, database_pb2_grpc

    settings = _settings(ctx, ctx.obj.get("plugin_dirs", ()) if ctx.obj else ())
    settings.backend = name  # the backend options given on the command line are for it
    try:
        options = launch_options(name, settings)
        process = PluginProcess(options)
        started = time.monotonic()
        process.start()
    except ConfdError as exc:
        raise click.ClickException(str(exc)) from None
    ready_ms = (time.monotonic() - started) * 1000
    try:
        configure_error = ""
        try:
            database_pb2_grpc.DatabaseStub(process.channel).Configure(
                database_pb2.ConfigureRequest(config=backend_config(settings, name).config),
                timeout=30,
            )
        except grpc.RpcError as exc:
            configure_error = exc.details() or exc.code().name
        shake = process.handshake
        assert shake is not None
        stdio = "streamed"
        if process.stdio_supported is False:
            stdio = "not supported (go-plugin 1.0.x)"
        rows = [
            ("plugin", name),
            ("command", " ".join(options.command)),
            ("pid", str(process.pid)),
            ("protocol", f"core {shake.core_version}, app {shake.app_version}, {shake.protocol}"),
            ("address", f"{shake.network} {shake.address}"),
            ("transport", process.transport),
            ("health", "SERVING"),
            ("stdio", stdio),
            ("ready in", f"{ready_ms:.0f} ms"),
            ("configure", f"failed: {configure_error}" if configure_error else "ok"),
        ]
        for key, value in rows:
            click.echo(f"{key + ':':<11} {value}")
    finally:
        process.stop()
    if configure_error:
        ctx.exit(1)


@click.command("internal-plugin", hidden=True)
@click.argument("kind", type=click.Choice(["database"]))
@click.argument("name")
def internal_plugin(kind: str, name: str) -> None:
    """Serve built-in database NAME over the plugin protocol (run by confd itself)."""
    from confd.backends.plugin.internal import serve_builtin

    serve_builtin(name)
