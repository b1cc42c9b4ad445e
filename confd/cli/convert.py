"""`confd convert`: rewrite Go confd templates as idiomatic Jinja that renders the same bytes.

Each Go template (read by the `auto` rule, or every file given with `--syntax go`) is converted
by `confd.template.golang.convert`. A file with any construct that cannot be converted exactly
is left untouched, and the construct and its line are named. `--check` shows the diff and
writes nothing; `--out DIR` writes the converted files there instead of in place.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from pathlib import Path

import click

from confd.cli.main import CONTEXT_SETTINGS
from confd.errors import ConfdError


def _templates(paths: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """(template file, the directory its name is relative to) for every path given: a confdir
    (its templates/), a templates directory, or a file."""
    found: list[tuple[Path, Path]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            root = path / "templates" if (path / "templates").is_dir() else path
            found += [(f, root) for f in sorted(root.rglob("*")) if f.is_file()]
        elif path.is_file():
            found.append((path, path.parent))
        else:
            raise click.UsageError(f"{path}: no such file or directory")
    return found


def _forced_go(paths: tuple[str, ...]) -> set[Path]:
    """Templates that a resource reads with template_syntax = "go" (they stay Go after a
    conversion unless the resource is changed too)."""
    from confd.config.resource import load_resources

    forced: set[Path] = set()
    for raw in paths:
        confdir = Path(raw)
        if not (confdir / "conf.d").is_dir():
            continue
        try:
            resources, _ = load_resources(confdir)
        except ConfdError:
            continue
        forced |= {r.src_path.resolve() for r in resources if r.syntax == "go"}
    return forced


def _write(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically, keeping its mode."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, stage = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(stage, mode)
        os.replace(stage, path)
    except BaseException:
        Path(stage).unlink(missing_ok=True)
        raise


@click.command("convert", context_settings=CONTEXT_SETTINGS)
@click.argument("paths", nargs=-1, required=True)
@click.option("--check", is_flag=True, help="show the diff and write nothing")
@click.option("--out", "out", type=click.Path(file_okay=False),
              help="write converted templates under DIR (same relative paths) [default: in "
              "place]")
@click.option("--syntax", type=click.Choice(["auto", "go"]), default="auto", show_default=True,
              help="which files are Go templates: decided per file, or every file given")
@click.pass_context
def convert_command(
    ctx: click.Context, paths: tuple[str, ...], check: bool, out: str | None, syntax: str
) -> None:
    """Convert the Go templates of CONFDIR(s) or FILE(s) to Jinja.

    Prints one line per file: converted, not a Go template, or not converted (with every
    construct that prevents an exact conversion and its line). Exit status: 1 when a Go
    template could not be converted, or with --check when a file would change.
    """
    from confd.template.functions import FUNCTION_NAMES
    from confd.template.golang.convert import convert
    from confd.template.golang.errors import GoSyntaxError
    from confd.template.renderer import Renderer

    failed = changed = 0
    forced = _forced_go(paths)
    for path, root in _templates(paths):
        name = path.relative_to(root)
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            click.echo(f"{path}: not converted: cannot read it ({exc})")
            failed += 1
            continue
        if syntax == "auto":
            try:
                read_as = Renderer(root).syntax_of(str(name)).name
            except ConfdError as exc:
                click.echo(f"{path}: not converted: {exc}")
                failed += 1
                continue
            if read_as != "go":
                click.echo(f"{path}: not a Go template (read as Jinja); left as it is")
                continue
        try:
            result = convert(source, str(name), FUNCTION_NAMES)
        except GoSyntaxError as exc:
            click.echo(f"{path}: not converted: {exc}")
            failed += 1
            continue
        if result.text is None:
            failed += 1
            click.echo(f"{path}: not converted, left untouched:")
            for problem in result.problems:
                click.echo(f"    line {problem.line}: {problem.construct}: {problem.reason}")
            continue
        target = Path(out) / name if out else path
        changed += result.text != source
        if check:
            diff = difflib.unified_diff(source.splitlines(keepends=True),
                                        result.text.splitlines(keepends=True),
                                        fromfile=str(path), tofile=f"{path} (Jinja)")
            click.echo("".join(diff), nl=False)
            click.echo(f"{path}: would be converted")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        _write(target, result.text)
        click.echo(f"{path}: converted" + (f" -> {target}" if out else ""))
        if path.resolve() in forced and not out:
            click.echo(f"    note: a resource reads {name} with template_syntax = \"go\": "
                       "set it to \"jinja\" (or remove it)")
    if failed or (check and changed):
        ctx.exit(1)
