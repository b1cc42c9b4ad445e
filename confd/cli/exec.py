"""`confd exec [options] -- CMD ARGS...`: the command line of exec mode (`confd.run.exec`)."""

from __future__ import annotations

import click

from confd.cli.main import CONTEXT_SETTINGS, CliState, settings_options
from confd.log import setup_logging
from confd.run.exec import ChildOptions, parse_signal, run_exec


@click.command("exec", context_settings=CONTEXT_SETTINGS)
@click.option("--reload-signal", metavar="SIGNAL",
              help="signal sent to the program after a change [default: restart it]")
@click.option("--kill-signal", metavar="SIGNAL", default="SIGTERM", show_default=True,
              help="signal that stops the program")
@click.option("--kill-timeout", type=float, default=10.0, show_default=True,
              help="seconds between the kill signal and SIGKILL")
@settings_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_command(
    ctx: click.Context,
    reload_signal: str | None,
    kill_signal: str,
    kill_timeout: float,
    command: tuple[str, ...],
    backend_opts: tuple[str, ...],
    **flags: object,
) -> None:
    """Render everything, then run CMD and keep its configuration current.

    Signals are forwarded to CMD; a change sends it --reload-signal (or restarts it); confd
    exits with CMD's status. Watches by default (--no-watch polls every --interval instead);
    with --onetime it renders once, then only supervises CMD (no watch, no reload).
    """
    parent = ctx.find_object(CliState) or CliState()
    state = parent.merged(flags, backend_opts)
    settings = state.settings()
    setup_logging(settings.log_level, settings.log_format)
    child = ChildOptions(
        argv=command,
        reload_signal=parse_signal(reload_signal, "--reload-signal") if reload_signal else None,
        kill_signal=parse_signal(kill_signal, "--kill-signal"),
        kill_timeout=kill_timeout,
    )
    ctx.exit(run_exec(settings, state.settings, child))
