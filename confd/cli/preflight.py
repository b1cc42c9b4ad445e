"""`confd preflight [options]`: connect to every backend the confdir uses and render each
resource into nothing, reporting what is missing or unreachable (see `confd.run.preflight`).
It takes every daemon setting, like the daemon (`confd preflight --backend etcd --node ...`)."""

from __future__ import annotations

import click

from confd.cli.main import CONTEXT_SETTINGS, CliState, settings_options


@click.command("preflight", context_settings=CONTEXT_SETTINGS)
@click.option("--resource", "names", multiple=True, metavar="NAME",
              help="check only this resource (nginx.toml, nginx or a path; repeatable)")
@settings_options
@click.pass_context
def preflight_command(ctx: click.Context, names: tuple[str, ...],
                      backend_opts: tuple[str, ...], **flags: object) -> None:
    """Check that every resource's backend answers and its template renders; writes nothing.

    Exits 1 when a backend is unreachable, a key a template needs is missing, a template
    fails, or --preflight-timeout passes first.
    """
    from confd.log import setup_logging
    from confd.run.preflight import run_preflight

    parent = ctx.find_object(CliState) or CliState()
    settings = parent.merged(flags, backend_opts).settings()
    setup_logging(settings.log_level, settings.log_format)
    ctx.exit(run_preflight(settings, names))
