"""The `confd` command: Go confd's flags (single-dash spellings too) and a group of subcommands.

Without a subcommand it runs the daemon (`--onetime`: render once and exit non-zero when a
resource failed). The options are generated from the settings table (`confd.config.options`);
subcommands other modules provide are imported only when invoked, so start-up stays light.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from confd import __version__
from confd.config.options import OPTIONS, Duration, Option
from confd.config.settings import Settings, load_settings, log_options
from confd.errors import ConfdError, ConfigError
from confd.log import configured, get_logger, setup_logging

__all__ = ["cli", "main", "normalize_argv", "settings_from_context", "CliState", "CONTEXT_SETTINGS"]

log = get_logger("cli")

# Subcommands other modules provide, imported only when invoked: name -> "module:attribute".
LAZY_COMMANDS: dict[str, str] = {
    "exec": "confd.cli.exec:exec_command",
    "convert": "confd.cli.convert:convert_command",
    "check": "confd.cli.check:check",
    "render": "confd.cli.render:render_command",
    "preflight": "confd.cli.preflight:preflight_command",
    "backends": "confd.cli.inventory:backends_command",
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

    def merged(self, flags: dict[str, Any], backend_opts: Sequence[str]) -> CliState:
        """This state with a subcommand's own options on top (`confd exec --backend ...`)."""
        opts = dict(self.backend_opts)
        opts.update(parse_backend_opts(backend_opts))
        return CliState({**self.flags, **given(flags)}, opts)


def settings_from_context(ctx: click.Context, **overrides: Any) -> Settings:
    """For subcommands: the merged settings of the `confd` invocation they run under."""
    state = ctx.find_object(CliState) or CliState()
    return state.settings(**overrides)


def parse_backend_opts(values: Sequence[str]) -> dict[str, str]:
    """`--backend-opt KEY=VALUE` items as a dict (`-` in keys becomes `_`)."""
    opts: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--backend-opt {item.split('=')[0]!r}: expected KEY=VALUE")
        opts[key.strip().replace("-", "_")] = value
    return opts


def given(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags the user gave (click's None and empty tuples mean unset); lists as lists."""
    out: dict[str, Any] = {}
    for name, value in flags.items():
        if isinstance(value, tuple):
            value = list(value) or None
        if value is not None:
            out[name] = value
    return out


def settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate `command` with one click option per daemon setting, plus `--backend-opt`."""
    for option in reversed(OPTIONS):
        command = _click_option(option)(command)
    return click.option("--backend-opt", "backend_opts", multiple=True, metavar="KEY=VALUE",
                        help="a backend setting (repeatable)")(command)


def _click_option(option: Option) -> Callable[..., Any]:
    flag = option.long_flag
    shown = option.shown_default()
    help_text = option.help + (f" [default: {shown}]" if shown else "")
    if option.type is bool:
        off = "--no-" + flag[2:]
        return click.option(f"{flag}/{off}", option.name, default=None, help=help_text)
    kwargs: dict[str, Any] = {"help": help_text}
    names = [flag, option.short] if option.short else [flag]
    if option.metavar:
        kwargs["metavar"] = option.metavar
    if option.type is list:
        kwargs["multiple"] = True
    elif option.type is int:
        kwargs["type"] = int
    elif option.type is float:
        kwargs["type"] = float
    elif option.type is Duration:
        kwargs["type"] = str  # seconds or a Go duration, parsed with the other layers
    if option.choices:
        kwargs["type"] = click.Choice(option.choices, case_sensitive=False)
    return click.option(*names, option.name, **kwargs)


class ConfdGroup(click.Group):
    """A click group that also finds the lazily imported subcommands of `LAZY_COMMANDS`."""

    _confd_help: click.Option | None = None  # the help option, made once (get_help_option)

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

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        """click's `-h`/`--help`, with its help text given: click's own looks the text up with
        gettext, which imports `locale` (~1.3 ms) on every start, `--onetime` too."""
        names = self.get_help_option_names(ctx)
        if not names or not self.add_help_option:
            return None
        if self._confd_help is None:  # one object: click orders eager options by identity
            self._confd_help = click.Option(
                names, is_flag=True, is_eager=True, expose_value=False, callback=_show_help,
                help="Show this message and exit.")
        return self._confd_help

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in LAZY_COMMANDS:
            return command
        return lazy_command(cmd_name)


def _show_help(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """`-h`/`--help`: the help page on stdout, then exit (click's own help callback)."""
    if value and not ctx.resilient_parsing:
        click.echo(ctx.get_help(), color=ctx.color)
        ctx.exit()


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """`--version`, as click's `version_option` prints it (which calls gettext at import)."""
    if value and not ctx.resilient_parsing:
        click.echo(f"confd, version {__version__}", color=ctx.color)
        ctx.exit()


def lazy_command(name: str) -> click.Command | None:
    """Import and return subcommand `name` of `LAZY_COMMANDS` (None when not installed)."""
    module_name, _, attr = LAZY_COMMANDS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise
    found = getattr(module, attr, None)
    return found if isinstance(found, click.Command) else None


# -h as well as --help, and help text up to 100 columns: for `confd` and every subcommand.
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def fork_spellings(command: Callable[..., Any]) -> Callable[..., Any]:
    """The maintained fork's one-shot modes as flags: `--check-config`, `--preflight`,
    `--validate [--mock-data FILE]`, `--resource NAME`; they run `check`, `preflight` and
    `render` (see `_run_fork_mode`)."""
    options = [
        click.option("--check-config", is_flag=True, default=False,
                     help="validate the confdir and exit (the fork's spelling of `check`)"),
        click.option("--preflight", is_flag=True, default=False,
                     help="check backends and templates and exit (`preflight`)"),
        click.option("--validate", is_flag=True, default=False,
                     help="check templates and exit (`check`; with --mock-data: `render`)"),
        click.option("--mock-data", metavar="FILE",
                     help="with --validate: render every template from this JSON/YAML file"),
        click.option("--resource", "fork_resources", multiple=True, metavar="NAME",
                     help="with --check-config, --validate, --preflight: only this resource"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


_FORK_MODES = ("check_config", "preflight", "validate", "mock_data", "fork_resources")


@click.group(cls=ConfdGroup, invoke_without_command=True, context_settings=CONTEXT_SETTINGS)
@settings_options
@fork_spellings
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_show_version, help="Show the version and exit.")
@click.pass_context
def cli(ctx: click.Context, backend_opts: tuple[str, ...], **flags: Any) -> None:
    """Render configuration files from a key/value store with templates.

    Settings come from flags, then CONFD_* environment variables, then confd.toml.
    """
    modes = {name: flags.pop(name) for name in _FORK_MODES}
    ctx.obj = CliState(given(flags), parse_backend_opts(backend_opts))
    setup_logging(*log_options(ctx.obj.flags, os.environ))
    if any(modes.values()):
        if ctx.invoked_subcommand is not None:
            raise click.UsageError("--check-config, --preflight and --validate are commands "
                                   "of their own; give no other command")
        _collect_as_usual()
        ctx.exit(_run_fork_mode(ctx, **modes))
    if ctx.invoked_subcommand is None:
        settings = ctx.obj.settings()
        if not settings.onetime:
            _collect_as_usual()
        ctx.exit(run(settings, ctx.obj.settings))
    _collect_as_usual()


def _run_fork_mode(ctx: click.Context, check_config: bool, preflight: bool, validate: bool,
                   mock_data: str | None, fork_resources: tuple[str, ...]) -> int:
    """Run the command a fork flag spells: `--check-config` and `--validate` -> `check`,
    `--validate --mock-data FILE` -> `render` (one line per resource), `--preflight`."""
    if sum((check_config, preflight, validate)) != 1:
        raise click.UsageError("give one of --check-config, --preflight and --validate"
                               + (" (--mock-data and --resource go with one of them)"
                                  if not (check_config or preflight or validate) else ""))
    if mock_data and not validate:
        raise click.UsageError("--mock-data goes with --validate")
    if preflight:
        from confd.run.preflight import run_preflight

        settings = ctx.obj.settings()
        setup_logging(settings.log_level, settings.log_format)
        return run_preflight(settings, fork_resources)
    if validate and mock_data:
        render = lazy_command("render")
        assert render is not None
        ctx.invoke(render, data_file=mock_data, confdir=None, expect=None,
                   resources=fork_resources, validate_only=True)
        return 0
    check = lazy_command("check")
    assert check is not None
    ctx.invoke(check, confdir=None, names=fork_resources)
    return 0


def run(settings: Settings, read: Callable[[], Settings], *, out: Any = None) -> int:
    """Run as the settings say; return the exit status (onetime: 1 when any resource failed).

    Without --onetime this is the watch or interval loop; `read` re-reads flags, environment
    and confd.toml on SIGHUP.
    """
    setup_logging(settings.log_level, settings.log_format)
    log.info("Starting confd %s", __version__)
    log.info("Backend set to %s", settings.backend)
    if settings.onetime:
        from confd.run.assembly import run_onetime

        return run_onetime(settings, out=out)
    from confd.run.assembly import run_service

    return run_service(settings, read, out=out)


# -- Go's spelling of flags ----------------------------------------------------------------------


def _option_names(command: click.Command) -> tuple[set[str], set[str]]:
    """Long option names (without dashes) of `command`, and those taking no value."""
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


def _unknown_flag(arg: str, names: set[str]) -> click.UsageError:
    import difflib  # only for a mistyped flag: not on every start

    name = arg.lstrip("-").partition("=")[0]
    close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
    hint = f" (did you mean -{close[0]}?)" if close else ""
    return click.UsageError(f"no such flag {arg.partition('=')[0]!r}{hint}")


def _is_backend(word: str) -> bool:
    """A built-in backend's name (or Go confd's alias of one): the fork selects the backend
    as a subcommand, `confd consul --node ...`."""
    from confd.backends.registry import ALIASES, BUILTINS

    return word in BUILTINS or word in ALIASES


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """Accept Go's spelling: `-onetime`, `-node=x`, `-onetime=false` become click's, and the
    fork's: `confd etcd --node x` selects the backend like `--backend etcd`.

    Known long options are rewritten; an unknown single-dash word where a flag is expected is
    an error naming the whole flag (`-tabel`, not `-t`) and the closest known one. Subcommand
    options are rewritten too; everything after `--` is left alone.
    """
    names, flags = _option_names(cli)
    out: list[str] = []
    args = list(argv)
    expect_value = in_subcommand = False
    for index, arg in enumerate(args):
        if expect_value:
            expect_value = False
            out.append(arg)
            continue
        if arg == "--" or (in_subcommand and not arg.startswith("-")):
            return out + args[index:]  # a subcommand's arguments (exec's program) stay as given
        if arg == "-n":  # the fork's short --node
            expect_value = True
        elif not arg.startswith("-") and not in_subcommand and _is_backend(arg):
            out += ["--backend", arg]  # the fork's `confd etcd --node ...`
            continue
        elif not arg.startswith("-"):
            command = cli.commands.get(arg) or (lazy_command(arg) if arg in LAZY_COMMANDS
                                                else None)
            if command is not None:
                names, flags = _option_names(command)
                in_subcommand = True
                if isinstance(command, click.Group):  # `plugins describe NAME`: leave it be
                    return out + args[index:]
            out.append(arg)
            continue
        if not arg.startswith("--") and len(arg) > 2:
            name = arg[1:].partition("=")[0]
            if name not in names:
                raise _unknown_flag(arg, names)
            arg = "-" + arg
        if arg.startswith("--"):
            name, sep, value = arg[2:].partition("=")
            if sep and name in flags and not name.startswith("no-"):
                low = value.strip().lower()
                if low in ("true", "1", "t", "yes"):
                    arg = f"--{name}"
                elif low in ("false", "0", "f", "no"):
                    arg = f"--no-{name}"
            elif not sep and name in names and name not in flags:
                expect_value = True
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
    try:
        args = normalize_argv(sys.argv[1:] if argv is None else argv)
        status = cli.main(args, prog_name="confd", standalone_mode=False)
    except ConfdError as exc:
        log.error("%s", exc)
        if not configured():
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

