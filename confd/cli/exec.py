"""`confd exec [options] -- CMD ARGS...`: the command line of exec mode (`confd.run.exec`)."""

from __future__ import annotations

import copy

import click

from confd.log import setup_logging
from confd.run.exec import Child, parse_signal, run_exec


def _exec_options() -> list[click.Parameter]:
    """The daemon's own options, so `confd exec --backend etcd ... -- CMD` reads naturally."""
    from confd.cli.main import cli

    skip = {"version", "help"}
    return [
        copy.copy(param)
        for param in cli.params
        if isinstance(param, click.Option) and param.name not in skip
    ]


@click.command(
    "exec",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--reload-signal", metavar="SIGNAL",
              help="signal sent to the program after a change [default: restart it]")
@click.option("--kill-signal", metavar="SIGNAL", default="SIGTERM", show_default=True,
              help="signal that stops the program")
@click.option("--kill-timeout", type=float, default=10.0, show_default=True,
              help="seconds between the kill signal and SIGKILL")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_command(
    ctx: click.Context,
    reload_signal: str | None,
    kill_signal: str,
    kill_timeout: float,
    command: tuple[str, ...],
    **flags: object,
) -> None:
    """Render everything, then run CMD and keep its configuration current.

    Signals are forwarded to CMD; a change sends it --reload-signal (or restarts it); confd
    exits with CMD's status. Watches by default (--interval polls instead with --no-watch).
    """
    from confd.cli.main import CliState, _parse_backend_opts
    from confd.run.assembly import build_daemon

    parent = ctx.find_object(CliState) or CliState()
    backend_opts = dict(parent.backend_opts)
    backend_opts.update(_parse_backend_opts(flags.pop("backend_opts", ()) or ()))  # type: ignore[arg-type]
    for name in ("nodes", "file", "plugin_dirs"):
        flags[name] = list(flags.get(name) or ()) or None  # type: ignore[call-overload]
    state = CliState({**parent.flags, **{k: v for k, v in flags.items() if v is not None}},
                     backend_opts)
    settings = state.settings()
    setup_logging(settings.log_level, settings.log_format)
    child = Child(
        command,
        reload_signal=parse_signal(reload_signal, "--reload-signal") if reload_signal else None,
        kill_signal=parse_signal(kill_signal, "--kill-signal"),
        kill_timeout=kill_timeout,
    )
    watch = settings.watch if settings.source("watch") != "default" else True
    daemon, release = build_daemon(settings, state.settings, watch=watch)
    try:
        status = run_exec(daemon, child, supervise=not settings.onetime)
    finally:
        release()
    ctx.exit(status)


exec_command.params[:0] = _exec_options()
