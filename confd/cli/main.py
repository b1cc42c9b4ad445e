"""The `confd` command: Go confd's flags (single-dash spellings too) and a group of subcommands.

Without a subcommand it runs the daemon (`--onetime`: render once and exit non-zero when a
resource failed). `check` validates a confdir without a backend; `backends` lists built-ins.
Start-up stays light: backends, plugins and their client libraries load only when selected.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from confd import __version__
from confd.config.settings import Settings, load_settings
from confd.errors import ConfdError, ConfigError
from confd.log import LEVELS, get_logger, setup_logging

__all__ = ["cli", "main", "normalize_argv", "settings_from_context", "CliState"]

log = get_logger("cli")

# Subcommands other modules provide, imported only when invoked: name -> "module:attribute".
LAZY_COMMANDS: dict[str, str] = {
    "exec": "confd.cli.exec:exec_command",
    "plugins": "confd.cli.plugins:plugins",
    "internal-plugin": "confd.cli.plugins:internal_plugin",
}


class CliState:
    """What the top-level flags said; subcommands turn it into `Settings`."""

    __slots__ = ("flags", "backend_opts")

    def __init__(self, flags: dict[str, Any] | None = None,
                 backend_opts: dict[str, str] | None = None) -> None:
        self.flags: dict[str, Any] = {} if flags is None else flags
        self.backend_opts: dict[str, str] = {} if backend_opts is None else backend_opts

    def settings(self, **overrides: Any) -> Settings:
        """Settings from these flags (plus `overrides`), the environment and confd.toml."""
        flags = {**self.flags, **{k: v for k, v in overrides.items() if v is not None}}
        return load_settings(flags, os.environ, flag_backend_opts=self.backend_opts)


def settings_from_context(ctx: click.Context, **overrides: Any) -> Settings:
    """For subcommands: the merged settings of the `confd` invocation they run under."""
    state = ctx.find_object(CliState) or CliState()
    return state.settings(**overrides)


def _parse_backend_opts(values: Sequence[str]) -> dict[str, str]:
    opts: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--backend-opt {item.split('=')[0]!r}: expected KEY=VALUE")
        opts[key.strip().replace("-", "_")] = value
    return opts


def _early_logging(flags: dict[str, Any]) -> None:
    """Log set-up before settings load, so confd.toml warnings come out in the right form."""
    level = flags.get("log_level") or os.environ.get("CONFD_LOG_LEVEL", "info")
    fmt = flags.get("log_format") or os.environ.get("CONFD_LOG_FORMAT", "text")
    setup_logging(
        level if level.lower() in LEVELS else "info", fmt if fmt in ("text", "json") else "text"
    )


class ConfdGroup(click.Group):
    """A click group that also finds the lazily imported subcommands of `LAZY_COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        for name, target in LAZY_COMMANDS.items():
            module = target.partition(":")[0]
            try:
                if importlib.util.find_spec(module) is not None:
                    names.add(name)
            except ImportError:
                continue
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in LAZY_COMMANDS:
            return command
        module_name, _, attr = LAZY_COMMANDS[cmd_name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None
            raise
        found = getattr(module, attr, None)
        return found if isinstance(found, click.Command) else None


_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=ConfdGroup, invoke_without_command=True, context_settings=_CONTEXT)
@click.option("--backend", help="backend to use: env, file, etcd, consul, redis or a plugin name"
              " [default: etcd]")
@click.option("--confdir", help="confd configuration directory [default: /etc/confd]")
@click.option("--config-file", help="the confd config file [default: <confdir>/confd.toml]")
@click.option("--onetime/--no-onetime", default=None, help="run once and exit")
@click.option("--watch/--no-watch", default=None, help="enable watch support")
@click.option("--interval", type=int, help="backend polling interval in seconds [default: 600]")
@click.option("--wait", metavar="MIN:MAX",
              help="debounce: render MIN after the last change, at most MAX after the first"
              " (e.g. 500ms:5s) [default: off]")
@click.option("--failure-mode", type=click.Choice(["best-effort", "fail-fast"]),
              help="on a render or backend error in watch/interval mode: keep going, or exit 1"
              " [default: best-effort]")
@click.option("--metrics-addr", metavar="HOST:PORT",
              help="serve /metrics, /health and /ready there [default: off]")
@click.option("--noop/--no-noop", default=None, help="only show pending changes (as a diff)")
@click.option("--sync-only/--no-sync-only", default=None,
              help="sync without check_cmd and reload_cmd")
@click.option("--keep-stage-file/--no-keep-stage-file", default=None,
              help="keep staged files")
@click.option("--prefix", help="key path prefix, joined before each resource's prefix")
@click.option("--log-level", type=click.Choice(sorted(LEVELS), case_sensitive=False),
              help="level which confd should log messages [default: info]")
@click.option("--log-format", type=click.Choice(["text", "json"]),
              help="log line format [default: text]")
@click.option("--node", "nodes", multiple=True, help="backend node address (repeatable)")
@click.option("--scheme", help="the backend URI scheme for nodes (http or https)")
@click.option("--client-cert", help="the client certificate file")
@click.option("--client-key", help="the client key file")
@click.option("--client-ca-keys", help="the client CA key file")
@click.option("--username", help="the username to authenticate as")
@click.option("--password", help="the password to authenticate with")
@click.option("--file", "file", multiple=True, help="the YAML file to watch (repeatable)")
@click.option("--filter", help="files filter for the file backend")
@click.option("--separator", help="the separator to replace '/' with when looking up keys")
@click.option("--backend-opt", "backend_opts", multiple=True, metavar="KEY=VALUE",
              help="a backend setting (repeatable)")
@click.option("--plugin-dir", "plugin_dirs", multiple=True,
              help="a directory searched for confd-database-NAME plugins (repeatable)")
@click.option("--isolate/--no-isolate", default=None,
              help="run a built-in backend out of process, as a plugin")
@click.option("--plugin-start-timeout", type=float, metavar="SECONDS",
              help="how long a plugin may take to print its handshake [default: 10]")
@click.version_option(__version__, "--version", prog_name="confd")
@click.pass_context
def cli(ctx: click.Context, backend_opts: tuple[str, ...], **flags: Any) -> None:
    """Render configuration files from a key/value store with templates.

    Settings come from flags, then CONFD_* environment variables, then confd.toml.
    """
    for name in ("nodes", "file", "plugin_dirs"):
        flags[name] = list(flags[name]) or None
    ctx.obj = CliState({k: v for k, v in flags.items() if v is not None},
                       _parse_backend_opts(backend_opts))
    _early_logging(ctx.obj.flags)
    if ctx.invoked_subcommand is None:
        settings = ctx.obj.settings()
        if not settings.onetime:
            _collect_as_usual()
        ctx.exit(run_daemon(settings, reload_settings=ctx.obj.settings))
    _collect_as_usual()


def run_daemon(
    settings: Settings, *, out: Any = None, reload_settings: Callable[[], Settings] | None = None
) -> int:
    """Run as the settings say; return the exit status (onetime: 1 when any resource failed).

    Without --onetime this is the watch or interval loop (`confd.run.assembly`); `reload_settings`
    re-reads flags, environment and confd.toml on SIGHUP.
    """
    from confd.backends.pool import DatabasePool
    from confd.config.resource import load_resources
    from confd.run.processor import Processor, failure_summary
    from confd.sync import SyncOptions
    from confd.template.renderer import Renderer

    setup_logging(settings.log_level, settings.log_format)
    log.info("Starting confd %s", __version__)
    log.info("Backend set to %s", settings.backend)
    if not settings.onetime:
        from confd.run.assembly import run_service

        return run_service(settings, reload_settings or (lambda: settings), out=out)

    resources, load_errors = load_resources(Path(settings.confdir), prefix=settings.prefix)
    for error in load_errors:
        log.error("%s", error)
    if not resources and not load_errors:
        log.warning("no template resources in %s", settings.resources_dir)
    pool = DatabasePool(settings)
    processor = Processor(
        resources,
        Renderer(settings.templates_dir),
        pool,
        SyncOptions(settings.noop, settings.sync_only, settings.keep_stage_file),
        out=out,
    )
    try:
        summary = failure_summary(processor.run_once(), len(load_errors))
        if summary:
            log.error("%s", summary)
            return 1
        return 0
    finally:
        pool.close()


@cli.command()
@click.option("--confdir", help="the confdir to check [default: as for the daemon]")
@click.pass_context
def check(ctx: click.Context, confdir: str | None) -> None:
    """Validate a confdir without a backend: TOML, templates, sources, destinations."""
    problems = check_confdir(ctx, confdir)
    for problem in problems:
        click.echo(f"error: {problem}")
    if problems:
        click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found")
        ctx.exit(1)


def check_confdir(ctx: click.Context, confdir: str | None) -> list[str]:
    """Every problem found in the confdir, as messages naming the file at fault."""
    from confd.config.resource import load_resources
    from confd.template.renderer import Renderer

    problems: list[str] = []
    try:
        settings = settings_from_context(ctx, confdir=confdir)
    except ConfigError as exc:
        problems.append(str(exc))
        settings = Settings(confdir=confdir or os.environ.get("CONFD_CONFDIR", "/etc/confd"))
    try:
        resources, errors = load_resources(Path(settings.confdir), prefix=settings.prefix)
    except ConfigError as exc:
        return [*problems, str(exc)]
    problems.extend(str(e) for e in errors)
    renderer = Renderer(settings.templates_dir)
    for resource in resources:
        try:
            renderer.check(resource.src)
        except ConfdError as exc:
            problems.append(f"{resource.path}: {exc}")
        directory = resource.dest.parent
        if not directory.is_dir():
            problems.append(f"{resource.path}: dest directory {directory} does not exist")
        elif not os.access(directory, os.W_OK | os.X_OK):
            problems.append(f"{resource.path}: dest directory {directory} is not writable")
    if not problems:
        click.echo(f"{settings.confdir}: {len(resources)} template resource"
                   f"{'s' if len(resources) != 1 else ''} OK")
    return problems


@cli.command("backends")
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


def _option_names(command: click.Command) -> tuple[set[str], set[str]]:
    """Long option names (without dashes) of `command`, and those that are on/off flags."""
    names: set[str] = set()
    flags: set[str] = set()
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("--"):
                names.add(opt[2:])
                if param.is_flag:
                    flags.add(opt[2:])
    return names, flags


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Accept Go's spelling: `-onetime`, `-node=x`, `-onetime=false` become click's.

    Only known long options are rewritten; everything after `--`, or after a subcommand
    confd does not define itself, is left alone.
    """
    names, flags = _option_names(cli)
    for command in cli.commands.values():
        more, more_flags = _option_names(command)
        names |= more
        flags |= more_flags
    out: list[str] = []
    args = list(argv)
    for index, arg in enumerate(args):
        if arg == "--" or arg in LAZY_COMMANDS:
            return out + args[index:]
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2:
            name, sep, _ = arg[1:].partition("=")
            if name in names:
                arg = "-" + arg
        if arg.startswith("--") and "=" in arg:
            name, _, value = arg[2:].partition("=")
            if name in flags and not name.startswith("no-"):
                low = value.strip().lower()
                if low in ("true", "1", "t", "yes"):
                    arg = f"--{name}"
                elif low in ("false", "0", "f", "no"):
                    arg = f"--no-{name}"
        out.append(arg)
    return out


# Start-up (importing jinja2, compiling templates) allocates tens of thousands of objects
# that live to the end; a cycle collection every 700 allocations cost ~4 ms of each
# `--onetime` run. Collect less often until confd knows it is not a one-shot run.
_STARTUP_GC_THRESHOLD = 20_000
_DEFAULT_GC_THRESHOLDS = gc.get_threshold()


def _collect_as_usual() -> None:
    """Back to Python's cycle-collection thresholds, for long-running modes and subcommands."""
    gc.set_threshold(*_DEFAULT_GC_THRESHOLDS)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: run the CLI and exit; a `ConfdError` prints one line, no traceback.

    On the way out the heap is frozen (`gc.freeze`): the interpreter's exit-time collection
    then skips it, which was ~12 ms of every `--onetime` run. Exit handlers still run.
    """
    gc.set_threshold(_STARTUP_GC_THRESHOLD, *_DEFAULT_GC_THRESHOLDS[1:])
    try:
        _main(argv)
    finally:
        _collect_as_usual()
        gc.freeze()


def _main(argv: Sequence[str] | None) -> None:
    args = normalize_argv(sys.argv[1:] if argv is None else argv)
    try:
        status = cli.main(args, prog_name="confd", standalone_mode=False)
    except ConfdError as exc:
        log.error("%s", exc)
        if not logging_ready():
            print(f"confd: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)


def logging_ready() -> bool:
    """Whether confd's log handler is installed (else errors go to stderr bare)."""
    import logging

    return bool(logging.getLogger("confd").handlers)
