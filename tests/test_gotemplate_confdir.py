"""A Go confd confdir renders unchanged through the real `confd --onetime`: no flag, no edit.

Every case of the Go template corpus (tests/gotemplates/) becomes a resource of one confdir,
its keys under a prefix of its own, read by a plugin from one JSON file; confd decides each
template's syntax by itself (`template_syntax = auto`) and must write what Go confd rendered.
`confd check` says each was read as a Go template; `confd convert` turns the confdir into
Jinja that renders the same files again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testsupport.plugins import install

CORPUS = Path(__file__).parent / "gotemplates"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "template.tmpl").exists())


@pytest.fixture
def go_confdir(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """(confdir, output dir, the plugin's environment) holding every corpus case."""
    confdir, out = tmp_path / "confdir", tmp_path / "out"
    (confdir / "conf.d").mkdir(parents=True)
    (confdir / "templates").mkdir()
    out.mkdir()
    values: dict[str, str] = {}
    for case in CASES:
        data = json.loads((CORPUS / case / "data.json").read_text())
        values.update({f"/{case}{key}": value for key, value in data.items()})
        (confdir / "templates" / f"{case}.tmpl").write_text(
            (CORPUS / case / "template.tmpl").read_text())
        (confdir / "conf.d" / f"{case}.toml").write_text(
            f'[template]\nsrc = "{case}.tmpl"\ndest = "{out / case}"\nprefix = "/{case}"\n'
            'keys = ["/"]\n')
    store = tmp_path / "values.json"
    store.write_text(json.dumps(values))
    install(tmp_path / "plugins", "jsonfile.py", "jsonfile")
    (confdir / "confd.toml").write_text(
        f'backend = "jsonfile"\nplugin_dir = ["{tmp_path / "plugins"}"]\n'
        f'[backends.jsonfile]\npath = "{store}"\n')
    return confdir, out, {"TZ": "UTC"}


def rendered(out: Path) -> dict[str, str]:
    return {case: (out / case).read_bytes().decode("utf-8", "surrogateescape")
            for case in CASES if (out / case).exists()}


def expected() -> dict[str, str]:
    return {case: (CORPUS / case / "expected").read_text() for case in CASES}


def test_a_go_confd_confdir_renders_unchanged(go_confdir, run_confd) -> None:
    confdir, out, env = go_confdir
    result = run_confd("-onetime", "-confdir", str(confdir), env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert rendered(out) == expected()


def test_check_says_each_template_is_read_as_go(go_confdir, run_confd) -> None:
    confdir, _, env = go_confdir
    result = run_confd("check", "--confdir", str(confdir), "--no-dest-check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    for case in CASES:
        assert f"{case}.toml: {case}.tmpl read as a Go template" in result.stdout


def test_convert_then_render_gives_the_same_files(go_confdir, run_confd) -> None:
    confdir, out, env = go_confdir
    converted = run_confd("convert", str(confdir))
    refused = {c for c in CASES if (CORPUS / c / "refused.txt").exists()}
    assert converted.returncode == (1 if refused else 0), converted.stdout
    for case in CASES:
        line = f"{confdir / 'templates' / case}.tmpl: "
        assert line + ("not converted" if case in refused else "converted") in converted.stdout
    checked = run_confd("check", "--confdir", str(confdir), "--no-dest-check", env=env)
    for case in set(CASES) - refused:
        assert f"{case}.tmpl read as a Jinja template" in checked.stdout, checked.stdout
    result = run_confd("-onetime", "-confdir", str(confdir), env=env, timeout=120)
    # json-numbers prints a JSON null, an error in Jinja (its jinja-differs.txt says why)
    differs = {c for c in CASES if (CORPUS / c / "jinja-differs.txt").exists()}
    failed = [line for line in result.stderr.splitlines()
              if " ERROR " in line and "/conf.d/" in line]
    assert len(failed) == len(differs), result.stderr[-3000:]
    for case in differs:
        assert any(f"{case}.tmpl" in line for line in failed), failed
    want = {c: text for c, text in expected().items() if c not in differs}
    got = {c: text for c, text in rendered(out).items() if c not in differs}
    assert got == want
