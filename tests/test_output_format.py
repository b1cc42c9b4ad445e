"""`output_format`: rendered output that does not parse is refused before it replaces the
destination (no check, no reload), with the parser's line and column and no content."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from confd.backends.pool import DatabasePool
from confd.config.settings import Settings
from confd.errors import ConfigError
from confd.run.assembly import Runtime
from confd.run.processor import Status

# format: (valid output, invalid output, where the parser stops)
OUTPUTS = {
    "json": ('{"a": [1, 2], "b": {"c": null}}\n', '{"a": [1, 2],\n "b": SECRET}\n',
             "line 2, column 7"),
    "yaml": ("a: 1\nb:\n  - x\n---\nc: d\n", "a: 1\nb: [SECRET\n", "line 3, column 1"),
    "yml": ("a: 1\n", "a: 1\na: SECRET\n", "line 2, column 1"),
    "toml": ('a = 1\n[b]\nc = "d"\n', 'a = 1\nb = SECRET\n', "line 2, column 5"),
    "xml": ('<?xml version="1.0"?>\n<a><b c="d"/></a>\n', "<a>\n<b>SECRET</a>\n",
            "line 2, column 14"),
}


def _confdir(make_confdir, tmp_path: Path, fmt: str, output: str) -> Path:
    return make_confdir(
        templates={"out.tmpl": output.replace("SECRET", '{{ getv("/secret") }}')},
        resources={"out.toml": f"""
            [template]
            src = "out.tmpl"
            dest = "{tmp_path}/out.conf"
            keys = ["/secret"]
            output_format = "{fmt}"
            check_cmd = "touch {tmp_path}/checked"
            reload_cmd = "touch {tmp_path}/reloaded"
            """},
    )


def _run(confdir: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv("SECRET", "hunter22")
    return Runtime(Settings(backend="env", confdir=str(confdir)), DatabasePool())


@pytest.mark.parametrize("fmt", sorted(OUTPUTS))
def test_valid_output_is_installed(
    make_confdir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    valid = OUTPUTS[fmt][0]
    [outcome] = _run(_confdir(make_confdir, tmp_path, fmt, valid), monkeypatch).run_once()
    assert outcome.status is Status.CHANGED, outcome.error
    assert (tmp_path / "out.conf").read_text() == valid
    assert (tmp_path / "checked").exists() and (tmp_path / "reloaded").exists()


@pytest.mark.parametrize("fmt", sorted(OUTPUTS))
def test_invalid_output_is_refused_and_destination_untouched(
    make_confdir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, confd_log: io.StringIO,
    fmt: str,
) -> None:
    _, invalid, where = OUTPUTS[fmt]
    (tmp_path / "out.conf").write_text("the last good file\n")
    [outcome] = _run(_confdir(make_confdir, tmp_path, fmt, invalid), monkeypatch).run_once()
    assert outcome.status is Status.FAILED
    kind = "YAML" if fmt == "yml" else fmt.upper()
    assert f"output is not valid {kind} at {where}" in str(outcome.error)
    assert (tmp_path / "out.conf").read_text() == "the last good file\n"
    assert not (tmp_path / "checked").exists() and not (tmp_path / "reloaded").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.conf")] == []
    logged = confd_log.getvalue()
    assert "out.toml" in logged and f"output is not valid {kind}" in logged
    assert "hunter22" not in logged and "hunter22" not in str(outcome.error)


def test_invalid_output_in_noop_mode_is_refused_too(
    make_confdir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    confdir = _confdir(make_confdir, tmp_path, "json", OUTPUTS["json"][1])
    monkeypatch.setenv("SECRET", "x")
    runtime = Runtime(Settings(backend="env", confdir=str(confdir), noop=True), DatabasePool(),
                      out=io.StringIO())
    [outcome] = runtime.run_once()
    assert outcome.status is Status.FAILED
    assert not (tmp_path / "out.conf").exists()


def test_unknown_output_format_is_a_resource_error(make_confdir, tmp_path: Path) -> None:
    confdir = make_confdir(
        templates={"out.tmpl": "x"},
        resources={"out.toml": f"""
            [template]
            src = "out.tmpl"
            dest = "{tmp_path}/out.conf"
            output_format = "ini"
            """},
    )
    runtime = Runtime(Settings(backend="env", confdir=str(confdir)), DatabasePool())
    [error] = runtime.load_errors
    assert isinstance(error, ConfigError)
    assert "out.toml: template output_format 'ini' is not one of json, yaml, yml, toml, xml" \
        in str(error)


def test_output_format_is_case_insensitive(make_confdir, tmp_path: Path) -> None:
    confdir = make_confdir(
        templates={"out.tmpl": "[1]"},
        resources={"out.toml": f'[template]\nsrc = "out.tmpl"\ndest = "{tmp_path}/o"\n'
                               'output_format = "JSON"\n'},
    )
    runtime = Runtime(Settings(backend="env", confdir=str(confdir)), DatabasePool())
    assert runtime.resources[0].output_format == "json"
