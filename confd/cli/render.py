"""`confd render --data FILE`: render resources from a data file, for testing templates in CI.

The data file is YAML or JSON in the file backend's format (maps nest into `/a/b` keys, lists
into `/a/0`); each resource reads it through its own prefix and keys, as the daemon would read a
store, and is rendered to stdout: no destination is touched and no command runs. `output_format`
is checked. `--expect DIR` compares each output with the golden file of the same name as its
destination (`DIR/nginx.conf` for `dest = "/etc/nginx/nginx.conf"`) and exits 1 with a diff.

It also serves the fork's `--validate --mock-data FILE [--resource NAME]`: then nothing is
printed but one line per resource, and the file's top-level map is also the template's context
(the fork's `{{ .name }}`; variables in Jinja), as the fork gives its mock data.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import click

from confd.cli.main import settings_from_context
from confd.config.resource import TemplateResource, configured_resources, select_resources
from confd.errors import ConfigError

__all__ = ["render_command", "render_resources"]


def _load_context(data_file: Path) -> dict[str, Any]:
    """The data file's top-level map (empty when it is not one), for `--validate`."""
    text = data_file.read_text()
    if data_file.suffix == ".json":
        document = json.loads(text)
    else:
        import yaml

        document = yaml.safe_load(text)
    if not isinstance(document, dict):
        return {}
    return {k: v for k, v in document.items() if isinstance(k, str)}


def render_resources(
    ctx: click.Context,
    data_file: str,
    names: Sequence[str],
    *,
    confdir: str | None = None,
    expect: str | None = None,
    validate: bool = False,
    out: IO[str] | None = None,
) -> int:
    """Render the chosen resources from `data_file`; the exit status (1: any failed)."""
    from confd.backends.pool import DatabasePool
    from confd.template.output_format import validate_output
    from confd.template.renderer import Renderer
    from confd.template.store import KVStore

    out = out or sys.stdout
    settings = settings_from_context(ctx, confdir=confdir)
    data = Path(data_file)
    if not data.is_file():
        raise ConfigError(f"data file {data} does not exist")
    resources, errors = configured_resources(settings)
    chosen = select_resources(resources, names, settings.resources_dir)
    failed = [str(e) for e in errors if not names]
    for message in failed:
        click.echo(f"error: {message}", err=True)
    context = _load_context(data) if validate else None
    renderer = Renderer(settings.templates_dir, syntax=settings.template_syntax)
    golden_dir = Path(expect) if expect else None
    if golden_dir is not None:
        _check_golden_names(chosen)
    pool = DatabasePool()
    try:
        database = pool.get(settings, "file", {"file": str(data)})
        for resource in chosen:
            try:
                values = database.get_values(resource.backend_keys())
                text = renderer.render(resource.src, KVStore(resource.to_store(values)), context,
                                       syntax=resource.syntax).text
                validate_output(text, resource.output_format)
            except Exception as exc:  # noqa: BLE001 - confd's and the data file's own errors, named
                failed.append(str(exc))
                click.echo(f"error: {resource.path}: {exc}", err=True)
                continue
            if validate:
                click.echo(f"OK: {resource.path}", file=out)
            elif golden_dir is not None:
                if not _matches_golden(resource, text, golden_dir, out):
                    failed.append(resource.name)
            else:
                if len(chosen) > 1:
                    out.write(f"==> {resource.name} ({resource.dest}) <==\n")
                out.write(text)
    finally:
        pool.close()
    out.flush()
    if failed:
        click.echo(f"{len(failed)} of {len(chosen) + len(errors) * (not names)} failed", err=True)
        return 1
    return 0


def _check_golden_names(resources: Sequence[TemplateResource]) -> None:
    seen: dict[str, str] = {}
    for resource in resources:
        other = seen.setdefault(resource.dest.name, resource.name)
        if other != resource.name:
            raise ConfigError(f"--expect: {other} and {resource.name} both write a file named "
                              f"{resource.dest.name}; render them one at a time")


def _matches_golden(resource: TemplateResource, text: str, golden_dir: Path, out: IO[str]) -> bool:
    golden = golden_dir / resource.dest.name
    try:
        wanted = golden.read_text()
    except FileNotFoundError:
        click.echo(f"error: {resource.name}: golden file {golden} does not exist", err=True)
        return False
    if wanted == text:
        click.echo(f"ok: {resource.name} matches {golden}", file=out)
        return True
    import difflib

    out.writelines(difflib.unified_diff(
        wanted.splitlines(keepends=True), text.splitlines(keepends=True),
        fromfile=str(golden), tofile=f"{resource.name} (rendered)",
    ))
    click.echo(f"error: {resource.name}: output differs from {golden}", err=True)
    return False


@click.command("render")
@click.option("--data", "data_file", required=True, metavar="FILE",
              help="YAML or JSON data, in the file backend's format")
@click.option("--confdir", help="the confdir [default: as for the daemon]")
@click.option("--expect", metavar="DIR",
              help="compare each output with DIR/<dest file name>; exit 1 with a diff")
@click.option("--validate-only", is_flag=True, hidden=True,
              help="the fork's --validate --mock-data: one line per resource, data as context")
@click.argument("resources", nargs=-1)
@click.pass_context
def render_command(ctx: click.Context, data_file: str, confdir: str | None, expect: str | None,
                   resources: tuple[str, ...], validate_only: bool = False) -> None:
    """Render RESOURCES (default: all) from a data file to stdout; nothing is written."""
    ctx.exit(render_resources(ctx, data_file, resources, confdir=confdir, expect=expect,
                              validate=validate_only))
