"""`confd check`: validate a confdir without a backend (TOML, templates, sources, destinations)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from confd.cli.main import settings_from_context
from confd.config.options import BY_NAME
from confd.config.resource import configured_resources, select_resources
from confd.config.settings import Settings
from confd.errors import ConfdError, ConfigError

_NAMES = {"go": "a Go template", "jinja": "a Jinja template"}


@click.command()
@click.option("--confdir", help="the confdir to check [default: as for the daemon]")
@click.option("--strict", is_flag=True, help="unknown keys in resource files are errors")
@click.option("--no-dest-check", "no_dest_check", is_flag=True,
              help="do not check that destination directories exist and are writable (CI)")
@click.option("--resource", "names", multiple=True, metavar="NAME",
              help="check only this resource (nginx.toml, nginx or a path; repeatable)")
@click.pass_context
def check(ctx: click.Context, confdir: str | None, strict: bool, no_dest_check: bool,
          names: tuple[str, ...] = ()) -> None:
    """Validate a confdir without a backend: TOML, templates, sources, destinations.

    Each template is compiled in the syntax it is read as (printed), and names a template
    uses that no function or variable defines are reported, as a render would fail on them.
    """
    problems = check_confdir(ctx, confdir, names, strict=strict, dest_check=not no_dest_check)
    for problem in problems:
        click.echo(f"error: {problem}")
    if problems:
        click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found")
        ctx.exit(1)


def check_confdir(
    ctx: click.Context, confdir: str | None, names: tuple[str, ...] = (), *,
    strict: bool = False, dest_check: bool = True,
) -> list[str]:
    """Every problem found in the confdir (or in the resources `names`), as messages naming
    the file at fault."""
    from confd.template.renderer import Renderer

    problems: list[str] = []
    try:
        settings = settings_from_context(ctx, confdir=confdir)
    except ConfigError as exc:
        problems.append(str(exc))
        settings = Settings(confdir=confdir or os.environ.get("CONFD_CONFDIR",
                                                              BY_NAME["confdir"].default))
    try:
        resources, errors = configured_resources(settings, strict=strict)
    except ConfigError as exc:
        return [*problems, str(exc)]
    if names:
        wanted = {Path(n).name for n in names} | {f"{Path(n).name}.toml" for n in names}
        problems.extend(str(e) for e in errors if any(w in str(e) for w in wanted))
        try:
            resources = select_resources(resources, names, settings.resources_dir)
        except ConfigError as exc:
            return problems or [str(exc)]
    else:
        problems.extend(str(e) for e in errors)
    renderer = Renderer(settings.templates_dir, syntax=settings.template_syntax)
    for resource in resources:
        try:
            syntax = renderer.check(resource.src, syntax=resource.syntax)
        except ConfdError as exc:
            problems.append(f"{resource.path}: {exc}")
        else:
            click.echo(f"{resource.path}: {resource.src} read as {_NAMES[syntax.name]}")
            if syntax.name == "jinja":
                problems.extend(f"{resource.path}: {p}" for p in renderer.unknown_names(
                    resource.src))
        if not dest_check:
            continue
        directory = resource.dest.parent
        if not directory.is_dir():
            problems.append(f"{resource.path}: dest directory {directory} does not exist")
        elif not os.access(directory, os.W_OK | os.X_OK):
            problems.append(f"{resource.path}: dest directory {directory} is not writable")
    if not problems:
        click.echo(f"{settings.confdir}: {len(resources)} template resource"
                   f"{'s' if len(resources) != 1 else ''} OK")
    return problems
